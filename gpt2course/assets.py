"""Everything the course downloads, in one cache folder, verified by sha256.

``fetch(name)`` returns the path of a verified file, downloading it once (from
``$GPT2COURSE_ASSETS_URL`` instead of the published URLs, when set). For rooms with
no network, ``python -m gpt2course assets bundle DIR`` writes every file to a folder and
``assets seed --from DIR`` imports such a folder on another machine (gpt2course.workshop.offline).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .files import atomic_path, sha256_of


@dataclass(frozen=True)
class Asset:
    name: str
    url: str
    sha256: str
    what: str


ASSETS: dict[str, Asset] = {
    a.name: a
    for a in [
        Asset(
            "vocab.bpe",
            "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/vocab.bpe",
            "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
            "GPT-2 BPE merges",
        ),
        Asset(
            "encoder.json",
            "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/encoder.json",
            "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
            "GPT-2 token string -> id",
        ),
        Asset(
            "r50k_base.tiktoken",
            "https://openaipublic.blob.core.windows.net/encodings/r50k_base.tiktoken",
            "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
            "GPT-2 vocabulary in tiktoken's format",
        ),
        Asset(
            "tinyshakespeare.txt",
            "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            "Tiny Shakespeare (1.1 MB of plays)",
        ),
    ]
}

# The files tiktoken's "gpt2" and "r50k_base" encodings read.
TIKTOKEN_FILES = ("vocab.bpe", "encoder.json", "r50k_base.tiktoken")

OFFLINE_HINT = (
    "No network? On a machine that has one run `python -m gpt2course assets bundle DIR`, "
    "copy DIR here, then run `python -m gpt2course assets seed --from DIR`."
)


class AssetError(RuntimeError):
    """A download failed or a file does not match its published hash."""


def cache_dir() -> Path:
    """The course's cache: $GPT2COURSE_CACHE, else ~/.cache/gpt2course (XDG_CACHE_HOME honoured)."""
    env = os.environ.get("GPT2COURSE_CACHE")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "gpt2course"


def tiktoken_cache_dir() -> Path:
    """Where tiktoken looks for its downloads (its own rule, from tiktoken/load.py)."""
    for var in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"):
        if os.environ.get(var):
            return Path(os.environ[var])
    return Path(tempfile.gettempdir()) / "data-gym-cache"


def _get(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        raise KeyError(f"unknown asset {name!r}; known: {', '.join(ASSETS)}") from None


def path_of(name: str) -> Path:
    """Where an asset lives in the cache (it may not be there yet)."""
    return cache_dir() / _get(name).name


def is_present(name: str) -> bool:
    """Whether an asset is in the cache with the right hash."""
    p = path_of(name)
    return p.is_file() and sha256_of(p) == _get(name).sha256


def _check_hash(path: Path, dest: Path, expected: str, origin: str) -> None:
    """Raise ``AssetError`` unless ``path`` has the published hash (inside ``atomic_path``,
    so a bad file is never moved into place)."""
    got = sha256_of(path)
    if got != expected:
        raise AssetError(
            f"{dest.name} from {origin} is corrupt or not the expected file "
            f"(sha256 {got[:12]}…, expected {expected[:12]}…); nothing was saved. "
            "Download it again, or use a fresh offline bundle."
        )


def _install_copy(src: Path, dest: Path, expected: str) -> None:
    """Copy ``src`` to ``dest`` atomically, only if the copy has the published hash."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        _check_hash(tmp, dest, expected, str(src))


def download(url: str, dest: Path, sha256: str, retries: int = 3, timeout: float = 10.0) -> Path:
    """Download ``url`` to ``dest`` atomically (temp file + rename) and verify its sha256.

    A host that cannot be reached (refused, unknown, or silent for ``timeout`` seconds) fails
    at once: retrying a dead host only makes a test run look hung. A server error (5xx) or a
    transfer that started and broke (reset, stalled, cut short) is tried again.
    """
    last = ""
    for attempt in range(retries):
        if attempt:
            time.sleep(0.5 * 2 ** (attempt - 1))
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except urllib.error.HTTPError as e:
            last = f"the server answered {e.code} {e.reason}"
            if e.code >= 500:
                continue
            break
        except (OSError, urllib.error.URLError) as e:
            reason = getattr(e, "reason", e)
            raise AssetError(f"could not reach {url} ({reason}). {OFFLINE_HINT}") from None
        try:
            with atomic_path(dest) as tmp, response:
                # One read() of the whole (small) file: it raises IncompleteRead on a body cut
                # short, which read(n), as copyfileobj calls it, would return as if whole.
                tmp.write_bytes(response.read())
                _check_hash(tmp, dest, sha256, url)
            return dest
        except (OSError, http.client.HTTPException) as e:
            last = f"the transfer broke: {type(e).__name__}: {e}"
    raise AssetError(f"could not download {url} after {attempt + 1} tries ({last}). {OFFLINE_HINT}")


def url_of(name: str) -> str:
    """Where an asset is downloaded from: its published URL, or ``$GPT2COURSE_ASSETS_URL/NAME``
    when that names a mirror (a room's own server holding a bundle, or a test's)."""
    mirror = os.environ.get("GPT2COURSE_ASSETS_URL")
    return f"{mirror.rstrip('/')}/{name}" if mirror else _get(name).url


def fetch(name: str, timeout: float = 10.0) -> Path:
    """The path of a verified asset in the cache, downloading it once if needed."""
    asset, dest = _get(name), path_of(name)
    if is_present(name):
        return dest
    dest.unlink(missing_ok=True)  # a damaged copy: fetch it again
    return download(url_of(name), dest, asset.sha256, timeout=timeout)


def ensure_tiktoken_files() -> None:
    """Put the verified tokenizer files where tiktoken looks, so it needs no network."""
    for name in TIKTOKEN_FILES:
        asset = ASSETS[name]
        # tiktoken names a download by the sha1 of its URL.
        dest = tiktoken_cache_dir() / hashlib.sha1(asset.url.encode()).hexdigest()
        if not (dest.is_file() and sha256_of(dest) == asset.sha256):
            _install_copy(fetch(name), dest, asset.sha256)


def tiktoken_gpt2():
    """``tiktoken.get_encoding("gpt2")``, fed from the course cache (works offline once seeded)."""
    import tiktoken

    ensure_tiktoken_files()
    return tiktoken.get_encoding("gpt2")
