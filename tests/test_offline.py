"""Offline bundles of models: a hostile bundle writes nothing outside the cache (issue 17),
the published weights hash wins over the bundle's word, and two seeds at once are safe."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from gpt2course import assets
from gpt2course.__main__ import main
from gpt2course.config import GPTConfig
from gpt2course.files import CheckpointError
from gpt2course.model import GPT
from gpt2course.pretrained import hub, write_model
from gpt2course.workshop import offline

REV = "0123456789abcdef0123456789abcdef01234567"


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make_bundle(root: Path, name: str = "gpt2-medium", **manifest) -> Path:
    """A model bundle ``root/models/<name>/`` holding a tiny random GPT, with a manifest that
    agrees with its files unless ``manifest`` overrides a field."""
    folder = root / "models" / name
    torch.manual_seed(0)
    write_model(
        GPT(GPTConfig(n_layer=1, n_head=2, n_embd=16, vocab_size=64, context_length=16)), folder
    )
    sha = {f: _sha(folder / f) for f in ("model.safetensors", "config.json")}
    entry = {"repo": f"openai-community/{name}", "revision": REV, "sha256": sha, **manifest}
    (folder / "manifest.json").write_text(json.dumps(entry))
    return folder


@pytest.fixture
def hub_cache(tmp_path, monkeypatch) -> Path:
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("GPT2COURSE_CACHE", str(tmp_path / "course-cache"))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    return cache


@pytest.fixture
def victim(tmp_path) -> Path:
    """Files a traversal would overwrite: they must stay as they are."""
    v = tmp_path / "victim"
    v.mkdir()
    for f in ("config.json", "model.safetensors"):
        (v / f).write_text(f"the user's own {f}\n")
    return v


def _untouched(victim: Path) -> bool:
    return all(
        (victim / f).read_text() == f"the user's own {f}\n" and not (victim / f).is_symlink()
        for f in ("config.json", "model.safetensors")
    )


def _only_inside(cache: Path, tmp_path: Path) -> None:
    # Nothing new anywhere in tmp_path but the bundle, the victim and the cache itself.
    allowed = {"bundle", "victim", "hub", "course-cache", "tiktoken"}
    assert {p.name for p in tmp_path.iterdir()} <= allowed


HOSTILE = {
    "relative revision": lambda v: {"revision": "../../../../victim"},
    "absolute revision": lambda v: {"revision": str(v)},
    "short revision": lambda v: {"revision": "main"},
    "file name with ..": lambda v: {"sha256": {"../../../../victim/model.safetensors": "0" * 64}},
    "digest with ..": lambda v: {
        "sha256": {"model.safetensors": "../../../victim/x", "config.json": "0" * 64}
    },
    "another repo": lambda v: {"repo": "someone/else"},
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_manifest_is_refused_and_writes_nothing(case, hub_cache, tmp_path, victim):
    make_bundle(tmp_path / "bundle", **HOSTILE[case](victim))
    with pytest.raises(CheckpointError, match="nothing was imported"):
        offline.seed_models(tmp_path / "bundle" / "models")
    assert _untouched(victim)
    assert not hub_cache.exists()
    _only_inside(hub_cache, tmp_path)


def test_a_weights_symlink_out_of_the_bundle_is_refused(hub_cache, tmp_path, victim):
    folder = make_bundle(tmp_path / "bundle")
    outside = tmp_path / "victim" / "model.safetensors"
    (folder / "model.safetensors").rename(tmp_path / "real.safetensors")
    (folder / "model.safetensors").symlink_to(outside)
    with pytest.raises(CheckpointError, match="not a regular file"):
        offline.seed_models(tmp_path / "bundle" / "models")
    assert not hub_cache.exists() and _untouched(victim)


def test_a_symlink_in_the_cache_leading_out_is_refused(hub_cache, tmp_path, victim):
    make_bundle(tmp_path / "bundle")
    snaps = hub_cache / "models--openai-community--gpt2-medium" / "snapshots"
    snaps.mkdir(parents=True)
    (snaps / REV).symlink_to(victim)  # planted earlier by someone else
    with pytest.raises(CheckpointError, match="outside the hub cache"):
        offline.seed_models(tmp_path / "bundle" / "models")
    assert _untouched(victim)


def test_the_published_hash_wins_over_the_manifest(hub_cache, tmp_path):
    # A self-consistent bundle that plants other weights under openai-community/gpt2.
    make_bundle(tmp_path / "bundle", name="gpt2")
    with pytest.raises(CheckpointError, match="not openai-community/gpt2's published file"):
        offline.seed_models(tmp_path / "bundle" / "models")
    assert not hub_cache.exists()


def test_published_hash_is_the_hubs():
    # openai-community/gpt2's model.safetensors LFS pointer (548105171 bytes).
    assert hub.PUBLISHED_WEIGHTS_SHA256["gpt2"].startswith("248dfc3911869ec4")


def test_cli_seed_of_a_tampered_bundle_imports_nothing(
    hub_cache, tmp_path, victim, offline_assets_dir, capsys
):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for name in assets.ASSETS:
        (bundle / name).symlink_to(offline_assets_dir / name)
    make_bundle(bundle, revision="../../../../victim")
    assert main(["assets", "seed", "--from", str(bundle)]) != 0
    err = capsys.readouterr().err
    assert "nothing was imported" in err and "Traceback" not in err and len(err.splitlines()) == 1
    # ... and that is true: neither the course files nor any model landed anywhere.
    assert not (tmp_path / "course-cache").exists() and not hub_cache.exists()
    assert _untouched(victim)


def test_cli_seed_says_when_weights_are_taken_on_the_bundles_word(
    hub_cache, tmp_path, offline_assets_dir, capsys
):
    bundle = tmp_path / "bundle"
    bundle.mkdir()
    for name in assets.ASSETS:
        (bundle / name).symlink_to(offline_assets_dir / name)
    make_bundle(bundle)
    assert main(["assets", "seed", "--from", str(bundle)]) == 0
    out = capsys.readouterr().out
    assert "imported gpt2-medium" in out and "taken as the bundle gives them" in out
    snap = hub_cache / "models--openai-community--gpt2-medium" / "snapshots" / REV
    assert _sha(snap / "model.safetensors") == _sha(bundle / "models/gpt2-medium/model.safetensors")


@pytest.mark.parametrize("how", ["same path", "through a symlink"])
def test_cli_bundle_into_the_course_cache_is_refused(
    tmp_path, monkeypatch, offline_assets_dir, capsys, how
):
    cache = tmp_path / "course-cache"
    cache.mkdir()
    for name in assets.ASSETS:
        (cache / name).write_bytes((offline_assets_dir / name).read_bytes())
    monkeypatch.setenv("GPT2COURSE_CACHE", str(cache))
    dest = cache
    if how == "through a symlink":
        dest = tmp_path / "link"
        dest.symlink_to(cache)
    before = {n: _sha(cache / n) for n in assets.ASSETS}
    assert main(["assets", "bundle", str(dest)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "own cache" in err and len(err.splitlines()) == 1
    assert {n: _sha(cache / n) for n in assets.ASSETS} == before


def test_broken_manifest_is_one_line(hub_cache, tmp_path, capsys):
    folder = make_bundle(tmp_path / "bundle")
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest.json is not valid JSON"):
        offline.seed_models(tmp_path / "bundle" / "models")
    (folder / "manifest.json").write_text("[1, 2]")
    with pytest.raises(CheckpointError, match="not a JSON object"):
        offline.seed_models(tmp_path / "bundle" / "models")


SEEDER = textwrap.dedent(
    """
    import hashlib, os, sys, time
    from pathlib import Path
    from gpt2course.workshop import offline
    start, bundle, caches = float(sys.argv[1]), Path(sys.argv[2]), sys.argv[3:]
    want = hashlib.sha256((bundle / "gpt2-medium" / "model.safetensors").read_bytes()).hexdigest()
    time.sleep(max(0.0, start - time.time()))  # both processes start seeding together
    for cache in caches:
        os.environ["HF_HUB_CACHE"] = cache
        offline.seed_models(bundle)
        snap = Path(cache) / "models--openai-community--gpt2-medium" / "snapshots"
        f = next(snap.iterdir()) / "model.safetensors"
        got = hashlib.sha256(f.read_bytes()).hexdigest()
        assert got == want, (cache, f.stat().st_size)
    print("ok")
    """
)


def test_two_seeds_at_once_into_one_cache(tmp_path):
    make_bundle(tmp_path / "bundle")
    caches = [str(tmp_path / f"hub{i}") for i in range(20)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    start = str(time.time() + 8)  # after both have imported torch
    cmd = [sys.executable, "-c", SEEDER, start, str(tmp_path / "bundle" / "models"), *caches]
    procs = [
        subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0 and out.strip() == "ok", err[-2000:]
    want = _sha(tmp_path / "bundle/models/gpt2-medium/model.safetensors")
    for c in caches:
        snap = Path(c) / "models--openai-community--gpt2-medium" / "snapshots" / REV
        assert _sha(snap / "model.safetensors") == want
        leftovers = [p.name for p in Path(c).rglob(".*")]
        assert not leftovers, leftovers
