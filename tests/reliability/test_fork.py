"""Fork: a host forks after C_Initialize; parent and children keep working, nothing leaks, no
child inherits a lock held. The C host has no Python of its own (only the loader's and the
module's pthread_atfork handlers protect it); the Python hosts fork with os.fork() or
multiprocessing, whose own fork handling (PyOS_BeforeFork/AfterFork_Child) runs around the
module's. Each scenario forks FORKS children, with and without threads logging at fork time;
the scenarios run at once, each in its own process, and each test checks one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import pytest

from p11fast.hsm.testing import free_port
from tests.hosts import host_env
from tests.reliability.conftest import KEY_ID, PIN, cluster, failures, report, write_config

FORKS = 100
HERE = os.path.dirname(os.path.abspath(__file__))
BAD_CONFIG = "/nonexistent/p11fast-fork-test.conf"
TIMEOUT = 300  # for all scenarios together; a child that hangs costs its host 20 s


def scenarios(host: str, module: str) -> dict[str, list[str]]:
    """Each scenario's command. C host: p11host.c's fork modes (LOGGERS threads sign and have a
    C_SignInit refused, a log line each; forkfail's threads fail C_Initialize, a line each).
    Python host: fork_host.py's client, start method and loggers."""
    c = [host, "fork", module, PIN, KEY_ID, str(FORKS)]
    python = [sys.executable, os.path.join(HERE, "fork_host.py"), module, PIN, KEY_ID]
    return {
        "c-reinit": [*c, "reinit"],
        "c-noreinit-loggers": [*c, "noreinit", "2"],
        "c-failing-loggers": [host, "forkfail", module, PIN, KEY_ID, str(FORKS), BAD_CONFIG, "2"],
        "ctypes-fork": [*python, "ctypes", "fork", str(FORKS), "0"],
        "pkcs11-fork": [*python, "pkcs11", "fork", str(FORKS), "0"],
        "pykcs11-fork-loggers": [*python, "pykcs11", "fork", str(FORKS), "2"],
        "pkcs11-mp-loggers": [*python, "pkcs11", "mp", str(FORKS), "2"],
        "ctypes-fork-failing-loggers": [*python, "ctypes", "fork", str(FORKS), "fail2"],
    }


@dataclass
class Run:
    returncode: int | None  # None: killed at TIMEOUT
    stdout: str
    stderr: str


@pytest.fixture(scope="module")
def hsm(key_state, tmp_path_factory):
    with cluster(key_state, tmp_path_factory.mktemp("fork-hsm"), 1) as hsms:
        yield hsms


@pytest.fixture(scope="module")
def runs(module_path, host, hsm, tmp_path_factory) -> dict[str, Run]:
    directory = tmp_path_factory.mktemp("fork")
    # A second instance that is down: the module's probe thread runs while the host forks.
    down = f"https://127.0.0.1:{free_port()}/api/v1"
    config = write_config(
        directory / "c.conf", [hsm.instances[0].url, down], hsm.fingerprint, retries=1
    )
    started = {}
    for name, command in scenarios(host, module_path).items():
        # Files, not pipes: the logging threads write more than a pipe holds.
        out, err = directory / f"{name}.out", directory / f"{name}.err"
        with open(out, "w") as o, open(err, "w") as e:
            started[name] = (
                subprocess.Popen(command, env=host_env(config), stdout=o, stderr=e),
                out,
                err,
            )
    for proc, _, _ in started.values():
        try:
            proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return {
        name: Run(proc.returncode, out.read_text(), err.read_text())
        for name, (proc, out, err) in started.items()
    }


def result_of(run: Run, first_key: str = "forks") -> dict[str, int]:
    assert run.returncode == 0, run.stderr[-3000:]
    return report(run.stdout, first_key)


def test_children_that_initialise_again_work_and_forks_leak_no_thread_or_descriptor(runs):
    run = runs["c-reinit"]
    result = result_of(run)
    assert result["children_ok"] == FORKS, run.stderr[-3000:]
    assert result["children_failed"] == 0
    assert result["threads_before"] >= 2  # the host's and the module's probe thread
    # The parent signs between forks with the session it had before them.
    assert result["parent_ok"] == FORKS
    assert result["threads_after"] == result["threads_before"], result
    assert result["fds_after"] == result["fds_before"], result


def test_children_that_do_not_initialise_get_not_initialized_and_can_initialise_later(runs):
    # Two threads of the parent sign and have a C_SignInit refused (a log line) meanwhile.
    run = runs["c-noreinit-loggers"]
    result = result_of(run)
    assert result["children_ok"] == FORKS, run.stderr[-3000:]
    assert result["parent_ok"] == FORKS
    assert result["threads_after"] == result["threads_before"], result
    # A descriptor leaked per fork would be 100 more. What may differ is the pool: the count
    # is taken once each thread signed, which they may have done one after another over one
    # connection, and later all three sign at once: up to one more connection per thread (its
    # socket and the socket pair of libcurl's handle). Seen on a loaded machine: +6.
    most = result["fds_before"] + 3 * 3  # three signing threads
    assert result["fds_before"] <= result["fds_after"] <= most, result
    loggers = report(run.stdout, "attempted")
    assert loggers["ok"] > 0 and loggers["failed"] == 0, run.stdout
    assert run.stderr.count("C_SignInit: refused") > 0


def test_children_forked_while_threads_log_failed_initialisations_do_not_hang(runs):
    # The parent never initialises: its threads' C_Initialize fails on a missing configuration
    # file and writes a line to stderr each time. A child forked while one of them was writing
    # inherited whatever lock that write held; its own failing C_Initialize writes the same line.
    run = runs["c-failing-loggers"]
    assert result_of(run)["children_ok"] == FORKS, run.stderr[-3000:]
    loggers = report(run.stdout, "attempted")
    assert loggers["failed"] == loggers["attempted"] > FORKS  # every one failed, as it should
    assert run.stderr.count(BAD_CONFIG) >= loggers["attempted"]


def python_result(run: Run) -> dict:
    assert run.returncode == 0, run.stderr[-3000:]
    return json.loads(run.stdout.splitlines()[-1])


@pytest.mark.parametrize(
    "scenario", ["ctypes-fork", "pkcs11-fork", "pykcs11-fork-loggers", "pkcs11-mp-loggers"]
)
def test_python_host_children_get_not_initialized_then_initialise_again_and_sign(runs, scenario):
    run = runs[scenario]
    result = python_result(run)
    assert result["children_ok"] == FORKS, (result, run.stderr[-3000:])
    assert result["parent_ok"]
    if scenario.endswith("-loggers"):
        assert result["signed"] > 0
        assert run.stderr.count("C_SignInit: refused") >= result["refused"] > 0


def test_python_host_children_forked_while_threads_log_failed_initialisations_do_not_hang(runs):
    run = runs["ctypes-fork-failing-loggers"]
    result = python_result(run)
    assert result["children_ok"] == FORKS, (result, run.stderr[-3000:])
    assert result["failed_inits"] > FORKS


def test_children_of_processes_that_fork_right_after_initialising_connect(
    module_path, host, hsm, tmp_path
):
    # The module's thread is in the process's first TLS set-ups when it forks (nginx's master
    # loads its key, then forks its workers): OpenSSL has no fork handlers, so a lock of its
    # held by that thread at fork() would stay held in the child, whose own connection needs it.
    # One HSM named four times: four set-ups, a wider window. 100 processes, one fork each.
    config = write_config(tmp_path / "c.conf", [hsm.instances[0].url] * 4, hsm.fingerprint)
    assert failures(lambda i: [host, "initfork", module_path, "1"], host_env(config)) == ""
