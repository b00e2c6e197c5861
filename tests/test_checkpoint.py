"""Checkpoints: one format (GPT-2's layout plus training state), safetensors + JSON only."""

from __future__ import annotations

import json

import torch
from safetensors.torch import save_file, save_model

from gpt2course.checkpoint import load_checkpoint
from gpt2course.files import sha256_of
from gpt2course.model import GPT, GPTConfig
from gpt2course.pretrained import load_pretrained


def test_first_format_checkpoints_still_load(tmp_path):
    # Written as gpt2course 0.1 did: a bare GPTConfig and our own parameter names.
    torch.manual_seed(0)
    cfg = GPTConfig(vocab_size=32, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    model = GPT(cfg)
    (tmp_path / "config.json").write_text(json.dumps(cfg.to_dict()))
    save_model(model, str(tmp_path / "model.safetensors"))
    files = {f: sha256_of(tmp_path / f) for f in ("config.json", "model.safetensors")}
    meta = {"format": "gpt2course-checkpoint", "version": 1, "step": 4, "files": files}
    (tmp_path / "checkpoint.json").write_text(json.dumps(meta))
    save_file({"rng.cpu": torch.get_rng_state()}, str(tmp_path / "rng.safetensors"))
    x = torch.randint(0, 32, (1, 8))
    want = model.eval()(x)
    assert torch.equal(load_pretrained(tmp_path)(x), want)
    ck = load_checkpoint(tmp_path)
    assert ck.step == 4 and torch.equal(ck.model.eval()(x), want)
