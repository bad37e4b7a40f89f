"""The token is present exactly while an instance answers and is Operational."""

from __future__ import annotations

import json
import subprocess
import sys

from p11fast.hsm.testing import running_hsm
from tests.module.conftest import host_env

SCRIPT = r"""
import ctypes, json, sys
lib = ctypes.CDLL(sys.argv[1])
UL = ctypes.c_ulong
assert lib.C_Initialize(None) == 0
count = UL(0)
def present():
    assert lib.C_GetSlotList(1, None, ctypes.byref(count)) == 0
    return count.value
slot = UL(99)
no_event = lib.C_WaitForSlotEvent(1, ctypes.byref(slot), None)
report = {"while_stopped": present(), "no_event_yet": no_event}
print("stopped", flush=True)
sys.stdin.readline()
report["wait"] = lib.C_WaitForSlotEvent(0, ctypes.byref(slot), None)
report["slot"] = slot.value
report["after_start"] = present()
lib.C_Finalize(None)
print(json.dumps(report), flush=True)
"""


def test_token_absent_while_stopped_and_wait_for_slot_event_reports_its_arrival(
    module_path, tmp_path
):
    with running_hsm(str(tmp_path / "hsm")) as hsm:
        hsm.stop()
        host = subprocess.Popen(
            [sys.executable, "-c", SCRIPT, module_path],
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
        report = json.loads(out.strip().splitlines()[-1])
    assert report == {"while_stopped": 0, "no_event_yet": 8, "wait": 0, "slot": 0, "after_start": 1}
