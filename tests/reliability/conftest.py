"""Fixtures for the reliability tests: a compiled C host, clusters of software HSMs that share
keys, and configuration files written for each scenario.

Every scenario runs on loopback, in processes of its own, with a time bound on each process:
a hang is a failure with a message, never a stuck CI job.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import pytest
import yaml

from p11fast.hsm.testing import (
    ADMIN_PASSPHRASE,
    ADMIN_USER,
    OPERATOR_PASSPHRASE,
    OPERATOR_USER,
    HsmProcess,
    free_port,
    running_hsm,
)
from tests.hosts import host_env
from tests.hsm_api import HsmApi

HERE = os.path.dirname(os.path.abspath(__file__))
INCLUDE = os.path.join(HERE, "..", "..", "include")
PIN = OPERATOR_PASSPHRASE
KEY_ID = "ecp256"


def compile_c(source: str, exe: str, *extra: str) -> str:
    subprocess.run(
        ["cc", "-O1", "-g", "-Wall", "-I", INCLUDE, source, "-o", exe, "-ldl", "-lpthread", *extra],
        check=True,
    )
    return exe


@pytest.fixture(scope="session")
def host(tmp_path_factory) -> str:
    """The C host (tests/reliability/p11host.c): it loads the module with dlopen, no Python."""
    out = tmp_path_factory.mktemp("host")
    return compile_c(os.path.join(HERE, "p11host.c"), str(out / "p11host"))


@pytest.fixture(scope="session")
def key_state(tmp_path_factory) -> str:
    """A provisioned HSM state directory holding the test keys, to copy for each instance:
    instances started from copies share users, keys and TLS certificate, as a cluster does."""
    state = str(tmp_path_factory.mktemp("template") / "state")
    with running_hsm(state) as hsm:
        api = HsmApi(hsm.url, ADMIN_USER, ADMIN_PASSPHRASE)
        api.generate("EC_P256", ["ECDSA_Signature"], KEY_ID)
    return state


class Cluster:
    """N software HSM processes started from copies of one state directory."""

    def __init__(self, template: str, directory: str, n: int) -> None:
        self.instances: list[HsmProcess] = []
        for i in range(n):
            state = os.path.join(directory, f"hsm{i}")
            shutil.copytree(template, state)
            self.instances.append(HsmProcess(state_dir=state, port=free_port()))

    def start(self) -> None:
        for hsm in self.instances:
            hsm.start()

    def stop(self) -> None:
        for hsm in self.instances:
            hsm.stop()

    @property
    def fingerprint(self) -> str:
        return self.instances[0].fingerprint

    def api(self, i: int) -> HsmApi:
        return HsmApi(self.instances[i].url, ADMIN_USER, ADMIN_PASSPHRASE)

    def operations(self, i: int, key_id: str = KEY_ID) -> int:
        """Signatures instance i made with the key since its state was copied (its own count)."""
        return int(self.api(i).key(key_id)["operations"])


@contextmanager
def cluster(template: str, directory, n: int) -> Iterator[Cluster]:
    c = Cluster(template, str(directory), n)
    try:
        c.start()
        yield c
    finally:
        c.stop()


def write_config(
    path,
    urls: list[str],
    fingerprint: str | None = None,
    *,
    retries: int | None = 0,
    delay: float = 0,
    timeout: float | None = None,
    operator_password: str | None = None,
    admin_password: str | None = ADMIN_PASSPHRASE,
    log_file: str | None = None,
    log_level: str = "Info",
    instance_extra: dict | None = None,
    mode: int = 0o600,
    **top,
) -> str:
    """A p11fast configuration with one slot over `urls`; http:// URLs need no TLS settings.
    `retries=None` leaves `retries` out (the module's default)."""
    instances = []
    for url in urls:
        inst: dict = {"url": url}
        if url.startswith("https://") and fingerprint:
            inst["sha256_fingerprints"] = [fingerprint]
        inst.update(instance_extra or {})
        instances.append(inst)
    slot: dict = {
        "label": "reliab",
        "operator": {"username": OPERATOR_USER},
        "administrator": {"username": ADMIN_USER},
        "instances": instances,
    }
    if retries is not None:
        slot["retries"] = {"count": retries, "delay_seconds": delay}
    if operator_password:
        slot["operator"]["password"] = operator_password
    if admin_password:
        slot["administrator"]["password"] = admin_password
    if timeout is not None:
        slot["timeout_seconds"] = timeout
    cfg: dict = {"log_level": log_level, "slots": [slot], **top}
    if log_file:
        cfg["log_file"] = log_file
    path = str(path)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    os.chmod(path, mode)
    return path


def run_host(host: str, config: str, *args: str, timeout: float = 120, env=None):
    """Runs the C host to completion within `timeout` seconds (a hang fails the test)."""
    return subprocess.run(
        [host, *args],
        env=env or host_env(config),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def failures(
    command: Callable[[int], list[str]], env: dict[str, str], runs: int = 100, parallel: int = 4
) -> str:
    """Runs command(i) for i in range(runs), `parallel` processes at a time: "" when all exit
    with 0, else how many did not and their exit codes (negative: the signal that killed it)."""

    def run(i: int) -> int:
        return subprocess.run(command(i), env=env, capture_output=True, timeout=120).returncode

    with ThreadPoolExecutor(parallel) as pool:
        failed = [code for code in pool.map(run, range(runs)) if code != 0]
    return f"{len(failed)} of {runs} runs failed: {failed}" if failed else ""


def fields(line: str) -> dict[str, int]:
    """`a=1 b=0x2` → {"a": 1, "b": 2}."""
    return {k: int(v, 0) for k, v in re.findall(r"(\w+)=(0x[0-9a-f]+|-?\d+)", line)}


def report(stdout: str, first_key: str) -> dict[str, int]:
    """The host's report line that starts with `first_key=`."""
    for line in stdout.splitlines():
        if line.startswith(first_key + "="):
            return fields(line)
    raise AssertionError(f"no '{first_key}=' line in:\n{stdout}")


def start_load(
    host: str, module: str, config: str, threads: int, seconds: int, slow_ms: int
) -> subprocess.Popen:
    """The C host in `load` mode, once its threads started signing (then `communicate` it)."""
    load = subprocess.Popen(
        [host, "load", module, PIN, KEY_ID, str(threads), str(seconds), str(slow_ms)],
        env=host_env(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = load.stdout.readline()
    if line.strip() != "started":
        load.kill()
        raise AssertionError(f"host not started: {line!r} {load.communicate()[1]}")
    return load


class ScriptHost:
    """The C host in `script` mode: the test changes the world between its calls."""

    def __init__(self, host: str, module: str, config: str, key_id: str = KEY_ID, pin: str = PIN):
        self.proc = subprocess.Popen(
            [host, "script", module, pin, key_id],
            env=host_env(config),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise AssertionError(f"host not ready: {line!r} {self.proc.stderr.read()}")

    def command(self, text: str) -> dict[str, int]:
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise AssertionError(f"host died: {self.proc.stderr.read()}")
        return fields(line)

    def sign(self, n: int = 1) -> dict[str, int]:
        return self.command(f"sign {n}")

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.communicate("quit\n", timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()
