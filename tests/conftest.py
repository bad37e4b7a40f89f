"""Fixtures every suite that drives the real library shares."""

from __future__ import annotations

import os

import pytest

import p11fast


@pytest.fixture(scope="session")
def module_path() -> str:
    path = p11fast.module_path()
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: build first (python setup.py build_ext --inplace)")
    return path


@pytest.fixture(scope="session", autouse=True)
def snapshot_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Hosts the suite starts keep their slot snapshots (p11fast/snapshot.py) in the session's
    own directory, not in the user's cache."""
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg-cache"))
