"""`p11fast hsm init` / `serve` / `dev` as a user runs them."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys

import pytest
import yaml
from hsm_client import ADMIN, OPERATOR, Client

from p11fast.hsm.testing import HsmProcess, free_port, running_hsm


def test_init_writes_p11nethsm_config(tmp_path) -> None:
    with running_hsm(tmp_path / "state") as hsm:
        assert stat.S_IMODE(os.stat(hsm.config_path).st_mode) == 0o600
        config = yaml.safe_load(open(hsm.config_path))
        slot = config["slots"][0]
        assert slot["operator"] == {"username": "operator", "password": "operatoroperator"}
        assert slot["administrator"] == {"username": "admin", "password": "adminadmin1"}
        instance = slot["instances"][0]
        assert instance["url"] == hsm.url
        assert instance["sha256_fingerprints"] == [hsm.fingerprint]
        assert len(hsm.fingerprint.split(":")) == 32 and hsm.fingerprint.isupper()
        # The fingerprint is the certificate the server really presents.
        assert any(hsm.fingerprint in line for line in hsm.output)
        client = Client(hsm)
        assert client.get("/health/state").json() == {"state": "Operational"}
        assert client.get("/keys", auth=OPERATOR).json() == []
        assert client.get("/config/unattended-boot", auth=ADMIN).json() == {"status": "on"}


def test_dev_initialises_once_then_serves(tmp_path) -> None:
    state = str(tmp_path / "dev")
    port = free_port()
    command = [sys.executable, "-m", "p11fast", "hsm", "dev", "--state", state, "--port", str(port)]
    for _ in range(2):  # the second start finds the state directory initialised
        process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        try:
            lines = []
            while not (line := process.stdout.readline()).startswith("p11fast-hsm listening"):
                assert line, "".join(lines)
                lines.append(line)
            assert line.strip() == f"p11fast-hsm listening on https://127.0.0.1:{port}"
            hsm = HsmProcess(state_dir=state, port=port)
            assert Client(hsm).get("/health/state").json() == {"state": "Operational"}
        finally:
            process.terminate()
            assert process.wait(10) == 0


def test_serve_port_zero_and_sigterm(tmp_path) -> None:
    state = str(tmp_path / "fresh")
    os.makedirs(state)
    command = [sys.executable, "-m", "p11fast", "hsm", "serve", "--state", state, "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        while not (line := process.stdout.readline()).startswith("p11fast-hsm listening"):
            assert line
        port = int(line.rsplit(":", 1)[1])
        assert port > 0
        client = Client(HsmProcess(state_dir=state, port=port))
        assert client.get("/health/state").json() == {"state": "Unprovisioned"}
        assert client.get("/health/alive").status_code == 200
    finally:
        process.terminate()
        assert process.wait(10) == 0


@pytest.mark.parametrize("init", [True, False], ids=["init", "provisioned-over-the-api"])
def test_every_file_the_hsm_writes_is_owner_only_but_the_certificate(tmp_path, init) -> None:
    state = tmp_path / "state"
    with running_hsm(state, init=init) as hsm:
        client = Client(hsm)
        if not init:
            provision = {"unlockPassphrase": "unlockunlock", "adminPassphrase": "adminadmin1"}
            provision["systemTime"] = "2025-01-01T00:00:00Z"
            assert client.post("/provision", json=provision).status_code == 204
            on = {"status": "on"}
            assert client.put("/config/unattended-boot", json=on, auth=ADMIN).ok
        key = {"mechanisms": ["ECDSA_Signature"], "type": "EC_P256"}
        assert client.post("/keys/generate", json=key, auth=ADMIN).status_code == 201
        written = {path.name: stat.S_IMODE(path.stat().st_mode) for path in state.iterdir()}
    assert {"hsm.sqlite", "machine.key", "tls.key", "tls.crt"} <= set(written)
    public = {"tls.crt"}  # sent to every client in the handshake
    assert {
        name: mode for name, mode in written.items() if mode & 0o077 and name not in public
    } == {}


def run_hsm_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "p11fast", "hsm", *args], capture_output=True, text=True, timeout=60
    )


def assert_says(done: subprocess.CompletedProcess, message: str) -> None:
    """The command failed with `message` as its one line on stderr, and nothing else."""
    assert (done.returncode, done.stderr) == (1, f"p11fast: {message}\n"), done.stderr


def test_serve_creates_a_missing_state_directory_private_to_its_user(tmp_path) -> None:
    state = str(tmp_path / "new")
    command = [sys.executable, "-m", "p11fast", "hsm", "serve", "--state", state, "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        while not (line := process.stdout.readline()).startswith("p11fast-hsm listening"):
            assert line, process.stderr.read()
    finally:
        process.terminate()
        _, err = process.communicate(timeout=10)
    assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
    assert f"created the state directory {state} (mode 0700)" in err


def test_a_state_directory_that_cannot_be_created_is_one_line(tmp_path) -> None:
    state = str(tmp_path / "no" / "such")
    assert_says(
        run_hsm_command("serve", "--state", state, "--port", "0"),
        f"cannot create the state directory {state}: No such file or directory "
        "(create its parent directory, or pick another --state)",
    )


def test_a_state_path_that_is_a_file_is_one_line(tmp_path) -> None:
    state = tmp_path / "file"
    state.write_text("")
    assert_says(
        run_hsm_command("serve", "--state", str(state), "--port", "0"),
        f"the state directory {state} is not a directory: pick another --state",
    )


def test_a_port_in_use_is_one_line_and_nothing_is_written(tmp_path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for command in ("dev", "serve"):
            state = tmp_path / command
            assert_says(
                run_hsm_command(command, "--state", str(state), "--port", str(port)),
                f"port {port} on 127.0.0.1 is already in use (another `p11fast hsm`?): "
                "stop that process, or pick another --port (0 picks a free one)",
            )
            assert not state.exists()


def test_init_with_the_wrong_unlock_passphrase_for_a_state_is_one_line(tmp_path) -> None:
    state = str(tmp_path / "state")
    assert run_hsm_command("init", "--state", state).returncode == 0
    os.remove(os.path.join(state, "machine.key"))  # no unattended boot: init must unlock it
    assert_says(
        run_hsm_command("init", "--state", state, "--unlock-passphrase", "not-the-one"),
        f"cannot initialise {state}: unlock failed (a state directory keeps the "
        "passphrases it was provisioned with; use those, or a new --state)",
    )


def test_dev_on_a_state_configured_for_another_port_is_one_line(tmp_path) -> None:
    state = str(tmp_path / "state")
    first, other = free_port(), free_port()
    assert run_hsm_command("init", "--state", state, "--port", str(first)).returncode == 0
    assert_says(
        run_hsm_command("dev", "--state", state, "--port", str(other)),
        f"{state}/p11fast.conf names https://127.0.0.1:{first}/api/v1: serve it there "
        "(its --host and --port), or start a new --state",
    )


def test_dev_prints_the_credentials_the_export_line_and_the_next_commands(tmp_path) -> None:
    from p11fast import module_path

    state = tmp_path / "dev"
    port = free_port()
    command = [sys.executable, "-m", "p11fast", "hsm", "dev", "--state", str(state),
               "--port", str(port)]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    try:
        lines = []
        while not (line := process.stdout.readline()).startswith("p11fast-hsm listening"):
            assert line, "".join(lines)
            lines.append(line.rstrip("\n"))
    finally:
        process.terminate()
        assert process.wait(10) == 0
    config = state / "p11fast.conf"
    assert lines[:7] == [
        f"p11fast development HSM, state in {state}",
        f"  url            https://127.0.0.1:{port}/api/v1",
        "  token label    p11fast-dev",
        "  Operator       operator / operatoroperator  (the PKCS#11 user; PIN = password)",
        "  Administrator  admin / adminadmin1  (the PKCS#11 SO; PIN = password)",
        "  unlock         unlockunlock  (unattended boot is on)",
        "Both passwords are in the configuration: PKCS#11 tools need no PIN. In another shell:",
    ]
    assert lines[7:11] == [
        f"  export P11FAST_CONFIG_FILE={config}",
        f'  pkcs11-tool --module "{module_path()}" -L',
        "  p11fast check",
        "Ctrl-C stops the HSM; its keys stay in the state directory.",
    ]
