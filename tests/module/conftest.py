"""Fixtures for tests that drive the real PKCS#11 library against a software HSM process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from p11fast.hsm.testing import (
    ADMIN_PASSPHRASE,
    ADMIN_USER,
    OPERATOR_PASSPHRASE,
    HsmProcess,
    running_hsm,
)
from tests.hosts import host_env
from tests.hsm_api import HsmApi

OPERATOR_PIN = OPERATOR_PASSPHRASE

# The keys every module test can rely on: (id, type, length, mechanisms).
KEYS = (
    ("ecp256", "EC_P256", None, ["ECDSA_Signature"]),
    ("ecp384", "EC_P384", None, ["ECDSA_Signature"]),
    ("ecp521", "EC_P521", None, ["ECDSA_Signature"]),
    ("ed1", "Curve25519", None, ["EdDSA_Signature"]),
    (
        "rsa2048",
        "RSA",
        2048,
        [
            "RSA_Signature_PKCS1",
            "RSA_Signature_PSS_SHA1",
            "RSA_Signature_PSS_SHA256",
            "RSA_Signature_PSS_SHA384",
            "RSA_Signature_PSS_SHA512",
            "RSA_Decryption_PKCS1",
        ],
    ),
    ("aes256", "Generic", 256, ["AES_Encryption_CBC", "AES_Decryption_CBC"]),
)


@pytest.fixture(scope="session")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HsmProcess]:
    with running_hsm(str(tmp_path_factory.mktemp("hsm"))) as process:
        yield process


@pytest.fixture(scope="session")
def api(hsm: HsmProcess) -> HsmApi:
    return api_with_keys(hsm)


def api_with_keys(hsm: HsmProcess) -> HsmApi:
    """The administrator's client of hsm, once the KEYS are made."""
    client = HsmApi(hsm.url, ADMIN_USER, ADMIN_PASSPHRASE)
    for key_id, key_type, length, mechanisms in KEYS:
        client.generate(key_type, mechanisms, key_id, length)
    return client


def config_without_password(hsm: HsmProcess, directory) -> str:
    """The HSM's config with the operator password removed: C_Login must supply it."""
    import yaml

    with open(hsm.config_path) as f:
        cfg = yaml.safe_load(f)
    for slot in cfg["slots"]:
        slot["operator"].pop("password", None)
    path = os.path.join(str(directory), "nopass.conf")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    os.chmod(path, 0o600)
    return path


@pytest.fixture(scope="session")
def login_config(hsm: HsmProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    return config_without_password(hsm, tmp_path_factory.mktemp("cfg"))


def run_python(
    script: str, config_path: str, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess:
    """Runs a Python host in its own process, so each test gets a fresh module state."""
    return subprocess.run(
        [sys.executable, "-c", script, *args],
        env=host_env(config_path),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_host(script: str, config_path: str, *args: str, stdin: str | None = None) -> object:
    """Runs a host script (tests/module/*_host.py, abi_cases.py) in its own process and returns
    the JSON on the last line of its output."""
    import json

    done = subprocess.run(
        [sys.executable, script, *args],
        input=stdin,
        env=host_env(config_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def report_across_hsm_start(script: str, module_path: str, state_dir: str) -> dict:
    """Runs a Python host that looks at a stopped HSM, prints "stopped" and waits for a line on
    stdin while the HSM starts; returns the JSON report the host prints last."""
    import json

    with running_hsm(state_dir) as hsm:
        hsm.stop()
        host = subprocess.Popen(
            [sys.executable, "-c", script, module_path],
            env=host_env(hsm.config_path),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            assert host.stdout.readline().strip() == "stopped"
            hsm.start()
            host.stdin.write("go\n")
            host.stdin.flush()
            out, err = host.communicate(timeout=60)
        finally:
            host.kill()
        assert host.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])
