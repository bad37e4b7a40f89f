"""PKCS#11 v3.0 (base specification) semantics the module follows, one scenario a process
(tests/module/semantics_host.py). docs/conformance-notes.md names the rule behind each."""

from __future__ import annotations

import os

import pytest
import yaml

from p11fast import ckr
from p11fast.attrs import CK_UNAVAILABLE_INFORMATION
from tests.module.conftest import OPERATOR_PIN, report_across_hsm_start, run_host

HOST = os.path.join(os.path.dirname(__file__), "semantics_host.py")

CKS_RO_PUBLIC_SESSION = 0
CKS_RO_USER_FUNCTIONS = 1
CKS_RW_PUBLIC_SESSION = 2
CKS_RW_USER_FUNCTIONS = 3
CKS_RW_SO_FUNCTIONS = 4


@pytest.fixture
def scenario(module_path, login_config, api):
    def run(name: str, config: str | None = None) -> dict:
        return run_host(HOST, config or login_config, module_path, OPERATOR_PIN, name)

    return run


def test_init_with_null_mechanism_terminates_the_active_operation(scenario):
    """§5.9–5.13 (v3.0): "C_SignInit can be called with pMechanism set to NULL_PTR to terminate
    an active signature operation" — and likewise Encrypt/Decrypt/Digest/Verify."""
    out = scenario("cancel")
    for name in ("Sign", "Verify", "Encrypt", "Decrypt", "Digest"):
        assert out[f"{name}Init NULL, none active"] == ckr.CKR_ARGUMENTS_BAD, name
        assert out[f"{name}Init"] == ckr.CKR_OK, name
        assert out[f"{name}Init NULL cancels"] == ckr.CKR_OK, name
        after = f"{name}Final after cancel" if name == "Digest" else f"{name} after cancel"
        assert out[after] == ckr.CKR_OPERATION_NOT_INITIALIZED, name
        assert out[f"{name}Init again"] == ckr.CKR_OK, name


def test_session_states_follow_login_logout_and_close_all(scenario):
    out = scenario("session_states")
    assert out == {
        "RO public": CKS_RO_PUBLIC_SESSION,
        "Login user": ckr.CKR_OK,
        "RO user": CKS_RO_USER_FUNCTIONS,
        "RW user": CKS_RW_USER_FUNCTIONS,
        "Logout": ckr.CKR_OK,
        "RO public after logout": CKS_RO_PUBLIC_SESSION,
        "RW public after logout": CKS_RW_PUBLIC_SESSION,
        "Login SO with an RO session open": ckr.CKR_SESSION_READ_ONLY_EXISTS,
        "CloseSession RO": ckr.CKR_OK,
        "Login SO": ckr.CKR_OK,
        "RW SO": CKS_RW_SO_FUNCTIONS,
        "OpenSession RO while SO": ckr.CKR_SESSION_READ_WRITE_SO_EXISTS,
        "Login user while SO": ckr.CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
        "CloseAllSessions": ckr.CKR_OK,
        "closed session handle": f"rv {ckr.CKR_SESSION_HANDLE_INVALID:#x}",
        # C_CloseAllSessions closed the last session: the token is logged out
        "RW public after CloseAllSessions": CKS_RW_PUBLIC_SESSION,
    }


def test_close_all_and_finalize_reach_the_last_session_in_the_table(scenario):
    out = scenario("last_sessions")
    assert out == {
        "CloseAllSessions": ckr.CKR_OK,
        "last session after CloseAllSessions": f"rv {ckr.CKR_SESSION_HANDLE_INVALID:#x}",
        "Finalize": ckr.CKR_OK,
        "Initialize again": ckr.CKR_OK,
        "last session after C_Finalize": f"rv {ckr.CKR_SESSION_HANDLE_INVALID:#x}",
        "reopened": CKS_RW_PUBLIC_SESSION,
    }


def test_read_only_session_changes_session_objects_only(scenario):
    out = scenario("read_only")
    assert out == {
        "GenerateKey token in RO": ckr.CKR_SESSION_READ_ONLY,
        "CreateObject session data in RO": ckr.CKR_OK,
        "SetAttributeValue session object in RO": ckr.CKR_OK,
        "SetAttributeValue token key in RO": ckr.CKR_SESSION_READ_ONLY,
        "SetAttributeValue CKA_CLASS": ckr.CKR_ATTRIBUTE_READ_ONLY,
        "DestroyObject session object in RO": ckr.CKR_OK,
        "destroyed session object": ckr.CKR_OBJECT_HANDLE_INVALID,
        "CloseSession with a session object": ckr.CKR_OK,
        "session object of a closed session": ckr.CKR_OBJECT_HANDLE_INVALID,
        "DestroyObject token key in RO": ckr.CKR_SESSION_READ_ONLY,
        "DestroyObject public key of a pair": ckr.CKR_ACTION_PROHIBITED,
        # CKR_ACTION_PROHIBITED is what an object with CKA_DESTROYABLE FALSE gets: they agree
        "public key of a pair: CKA_DESTROYABLE": 0,
        "GenerateRandom NULL 0": ckr.CKR_OK,
        "GenerateRandom buffer 0": ckr.CKR_OK,
    }


def test_read_only_session_verifies(scenario):
    """v3.0 session states: a read-only session has read-only access to token objects, which
    keeps it from creating, changing and destroying them, not from verifying with them."""
    out = scenario("read_only_verify")
    assert out == {
        "read-only session": CKS_RO_USER_FUNCTIONS,
        "session key pair: VerifyInit": ckr.CKR_OK,
        "session key pair: Verify": ckr.CKR_OK,
        "session key pair: VerifyUpdate": ckr.CKR_OK,
        "session key pair: VerifyFinal": ckr.CKR_OK,
        "HSM key: VerifyInit": ckr.CKR_OK,
        "HSM key: Verify": ckr.CKR_OK,
        "HSM key: VerifyUpdate": ckr.CKR_OK,
        "HSM key: VerifyFinal": ckr.CKR_OK,
    }


def test_object_handles_are_reused_without_running_out(scenario):
    """An application that creates and destroys session objects for hours (Java SunPKCS11 does)
    must not exhaust the object table; a destroyed object's handle stays invalid."""
    out = scenario("churn")
    assert out["failures"] == {}
    assert out["stale handle"] == ckr.CKR_OBJECT_HANDLE_INVALID


@pytest.fixture
def admin_only_config(hsm, tmp_path) -> str:
    with open(hsm.config_path) as f:
        cfg = yaml.safe_load(f)
    for slot in cfg["slots"]:
        slot.pop("operator")
    path = tmp_path / "admin-only.conf"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    return str(path)


def test_slot_without_operator_has_no_user_pin(scenario, admin_only_config):
    """CKF_USER_PIN_INITIALIZED and C_Login(CKU_USER) agree: CKR_USER_PIN_NOT_INITIALIZED."""
    out = scenario("no_operator", admin_only_config)
    assert out == {
        "GetTokenInfo": ckr.CKR_OK,
        "CKF_USER_PIN_INITIALIZED": False,
        "Login user": ckr.CKR_USER_PIN_NOT_INITIALIZED,
        "Login SO": ckr.CKR_OK,
    }


def test_get_attribute_value_processes_every_entry(scenario):
    out = scenario("attributes")
    assert out["ALLOWED_MECHANISMS size query"] == ckr.CKR_OK
    assert out["ALLOWED_MECHANISMS size is a CK_ULONG array"]
    assert out["ALLOWED_MECHANISMS"] == ckr.CKR_OK
    assert out["ALLOWED_MECHANISMS has CKM_SHA256_RSA_PKCS"]
    # Any of the three "not true errors" may be returned; every entry is still processed.
    assert out["mixed template"] in (ckr.CKR_ATTRIBUTE_TYPE_INVALID, ckr.CKR_BUFFER_TOO_SMALL)
    assert out["mixed: label filled"] == "rsa2048"
    assert out["mixed: unknown type length"] == CK_UNAVAILABLE_INFORMATION
    assert out["mixed: short buffer length"] == CK_UNAVAILABLE_INFORMATION
    assert out["GetObjectSize"] == ckr.CKR_OK


def test_key_that_cannot_do_the_mechanism(scenario):
    out = scenario("key_use")
    assert out == {
        "ECDSA on an Ed25519 key": ckr.CKR_KEY_TYPE_INCONSISTENT,
        "ECDSA with a public key": ckr.CKR_KEY_FUNCTION_NOT_PERMITTED,
        "PSS-SHA224 not among the key's mechanisms": ckr.CKR_KEY_FUNCTION_NOT_PERMITTED,
        "PSS salt the HSM cannot do": ckr.CKR_MECHANISM_PARAM_INVALID,
        "PSS without parameters": ckr.CKR_MECHANISM_PARAM_INVALID,
    }


def test_private_objects_need_a_logged_in_user(scenario):
    out = scenario("private_objects")
    assert out == {
        "private data object, no login": ckr.CKR_USER_NOT_LOGGED_IN,
        "public data object, no login": ckr.CKR_OK,
        "GenerateKey, no login": ckr.CKR_USER_NOT_LOGGED_IN,
        "private data object, user": ckr.CKR_OK,
        "GenerateKey, user": ckr.CKR_OK,
        "private data object, SO": ckr.CKR_USER_NOT_LOGGED_IN,
        # deliberate: NetHSM keys are generated by the Administrator (conformance notes)
        "GenerateKey, SO": ckr.CKR_OK,
    }


def test_private_keys_are_seen_by_every_session_while_one_is_logged_in(scenario):
    """§5.6: a session opened while the application has a session the user is logged into is in
    a User Functions state (pkcs11-check's test_access.py expects no private keys there)."""
    out = scenario("private_keys_per_token")
    assert out == {
        "no login": 0,
        "another session logged in": 1,
        "opened after the login": 1,
        "after logout": 0,
    }


def test_single_part_call_after_update_ends_the_operation(scenario):
    """v3.0 C_Sign: "cannot be used to terminate a multi-part operation" and "always terminates
    the active signing operation unless it returns CKR_BUFFER_TOO_SMALL or is a successful call
    … to determine the length"; likewise C_Verify, C_Digest, C_Encrypt, C_Decrypt."""
    out = scenario("mixing")
    for name in ("Sign", "Verify", "Encrypt", "Decrypt", "Digest"):
        assert out[f"{name}Init"] == ckr.CKR_OK, name
        assert out[f"{name}Update"] == ckr.CKR_OK, name
        assert out[f"{name} after Update"] == ckr.CKR_OPERATION_ACTIVE, name
        assert out[f"{name}Final after that"] == ckr.CKR_OPERATION_NOT_INITIALIZED, name


def test_finalize_wakes_wait_for_slot_event(scenario):
    """v3.0 C_Finalize: a thread blocked in C_WaitForSlotEvent gets CKR_CRYPTOKI_NOT_INITIALIZED."""
    out = scenario("wait_finalize")
    assert out == {
        "DONT_BLOCK, no event": ckr.CKR_NO_EVENT,
        "Finalize": ckr.CKR_OK,
        "waiter": ckr.CKR_CRYPTOKI_NOT_INITIALIZED,
        "woken within 2 s": True,
        "Initialize again": ckr.CKR_OK,
    }


def test_finalize_while_other_threads_are_in_calls(scenario):
    out = scenario("finalize_race")
    assert out["Finalize"] == ckr.CKR_OK
    assert out["Initialize again"] == ckr.CKR_OK
    allowed = {
        ckr.CKR_OK,
        ckr.CKR_CRYPTOKI_NOT_INITIALIZED,
        ckr.CKR_SESSION_HANDLE_INVALID,
        # four threads share one session's find operation
        ckr.CKR_OPERATION_ACTIVE,
        ckr.CKR_OPERATION_NOT_INITIALIZED,
    }
    assert {int(code, 16) for code in out["codes"]} <= allowed, out["codes"]


ARRIVAL = r"""
import ctypes, json, sys
lib = ctypes.CDLL(sys.argv[1])
UL = ctypes.c_ulong
assert lib.C_Initialize(None) == 0
count, slot = UL(0), UL(99)
assert lib.C_GetSlotList(1, None, ctypes.byref(count)) == 0
report = {"present while stopped": count.value}
print("stopped", flush=True)
sys.stdin.readline()
report["DONT_BLOCK after the start"] = lib.C_WaitForSlotEvent(1, ctypes.byref(slot), None)
report["slot"] = slot.value
lib.C_Finalize(None)
print(json.dumps(report), flush=True)
"""


def test_slot_event_counts_from_what_the_application_saw(module_path, tmp_path):
    """A token that arrives after C_GetSlotList showed it absent is a slot event for the first
    C_WaitForSlotEvent, not the baseline that call starts from."""
    report = report_across_hsm_start(ARRIVAL, module_path, str(tmp_path / "hsm"))
    assert report == {
        "present while stopped": 0,
        "DONT_BLOCK after the start": ckr.CKR_OK,
        "slot": 0,
    }
