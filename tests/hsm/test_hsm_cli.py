"""`p11fast hsm init` / `serve` / `dev` as a user runs them."""

from __future__ import annotations

import os
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
