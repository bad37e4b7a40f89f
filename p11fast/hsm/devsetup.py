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
    # The default log level (Warn): a configuration that logs in C_Initialize gets no snapshot,
    # and every one-shot tool run would start Python (docs/architecture.md, light mode).
    config = {
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
                        "url": instance_url(options.host, options.port),
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


def instance_url(host: str, port: int) -> str:
    return f"https://{host}:{port}/api/v1"


def configured_slot(state_dir: str) -> dict:
    """The slot the state directory's p11fast.conf describes, as written by write_config."""
    with open(os.path.join(state_dir, CONFIG_FILE)) as f:
        return yaml.safe_load(f)["slots"][0]


def dev_banner(state_dir: str, slot: dict, initialised: InitOptions | None) -> str:
    """What `p11fast hsm dev` prints before serving: the credentials it holds and what to run
    next. Read back from the configuration (`slot`), so a restart on an existing state tells
    the same; the unlock passphrase only when this run set it (the configuration does not hold
    it)."""
    from p11fast import module_path

    config_path = os.path.abspath(os.path.join(state_dir, CONFIG_FILE))
    operator, admin = slot["operator"], slot["administrator"]
    lines = [
        f"p11fast development HSM, state in {os.path.abspath(state_dir)}",
        f"  url            {slot['instances'][0]['url']}",
        f"  token label    {slot['label']}",
        f"  Operator       {operator['username']} / {operator['password']}"
        "  (the PKCS#11 user; PIN = password)",
        f"  Administrator  {admin['username']} / {admin['password']}"
        "  (the PKCS#11 SO; PIN = password)",
    ]
    if initialised is not None:
        lines.append(f"  unlock         {initialised.unlock_passphrase}  (unattended boot is on)")
    lines += [
        "Both passwords are in the configuration: PKCS#11 tools need no PIN. In another shell:",
        f"  export P11FAST_CONFIG_FILE={config_path}",
        f'  pkcs11-tool --module "{module_path()}" -L',
        "  p11fast check",
        "Ctrl-C stops the HSM; its keys stay in the state directory.",
    ]
    return "\n".join(lines)
