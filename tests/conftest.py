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
