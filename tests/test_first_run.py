"""A first test run on a machine without the course's downloads fetches them itself when it
can, and when it cannot (no network) stops at once and says why, in one line."""

from __future__ import annotations

import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from gpt2course import assets
from gpt2course.files import sha256_of
from gpt2course.workshop import course

QUICK_TESTS = ["tests/test_files.py"]  # a few seconds of real tests once the downloads are here


def _pytest(cache: Path, mirror: str) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "GPT2COURSE_CACHE": str(cache), "GPT2COURSE_ASSETS_URL": mirror}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *QUICK_TESTS],
        cwd=course.repo_root(), env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    return proc, time.monotonic() - t0


@pytest.fixture
def loopback_mirror(offline_assets_dir):
    """An HTTP server on 127.0.0.1 serving the course's files, as their published hosts do."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(offline_assets_dir))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture
def silent_host():
    """A host that takes the connection and never answers: a network that drops everything."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)  # never accepted: the handshake completes, no byte ever comes back
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/"
    sock.close()


def test_the_test_run_fetches_missing_downloads_and_passes(tmp_path, loopback_mirror) -> None:
    cache = tmp_path / "empty-cache"
    proc, _ = _pytest(cache, loopback_mirror)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-2000:]
    assert "fetching the course's download tinyshakespeare.txt" in out
    assert " passed" in out and "downloads are missing" not in out
    for name, asset in assets.ASSETS.items():  # each verified against its published sha256
        assert sha256_of(cache / name) == asset.sha256


@pytest.mark.parametrize("network", ["refused", "silent"])
def test_without_a_network_the_run_stops_with_one_line_and_both_fixes(
    tmp_path, silent_host, network
) -> None:
    with socket.socket() as s:  # a port nobody listens on: the connection is refused
        s.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{s.getsockname()[1]}/"
    proc, seconds = _pytest(
        tmp_path / "empty-cache", refused if network == "refused" else silent_host
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-2000:]
    lines = [line for line in out.splitlines() if "downloads are missing" in line]
    assert lines, out[-2000:]
    line = lines[0]
    for name in ("vocab.bpe", "encoder.json", "r50k_base.tiktoken", "tinyshakespeare.txt"):
        assert name in line
    assert "assets fetch" in line and "assets seed --from" in line
    assert " passed" not in out and " failed" not in out and "error" not in out.lower()
    # One try, given up on after conftest's FETCH_TIMEOUT (5 s), plus starting Python and pytest.
    assert seconds < 10 + 20, f"took {seconds:.0f} s"
