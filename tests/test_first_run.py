"""A first test run on a machine without the course's downloads stops at once and says why."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from gpt2course.workshop import course


def test_missing_downloads_stop_the_run_with_one_line_and_both_fixes(tmp_path) -> None:
    env = {**os.environ, "GPT2COURSE_CACHE": str(tmp_path / "empty-cache")}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/test_model.py"],
        cwd=course.repo_root(),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 4, out[-2000:]
    assert time.monotonic() - t0 < 60, "it stops before running anything"
    lines = [line for line in out.splitlines() if "downloads are missing" in line]
    assert lines, out[-2000:]
    line = lines[0]
    for name in ("vocab.bpe", "encoder.json", "r50k_base.tiktoken", "tinyshakespeare.txt"):
        assert name in line
    assert "assets fetch" in line and "assets seed --from" in line
    assert " passed" not in out and " failed" not in out and "error" not in out.lower()
