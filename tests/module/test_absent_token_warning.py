"""An absent token is said at the default log level: one warning per slot and process, naming
the instance and the reason (light mode's part: tests/module/test_light_mode.py)."""

from __future__ import annotations

import os

import yaml

from p11fast.hsm.testing import ADMIN_PASSPHRASE, ADMIN_USER, free_port, running_hsm
from tests.hsm_api import HsmApi
from tests.module.conftest import run_python

# Two module lifetimes in one process, each asking for the present tokens twice.
LIST_TWICE_TWICE = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
count = ctypes.c_ulong(0)
for _ in range(2):
    assert lib.C_Initialize(None) == 0
    for _ in range(2):
        assert lib.C_GetSlotList(1, None, ctypes.byref(count)) == 0
        assert count.value == 0
    assert lib.C_Finalize(None) == 0
"""


def config_for(hsm_config: str, directory, url: str | None = None, **settings) -> str:
    """The HSM's config logging to a file at the default level (no log_level), no retries."""
    with open(hsm_config) as f:
        cfg = yaml.safe_load(f)
    cfg.pop("log_level", None)
    cfg.update(settings, log_file=os.path.join(str(directory), "p11fast.log"))
    slot = cfg["slots"][0]
    slot["retries"] = {"count": 0, "delay_seconds": 0}
    if url is not None:
        slot["instances"][0]["url"] = url
    path = os.path.join(str(directory), "p11fast.conf")
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    os.chmod(path, 0o600)
    return path


def log_lines(directory) -> list[str]:
    with open(os.path.join(str(directory), "p11fast.log")) as f:
        return [line.split(": ", 1)[1] for line in f.read().splitlines()]


def test_an_unreachable_hsm_is_one_warning_naming_the_instance_and_the_reason(
    module_path, hsm, tmp_path
):
    nobody = f"https://127.0.0.1:{free_port()}/api/v1"
    config = config_for(hsm.config_path, tmp_path, url=nobody)
    done = run_python(LIST_TWICE_TWICE, config, module_path)
    assert done.returncode == 0, done.stderr
    (line,) = log_lines(tmp_path)
    assert line.startswith(f"WARN slot 0 (p11fast-dev): token not present: {nobody}: "), line
    assert "onnect" in line  # libcurl's reason: connection refused


def test_later_absences_are_logged_at_info(module_path, hsm, tmp_path):
    nobody = f"https://127.0.0.1:{free_port()}/api/v1"
    config = config_for(hsm.config_path, tmp_path, url=nobody, log_level="Info")
    done = run_python(LIST_TWICE_TWICE, config, module_path)
    assert done.returncode == 0, done.stderr
    absent = [line.split(" ", 1)[0] for line in log_lines(tmp_path) if "not present" in line]
    assert absent[0] == "WARN" and set(absent[1:]) == {"INFO"} and len(absent) > 1, absent


def test_a_locked_hsm_is_a_warning_with_its_http_status(module_path, tmp_path):
    with running_hsm(tmp_path / "hsm") as locked:
        HsmApi(locked.url, ADMIN_USER, ADMIN_PASSPHRASE).expect(204, "POST", "/lock")
        config = config_for(locked.config_path, tmp_path)
        done = run_python(LIST_TWICE_TWICE, config, module_path)
    assert done.returncode == 0, done.stderr
    assert log_lines(tmp_path) == [
        f"WARN slot 0 (p11fast-dev): token not present: {locked.url} answered GET "
        "/health/ready with HTTP 412 (the HSM is not Operational: unlock it)"
    ]
