"""The command line, through ``gpt2course.__main__.main``: one checkpoint format for every verb."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import GPT2LMHeadModel

from gpt2course import pretrained
from gpt2course.__main__ import main
from gpt2course.checkpoint import load_checkpoint
from gpt2course.config import GPTConfig
from gpt2course.model import GPT
from gpt2course.pretrained import write_model

TINY = [
    "model.n_layer=1",
    "model.n_embd=16",
    "model.n_head=2",
    "model.context_length=16",
    "model.dropout=0.1",
    "data.batch_size=2",
    "data.context_length=16",
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
    assert ck.extra["data"]["context_length"] == 16
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
    import gpt2course.workshop.train as cli_train

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


# ---------------------------------------------------------------- bad input: one line, no traceback


def _cases(tmp: Path) -> dict[str, list[str]]:
    (tmp / "str.json").write_text('{"train": {"max_steps": "10"}}')
    (tmp / "list.json").write_text("[1, 2]")
    (tmp / "folder.json").mkdir()
    bad_model = tmp / "badmodel"
    torch.manual_seed(0)
    write_model(
        GPT(GPTConfig(vocab_size=64, context_length=16, n_embd=16, n_layer=1, n_head=2)), bad_model
    )
    (bad_model / "config.json").write_text('{"model_type": "gpt2", "n_embd": "big"}')
    bundle = tmp / "bundle"
    (bundle / "models" / "gpt2").mkdir(parents=True)
    (bundle / "models" / "gpt2" / "manifest.json").write_text("{broken")
    return {
        "string max_steps": ["train", "--config", str(tmp / "str.json")],
        "config is a list": ["train", "--config", str(tmp / "list.json")],
        "config is a folder": ["train", "--config", str(tmp / "folder.json")],
        "unknown override": ["train", "nope.x=1"],
        "bundle unknown model": ["assets", "bundle", str(tmp / "b1"), "--models", "gpt5"],
        "bundle offline": ["assets", "bundle", str(tmp / "b2"), "--models", "gpt2-xl"],
        "broken manifest": ["assets", "seed", "--from", str(bundle)],
        "model with bad config": ["generate", "hi", "--model", str(bad_model)],
        "missing model": ["generate", "hi", "--model", str(tmp / "nothing")],
        "unknown notebook": ["notebooks", "build", "99_nothing"],
        "set-repo not GitHub": ["notebooks", "set-repo", "https://example.com/x/y"],
        "doctor --bogus": ["doctor", "--bogus"],
        "unknown bench": ["bench", "nothing"],
        "unknown verb": ["frobnicate"],
    }


@pytest.mark.parametrize(
    "case",
    [
        "string max_steps",
        "config is a list",
        "config is a folder",
        "unknown override",
        "bundle unknown model",
        "bundle offline",
        "broken manifest",
        "model with bad config",
        "missing model",
        "unknown notebook",
        "set-repo not GitHub",
        "doctor --bogus",
        "unknown bench",
        "unknown verb",
    ],
)
def test_bad_input_is_one_line_and_a_non_zero_exit(case, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hub"))
    argv = _cases(tmp_path)[case]
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code != 0, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert 1 <= len(lines) <= 3 or case == "unknown verb", err


def test_debug_shows_the_traceback(tmp_path, capsys):
    argv = ["assets", "bundle", str(tmp_path / "b"), "--models", "gpt5"]
    assert main(argv) == 1 and "--debug" in capsys.readouterr().err
    with pytest.raises(ValueError, match="unknown model name"):
        main([*argv, "--debug"])


# ---------------------------------------------------------------- the generate command


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    return pretrained.write_standin_checkpoint(
        tmp_path_factory.mktemp("standin"), n_layer=1, n_head=2, n_embd=16
    )


@pytest.mark.parametrize("fast", [True, False])
def test_generate_command_streams_text_with_a_banner(standin, capsys, fast):
    from gpt2course.workshop import generate as cli_generate

    argv = [
        "Once upon a time",
        "--model",
        str(standin),
        "--max-new-tokens",
        "8",
        "--seed",
        "0",
        "--device",
        "cpu",
    ]
    assert cli_generate.main(argv + ([] if fast else ["--no-fast"])) == 0
    out, err = capsys.readouterr()
    assert out.startswith("Once upon a time") and len(out) > len("Once upon a time\n")
    assert "STAND-IN MODEL" in err


def test_generate_command_rejects_a_too_long_prompt(standin, capsys):
    from gpt2course.workshop import generate as cli_generate

    assert cli_generate.main(["hello " * 1100, "--model", str(standin), "--device", "cpu"]) == 2
    assert "sees at most 1024; shorten it" in capsys.readouterr().err


def test_generate_command_offline_says_how_to_get_weights(offline_cache, capsys):
    from gpt2course.workshop import generate as cli_generate

    assert cli_generate.main(["hi", "--model", "gpt2", "--device", "cpu"]) == 1
    assert "assets seed" in capsys.readouterr().err


def test_train_reads_a_folder_of_text(tmp_path, capsys):
    """data.text may be a folder of .txt files (the learner's own texts), encoded as a stream."""
    folder = tmp_path / "mine"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.txt").write_text(f"Letter {i}.\n\n\nDear friend,\n" * 40, encoding="utf-8")
    out = tmp_path / "out"
    assert main(["train", "--out", str(out), *TINY, f"data.text={folder}"]) == 0
    assert load_checkpoint(out).config.vocab_size == 256
    (tmp_path / "empty").mkdir()
    capsys.readouterr()
    assert main(["train", *TINY, f"data.text={tmp_path / 'empty'}"]) != 0
    err = capsys.readouterr().err
    assert "no .txt files" in err and len(err.strip().splitlines()) == 1
