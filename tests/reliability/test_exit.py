"""Exit right after C_Initialize: the transport's background thread is still connecting (inside
libcurl and OpenSSL) when the process ends. C_Finalize must join it, and an exit without
C_Finalize must not let OpenSSL's exit handler free what the thread is using. Such exits used
to crash (31 of 40 runs in the report); each scenario runs 100 times, 4 processes at a time,
enough to catch a crash that happens once in 40 runs."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from p11fast import snapshot
from tests.hosts import host_env
from tests.reliability.conftest import cluster, failures, write_config

INSTANCES = 4

PYTHON_HOST = """
import ctypes, sys, time
assert ctypes.CDLL(sys.argv[1]).C_Initialize(None) == 0
time.sleep(int(sys.argv[2]) / 1e6)
"""


@pytest.fixture(scope="module")
def hsm(key_state, tmp_path_factory):
    with cluster(key_state, tmp_path_factory.mktemp("exit"), 1) as hsms:
        yield hsms


def urls(hsm) -> list[str]:
    """One HSM named INSTANCES times: the thread sets up one connection per instance, so it
    spends longer inside OpenSSL after C_Initialize, where an exit used to crash it."""
    return [hsm.instances[0].url] * INSTANCES


@pytest.fixture
def config(hsm, tmp_path):
    return write_config(tmp_path / "c.conf", urls(hsm), hsm.fingerprint)


def test_a_c_host_that_finalizes_right_after_initializing_never_crashes(module_path, host, config):
    command = [host, "quick", module_path, "finalize"]
    assert failures(lambda i: command, host_env(config)) == ""


def test_a_c_host_that_exits_without_finalizing_never_crashes(module_path, host, config):
    command = [host, "quick", module_path, "exit"]
    assert failures(lambda i: command, host_env(config)) == ""


def test_a_c_host_in_light_mode_that_exits_without_finalizing_never_crashes(
    module_path, host, hsm, tmp_path
):
    # Warn: C_Initialize logs nothing, so it leaves a snapshot and the next runs are light
    # (no Python; the transport's thread is started by the loader's light mode).
    config = write_config(tmp_path / "c.conf", urls(hsm), hsm.fingerprint, log_level="Warn")
    time.sleep(snapshot.RACY_SECONDS * 2)  # a file younger than that is not trusted
    env = host_env(config, XDG_CACHE_HOME=str(tmp_path / "cache"))
    command = [host, "quick", module_path, "exit"]
    assert subprocess.run(command, env=env).returncode == 0
    assert list((tmp_path / "cache" / "p11fast").glob("*")), "no snapshot: not light mode"
    assert failures(lambda i: command, env) == ""


def test_a_python_host_that_exits_with_the_module_initialised_never_crashes(module_path, config):
    # Shutting Python down takes longer than the connection set-up takes to start: the exits
    # are spread over 0-9 ms after C_Initialize, so some land in it.
    def command(i: int) -> list[str]:
        return [sys.executable, "-c", PYTHON_HOST, module_path, str(i % 10 * 1000)]

    assert failures(command, host_env(config)) == ""
