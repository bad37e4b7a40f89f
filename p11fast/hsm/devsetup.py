"""`p11fast hsm init`: a ready-to-use state directory, written without a running server."""

from __future__ import annotations

import os
from dataclasses import dataclass

import yaml

from p11fast.hsm import tls, vault
from p11fast.hsm.core import Hsm, State
from p11fast.hsm.store import UserRecord

CONFIG_FILE = "p11fast.conf"


@dataclass(frozen=True)
class InitOptions:
    state_dir: str
    host: str = "127.0.0.1"
    port: int = 8443
    unlock_passphrase: str = "unlockunlock"
    admin_passphrase: str = "adminadmin1"
    operator_user: str = "operator"
    operator_passphrase: str = "operatoroperator"


@dataclass(frozen=True)
class InitResult:
    config_path: str
    fingerprint: str


def is_initialised(state_dir: str) -> bool:
    return os.path.exists(os.path.join(state_dir, CONFIG_FILE))


def initialise(options: InitOptions) -> InitResult:
    os.makedirs(options.state_dir, mode=0o700, exist_ok=True)
    hsm = Hsm(options.state_dir)
    try:
        if hsm.state is State.UNPROVISIONED:
            hsm.provision(options.unlock_passphrase, options.admin_passphrase)
        elif hsm.state is State.LOCKED:
            hsm.unlock(options.unlock_passphrase)
        if options.operator_user not in hsm.users:
            operator = UserRecord(
                options.operator_user, "", "Operator", "operator",
                vault.hash_passphrase(options.operator_passphrase),
            )  # fmt: skip
            hsm.add_user(operator)
        hsm.set_unattended_boot(True)
    finally:
        hsm.store.close()
    fingerprint = tls.ensure_certificate(options.state_dir)
    config_path = write_config(options, fingerprint)
    return InitResult(config_path, fingerprint)


def write_config(options: InitOptions, fingerprint: str) -> str:
    """A p11nethsm.conf-format file pointing at this HSM (mode 0600: it holds passwords)."""
    config = {
        "log_level": "Info",
        "slots": [
            {
                "label": "p11fast-dev",
                "description": f"p11fast software HSM in {os.path.abspath(options.state_dir)}",
                "operator": {
                    "username": options.operator_user,
                    "password": options.operator_passphrase,
                },
                "administrator": {"username": "admin", "password": options.admin_passphrase},
                "instances": [
                    {
                        "url": f"https://{options.host}:{options.port}/api/v1",
                        "sha256_fingerprints": [fingerprint],
                    }
                ],
                "retries": {"count": 3, "delay_seconds": 1},
                "timeout_seconds": 10,
            }
        ],
    }
    path = os.path.join(options.state_dir, CONFIG_FILE)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(config, f, sort_keys=False)
    os.chmod(path, 0o600)
    return path
