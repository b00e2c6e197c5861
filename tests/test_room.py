"""The offline room, end to end, through the same commands the instructor guide gives.

A "networked" machine (a cache seeded from the offline assets here) runs
``assets bundle DIR``; DIR is copied as to a USB stick; a "learner" machine with an empty
cache and no network runs ``doctor`` (red), ``assets seed --from DIR``, ``doctor`` (green),
and tokenizes with tiktoken. Each machine is a subprocess with its own cache folders and
a proxy that goes nowhere, so any attempt to download fails loudly instead of passing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gpt2course import assets
from gpt2course.workshop import course, offline

SHARED = course.repo_root().parent / "shared" / "assets"
DEAD_PROXY = "http://127.0.0.1:9"  # the discard port: nothing answers


def _machine(home: Path) -> dict[str, str]:
    """The environment of one pretend machine: its own caches, and no way out."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GPT2COURSE_", "HF_"))}
    env.update(
        GPT2COURSE_CACHE=str(home / "gpt2course"),
        TIKTOKEN_CACHE_DIR=str(home / "tiktoken"),
        HF_HOME=str(home / "hf"),
        HF_HUB_OFFLINE="1",
        http_proxy=DEAD_PROXY,
        https_proxy=DEAD_PROXY,
        HTTP_PROXY=DEAD_PROXY,
        HTTPS_PROXY=DEAD_PROXY,
        no_proxy="",
        NO_PROXY="",
    )
    env.pop("DATA_GYM_CACHE_DIR", None)
    return env


def _run(env: dict[str, str], *args: str, timeout: int = 180) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gpt2course", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=course.repo_root(),
    )


@pytest.fixture
def networked(tmp_path: Path) -> dict[str, str]:
    """A machine whose cache already holds every asset, as after `assets fetch` online."""
    if not all((SHARED / n).is_file() for n in assets.ASSETS):
        pytest.skip(f"no offline assets in {SHARED}")
    env = _machine(tmp_path / "net")
    cache = Path(env["GPT2COURSE_CACHE"])
    cache.mkdir(parents=True)
    for name in assets.ASSETS:
        shutil.copyfile(SHARED / name, cache / name)
    return env


# The stand-in goes where the hub keeps gpt2-medium: gpt2's published hash is known to the
# course, so a random stand-in under that name is rightly refused by `seed` (test_offline.py).
STANDIN_NAME = "gpt2-medium"


def _standin_gpt2_in_hub_cache(env: dict[str, str], folder: Path, monkeypatch) -> dict:
    """Put a tiny random GPT2LMHeadModel where the hub cache keeps a published GPT-2 size.

    No real weights exist here; the procedure is the same, and huggingface_hub, not our
    code, finds the result on the other side. Returns the saved tensors to compare with.
    """
    transformers = pytest.importorskip("transformers")
    import torch
    from safetensors.torch import load_file

    from gpt2course.pretrained.convert import HUB_REPOS, WEIGHTS_FILE
    from gpt2course.pretrained.hub import _place_in_hub_cache

    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_head=2, n_embd=16, n_positions=32)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(folder, safe_serialization=True)
    monkeypatch.setenv("HF_HOME", env["HF_HOME"])
    _place_in_hub_cache(HUB_REPOS[STANDIN_NAME], "a" * 40, folder, offline._manifest_entry(folder))
    return load_file(folder / WEIGHTS_FILE)


@pytest.mark.slow
def test_offline_room_bundle_copy_seed_doctor(
    networked: dict[str, str], tmp_path: Path, monkeypatch
) -> None:
    """bundle on a networked machine, copy, seed on an empty one: doctor goes from red to green."""
    weights = _standin_gpt2_in_hub_cache(networked, tmp_path / "standin", monkeypatch)

    bundle = tmp_path / "bundle"
    r = _run(networked, "assets", "bundle", str(bundle), "--models", STANDIN_NAME)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "assets seed --from" in r.stdout, "bundle should say what to do next"
    usb = tmp_path / "usb"
    shutil.copytree(bundle, usb)

    learner = _machine(tmp_path / "learner")
    r = _run(learner, "doctor")
    assert r.returncode == 1, "doctor must be red on a machine with no assets:\n" + r.stdout
    assert "assets seed --from" in r.stdout, "doctor's fix line should point at the offline route"

    r = _run(learner, "assets", "seed", "--from", str(usb))
    assert r.returncode == 0, r.stdout + r.stderr
    r = _run(learner, "doctor")
    assert r.returncode == 0, "doctor is not green after seeding:\n" + r.stdout + r.stderr
    assert "all good" in r.stdout

    # Independent readers: tiktoken from its own cache, huggingface_hub from the hub cache.
    r = subprocess.run(
        [sys.executable, "-c", "import tiktoken; print(tiktoken.get_encoding('gpt2').encode('hello world'))"],
        env=learner, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 0 and r.stdout.strip() == "[31373, 995]", r.stdout + r.stderr
    from huggingface_hub import try_to_load_from_cache
    from safetensors.torch import load_file

    from gpt2course.pretrained.convert import HUB_REPOS, WEIGHTS_FILE

    hub = Path(learner["HF_HOME"]) / "hub"
    found = try_to_load_from_cache(HUB_REPOS[STANDIN_NAME], WEIGHTS_FILE, cache_dir=hub)
    assert isinstance(found, str), f"the seeded weights are not where huggingface_hub looks ({hub})"
    seeded = load_file(found)
    assert seeded.keys() == weights.keys()
    for k, v in weights.items():
        assert (seeded[k] == v).all(), f"{k} changed on its way through the bundle"


def test_seed_refuses_a_damaged_copy(networked: dict[str, str], tmp_path: Path) -> None:
    """A file damaged on the USB stick is named, and nothing lands in the learner's cache."""
    bundle = tmp_path / "bundle"
    r = _run(networked, "assets", "bundle", str(bundle))
    assert r.returncode == 0, r.stdout + r.stderr
    damaged = bundle / "tinyshakespeare.txt"
    data = bytearray(damaged.read_bytes())
    data[100] ^= 0x20
    damaged.write_bytes(bytes(data))

    learner = _machine(tmp_path / "learner")
    r = _run(learner, "assets", "seed", "--from", str(bundle))
    assert r.returncode == 1
    assert "tinyshakespeare.txt" in r.stderr and "sha256" in r.stderr, r.stderr
    cache = Path(learner["GPT2COURSE_CACHE"])
    assert not cache.exists() or not any(cache.iterdir()), "a bad bundle must import nothing"
