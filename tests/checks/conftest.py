"""Helpers for the checks' tests: run a check as a learner would and read its one line."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re

import pytest


@pytest.fixture(autouse=True)
def lenient(monkeypatch):
    """Checks print and fall back (as in a notebook) instead of raising."""
    monkeypatch.delenv("GPT2COURSE_STRICT_CHECKS", raising=False)


def run(check, impl, **kwargs) -> tuple[object, str]:
    """(what the check returned, what it printed)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        got = check(impl, **kwargs)
    return got, out.getvalue()


def assert_wrong(check, impl, expect: str, **kwargs) -> str:
    """The check refuses ``impl``, falls back, and its message contains ``expect``."""
    got, out = run(check, impl, **kwargs)
    _tally(check, "wrong", out)
    assert out.startswith("✗"), out
    assert "the check itself crashed" not in out, out
    assert expect in out, f"expected {expect!r} in:\n{out}"
    assert got is not impl
    return out


def assert_right(check, impl, **kwargs) -> None:
    """The check accepts ``impl`` and hands it back."""
    got, out = run(check, impl, **kwargs)
    _tally(check, "right", out)
    assert out.startswith("✓"), out
    assert got is impl


def assert_stub(check, impl) -> None:
    """An unfinished exercise is "not done yet", and the fallback is recognised on a re-run."""
    got, out = run(check, impl)
    assert "not done yet" in out, out
    again, out = run(check, got)
    assert out.startswith("↺") and "again" in out, out
    assert again is got


def _tally(check, kind: str, out: str) -> None:
    """With GPT2COURSE_CHECKS_TALLY=file, note each outcome (for the issue's table)."""
    path = os.environ.get("GPT2COURSE_CHECKS_TALLY")
    if not path:
        return
    generic = bool(re.search(r"differs from the reference: max error [^\n]*wrong\n", out))
    row = {"check": check.__name__, "kind": kind, "out": out.splitlines()[0][:60],
           "caught": out.startswith("✗"), "generic": generic and "Likely bug" not in out}  # fmt: skip
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(row) + "\n")
