"""C_Initialize / C_Finalize cycles hold no descriptor: whatever an initialisation opens (log
file, syslog socket, connections) its finalisation closes, and a failed one closes it at once."""

from __future__ import annotations

import os
import resource
import shutil
import socket
import subprocess
import tempfile
import threading

import pytest
import yaml

from tests.hosts import host_env
from tests.reliability.conftest import cluster, fields, write_config

CYCLES = 100
FD_LIMIT = 64  # the leak exhausted it after ~50 cycles


@pytest.fixture(scope="module")
def hsm(key_state, tmp_path_factory):
    with cluster(key_state, tmp_path_factory.mktemp("descriptors"), 1) as hsms:
        yield hsms


@pytest.fixture
def short_dir():
    """A directory for a unix socket: its path must fit in sun_path (108 bytes)."""
    path = tempfile.mkdtemp(prefix="p11fd", dir="/tmp")
    yield path
    shutil.rmtree(path)


def drain(sock: socket.socket) -> None:
    """Reads and drops whatever arrives on `sock` until it is closed."""
    def run():
        try:
            while sock.recv(1 << 16):
                pass
        except OSError:
            pass
        sock.close()

    threading.Thread(target=run, daemon=True).start()


def receiver(kind: str, short_dir: str) -> tuple[dict, socket.socket]:
    """A syslog receiver of `kind` and the configuration keys that point the module at it."""
    if kind == "syslog_socket":
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        path = os.path.join(short_dir, "log")
        sock.bind(path)
        drain(sock)  # a full datagram queue would block the module's next log line
        return {"syslog_socket": path}, sock
    if kind == "syslog_udp":
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        return {"syslog_udp": {"to_addr": f"127.0.0.1:{sock.getsockname()[1]}"}}, sock
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)

    def accept():
        while True:
            try:
                conn, _ = sock.accept()
            except OSError:
                return
            drain(conn)

    threading.Thread(target=accept, daemon=True).start()
    return {"syslog_tcp": f"127.0.0.1:{sock.getsockname()[1]}"}, sock


def cycles(host: str, module_path: str, config: str) -> list[dict[str, int]]:
    """CYCLES initialise/finalise cycles in a host whose descriptor limit is FD_LIMIT."""
    def limit_descriptors():
        resource.setrlimit(resource.RLIMIT_NOFILE, (FD_LIMIT, FD_LIMIT))

    done = subprocess.run([host, "inits", module_path, str(CYCLES)], env=host_env(config),
                          capture_output=True, text=True, timeout=300,
                          preexec_fn=limit_descriptors)
    assert done.returncode == 0, done.stderr
    return [fields(line) for line in done.stdout.splitlines() if line.startswith("init=")]


def held(results: list[dict[str, int]]) -> int:
    """Descriptors held across these cycles. A pool's background thread may still be closing
    a connection when C_Finalize returns, so single counts run a few over: the fewest is what
    stays open."""
    return min(r["fds"] for r in results)


@pytest.mark.parametrize("target", ["log_file", "syslog_socket", "syslog_udp", "syslog_tcp"])
def test_initialize_finalize_cycles_leave_no_descriptor_open(
    module_path, host, hsm, tmp_path, short_dir, target
):
    extra, sock = ({"log_file": str(tmp_path / "module.log")}, None) if target == "log_file" \
        else receiver(target, short_dir)
    try:
        config = write_config(tmp_path / "c.conf", [hsm.instances[0].url], hsm.fingerprint,
                              **extra)
        results = cycles(host, module_path, config)
    finally:
        if sock is not None:
            sock.close()
    assert [r["init"] for r in results] == [0] * CYCLES
    assert [r["open"] for r in results] == [0] * CYCLES  # each cycle really used the token
    assert held(results[-10:]) <= held(results[:10])


def test_a_failing_initialize_leaves_no_descriptor_open(module_path, host, hsm, tmp_path):
    # Too many slots is found after the log is open: the log must be closed again.
    config = write_config(tmp_path / "c.conf", [hsm.instances[0].url], hsm.fingerprint,
                          log_file=str(tmp_path / "module.log"))
    with open(config) as f:
        cfg = yaml.safe_load(f)
    slot = cfg["slots"][0]
    cfg["slots"] = [dict(slot, label=f"s{i}") for i in range(65)]
    with open(config, "w") as f:
        yaml.safe_dump(cfg, f)
    results = cycles(host, module_path, config)
    assert [r["init"] for r in results] == [0x5] * CYCLES  # CKR_GENERAL_ERROR
    assert held(results[-10:]) <= held(results[:10])
