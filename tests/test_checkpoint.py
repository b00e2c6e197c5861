"""Checkpoints: one format (GPT-2's layout plus training state), safetensors + JSON only."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from gpt2course import checkpoint, files
from gpt2course.checkpoint import load_checkpoint
from gpt2course.files import sha256_of
from gpt2course.model import GPT, GPTConfig

# ---------------------------------------------------------------- re-saving and killed saves
# (issue 17: no moment without a checkpoint at the path; nothing hidden left behind)

SMALL = GPTConfig(vocab_size=32, context_length=8, n_embd=8, n_layer=1, n_head=2)


def small(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(SMALL)


def intact_step(path: Path) -> int | None:
    """The step of the complete checkpoint at ``path`` (every hash checked), read without
    changing anything; None when there is none."""
    try:
        meta = json.loads((path / "checkpoint.json").read_text())
        for name, digest in meta["files"].items():
            if sha256_of(path / name) != digest:
                return None
        return meta["step"]
    except (OSError, ValueError, KeyError):
        return None


def hidden_beside(path: Path) -> list[str]:
    return sorted(p.name for p in path.parent.iterdir() if p.name.startswith(f".{path.name}."))


class Killed(BaseException):
    """Stands for a kill: not an Exception, so no ``except Exception`` swallows it."""


STEPS = [
    (os, "replace"),
    (os, "rename"),
    (os, "mkdir"),
    (shutil, "rmtree"),
    (checkpoint, "exchange_paths"),
    (checkpoint, "write_model"),
    (checkpoint, "atomic_write_text"),
    (checkpoint, "sha256_of"),
    (checkpoint, "make_temp_dir"),
    (checkpoint, "_publish"),
]


@contextlib.contextmanager
def every_step(monkeypatch, before_and_after):
    """Call ``before_and_after(name)`` before and after every file-system step of a save."""
    with monkeypatch.context() as m:
        for mod, name in STEPS:
            real = getattr(mod, name)

            def wrapped(*a, _real=real, _name=name, **k):
                before_and_after(_name)
                out = _real(*a, **k)
                before_and_after(_name)
                return out

            m.setattr(mod, name, wrapped)
        yield


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the one-step swap is Linux's")
def test_resaving_always_leaves_a_checkpoint_at_the_path(tmp_path, monkeypatch):
    path = tmp_path / "ck"
    checkpoint.save_checkpoint(path, small(0), step=1)
    seen = []

    def check(name):
        seen.append(intact_step(path))

    with every_step(monkeypatch, check):
        checkpoint.save_checkpoint(path, small(1), step=2)
    assert len(seen) > 20, "the probe saw the steps of the save"
    assert None not in seen, "at some moment the path held no complete checkpoint"
    assert set(seen) == {1, 2} and intact_step(path) == 2
    assert hidden_beside(path) == []


@pytest.mark.parametrize("swap", [True, False], ids=["one-step swap", "two renames"])
def test_a_save_killed_at_any_step_loses_nothing(tmp_path, monkeypatch, swap):
    if not swap:  # the route for systems without renameat2: recovered by the next load
        monkeypatch.setattr(checkpoint, "exchange_paths", lambda a, b: False)
    path = tmp_path / "ck"
    old, new = small(0), small(1)
    x = torch.randint(0, 32, (1, 8))
    want = {1: old.eval()(x), 2: new.eval()(x)}
    k = 0
    while True:
        k += 1
        checkpoint.save_checkpoint(path, old, step=1)
        calls = [0]

        def kill_at_k(name, calls=calls, k=k):
            calls[0] += 1
            if calls[0] == k:
                raise Killed(name)

        try:
            with every_step(monkeypatch, kill_at_k):
                checkpoint.save_checkpoint(path, new, step=2)
            done = True
        except Killed:
            done = False
        ck = load_checkpoint(path)
        assert ck.step in (1, 2), f"killed at step {k}"
        assert torch.equal(ck.model.eval()(x), want[ck.step])
        assert hidden_beside(path) == [], f"killed at step {k}: {hidden_beside(path)}"
        if done:
            break
    assert k > 20 and ck.step == 2


KILLED_WRITER = textwrap.dedent(
    """
    import sys, time, torch
    from gpt2course import checkpoint
    from gpt2course.model import GPT, GPTConfig
    real = checkpoint.write_model
    def write_then_hang(model, folder, *a, **k):
        real(model, folder, *a, **k)
        print("written", flush=True)
        time.sleep(120)
    checkpoint.write_model = write_then_hang
    torch.manual_seed(1)
    cfg = GPTConfig(vocab_size=32, context_length=8, n_embd=8, n_layer=1, n_head=2)
    checkpoint.save_checkpoint(sys.argv[1], GPT(cfg), step=2)
    """
)


@pytest.mark.parametrize("cleaner", ["load", "save"])
def test_a_save_killed_mid_write_leaves_no_hidden_copy(tmp_path, cleaner):
    path = tmp_path / "ck"
    checkpoint.save_checkpoint(path, small(0), step=1)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_WRITER, str(path)], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout.readline().strip() == "written"
        assert len(hidden_beside(path)) == 1, "the half-done save is beside the checkpoint"
        assert load_checkpoint(path).step == 1
        assert len(hidden_beside(path)) == 1, "a save still running is not cleaned away"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    assert len(hidden_beside(path)) == 1, "a kill leaves the temporary copy"
    if cleaner == "load":
        assert load_checkpoint(path).step == 1
    else:
        checkpoint.save_checkpoint(path, small(2), step=3)
        assert load_checkpoint(path).step == 3
    assert hidden_beside(path) == []


def test_lock_dir_and_remove_stale_temps(tmp_path):
    dest = tmp_path / "ck"
    busy, stale = files.make_temp_dir(dest), files.make_temp_dir(dest)
    fd = files.lock_dir(busy)
    try:
        assert files.remove_stale_temps(dest) == [stale]
        assert busy.is_dir()
    finally:
        os.close(fd)
    assert files.remove_stale_temps(dest) == [busy]
