"""Shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from gpt2course import assets
from gpt2course.workshop import course


@pytest.fixture(scope="session")
def offline_assets_dir() -> Path:
    """A folder holding every asset: ../shared/assets beside the repo, else this machine's cache."""
    shared = course.repo_root().parent / "shared" / "assets"
    if all((shared / n).is_file() for n in assets.ASSETS):
        return shared
    if all(assets.is_present(n) for n in assets.ASSETS):
        return assets.cache_dir()
    pytest.skip("no offline assets here: run `python -m gpt2course assets fetch` once")


@pytest.fixture(autouse=True)
def _workbench_in_tmp(tmp_path_factory, monkeypatch):
    """A check that passes keeps the piece (gpt2course.workbench): never in the checkout."""
    if "GPT2COURSE_WORKBENCH" not in os.environ:
        monkeypatch.setenv("GPT2COURSE_WORKBENCH", str(tmp_path_factory.mktemp("workbench")))


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    """An empty hub cache with the hub switched off: what a room without wifi has."""
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return cache
