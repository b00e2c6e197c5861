"""The Hugging Face hub: its cache folder, downloads that fail fast offline, and placing
files in its layout (for ``offline.seed``)."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlparse

from ..files import CheckpointError, atomic_copy, atomic_write_text
from .convert import CONFIG_FILE, HUB_REPOS, WEIGHTS_FILE

OFFLINE_HELP = (
    "To use GPT-2 without a network: on a machine with one, run "
    "`python -m gpt2course assets bundle DIR --models gpt2` (or download the model folder "
    "'openai-community/gpt2' with config.json and model.safetensors), copy it here, then run "
    "`python -m gpt2course assets seed --from DIR` and set HF_HUB_OFFLINE=1; "
    "or pass a local folder / .safetensors file instead of a name."
)


def hub_cache_dir() -> Path:
    """huggingface_hub's cache folder, read from the environment now (HF_HUB_CACHE, HF_HOME)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE")


def _cached(hf_hub_download, kw: dict) -> Path | None:
    try:
        return Path(hf_hub_download(filename=WEIGHTS_FILE, local_files_only=True, **kw))
    except Exception:
        return None


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub answers at all: without a network, fail in seconds, not after retries."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_hub(name: str) -> tuple[Path, Path | None]:
    """The cached paths of a hub model's weights and config, downloading them if needed."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise CheckpointError(
            f"loading {name!r} by name needs huggingface_hub (pip install huggingface_hub). {OFFLINE_HELP}"
        ) from None
    repo = HUB_REPOS[name]
    kw = dict(repo_id=repo, cache_dir=str(hub_cache_dir()))
    # The published weights never change: a cached copy is used without asking the network.
    cached = _cached(hf_hub_download, kw)
    offline = _offline() or (cached is None and not _hub_reachable())
    try:
        weights = cached or Path(
            hf_hub_download(filename=WEIGHTS_FILE, local_files_only=offline, **kw)
        )
    except Exception as e:  # network errors come in many types, all need the same advice
        if _offline():
            why = "is not in the local hub cache and HF_HUB_OFFLINE is set"
        elif offline:
            why = f"is not in the local hub cache ({hub_cache_dir()}) and the hub is not reachable (no network?)"
        else:
            why = f"could not be downloaded ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        raise CheckpointError(f"{repo}/{WEIGHTS_FILE} {why}. {OFFLINE_HELP}") from None
    try:
        config = Path(
            hf_hub_download(
                filename=CONFIG_FILE, local_files_only=offline or cached is not None, **kw
            )
        )
    except Exception:
        config = None  # the published sizes are known without it
    return weights, config


def _remove_from_hub_cache(weights: Path) -> None:
    """Delete a bad cached file (the snapshot link and its blob) so the next try downloads it."""
    blob = weights.resolve()
    weights.unlink(missing_ok=True)
    if blob != weights:
        blob.unlink(missing_ok=True)


def _place_in_hub_cache(repo: str, revision: str, folder: Path, sha: Mapping[str, str]) -> None:
    """Write files into huggingface_hub's layout: blobs/<sha256>, snapshots/<rev>/<file> linking
    to them, refs/main naming the revision. Each file lands complete or not at all."""
    root = hub_cache_dir() / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / revision
    (root / "blobs").mkdir(parents=True, exist_ok=True)
    snap.mkdir(parents=True, exist_ok=True)
    for fname, digest in sha.items():
        blob = root / "blobs" / digest
        if not blob.is_file():
            atomic_copy(folder / fname, blob)
        link = snap / fname
        link.unlink(missing_ok=True)
        try:
            link.symlink_to(os.path.relpath(blob, snap))
        except OSError:  # no symlinks (some Windows setups): a copy works the same
            shutil.copyfile(blob, link)
    (root / "refs").mkdir(exist_ok=True)
    atomic_write_text(root / "refs" / "main", revision)
