"""Helpers for the checks' tests: run a check as a learner would and read its one line."""

from __future__ import annotations

import contextlib
import io

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
    assert out.startswith("✗"), out
    assert "the check itself crashed" not in out, out
    assert expect in out, f"expected {expect!r} in:\n{out}"
    assert got is not impl
    return out


def assert_right(check, impl, **kwargs) -> None:
    """The check accepts ``impl`` and hands it back."""
    got, out = run(check, impl, **kwargs)
    assert out.startswith("✓"), out
    assert got is impl


def assert_stub(check, impl) -> None:
    """An unfinished exercise is "not done yet", and the fallback is recognised on a re-run."""
    got, out = run(check, impl)
    assert "not done yet" in out, out
    again, out = run(check, got)
    assert out.startswith("↺") and "again" in out, out
    assert again is got
