"""Bad arguments, bad handles and calls out of order get the standard's CKR, never a crash."""

from __future__ import annotations

import os

import pytest

from p11fast import ckr
from tests.module.conftest import OPERATOR_PIN, run_host

CASES = {
    "GetInfo before C_Initialize": ckr.CKR_CRYPTOKI_NOT_INITIALIZED,
    "OpenSession before C_Initialize": ckr.CKR_CRYPTOKI_NOT_INITIALIZED,
    "Initialize with some mutex functions": ckr.CKR_ARGUMENTS_BAD,
    "Initialize": ckr.CKR_OK,
    "Initialize twice": ckr.CKR_CRYPTOKI_ALREADY_INITIALIZED,
    "GetInfo NULL": ckr.CKR_ARGUMENTS_BAD,
    "GetSlotList NULL count": ckr.CKR_ARGUMENTS_BAD,
    "GetSlotList short buffer": ckr.CKR_BUFFER_TOO_SMALL,
    "GetSlotList short buffer count": 1,
    "GetSlotInfo bad slot": ckr.CKR_SLOT_ID_INVALID,
    "GetTokenInfo bad slot": ckr.CKR_SLOT_ID_INVALID,
    "GetMechanismInfo unknown mechanism": ckr.CKR_MECHANISM_INVALID,
    "OpenSession without serial flag": ckr.CKR_SESSION_PARALLEL_NOT_SUPPORTED,
    "OpenSession NULL handle": ckr.CKR_ARGUMENTS_BAD,
    "OpenSession": ckr.CKR_OK,
    "CloseSession unknown handle": ckr.CKR_SESSION_HANDLE_INVALID,
    "Login bad user type": ckr.CKR_USER_TYPE_INVALID,
    "Login NULL pin with length": ckr.CKR_ARGUMENTS_BAD,
    "Logout when not logged in": ckr.CKR_USER_NOT_LOGGED_IN,
    "Login wrong pin": ckr.CKR_PIN_INCORRECT,
    "Login": ckr.CKR_OK,
    "Login twice": ckr.CKR_USER_ALREADY_LOGGED_IN,
    "Login SO while user logged in": ckr.CKR_USER_ANOTHER_ALREADY_LOGGED_IN,
    "FindObjects before Init": ckr.CKR_OPERATION_NOT_INITIALIZED,
    "FindObjectsInit NULL template with count": ckr.CKR_ARGUMENTS_BAD,
    "FindObjectsInit": ckr.CKR_OK,
    "FindObjectsInit twice": ckr.CKR_OPERATION_ACTIVE,
    "FindObjects": ckr.CKR_OK,
    "FindObjects count": 1,
    "FindObjectsFinal": ckr.CKR_OK,
    "GetAttributeValue short buffer": ckr.CKR_BUFFER_TOO_SMALL,
    "GetAttributeValue short buffer length": 2**64 - 1,
    "GetAttributeValue unknown type": ckr.CKR_ATTRIBUTE_TYPE_INVALID,
    "GetAttributeValue sensitive": ckr.CKR_ATTRIBUTE_SENSITIVE,
    "GetAttributeValue bad object": ckr.CKR_OBJECT_HANDLE_INVALID,
    "SignInit NULL mechanism": ckr.CKR_ARGUMENTS_BAD,
    "WrapKey NULL mechanism": ckr.CKR_ARGUMENTS_BAD,
    "UnwrapKey NULL mechanism": ckr.CKR_ARGUMENTS_BAD,
    "DeriveKey NULL mechanism": ckr.CKR_ARGUMENTS_BAD,
    "DeriveKey": ckr.CKR_FUNCTION_NOT_SUPPORTED,
    "SignInit bad key": ckr.CKR_KEY_HANDLE_INVALID,
    "SignInit unknown mechanism": ckr.CKR_MECHANISM_INVALID,
    "SignInit RSA mechanism on EC key": ckr.CKR_KEY_TYPE_INCONSISTENT,
    "Sign before SignInit": ckr.CKR_OPERATION_NOT_INITIALIZED,
    "SignInit": ckr.CKR_OK,
    "SignInit twice": ckr.CKR_OPERATION_ACTIVE,
    "Sign size query": ckr.CKR_OK,
    "Sign size query length": 64,
    "Sign short buffer": ckr.CKR_BUFFER_TOO_SMALL,
    "Sign": ckr.CKR_OK,
    "Sign length": 64,
    "Sign after the operation ended": ckr.CKR_OPERATION_NOT_INITIALIZED,
    "Finalize with reserved pointer": ckr.CKR_ARGUMENTS_BAD,
    "Finalize": ckr.CKR_OK,
    "OpenSession after C_Finalize": ckr.CKR_CRYPTOKI_NOT_INITIALIZED,
    "Finalize twice": ckr.CKR_CRYPTOKI_NOT_INITIALIZED,
}


@pytest.fixture(scope="module")
def results(module_path, login_config, api) -> dict:
    script = os.path.join(os.path.dirname(__file__), "abi_cases.py")
    return run_host(script, login_config, module_path, OPERATOR_PIN)


@pytest.mark.parametrize("case", list(CASES))
def test_call_returns_the_standard_code(results, case):
    assert results[case] == CASES[case], f"{case}: got {results[case]:#x}"
