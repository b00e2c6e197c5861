"""Run notebooks (nbval starts their kernels with this environment) in quick mode, without
progress bars; fetch the course's downloads when they are missing, and when they cannot be
fetched (no network) stop the test run at once, with one line. Under pytest-xdist (addopts:
``-n auto --dist loadgroup``) give each worker its share of the cores, and keep together
what must run in one process, in order."""

import os
import sys
from pathlib import Path

import pytest

from gpt2course.workshop.portability import cores_each

os.environ.setdefault("GPT2COURSE_QUICK", "1")
os.environ.setdefault("GPT2COURSE_PROGRESS", "0")  # no bar's fragments in nbval's outputs

# A worker is one of N processes on this machine's cores. Left alone, torch in each (and in
# each notebook's kernel, which inherits this environment) would start one thread per core:
# N x N threads on N cores, where small models run many times slower. An explicit
# OMP_NUM_THREADS (the portability run's settings) is kept.
if os.environ.get("PYTEST_XDIST_WORKER_COUNT") and "OMP_NUM_THREADS" not in os.environ:
    threads = cores_each(int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = str(threads)
    if "torch" in sys.modules:  # imported by a plugin before this file: it read the old value
        sys.modules["torch"].set_num_threads(threads)

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


def _group(item: pytest.Item) -> str:
    """What one xdist worker runs, in collection order: a notebook folder, or a test file."""
    path = Path(item.nodeid.split("::")[0])
    # A folder's notebooks share what they leave beside them: the workbench (part 5 builds on
    # the Block that part 4's check kept) and checkpoints/ (part 7 loads part 6's model). Run
    # in parallel, part 5 could start before part 4 kept its Block and quietly use the
    # reference's. The learner and solution folders are apart (nbval starts each kernel in its
    # notebook's folder), so they run side by side. A test file stays whole, so its
    # module-scoped fixtures are made once.
    return str(path.parent) if path.suffix == ".ipynb" else str(path)


# First: xdist's own hook (its worker registers after this file) reads the marks to name
# each item's group.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Under xdist: group the items (above), the longest groups first (xdist hands them out
    in this order): the notebook folders, then files with a test marked slow."""
    if not hasattr(config, "workerinput"):  # not an xdist worker
        return
    groups = {item: _group(item) for item in items}
    slow = {groups[item] for item in items if item.get_closest_marker("slow")}
    for item in items:
        item.add_marker(pytest.mark.xdist_group(groups[item]))

    def rank(item: pytest.Item) -> int:
        notebooks = item.nodeid.split("::")[0].endswith(".ipynb")
        return 0 if notebooks else 1 if groups[item] in slow else 2

    items.sort(key=rank)  # stable: each group keeps its order
