"""Fork: a host forks after C_Initialize; parent and children keep working, nothing leaks, no
child inherits a lock held. The C host has no Python of its own (only the loader's and the
module's pthread_atfork handlers protect it); the Python hosts fork with os.fork() or
multiprocessing, whose own fork handling (PyOS_BeforeFork/AfterFork_Child) runs around the
module's. Each scenario forks FORKS children, with and without threads logging at fork time."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from p11fast.hsm.testing import free_port
from tests.hosts import host_env
from tests.reliability.conftest import KEY_ID, PIN, cluster, report, run_host, write_config

FORKS = 100
HERE = os.path.dirname(os.path.abspath(__file__))
BAD_CONFIG = "/nonexistent/p11fast-fork-test.conf"


@pytest.fixture(scope="module")
def hsm_config(key_state, tmp_path_factory):
    directory = tmp_path_factory.mktemp("fork")
    with cluster(key_state, directory, 1) as hsms:
        # A second instance that is down: the module's probe thread runs while the host forks.
        down = f"https://127.0.0.1:{free_port()}/api/v1"
        yield write_config(
            directory / "c.conf", [hsms.instances[0].url, down], hsms.fingerprint, retries=1
        )


def run_forks(host, module_path, config, *args):
    done = run_host(host, config, *args, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return report(done.stdout, "forks"), done.stdout, done.stderr


def test_children_that_initialise_again_work_and_forks_leak_no_thread_or_descriptor(
    module_path, host, hsm_config
):
    result, _, stderr = run_forks(
        host, module_path, hsm_config, "fork", module_path, PIN, KEY_ID, str(FORKS), "reinit"
    )
    assert result["children_ok"] == FORKS, stderr[-3000:]
    assert result["children_failed"] == 0
    assert result["threads_before"] >= 2  # the host's and the module's probe thread
    # The parent signs between forks with the session it had before them.
    assert result["parent_ok"] == FORKS
    assert result["threads_after"] == result["threads_before"], result
    assert result["fds_after"] == result["fds_before"], result


def test_children_that_do_not_initialise_get_not_initialized_and_can_initialise_later(
    module_path, host, hsm_config
):
    # Two threads of the parent sign and have a C_SignInit refused (a log line) meanwhile.
    result, stdout, stderr = run_forks(
        host, module_path, hsm_config, "fork", module_path, PIN, KEY_ID, str(FORKS), "noreinit", "2"
    )
    assert result["children_ok"] == FORKS, stderr[-3000:]
    assert result["parent_ok"] == FORKS
    assert result["threads_after"] == result["threads_before"], result
    # Three threads signing at once may open one more connection after the count (its socket
    # and the socket pair of libcurl's handle), not one per fork.
    assert result["fds_before"] <= result["fds_after"] <= result["fds_before"] + 3, result
    loggers = report(stdout, "attempted")
    assert loggers["ok"] > 0 and loggers["failed"] == 0, stdout
    assert stderr.count("C_SignInit: refused") > 0


def test_children_forked_while_threads_log_failed_initialisations_do_not_hang(
    module_path, host, hsm_config
):
    # The parent never initialises: its threads' C_Initialize fails on a missing configuration
    # file and writes a line to stderr each time. A child forked while one of them was writing
    # inherited whatever lock that write held; its own failing C_Initialize writes the same line.
    result, stdout, stderr = run_forks(
        host, module_path, hsm_config,
        "forkfail", module_path, PIN, KEY_ID, str(FORKS), BAD_CONFIG, "2",
    )  # fmt: skip
    assert result["children_ok"] == FORKS, stderr[-3000:]
    loggers = report(stdout, "attempted")
    assert loggers["failed"] == loggers["attempted"] > FORKS  # every one failed, as it should
    assert stderr.count(BAD_CONFIG) >= loggers["attempted"]


def fork_python(module_path, config, client, start, loggers):
    done = subprocess.run(
        [sys.executable, os.path.join(HERE, "fork_host.py"), module_path, PIN, KEY_ID, client,
         start, str(FORKS), loggers],
        env=host_env(config), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1]), done.stderr


@pytest.mark.parametrize(
    "client, start, loggers",
    [("ctypes", "fork", "0"), ("pkcs11", "fork", "0"), ("pykcs11", "fork", "2"),
     ("pkcs11", "mp", "2")],
)  # fmt: skip
def test_python_host_children_get_not_initialized_then_initialise_again_and_sign(
    module_path, hsm_config, client, start, loggers
):
    # With loggers, threads of the parent sign and have a C_SignInit refused (a log line).
    result, stderr = fork_python(module_path, hsm_config, client, start, loggers)
    assert result["children_ok"] == FORKS, (result, stderr[-3000:])
    assert result["parent_ok"]
    if loggers != "0":
        assert result["signed"] > 0
        assert stderr.count("C_SignInit: refused") >= result["refused"] > 0


def test_python_host_children_forked_while_threads_log_failed_initialisations_do_not_hang(
    module_path, hsm_config
):
    result, stderr = fork_python(module_path, hsm_config, "ctypes", "fork", "fail2")
    assert result["children_ok"] == FORKS, (result, stderr[-3000:])
    assert result["failed_inits"] > FORKS
