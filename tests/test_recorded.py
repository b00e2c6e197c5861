"""Recorded full-size outputs: harvested from an executed notebook, shown with their label."""

from __future__ import annotations

import json

import pytest
import torch

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


def _bands(folder, runs=(1.84, 1.86, 1.85), slug="06_pretraining", bands=None):
    record.harvest(slug, _executed(), 60.0, "CPU (test)")
    p = recorded.path(slug)
    rec = json.loads(p.read_text())
    bands = bands or {"validation loss": list(runs)}
    rec["bands"] = {name: {"runs": r, "how": "three seeds, test"} for name, r in bands.items()}
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


def test_every_band_figure_has_causes_both_ways():
    for slug, (_, _, _, figures) in record.BAND_RUNS.items():
        for name in figures:
            causes = recorded.CAUSES[slug][name]
            assert causes.get("low") and causes.get("high"), (slug, name)


RLHF_BANDS = {  # the shape of three seeds' runs of `bench rlhf`
    "reward model accuracy": [0.86, 0.87, 0.88],
    "tuned true score": [0.60, 0.62, 0.61],
    "RL true score": [0.66, 0.68, 0.67],
    "DPO true score": [0.55, 0.58, 0.60],
}


def test_the_rlhf_card_names_the_figure_outside_its_band_and_its_causes(
    folder, capsys, monkeypatch
):
    monkeypatch.setenv("GPT2COURSE_QUICK", "0")
    slug = "10_rlhf_in_miniature"
    _bands(folder, slug=slug, bands=RLHF_BANDS)
    # A run whose RL over-optimised the reward model (KL coefficient lowered): the rest normal.
    figures = {"reward model accuracy": 0.87, "tuned true score": 0.61, "RL true score": 0.35,
               "DPO true score": 0.57}  # fmt: skip
    recorded.report_card(slug, figures)
    out = capsys.readouterr().out
    assert "RL true score: 0.350, expected 0.647 to 0.693 (low)"  # 2% of 0.67 each side in out
    assert out.count("(normal)") == 3 and out.count("Likely causes") == 1
    assert "Your RL true score is below the band. Likely causes:" in out and "KL_COEF" in out
    recorded.report_card(slug, {**figures, "RL true score": 0.67, "reward model accuracy": 0.70})
    out = capsys.readouterr().out
    assert "reward model accuracy is below the band" in out and "RM_REPLIES" in out


def test_the_chat_card_names_a_weak_tuning_run_and_its_causes(folder, capsys, monkeypatch):
    monkeypatch.setenv("GPT2COURSE_QUICK", "0")
    slug = "09_from_gpt2_to_chatgpt"
    _bands(folder, slug=slug, bands={"held-out exact match": [0.237, 0.25, 0.22]})
    recorded.report_card(slug, {"held-out exact match": 0.05})
    out = capsys.readouterr().out
    assert "(low)" in out and "below the band. Likely causes:" in out and "SFT_STEPS" in out


def test_rlhf_bands_run_the_bench_once_per_seed(folder, monkeypatch):
    from gpt2course.workshop.bench import rlhf as bench

    seen = []

    def fake_bench(argv):
        seed = int(argv[-1].split("=")[1])
        seen.append(argv)
        keys = ["rm_accuracy", "sft_true", "rl_true", "dpo_true"]
        print("progress line")
        print(json.dumps({k: 0.5 + seed / 100 for k in keys}))
        return 0

    monkeypatch.setattr(bench, "main", fake_bench)
    record.record_bands("10", [0, 1, 2])
    assert seen == [["--seed=0"], ["--seed=1"], ["--seed=2"]]
    rec = json.loads(recorded.path("10_rlhf_in_miniature").read_text())
    assert rec["bands"]["RL true score"]["runs"] == [0.5, 0.51, 0.52]
    assert "`python -m gpt2course bench rlhf` (" in rec["bands"]["RL true score"]["how"]


def test_the_finetuning_card_names_frozen_adapters_and_has_no_band_for_gpt2(
    folder, capsys, monkeypatch
):
    monkeypatch.setenv("GPT2COURSE_QUICK", "0")
    slug = "08_finetuning"
    bands = {"full fine-tuning validation loss (tiny base)": [1.95, 1.97, 1.99],
             "LoRA validation loss (tiny base)": [2.10, 2.12, 2.15]}  # fmt: skip
    _bands(folder, slug=slug, bands=bands)
    # Adapters left frozen: LoRA's loss stays at the base's, far above its band.
    recorded.report_card(slug, {"full fine-tuning validation loss (tiny base)": 1.97,
                                "LoRA validation loss (tiny base)": 2.9})  # fmt: skip
    out = capsys.readouterr().out
    assert "Your LoRA validation loss (tiny base) is above the band. Likely causes:" in out
    assert "mark_only_lora_trainable" in out and out.count("(normal)") == 1
    # OpenAI's gpt2 as the base (a GPU): the tiny base's bands do not apply.
    recorded.report_card(slug, {"full fine-tuning validation loss (gpt2 base)": 1.2})
    out = capsys.readouterr().out
    assert "no recorded runs to compare with" in out and "Likely causes" not in out


def test_the_finetuning_band_run_is_notebook_08s_and_both_tunings_learn(folder, monkeypatch):
    # Quick sizes (the notebook's quick setting): a base pretrained on code, then Shakespeare.
    monkeypatch.setenv("GPT2COURSE_QUICK", "1")
    from gpt2course.workshop.bench.finetuning import bench_text

    out = bench_text(torch.device("cpu"), seed=0)
    assert out["full_val"] < out["base_val"] - 0.1 and out["lora_val"] < out["base_val"] - 0.1
