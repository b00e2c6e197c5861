"""Downloads are verified and atomic; bundles round-trip; tiktoken works offline after seed."""

from __future__ import annotations

import hashlib
import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from gpt2course import assets
from gpt2course.workshop import offline

PAYLOAD = b"To be, or not to be, that is the question.\n" * 100


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    c = tmp_path / "cache"
    monkeypatch.setenv("GPT2COURSE_CACHE", str(c))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "tiktoken"))
    return c


@pytest.fixture
def server(tmp_path):
    """A loopback HTTP server over a folder; counts requests per path."""
    root = tmp_path / "www"
    root.mkdir()
    hits: dict[str, int] = {}

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(root), **k)

        def do_GET(self):
            hits[self.path] = hits.get(self.path, 0) + 1
            if self.path.startswith("/flaky") and hits[self.path] == 1:
                self.send_error(503)
                return
            super().do_GET()

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}", hits
    httpd.shutdown()
    httpd.server_close()


def _use_asset(monkeypatch, name: str, url: str, data: bytes) -> None:
    a = assets.Asset(name, url, hashlib.sha256(data).hexdigest(), "test file")
    monkeypatch.setattr(assets, "ASSETS", {name: a})


def test_download_verifies_and_caches(cache, server, monkeypatch):
    root, base, hits = server
    (root / "play.txt").write_bytes(PAYLOAD)
    _use_asset(monkeypatch, "play.txt", f"{base}/play.txt", PAYLOAD)
    p = assets.fetch("play.txt")
    assert p == cache / "play.txt" and p.read_bytes() == PAYLOAD
    assets.fetch("play.txt")
    assert hits["/play.txt"] == 1, "a verified file in the cache is not downloaded again"


def test_corrupt_download_is_rejected_and_not_left_behind(cache, server, monkeypatch):
    root, base, _ = server
    (root / "play.txt").write_bytes(PAYLOAD[:-1] + b"?")
    _use_asset(monkeypatch, "play.txt", f"{base}/play.txt", PAYLOAD)
    with pytest.raises(assets.AssetError, match="corrupt"):
        assets.fetch("play.txt")
    assert not (cache / "play.txt").exists()
    assert list(cache.iterdir()) == [], "no temporary file is left in the cache"


def test_damaged_cache_copy_is_fetched_again(cache, server, monkeypatch):
    root, base, hits = server
    (root / "play.txt").write_bytes(PAYLOAD)
    _use_asset(monkeypatch, "play.txt", f"{base}/play.txt", PAYLOAD)
    cache.mkdir()
    (cache / "play.txt").write_bytes(b"truncated")
    assert assets.fetch("play.txt").read_bytes() == PAYLOAD


def test_retries_a_failing_server(cache, server, monkeypatch):
    root, base, hits = server
    (root / "flaky.txt").write_bytes(PAYLOAD)
    _use_asset(monkeypatch, "flaky.txt", f"{base}/flaky.txt", PAYLOAD)
    assert assets.fetch("flaky.txt").read_bytes() == PAYLOAD
    assert hits["/flaky.txt"] == 2


def test_unreachable_url_names_it_and_the_offline_route(cache, monkeypatch):
    url = "http://127.0.0.1:9/nothing-here.txt"  # port 9 (discard): connection refused
    _use_asset(monkeypatch, "nothing-here.txt", url, PAYLOAD)
    with pytest.raises(assets.AssetError) as e:
        assets.download(url, cache / "x", "0" * 64, retries=2, timeout=2)
    assert url in str(e.value) and "assets seed --from" in str(e.value)
    assert not list(cache.glob("*"))


def test_silent_host_fails_at_once_not_after_every_retry(cache):
    """A host that accepts nothing useful (dropped packets) fails within one timeout."""
    import socket
    import time

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)  # the kernel completes the handshake; nobody ever answers
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/x.txt"
    t0 = time.monotonic()
    try:
        with pytest.raises(assets.AssetError, match="could not reach") as e:
            assets.download(url, cache / "x", "0" * 64, retries=3, timeout=1)
    finally:
        silent.close()
    assert time.monotonic() - t0 < 2.5, "a dead host must not be retried"
    assert "assets seed --from" in str(e.value)
    assert not list(cache.glob("*"))


def test_default_timeout_is_about_ten_seconds():
    import inspect

    assert inspect.signature(assets.download).parameters["timeout"].default <= 10


@pytest.fixture
def cut_server():
    """A loopback server whose first ``cut`` answers stop halfway through the body."""
    state = {"hits": 0, "cut": 1, "chunked": False}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            state["hits"] += 1
            body = PAYLOAD if state["hits"] > state["cut"] else PAYLOAD[: len(PAYLOAD) // 2]
            self.send_response(200)
            if state["chunked"]:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(body), body))
                if body is PAYLOAD:
                    self.wfile.write(b"0\r\n\r\n")
            else:
                self.send_header("Content-Length", str(len(PAYLOAD)))
                self.end_headers()
                self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True

        def log_message(self, *a):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/play.txt", state
    httpd.shutdown()
    httpd.server_close()


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_transfer_cut_short_is_retried(cache, cut_server, chunked):
    url, state = cut_server
    state["chunked"] = chunked
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    assert assets.download(url, cache / "play.txt", sha).read_bytes() == PAYLOAD
    assert state["hits"] == 2, "the cut transfer is tried again, once"


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_transfer_always_cut_is_a_named_error(cache, cut_server, chunked):
    url, state = cut_server
    state.update(chunked=chunked, cut=99)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    with pytest.raises(assets.AssetError, match="transfer broke"):
        assets.download(url, cache / "play.txt", sha, retries=2)
    assert state["hits"] == 2
    assert not list(cache.glob("*")), "nothing half-written is left in the cache"


def test_unknown_asset_lists_known_ones():
    with pytest.raises(KeyError, match="tinyshakespeare.txt"):
        assets.fetch("no-such-file")


def test_bundle_seed_round_trip(cache, tmp_path, offline_assets_dir, monkeypatch):
    # Seed an empty cache from the offline copies, bundle it, seed a second empty cache.
    offline.seed(offline_assets_dir)
    bundle_dir = tmp_path / "bundle"
    written = offline.bundle(bundle_dir)
    assert sorted(p.name for p in written) == sorted(assets.ASSETS)
    second = tmp_path / "cache2"
    monkeypatch.setenv("GPT2COURSE_CACHE", str(second))
    assert sorted(offline.seed(bundle_dir)) == sorted(assets.ASSETS)
    for name, a in assets.ASSETS.items():
        assert assets.sha256_of(second / name) == a.sha256


def test_seed_rejects_a_corrupt_bundle_and_imports_nothing(cache, tmp_path, offline_assets_dir):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in assets.ASSETS:
        (bad / name).write_bytes((offline_assets_dir / name).read_bytes())
    (bad / "vocab.bpe").write_bytes(b"#version: 0.2\nnot the real merges\n")
    (bad / "encoder.json").unlink()
    with pytest.raises(assets.AssetError) as e:
        offline.seed(bad)
    assert "vocab.bpe" in str(e.value) and "encoder.json" in str(e.value)
    assert not cache.exists() or not any(cache.iterdir())


def test_tiktoken_works_offline_after_seed(tmp_path, offline_assets_dir):
    """In fresh processes, with any network use made to fail: seed, then plain tiktoken."""
    env = {
        **os.environ,
        "GPT2COURSE_CACHE": str(tmp_path / "cache"),
        "TIKTOKEN_CACHE_DIR": str(tmp_path / "tiktoken"),
        "HTTPS_PROXY": "http://127.0.0.1:9",
        "HTTP_PROXY": "http://127.0.0.1:9",
    }
    seed = subprocess.run(
        [sys.executable, "-m", "gpt2course", "assets", "seed", "--from", str(offline_assets_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert seed.returncode == 0, seed.stderr
    code = (
        "import tiktoken\n"
        "print(tiktoken.get_encoding('gpt2').encode('Hello world<|endoftext|>', allowed_special='all'))\n"
        "print(tiktoken.get_encoding('r50k_base').encode(' SolidGoldMagikarp'))\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    # GPT-2's published ids: "Hello"=15496, " world"=995, <|endoftext|>=50256; the famous one token.
    assert run.stdout.split("\n")[:2] == ["[15496, 995, 50256]", "[43453]"]


def test_cli_seed_reports_bad_folder(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "gpt2course", "assets", "seed", "--from", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 1 and "not a folder" in r.stderr
