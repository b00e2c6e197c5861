"""The Hugging Face hub: its cache folder, downloads that fail fast offline, and placing
files in its layout (for ``offline.seed``)."""

from __future__ import annotations

import os
import re
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
        from huggingface_hub import hf_hub_download, try_to_load_from_cache
    except ImportError:
        raise CheckpointError(
            f"loading {name!r} by name needs huggingface_hub (pip install huggingface_hub). {OFFLINE_HELP}"
        ) from None
    repo = HUB_REPOS[name]
    kw = dict(repo_id=repo, cache_dir=str(hub_cache_dir()))
    # The published weights never change: a cached copy is used without asking the network.
    # (try_to_load_from_cache gives a path, None, or a marker for "known to be absent".)
    weights, config = (
        try_to_load_from_cache(filename=f, **kw) for f in (WEIGHTS_FILE, CONFIG_FILE)
    )
    if isinstance(weights, str):
        return Path(weights), (Path(config) if isinstance(config, str) else None)
    if os.environ.get("HF_HUB_OFFLINE", "").upper() in ("1", "ON", "YES", "TRUE"):
        why = "is not in the local hub cache and HF_HUB_OFFLINE is set"
    elif not _hub_reachable():
        why = f"is not in the local hub cache ({hub_cache_dir()}) and the hub is not reachable (no network?)"
    else:
        try:
            weights = Path(hf_hub_download(filename=WEIGHTS_FILE, **kw))
        except Exception as e:  # network errors come in many types, all need the same advice
            why = f"could not be downloaded ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
        else:
            try:
                return weights, Path(hf_hub_download(filename=CONFIG_FILE, **kw))
            except Exception:
                return weights, None  # the published sizes are known without it
    raise CheckpointError(f"{repo}/{WEIGHTS_FILE} {why}. {OFFLINE_HELP}")


def _remove_from_hub_cache(weights: Path) -> None:
    """Delete a bad cached file (the snapshot link and its blob) so the next try downloads it."""
    blob = weights.resolve()
    weights.unlink(missing_ok=True)
    if blob != weights:
        blob.unlink(missing_ok=True)


# The sha256 of model.safetensors as published on the hub (its git-LFS pointer), for the
# sizes where the course can cite it; a bundle's own manifest is not evidence of anything.
# gpt2: openai-community/gpt2 at 607a30d783dfa663caf39e06633721c8d4cfcd7e, 548105171 bytes.
PUBLISHED_WEIGHTS_SHA256 = {
    "gpt2": "248dfc3911869ec493c76e65bf2fcf7f615828b0254c12b473182f0f81d3a707",
}


def check_hub_entry(repo: str, revision: str, sha: Mapping[str, str]) -> None:
    """Raise ``CheckpointError`` unless a (repo, revision, files) entry can only name paths
    inside the hub cache: a known repo, a commit hash, the two model files, sha256 digests."""
    if repo not in HUB_REPOS.values():
        raise CheckpointError(
            f"repo {repo!r} is not one of GPT-2's ({', '.join(HUB_REPOS.values())})"
        )
    # A hub revision is a git commit: 40 hex digits. Anything else in a bundle's manifest (a
    # "../.." or an absolute path) would turn the snapshot folder into a path outside the cache.
    if not isinstance(revision, str) or not re.fullmatch(r"[0-9a-f]{40}", revision):
        raise CheckpointError(
            f"revision {revision!r} is not a commit hash (40 hex digits); refusing the bundle"
        )
    if not isinstance(sha, Mapping) or set(sha) != {WEIGHTS_FILE, CONFIG_FILE}:
        names = sorted(sha) if isinstance(sha, Mapping) else sha
        raise CheckpointError(
            f"the files listed are {names!r}; a model bundle has exactly {WEIGHTS_FILE} and {CONFIG_FILE}"
        )
    for fname, digest in sha.items():
        if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise CheckpointError(f"the sha256 of {fname} is {digest!r}, not 64 hex digits")


def _place_in_hub_cache(repo: str, revision: str, folder: Path, sha: Mapping[str, str]) -> None:
    """Write files into huggingface_hub's layout: snapshots/<rev>/<file> (as real files, as it
    stores them itself where there are no symlinks) and refs/main naming the revision. Each file
    lands complete or not at all, only inside the cache (the entry is checked first), and only
    with the hash it is listed with."""
    check_hub_entry(repo, revision, sha)
    cache = hub_cache_dir()
    root = cache / ("models--" + repo.replace("/", "--"))
    snap = root / "snapshots" / revision
    snap.mkdir(parents=True, exist_ok=True)
    (root / "refs").mkdir(exist_ok=True)
    for sub in (snap, root / "refs"):
        if not sub.resolve().is_relative_to(cache.resolve()):  # a symlink planted earlier
            raise CheckpointError(f"{sub} leads outside the hub cache {cache}; remove it and retry")
    for fname, digest in sha.items():
        # A new file renamed over the old (a link into blobs/ too): two seeds at once are safe.
        atomic_copy(folder / fname, snap / fname, expected_sha256=digest)
    atomic_write_text(root / "refs" / "main", revision)
