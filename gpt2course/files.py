"""Files the course writes: hashed, written atomically, and readable by every user.

Everything that lands in a cache or a checkpoint goes through ``atomic_path``: the bytes
are written to a temporary file in the destination's own folder (so the final rename
never crosses a filesystem), flushed to disk, then moved into place with ``os.replace``.
A reader sees the old file or the new one, never half of one; a crash leaves at most a
hidden ``.*.part`` file beside it.

Files end up with mode 0666 minus the umask, as a plain ``open`` makes them, whatever the
writer did (``mkstemp`` and safetensors' writer both make 0600 files): tiktoken's cache is
one folder shared by every user of a machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "CheckpointError",
    "atomic_copy",
    "atomic_path",
    "atomic_write_text",
    "make_temp_dir",
    "sha256_of",
]


class CheckpointError(ValueError, RuntimeError):
    """A checkpoint is missing, corrupt, truncated, of another format or does not fit the model.

    Both a ``ValueError`` and a ``RuntimeError``: the two classes it replaces were one each,
    and ``except`` clauses written for either keep working.
    """


def sha256_of(path: str | Path) -> str:
    """The sha256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _temp_name(dest: Path, suffix: str) -> Path:
    return dest.parent / f".{dest.name}.{secrets.token_hex(6)}{suffix}"


def _umask() -> int:
    """The process's umask, read without changing it where the OS allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)  # elsewhere the only way to read it is to set it
    os.umask(mask)
    return mask


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems (and directories on Windows) refuse; the rename still holds
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(dest: str | Path, suffix: str = ".part") -> Iterator[Path]:
    """A temporary path beside ``dest`` to write; on a clean exit it replaces ``dest``.

    The path does not exist yet: create it with ``open`` (or any writer). If the block
    raises (a failed download, a wrong hash), the temporary file is removed and ``dest``
    is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dest, suffix)
    try:
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"nothing was written to {tmp} for {dest}")
        os.chmod(tmp, 0o666 & ~_umask())
        _fsync(tmp)
        os.replace(tmp, dest)
        with contextlib.suppress(OSError):  # make the rename itself durable (POSIX only)
            _fsync(dest.parent)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write_text(dest: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``dest`` atomically."""
    with atomic_path(dest) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(dest)


def atomic_copy(src: str | Path, dest: str | Path, expected_sha256: str | None = None) -> Path:
    """Copy ``src`` to ``dest`` atomically; with ``expected_sha256`` a copy whose hash differs
    raises ``ValueError`` and leaves nothing behind."""
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        if expected_sha256 is not None and (got := sha256_of(tmp)) != expected_sha256:
            raise ValueError(
                f"{src} has sha256 {got[:12]}…, expected {expected_sha256[:12]}…; not copied"
            )
    return Path(dest)


def make_temp_dir(beside: str | Path) -> Path:
    """A new empty hidden folder next to ``beside``, with the permissions the umask allows
    (``tempfile.mkdtemp`` makes 0700 folders, which a rename would then publish)."""
    beside = Path(beside)
    beside.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = _temp_name(beside, ".tmp")
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:  # pragma: no cover - 48 random bits
            continue
