"""Run notebooks (nbval starts their kernels with this environment) in quick mode, without
progress bars, and stop a test run at once, with one line, on a machine where the course's
downloads are missing."""

import os

import pytest

os.environ.setdefault("GPT2COURSE_QUICK", "1")
os.environ.setdefault("GPT2COURSE_PROGRESS", "0")  # no bar's fragments in nbval's outputs


def missing_assets_message() -> str | None:
    """One line naming the missing downloads and the two ways to get them; None if all are here."""
    from gpt2course import assets

    missing = [name for name in assets.ASSETS if not assets.is_present(name)]
    if not missing:
        return None
    return (
        f"the course's downloads are missing from {assets.cache_dir()}: {', '.join(missing)}. "
        "Get them with `python -m gpt2course assets fetch` (needs the internet) or, offline, "
        "`python -m gpt2course assets seed --from DIR` (DIR: a bundle from `assets bundle`)."
    )


def pytest_sessionstart(session: pytest.Session) -> None:
    # Without this, ~240 tests fail one by one, each ending in the same truncated AssetError.
    message = missing_assets_message()
    if message:
        pytest.exit(message, returncode=4)
