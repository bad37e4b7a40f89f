"""Run a software HSM as a subprocess, for tests (ours and the PKCS#11 module's).

    from p11fast.hsm.testing import running_hsm

    with running_hsm(tmp_path / "hsm") as hsm:
        hsm.url          # "https://127.0.0.1:PORT/api/v1"
        hsm.config_path  # p11nethsm.conf-format file for the PKCS#11 module (users below)
        hsm.kill()       # SIGKILL; hsm.start() brings it back on the same port
                         # (unattended boot: Operational again without unlocking)

With `init=True` (default) the state directory is provisioned by `p11fast hsm init`:
unlock passphrase `unlockunlock`, `admin`/`adminadmin1` (Administrator),
`operator`/`operatoroperator` (Operator), unattended boot on. With `init=False` the server
starts Unprovisioned and `config_path` is None.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from p11fast.hsm import tls
from p11fast.hsm.devsetup import CONFIG_FILE, InitOptions

READY_LINE = "p11fast-hsm listening on "
START_TIMEOUT = 30.0

DEFAULTS = InitOptions(state_dir="")
UNLOCK_PASSPHRASE = DEFAULTS.unlock_passphrase
ADMIN_USER, ADMIN_PASSPHRASE = "admin", DEFAULTS.admin_passphrase
OPERATOR_USER, OPERATOR_PASSPHRASE = DEFAULTS.operator_user, DEFAULTS.operator_passphrase


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _hsm_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "p11fast", "hsm", *args]


def _hsm_env() -> dict[str, str]:
    """The caller's environment, with this p11fast importable even from a source tree."""
    package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": package_root + (os.pathsep + path if path else "")}


@dataclass
class HsmProcess:
    state_dir: str
    port: int
    host: str = "127.0.0.1"
    fingerprint: str = ""
    config_path: str | None = None
    serve_args: tuple[str, ...] = ()  # more `serve` options, e.g. ("--header-timeout", "1")
    process: subprocess.Popen | None = None
    output: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}/api/v1"

    @property
    def host_port(self) -> str:
        """`host:port`, what the `nethsm` SDK takes as its host."""
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        """Start `serve` (again) on the same port and wait until it accepts connections."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("the HSM is already running")
        self.output = []
        self.process = subprocess.Popen(
            _hsm_command(
                "serve",
                "--state",
                self.state_dir,
                "--host",
                self.host,
                "--port",
                str(self.port),
                *self.serve_args,
            ),  # fmt: skip
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=_hsm_env(),
        )
        ready = threading.Event()
        threading.Thread(target=self._pump, args=(self.process, ready), daemon=True).start()
        deadline = time.monotonic() + START_TIMEOUT
        while not ready.wait(0.05):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("software HSM did not start:\n" + "".join(self.output))
        self.fingerprint = tls.fingerprint(tls.certificate_pem(self.state_dir))

    def _pump(self, process: subprocess.Popen, ready: threading.Event) -> None:
        # Keep draining the pipe so a chatty server never blocks on a full pipe.
        for line in process.stdout:
            self.output.append(line)
            if line.startswith(READY_LINE):
                ready.set()

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then wait; SIGKILL if it does not exit in time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        """SIGKILL: the crash case; nothing gets a chance to flush."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@contextmanager
def running_hsm(
    state_dir: str | os.PathLike,
    port: int = 0,
    init: bool = True,
    serve_args: tuple[str, ...] = (),
) -> Iterator[HsmProcess]:
    """Init (optionally) and serve a software HSM on 127.0.0.1; stop it on exit."""
    state_dir = os.fspath(state_dir)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    # A concrete port up front, so the config written by init names the port served on.
    hsm = HsmProcess(state_dir=state_dir, port=port or free_port(), serve_args=serve_args)
    if init:
        subprocess.run(
            _hsm_command("init", "--state", state_dir, "--port", str(hsm.port)),
            check=True,
            capture_output=True,
            env=_hsm_env(),
        )
        hsm.config_path = os.path.join(state_dir, CONFIG_FILE)
    hsm.start()
    try:
        yield hsm
    finally:
        hsm.stop()
