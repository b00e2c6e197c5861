"""Atomic writes, hashing and the one CheckpointError."""

from __future__ import annotations

import hashlib
import os
import stat

import pytest

from gpt2course import checkpoint, files


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


def test_sha256_matches_hashlib(tmp_path):
    p = tmp_path / "f"
    p.write_bytes(b"abc" * 100_000)
    assert files.sha256_of(p) == hashlib.sha256(b"abc" * 100_000).hexdigest()


def test_atomic_writes_get_the_permissions_the_umask_allows(tmp_path, umask_022):
    # tiktoken's cache is shared by every user of a machine: 0600 files lock the others out.
    text = files.atomic_write_text(tmp_path / "a.txt", "hello")
    copy = files.atomic_copy(text, tmp_path / "b.txt")
    with files.atomic_path(tmp_path / "c.bin") as tmp:
        tmp.write_bytes(b"x")
    for name in ("a.txt", "b.txt", "c.bin"):
        assert _mode(tmp_path / name) == 0o644, name
    assert copy.read_text() == "hello"
    assert _mode(files.make_temp_dir(tmp_path / "ckpt")) == 0o755


def test_cached_assets_and_checkpoints_are_world_readable(tmp_path, umask_022, monkeypatch):
    from gpt2course import assets
    from gpt2course.model import GPT, GPTConfig

    src = tmp_path / "src.txt"
    src.write_bytes(b"data")
    digest = hashlib.sha256(b"data").hexdigest()
    assets._install_copy(src, tmp_path / "tiktoken" / "abc", digest)
    assert _mode(tmp_path / "tiktoken" / "abc") == 0o644
    model = GPT(GPTConfig(vocab_size=16, context_length=8, n_embd=8, n_layer=1, n_head=2))
    out = checkpoint.save_checkpoint(tmp_path / "ckpt", model)
    assert _mode(out) == 0o755
    assert {_mode(f) for f in out.iterdir()} == {0o644}


def test_a_failed_write_leaves_nothing_behind(tmp_path):
    (tmp_path / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError), files.atomic_path(tmp_path / "keep.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("interrupted")
    assert (tmp_path / "keep.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.txt"]


def test_a_copy_with_the_wrong_hash_is_not_kept(tmp_path):
    (tmp_path / "src").write_bytes(b"abc")
    with pytest.raises(ValueError, match="sha256"):
        files.atomic_copy(tmp_path / "src", tmp_path / "dst", expected_sha256="0" * 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_one_checkpoint_error_and_it_is_a_value_error():
    # The command line's `except ValueError` around a resumed training catches a bad checkpoint.
    assert checkpoint.CheckpointError is files.CheckpointError
    assert files.CheckpointError.__bases__ == (ValueError,)
