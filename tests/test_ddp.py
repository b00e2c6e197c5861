"""Data parallel: 2 processes under torchrun (gloo) match 1 process with twice the accumulation."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gpt2course.checkpoint import load_checkpoint

ARGS = [
    "model.n_layer=1",
    "model.n_embd=32",
    "model.n_head=2",
    "model.context_length=32",
    "data.batch_size=2",
    "data.context_length=32",
    "train.max_steps=4",
    "train.warmup_steps=1",
    "train.eval_interval=2",
    "train.eval_batches=2",
    "train.progress=false",
    'train.device="cpu"',
]


@pytest.mark.slow
def test_two_processes_match_one_with_double_accumulation(tmp_path):
    import torch.distributed

    if not torch.distributed.is_available():
        pytest.skip("this torch build has no torch.distributed")
    env = {
        **os.environ,
        "GPT2COURSE_DEVICE": "cpu",
        "OMP_NUM_THREADS": "1",
        "CUDA_VISIBLE_DEVICES": "",
    }
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "gpt2course",
            "train",
            "--out",
            str(tmp_path / "two"),
            "train.grad_accum_steps=1",
            *ARGS,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert two.returncode == 0, two.stderr[-3000:]
    assert "on 2 process(es)" in two.stderr
    one = subprocess.run(
        [
            sys.executable,
            "-m",
            "gpt2course",
            "train",
            "--out",
            str(tmp_path / "one"),
            "train.grad_accum_steps=2",
            *ARGS,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert one.returncode == 0, one.stderr[-3000:]
    h2 = load_checkpoint(tmp_path / "two").history
    h1 = load_checkpoint(tmp_path / "one").history
    assert h1["tokens"] == h2["tokens"]  # the same amount of data per step
    assert h1["train_loss"] == pytest.approx(h2["train_loss"], rel=1e-5, abs=1e-6)
    assert h1["val_loss"] == pytest.approx(h2["val_loss"], rel=1e-5, abs=1e-6)
    # and the weights they end with agree
    a, b = load_checkpoint(tmp_path / "one").model, load_checkpoint(tmp_path / "two").model
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        assert (pa - pb).abs().max().item() < 1e-5, name
    summary = json.loads(two.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 4
