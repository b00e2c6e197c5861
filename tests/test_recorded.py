"""Recorded full-size outputs: harvested from an executed notebook, shown with their label."""

from __future__ import annotations

import json

import pytest

from gpt2course import recorded
from gpt2course.workshop import course, record

SOURCE = """# %%
print("quick")

# %% record:samples
print("a sample")
"""


def test_a_record_tag_gets_a_cell_that_shows_the_recording() -> None:
    nb = course.NOTEBOOKS[6]
    cells = course.build_notebook(nb, "solutions", SOURCE)["cells"]
    tagged = next(
        i for i, c in enumerate(cells) if "record:samples" in c["metadata"].get("tags", [])
    )
    shown = cells[tagged + 1]
    assert shown["cell_type"] == "code"
    assert f'recorded.show("{nb.slug}", "samples")' in shown["source"]


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.setattr(recorded, "FOLDER", tmp_path)
    return tmp_path


def _executed() -> dict:
    return {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": ["record:samples"]}, "outputs": [
                {"output_type": "stream", "name": "stdout", "text": "ROMEO: what light\n"},
                {"output_type": "stream", "name": "stderr", "text": "training: 100%\n"},
                {"output_type": "display_data", "data": {"image/png": "iVBOR", "text/plain": "<Figure>"},
                 "metadata": {}},
            ]},
            {"cell_type": "code", "metadata": {}, "outputs": [{"output_type": "stream", "name": "stdout", "text": "x"}]},
        ]
    }  # fmt: skip


def test_harvest_keeps_the_tagged_cells_text_and_pictures_not_stderr(folder) -> None:
    p = record.harvest("06_pretraining", _executed(), 125.0, "CPU (test, 2 cores)")
    rec = json.loads(p.read_text())
    assert list(rec["cells"]) == ["samples"]
    kinds = [o.get("name", o["output_type"]) for o in rec["cells"]["samples"]]
    assert kinds == ["stdout", "display_data"], "stderr (progress bars) is left out"
    assert rec["meta"]["device"] == "CPU (test, 2 cores)" and rec["meta"]["minutes"] > 2


def test_show_labels_quick_mode_and_the_recording(folder, capsys, monkeypatch) -> None:
    monkeypatch.setenv("GPT2COURSE_QUICK", "1")
    record.harvest("06_pretraining", _executed(), 60.0, "CPU (test)")
    recorded.show("06_pretraining", "samples")
    out = capsys.readouterr().out
    assert "quick mode" in out and "not the real result" in out
    assert "Recorded full-size run" in out and "CPU (test)" in out
    assert "ROMEO: what light" in out


def test_show_without_a_recording_says_so(folder, capsys) -> None:
    recorded.show("06_pretraining", "samples")
    assert "No full-size run of this cell is recorded yet" in capsys.readouterr().out


@pytest.mark.parametrize(
    "load,words", [(0.4, "a quiet machine: load 0.4"), (3.2, "a shared machine: load 3.2 on 2")]
)
def test_the_label_says_how_busy_the_machine_was(folder, capsys, monkeypatch, load, words) -> None:
    monkeypatch.setattr(record.os, "cpu_count", lambda: 2)
    record.harvest("06_pretraining", _executed(), 60.0, "CPU (test)", load=load)
    recorded.show("06_pretraining", "samples")
    assert words in capsys.readouterr().out


def test_load_watch_averages_the_load_during_the_run(monkeypatch) -> None:
    loads = iter([1.0, 3.0, 5.0, 5.0, 5.0])
    monkeypatch.setattr(record.os, "getloadavg", lambda: (next(loads), 0.0, 0.0))
    with record.LoadWatch(every=0.01) as watch:
        while len(watch.samples) < 2:
            pass
    assert watch.samples[:3] == [1.0, 3.0, 5.0]  # the last one taken on the way out
    assert watch.mean == pytest.approx(sum(watch.samples) / len(watch.samples))


def test_band_is_the_runs_range_widened():
    assert recorded.band([1.84, 1.86, 1.85]) == pytest.approx((1.84 - 0.037, 1.86 + 0.037))
    assert recorded.band([1.0, 2.0]) == pytest.approx((0.5, 2.5))


def _bands(folder, runs=(1.84, 1.86, 1.85)):
    record.harvest("06_pretraining", _executed(), 60.0, "CPU (test)")
    p = recorded.path("06_pretraining")
    rec = json.loads(p.read_text())
    rec["bands"] = {"validation loss": {"runs": list(runs), "how": "three seeds, test"}}
    p.write_text(json.dumps(rec))


def test_a_run_outside_the_band_gets_its_likely_causes(folder, capsys, monkeypatch):
    monkeypatch.setenv("GPT2COURSE_QUICK", "0")
    _bands(folder)
    recorded.report_card("06_pretraining", {"validation loss": 2.58})  # wpe left at N(0, 1)
    out = capsys.readouterr().out
    assert "2.580, expected 1.803 to 1.897 (high)" in out
    assert "above the band. Likely causes:" in out and "N(0, 1)" in out
    recorded.report_card("06_pretraining", {"validation loss": 0.9})  # sees the future
    assert "causal mask" in capsys.readouterr().out
    recorded.report_card("06_pretraining", {"validation loss": 1.87})
    out = capsys.readouterr().out
    assert "(normal)" in out and "Likely causes" not in out


def test_quick_mode_compares_nothing(folder, capsys, monkeypatch):
    monkeypatch.setenv("GPT2COURSE_QUICK", "1")
    _bands(folder)
    recorded.report_card("06_pretraining", {"validation loss": 3.1})
    out = capsys.readouterr().out
    assert "not comparable" in out and "Likely causes" not in out


def test_bands_come_from_one_run_per_seed_and_survive_a_new_recording(folder, monkeypatch):
    from gpt2course.workshop import train as train_verb

    def fake_train(argv):
        seed = int(argv[-1].split("=")[1])
        print(json.dumps({"val_loss": 1.8 + seed / 100}))
        return 0

    monkeypatch.setattr(train_verb, "main", fake_train)
    record.record_bands("06", [0, 1, 2])
    record.harvest("06_pretraining", _executed(), 60.0, "CPU (test)")
    rec = json.loads(recorded.path("06_pretraining").read_text())
    assert rec["bands"]["validation loss"]["runs"] == [1.8, 1.81, 1.82]
    assert "shakespeare-bytes" in rec["bands"]["validation loss"]["how"]
    assert list(rec["cells"]) == ["samples"]
