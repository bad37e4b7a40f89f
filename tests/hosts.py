"""Running PKCS#11 hosts (pkcs11-tool, C and Python programs) against the module."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from p11fast.hsm.testing import OPERATOR_PASSPHRASE


def host_env(config_path: str, **extra: str) -> dict[str, str]:
    """The environment of a host process: only the config location (and `extra`) is ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("P11FAST_", "P11NETHSM_"))}
    env["P11FAST_CONFIG_FILE"] = config_path
    env.update(extra)
    return env


def pkcs11_tool(module_path: str, config: str, *args: str) -> str:
    """OpenSC's pkcs11-tool with `args`; fails the test unless it exits 0. Returns stdout."""
    done = subprocess.run(
        ["pkcs11-tool", "--module", module_path, *args],
        env=host_env(config),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def pkcs11_tool_sign(
    module_path: str,
    config: str,
    workdir: Path,
    key_id: str,
    mechanism: str,
    data: bytes,
    *extra: str,
) -> bytes:
    """`pkcs11-tool --sign` of `data` as the operator; returns the signature."""
    (workdir / "data").write_bytes(data)
    pkcs11_tool(
        module_path,
        config,
        "--login",
        "--pin",
        OPERATOR_PASSPHRASE,
        "--sign",
        "--id",  # pkcs11-tool --sign selects its key by ID only (it ignores --label)
        key_id.encode().hex(),
        "-m",
        mechanism,
        "-i",
        str(workdir / "data"),
        "-o",
        str(workdir / "sig"),
        *extra,
    )
    return (workdir / "sig").read_bytes()
