"""Fixtures: software HSMs running as real processes on loopback ports."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hsm_client import Client

from p11fast.hsm.testing import HsmProcess, running_hsm


@pytest.fixture(scope="session")
def dev_hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HsmProcess]:
    """An initialised HSM (admin, operator, unattended boot), shared by the session."""
    with running_hsm(tmp_path_factory.mktemp("dev-hsm")) as hsm:
        yield hsm


@pytest.fixture(scope="session")
def client(dev_hsm: HsmProcess) -> Client:
    return Client(dev_hsm)
