"""The command line, through ``gpt2course.__main__.main``: one checkpoint format for every verb."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import GPT2LMHeadModel

from gpt2course.__main__ import main
from gpt2course.checkpoint import load_checkpoint

TINY = [
    "model.n_layer=1",
    "model.n_embd=16",
    "model.n_head=2",
    "model.n_positions=16",
    "model.dropout=0.1",
    "data.batch_size=2",
    "data.block_size=16",
    "train.max_steps=3",
    "train.eval_interval=3",
    "train.eval_batches=1",
    "train.warmup_steps=1",
    "train.progress=false",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "out"
    assert main(["train", "--out", str(out), *TINY]) == 0
    return out


def test_train_out_then_generate_model(trained, capsys):
    capsys.readouterr()
    argv = ["generate", "ROMEO:", "--model", str(trained), "--max-new-tokens", "12"]
    assert main([*argv, "--seed", "0", "--device", "cpu"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ROMEO:") and len(out) > len("ROMEO:\n")
    assert "error" not in err


def test_train_out_is_read_by_transformers(trained):
    # The one format is GPT-2's own layout, so an independent reader agrees on the logits.
    ours = load_checkpoint(trained).model.eval()
    theirs = GPT2LMHeadModel.from_pretrained(str(trained)).eval()
    x = torch.randint(0, 256, (2, 16))
    with torch.no_grad():
        assert torch.allclose(ours(x), theirs(x).logits, atol=1e-5)


def test_resume_without_config_uses_the_checkpoint_settings(trained, tmp_path, capsys):
    more = tmp_path / "more"
    assert main(["train", "--resume", str(trained), "--out", str(more), "train.max_steps=5"]) == 0
    ck = load_checkpoint(more)
    assert ck.step == 5 and ck.config.n_embd == 16 and ck.config.dropout == 0.1
    assert ck.extra["data"]["block_size"] == 16
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["steps"] == 5


# ---------------------------------------------------------------- train --out is checked first


@pytest.mark.parametrize("kind", ["user folder", "file", "under a file"])
def test_train_out_is_checked_before_the_first_step(tmp_path, capsys, monkeypatch, kind):
    out = tmp_path / "out"
    if kind == "user folder":
        out.mkdir()
        (out / "thesis.txt").write_text("months of work\n")
    elif kind == "file":
        out.write_text("a file\n")
    else:
        (tmp_path / "f").write_text("a file\n")
        out = tmp_path / "f" / "out"
    import gpt2course.cli.train as cli_train

    def no_training(*a, **k):
        raise AssertionError("training started before --out was checked")

    monkeypatch.setattr(cli_train, "train", no_training)
    monkeypatch.setattr(cli_train, "build_data", no_training)
    capsys.readouterr()
    assert main(["train", "--out", str(out), *TINY]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err and len(err.splitlines()) == 1
    if kind == "user folder":
        assert (out / "thesis.txt").read_text() == "months of work\n"
