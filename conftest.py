"""Run notebooks (nbval starts their kernels with this environment) in quick mode, without
progress bars; fetch the course's downloads when they are missing, and when they cannot be
fetched (no network) stop the test run at once, with one line."""

import os

import pytest

os.environ.setdefault("GPT2COURSE_QUICK", "1")
os.environ.setdefault("GPT2COURSE_PROGRESS", "0")  # no bar's fragments in nbval's outputs

# Seconds to wait for a silent host: the run stops within about this long without a network.
FETCH_TIMEOUT = 5.0


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


def fetch_missing_assets(say=print) -> None:
    """Download what is missing; stop at the first failure (no network: no point going on)."""
    from gpt2course import assets

    for name in assets.ASSETS:
        if not assets.is_present(name):
            say(f"fetching the course's download {name} from {assets.url_of(name)}")
            try:
                assets.fetch(name, timeout=FETCH_TIMEOUT)
            except assets.AssetError:
                return


def pytest_sessionstart(session: pytest.Session) -> None:
    # Without this, ~240 tests fail one by one, each ending in the same truncated AssetError.
    if missing_assets_message() is None:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    fetch_missing_assets(reporter.write_line if reporter else print)
    message = missing_assets_message()
    if message:
        pytest.exit(message, returncode=4)
