"""The token is present exactly while an instance answers and is Operational."""

from __future__ import annotations

from tests.module.conftest import report_across_hsm_start

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
    report = report_across_hsm_start(SCRIPT, module_path, str(tmp_path / "hsm"))
    assert report == {"while_stopped": 0, "no_event_yet": 8, "wait": 0, "slot": 0, "after_start": 1}
