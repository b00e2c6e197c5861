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
import glob
import hashlib
import os
import secrets
import shutil
import stat
import sys
import time
from collections.abc import Iterator
from pathlib import Path


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated, of another format or does not fit the model."""


def sha256_of(path: str | Path) -> str:
    """The sha256 hex digest of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _temp_name(dest: Path, suffix: str) -> Path:
    return dest.parent / f".{dest.name}.{secrets.token_hex(6)}{suffix}"


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError:  # some filesystems (and directories on Windows) refuse; the rename still holds
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(dest: str | Path) -> Iterator[Path]:
    """A temporary path beside ``dest`` to write; on a clean exit it replaces ``dest``.

    The path does not exist yet: create it with ``open`` (or any writer). If the block
    raises (a failed download, a wrong hash), the temporary file is removed and ``dest``
    is untouched.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(dest, ".part")
    try:
        # The mode a plain open gives (0666 minus the umask), read off a file made so; the
        # umask itself cannot be read without setting it, which races with other threads.
        tmp.touch(exist_ok=False)
        mode = stat.S_IMODE(tmp.stat().st_mode)
        tmp.unlink()
        yield tmp
        if not tmp.is_file():
            raise FileNotFoundError(f"nothing was written to {tmp} for {dest}")
        os.chmod(tmp, mode)
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
    tmp = _temp_name(beside, ".tmp")
    tmp.mkdir()  # 48 random bits: an existing name would raise, never be shared
    return tmp


def exchange_paths(a: str | Path, b: str | Path) -> bool:
    """Swap two existing paths in one atomic step (Linux's ``renameat2(RENAME_EXCHANGE)``).

    Returns False, having changed nothing, where the OS or filesystem cannot do it.
    """
    if not sys.platform.startswith("linux"):
        return False
    import ctypes  # only here: a Linux-only system call, no use elsewhere

    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):  # an old libc
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: this filesystem cannot swap
        return False
    raise OSError(err, os.strerror(err), str(a))


def lock_dir(path: str | Path) -> int | None:
    """Hold an exclusive lock on a folder (released when the fd is closed or the process dies),
    so ``remove_stale_temps`` can tell a temporary folder in use from one a killed run left.
    Returns the fd to ``os.close``, or None where there are no such locks (Windows)."""
    try:
        import fcntl  # POSIX only
    except ImportError:
        return None
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd


def _is_abandoned(path: Path, max_age_s: float = 3600.0) -> bool:
    try:
        import fcntl
    except ImportError:  # no locks: only old enough leftovers are surely abandoned
        return time.time() - path.stat().st_mtime > max_age_s
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:  # a live writer holds it
        return False
    finally:
        os.close(fd)


def remove_stale_temps(dest: str | Path) -> list[Path]:
    """Remove the hidden temporary folders beside ``dest`` that a killed save left
    (``.<name>.<random>.tmp`` made by ``make_temp_dir``, ``.<name>.old``), skipping any a
    running process still holds with ``lock_dir``. Returns what was removed."""
    dest = Path(dest)
    removed = []
    for p in dest.parent.glob(f".{glob.escape(dest.name)}.*"):
        if not (p.name.endswith(".tmp") or p.name == f".{dest.name}.old") or p.is_symlink():
            continue
        with contextlib.suppress(OSError):
            if p.is_dir() and _is_abandoned(p):
                shutil.rmtree(p)
                removed.append(p)
    return removed
