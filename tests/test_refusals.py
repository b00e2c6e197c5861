"""Inputs that used to give silently wrong results are refused by name (issue 17): integer
weights, overlapping safetensors offsets, float prompts, a fast path that validated less
than the plain one, tiny temperatures, and config.json values checked before allocation."""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path

import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from gpt2course.__main__ import main
from gpt2course.checkpoint import load_checkpoint, run_settings, save_checkpoint
from gpt2course.config import GPTConfig
from gpt2course.fastgen import FastGenerator
from gpt2course.files import CheckpointError, sha256_of
from gpt2course.generation import generate
from gpt2course.model import GPT
from gpt2course.pretrained import SafetensorsFile, load_pretrained, write_model
from gpt2course.pretrained.convert import to_hf_state_dict

CFG = GPTConfig(vocab_size=64, context_length=16, n_embd=16, n_layer=1, n_head=2)


@pytest.fixture
def folder(tmp_path) -> Path:
    torch.manual_seed(0)
    return write_model(GPT(CFG), tmp_path / "m")


def test_integer_and_bool_weights_are_refused_by_name(folder):
    f = folder / "model.safetensors"
    sd = load_file(str(f))
    sd["transformer.ln_f.weight"] = torch.ones(16, dtype=torch.int32)
    sd["transformer.ln_f.bias"] = torch.zeros(16, dtype=torch.bool)
    save_file(sd, str(f))
    with pytest.raises(CheckpointError, match=r"ln_f\.weight \(int32\).*ln_f\.bias \(bool\)"):
        load_pretrained(folder)


def _retarget(path: Path, key: str, offsets: list[int]) -> None:
    """Rewrite one tensor's data_offsets in a .safetensors header, keeping its length."""
    raw = path.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header[key]["data_offsets"] = offsets
    new = json.dumps(header, separators=(",", ":")).encode().ljust(n)
    assert len(new) == n
    path.write_bytes(raw[:8] + new + raw[8 + n :])


@pytest.mark.parametrize("how", ["overlap", "out of order"])
def test_overlapping_offsets_are_refused_as_safetensors_does(tmp_path, how):
    p = tmp_path / "t.safetensors"
    save_file({"a": torch.ones(4), "b": torch.zeros(4), "c": torch.full((4,), 2.0)}, str(p))
    if how == "overlap":  # b reads a's bytes; c's then belong to no one
        _retarget(p, "b", [0, 16])
    else:  # a and b swapped so their offsets are out of order but each 16 bytes
        _retarget(p, "a", [16, 32])
        _retarget(p, "b", [0, 16])
    if how == "overlap":
        with pytest.raises(SafetensorError):  # the independent reference refuses it
            load_file(str(p))
        with pytest.raises(CheckpointError, match="overlaps|belong to none"):
            SafetensorsFile(p)
    else:  # a permutation of the slots is a valid file: both readers agree on it
        ref = load_file(str(p))
        st = SafetensorsFile(p)
        assert all(torch.equal(st.read(k), ref[k]) for k in ref)


def test_a_gap_between_tensors_is_refused(tmp_path):
    p = tmp_path / "t.safetensors"
    save_file({"a": torch.ones(4), "b": torch.zeros(4)}, str(p))
    raw = p.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    header["b"]["data_offsets"] = [20, 36]
    new = json.dumps(header, separators=(",", ":")).encode().ljust(n)
    p.write_bytes(raw[:8] + new + raw[8 + n :] + b"\0" * 4)
    with pytest.raises(SafetensorError):
        load_file(str(p))
    with pytest.raises(CheckpointError, match="gap"):
        SafetensorsFile(p)


BAD_CONFIGS = {
    "n_embd a million": ({"n_embd": 1_000_000}, r"n_embd=1000000"),
    "string n_layer": ({"n_layer": "1"}, r"n_layer must be a positive integer"),
    "n_embd % n_head": ({"n_head": 3}, r"divisible by n_head"),
    "zero heads": ({"n_head": 0}, r"n_head must be a positive integer"),
    "bool size": ({"vocab_size": True}, r"vocab_size must be a positive integer"),
    "wrong size vs file": (
        {"n_positions": 32},
        r"wpe\.weight: shape \(16, 16\), expected \(32, 16\)",
    ),
}


@pytest.mark.parametrize("case", BAD_CONFIGS, ids=list(BAD_CONFIGS))
def test_config_is_checked_before_allocating(folder, monkeypatch, case):
    change, match = BAD_CONFIGS[case]
    cfg = json.loads((folder / "config.json").read_text())
    cfg.pop("gpt2course_config")  # transformers' keys only, as a hub config.json
    cfg.update(change)
    (folder / "config.json").write_text(json.dumps(cfg))
    import gpt2course.pretrained.load as load

    def no_alloc(config, device="meta", *a, _real=load.empty_model):
        assert str(device) == "meta", "the model was allocated before the config was checked"
        return _real(config, device, *a)

    monkeypatch.setattr(load, "empty_model", no_alloc)
    with pytest.raises(CheckpointError, match=match):
        load_pretrained(folder)


@pytest.mark.parametrize(
    "content, match",
    [(b"[1, 2]", "JSON list"), (b"\xff\xfe\x00garbage", "not UTF-8"), (b"{", "not valid JSON")],
    ids=["list", "non-utf8", "broken"],
)
def test_a_config_json_that_is_not_an_object(folder, content, match):
    (folder / "config.json").write_bytes(content)
    with pytest.raises(CheckpointError, match=match):
        load_pretrained(folder)


# ---------------------------------------------------------------- generation: one set of checks


@pytest.fixture(scope="module")
def model() -> GPT:
    torch.manual_seed(0)
    return GPT(CFG).eval()


BAD_CALLS = {
    "negative max_new_tokens": (torch.tensor([[1, 2]]), -1, "max_new_tokens"),
    "id past the vocabulary": (torch.tensor([[1, 64]]), 3, r"in \[0, 64\)"),
    "negative id": (torch.tensor([[-1, 2]]), 3, r"in \[0, 64\)"),
    "empty prompt": (torch.zeros(1, 0, dtype=torch.long), 3, "empty"),
}


@pytest.mark.parametrize("case", BAD_CALLS, ids=list(BAD_CALLS))
def test_plain_and_fast_paths_refuse_the_same_inputs(model, case):
    idx, n, match = BAD_CALLS[case]
    with pytest.raises(ValueError, match=match):
        generate(model, idx, n)
    with pytest.raises(ValueError, match=match):
        FastGenerator(model).generate(idx, n)


@pytest.mark.parametrize(
    "idx",
    [torch.tensor([[1.0, 2.7]]), torch.tensor([[True, False]]), torch.tensor([[1, 2]]).half()],
    ids=["float32", "bool", "float16"],
)
def test_ids_that_are_not_integers_get_one_type_and_one_message(model, idx):
    """forward, generate and FastGenerator refuse them alike: a TypeError, word for word."""
    messages = set()
    fast = FastGenerator(model)
    for call in (model, lambda i: generate(model, i, 3), lambda i: fast.generate(i, 3)):
        with pytest.raises(TypeError, match="token ids are integers") as e:
            call(idx)
        messages.add(str(e.value))
    assert len(messages) == 1, messages


@pytest.mark.parametrize("temperature", [1e-40, 1e-8, 0.0])
def test_a_tiny_temperature_is_greedy_in_both_paths(model, temperature):
    idx = torch.tensor([[1, 2, 3]])
    greedy = generate(model, idx, 8, temperature=0)
    assert torch.equal(generate(model, idx, 8, temperature=temperature), greedy)
    assert torch.equal(FastGenerator(model).generate(idx, 8, temperature=temperature), greedy)


# ---------------------------------------------------------------- checkpoints (issue 27)

CFG24 = GPTConfig(vocab_size=64, context_length=16, n_embd=24, n_layer=1, n_head=4)


@pytest.fixture
def saved(tmp_path) -> Path:
    """A training checkpoint of a tiny GPT whose n_embd (24) both 3 and 4 heads divide."""
    torch.manual_seed(0)
    return save_checkpoint(tmp_path / "ckpt", GPT(CFG24), extra={"tokenizer": "bytes"})


def _edit_config(folder: Path, hf: dict, ours: dict | None = None) -> None:
    """Change config.json's transformers keys (and, like an older checkpoint, its block)."""
    cfg = json.loads((folder / "config.json").read_text())
    cfg.update(hf)
    if ours is not None:  # the whole GPTConfig, as checkpoints before issue 27 wrote it
        cfg["gpt2course_config"] = CFG24.to_dict() | ours
    (folder / "config.json").write_text(json.dumps(cfg))
    # Rehashed, as a user would who knows that checkpoint.json guards every file's sha256.
    meta = json.loads((folder / "checkpoint.json").read_text())
    meta["files"]["config.json"] = sha256_of(folder / "config.json")
    (folder / "checkpoint.json").write_text(json.dumps(meta))


def _cli_error(folder: Path, capsys) -> str:
    """``generate --model folder``'s one error line (it must fail)."""
    capsys.readouterr()
    assert main(["generate", "hi", "--model", str(folder), "--device", "cpu"]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    return err


def test_the_shape_comes_from_the_keys_transformers_reads(saved):
    """One source of truth: n_head edited in config.json changes our model as it changes
    transformers' (the block no longer repeats the shape)."""
    transformers = pytest.importorskip("transformers")
    assert set(json.loads((saved / "config.json").read_text())["gpt2course_config"]) == {
        "dropout",
        "bias",
    }
    _edit_config(saved, {"n_head": 3})
    ours = load_pretrained(saved)
    hf = transformers.GPT2LMHeadModel.from_pretrained(saved).eval()
    idx = torch.tensor([[1, 5, 9, 2, 7]])
    assert ours.config.n_head == hf.config.n_head == 3
    torch.testing.assert_close(ours(idx), hf(idx).logits, atol=1e-5, rtol=1e-5)
    assert load_checkpoint(saved).config.n_head == 3
    assert run_settings(saved)["model"]["n_head"] == 3


@pytest.mark.parametrize(
    "hf, ours, match",
    [
        ({"n_head": 3}, {"n_head": 4}, r"n_head is 3 but gpt2course_config\.n_head is 4"),
        ({"n_embd": "24"}, None, r"n_embd must be a positive integer, got '24'"),
        ({"n_embd": "24"}, {"n_embd": "24"}, r"n_embd must be a positive integer, got '24'"),
        ({"n_embd": 24}, {"n_embd": "24"}, r"n_embd is 24 but gpt2course_config\.n_embd is '24'"),
        ({"n_embd": 48}, {}, r"n_embd is 48 but gpt2course_config\.n_embd is 24"),
        ({"n_embd": 48}, None, r"n_embd=48.*wrong shape: .*shape \(24, 72\), expected \(48, 144\)"),
    ],
    ids=["n_head 3 vs 4", "string n_embd", "string n_embd twice", "string in the block",
         "n_embd changed (old block)", "n_embd changed"],
)  # fmt: skip
def test_a_config_json_that_contradicts_itself_or_its_weights_is_one_line(
    saved, capsys, hf, ours, match
):
    _edit_config(saved, hf, ours)
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(saved)
    assert re.search(match, _cli_error(saved, capsys))


def test_a_checkpoint_json_holding_a_list_is_one_line(saved, capsys):
    (saved / "checkpoint.json").write_text("[1, 2]")
    for call in (load_checkpoint, run_settings):
        with pytest.raises(CheckpointError, match="holds a JSON list, not a checkpoint's settings"):
            call(saved)
    assert main(["train", "--resume", str(saved), "train.max_steps=1"]) == 2
    err = capsys.readouterr().err
    assert "JSON list" in err and len(err.strip().splitlines()) == 1


def test_a_layer_key_without_a_number_is_named(tmp_path, capsys):
    """Without config.json the layers are counted from the keys: h.x is no layer number."""
    sd = to_hf_state_dict(GPT(CFG24))
    sd = {k.replace(".h.0.", ".h.x."): v for k, v in sd.items()}
    f = tmp_path / "weights.safetensors"
    save_file(sd, str(f))
    with pytest.raises(CheckpointError, match=r"'h\.x\.[a-z_.12]+' has no layer number"):
        load_pretrained(f)
    capsys.readouterr()
    assert main(["generate", "hi", "--model", str(f), "--device", "cpu"]) != 0
    err = capsys.readouterr().err
    assert "has no layer number" in err and len(err.strip().splitlines()) == 1
