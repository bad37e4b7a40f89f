"""p11fast.errors and p11fast.ckr: CKR values, the exception hierarchy, the HTTP and transport
mappings."""

import os
import re

import pytest

from p11fast import ckr, errors
from p11fast.errors import (
    CREATE,
    DECRYPT,
    ENCRYPT,
    LOGIN,
    OBJECT,
    SIGN,
    TOKEN,
)

HEADER = os.path.join(os.path.dirname(__file__), "..", "..", "include", "pkcs11t.h")


def header_ckr_values():
    """`#define CKR_NAME value` lines of include/pkcs11t.h, values as ints."""
    values = {}
    with open(HEADER) as header:
        for line in header:
            parts = line.split()
            if len(parts) >= 3 and parts[0] == "#define" and parts[1].startswith("CKR_"):
                values[parts[1]] = parts[2]
    return values


def as_int(text, defined):
    """A header value: a number with an optional UL suffix, in parentheses, or another CKR_."""
    text = text.strip("()")
    if text in defined:
        return as_int(defined[text], defined)
    return int(text.rstrip("UuLl"), 0)


def module_ckr_values():
    return {name: value for name, value in vars(ckr).items() if name.startswith("CKR_")}


def test_every_ckr_constant_matches_the_header():
    defined = header_ckr_values()
    ours = module_ckr_values()
    assert {name: as_int(defined[name], defined) for name in ours if name in defined} == ours
    assert sorted(set(ours) - set(defined)) == []


def test_every_header_ckr_constant_is_in_ckr_py():
    defined = header_ckr_values()
    deprecated_aliases = {n for n in defined if defined[n].strip("()") in defined}
    assert sorted(set(defined) - set(module_ckr_values()) - deprecated_aliases) == []


def test_ckr_name_of_a_known_and_an_unknown_value():
    assert ckr.name(0xA0) == "CKR_PIN_INCORRECT"
    assert ckr.name(0x12345) == "CKR_0x12345"


def test_every_exception_carries_its_ckr():
    for cls in vars(errors).values():
        if isinstance(cls, type) and issubclass(cls, errors.P11Error):
            assert cls.ckr in module_ckr_values().values(), cls


def test_config_error_fails_c_initialize_with_function_failed():
    assert errors.ConfigError.ckr == ckr.CKR_FUNCTION_FAILED


HTTP_MAPPING = [
    (400, SIGN, errors.DataLenRange, ckr.CKR_DATA_LEN_RANGE),
    (400, DECRYPT, errors.EncryptedDataInvalid, ckr.CKR_ENCRYPTED_DATA_INVALID),
    (400, ENCRYPT, errors.DataLenRange, ckr.CKR_DATA_LEN_RANGE),
    (400, CREATE, errors.TemplateInconsistent, ckr.CKR_TEMPLATE_INCONSISTENT),
    (400, OBJECT, errors.ArgumentsBad, ckr.CKR_ARGUMENTS_BAD),
    (401, LOGIN, errors.PinIncorrect, ckr.CKR_PIN_INCORRECT),
    (401, SIGN, errors.UserNotLoggedIn, ckr.CKR_USER_NOT_LOGGED_IN),
    (401, TOKEN, errors.UserNotLoggedIn, ckr.CKR_USER_NOT_LOGGED_IN),
    (403, SIGN, errors.KeyFunctionNotPermitted, ckr.CKR_KEY_FUNCTION_NOT_PERMITTED),
    (403, DECRYPT, errors.KeyFunctionNotPermitted, ckr.CKR_KEY_FUNCTION_NOT_PERMITTED),
    (403, CREATE, errors.UserNotLoggedIn, ckr.CKR_USER_NOT_LOGGED_IN),
    (403, OBJECT, errors.UserNotLoggedIn, ckr.CKR_USER_NOT_LOGGED_IN),
    (404, SIGN, errors.KeyHandleInvalid, ckr.CKR_KEY_HANDLE_INVALID),
    (404, ENCRYPT, errors.KeyHandleInvalid, ckr.CKR_KEY_HANDLE_INVALID),
    (404, OBJECT, errors.ObjectHandleInvalid, ckr.CKR_OBJECT_HANDLE_INVALID),
    (409, CREATE, errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID),
    (409, OBJECT, errors.FunctionFailed, ckr.CKR_FUNCTION_FAILED),
    (412, SIGN, errors.TokenNotPresent, ckr.CKR_TOKEN_NOT_PRESENT),
    (412, LOGIN, errors.TokenNotPresent, ckr.CKR_TOKEN_NOT_PRESENT),
    (413, SIGN, errors.DataLenRange, ckr.CKR_DATA_LEN_RANGE),
    (429, SIGN, errors.RateLimited, ckr.CKR_DEVICE_ERROR),
    (500, SIGN, errors.DeviceError, ckr.CKR_DEVICE_ERROR),
    (503, TOKEN, errors.DeviceError, ckr.CKR_DEVICE_ERROR),
    (302, OBJECT, errors.DeviceError, ckr.CKR_DEVICE_ERROR),
]


@pytest.mark.parametrize("status, context, cls, rv", HTTP_MAPPING)
def test_http_status_in_context_maps_to_exception_and_ckr(status, context, cls, rv):
    exc = errors.from_http(status, context, "reason", "https://hsm1")
    assert type(exc) is cls and exc.ckr == rv


def test_http_error_message_names_instance_status_context_and_reason():
    exc = errors.from_http(404, SIGN, "key not found", "https://hsm1:8443")
    assert str(exc) == "https://hsm1:8443: HTTP 404 during sign: key not found"


def test_rate_limited_is_a_device_error_for_callers_that_do_not_retry():
    assert issubclass(errors.RateLimited, errors.DeviceError)


def test_unknown_context_is_a_programming_error():
    with pytest.raises(ValueError):
        errors.from_http(404, "signing", "", "https://hsm1")


FUNCTIONS = os.path.join(os.path.dirname(__file__), "..", "..", "include", "pkcs11f.h")
# PKCS#11 v3.0 §5.1.3: the functions that use no token (plus 3.0's interface queries, which take
# no slot either).
TOKENLESS = {"C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList", "C_GetSlotList",
             "C_GetSlotInfo", "C_WaitForSlotEvent", "C_GetInterfaceList", "C_GetInterface"}


def header_functions() -> dict[str, bool]:
    """Every function of include/pkcs11f.h: whether it takes a session handle."""
    with open(FUNCTIONS) as header:
        found = re.findall(r"CK_PKCS11_FUNCTION_INFO\((C_\w+),\s*\(([^)]*)\)", header.read())
    return {name: "CK_SESSION_HANDLE " in params for name, params in found}


def unreachable(code=errors.CONNECT_FAILED):
    return errors.TransportError(code, "https://hsm1:8443/api/v1", "Connection refused")


def test_no_answer_is_device_error_with_a_session_token_not_present_without_one():
    functions = header_functions()
    assert len(functions) == 92  # the 68 of v2.40 and 24 of v3.0
    for name, takes_session in functions.items():
        if takes_session:
            expected = ckr.CKR_DEVICE_ERROR  # the session stays: another instance may answer
        elif name in TOKENLESS:
            expected = ckr.CKR_FUNCTION_FAILED  # neither token code is theirs (§5.1.3)
        else:
            expected = ckr.CKR_TOKEN_NOT_PRESENT  # a question about the token
        assert errors.from_transport(unreachable(), name).ckr == expected, name


def test_work_a_function_does_for_its_session_gets_device_error():
    assert type(errors.from_transport(unreachable(), "removing a session key")) is \
        errors.DeviceError


@pytest.mark.parametrize("function", ["C_Initialize", "C_OpenSession", "C_FindObjectsInit"])
def test_the_transport_out_of_memory_is_host_memory_in_every_function(function):
    exc = errors.from_transport(unreachable(errors.OUT_OF_MEMORY), function)
    assert type(exc) is errors.HostMemory and exc.ckr == ckr.CKR_HOST_MEMORY


def test_no_answer_names_instance_failure_and_reason():
    assert str(unreachable(errors.TIMED_OUT)) == \
        "timeout (https://hsm1:8443/api/v1): Connection refused"
    assert str(errors.from_transport(unreachable(), "C_Login")) == \
        "https://hsm1:8443/api/v1: no answer (connect): Connection refused"
    assert str(errors.TransportError(errors.POOL_CLOSED, None, "pool closed")) == \
        "closed (no instance): pool closed"


def test_transport_failure_codes_are_the_transports():
    from p11fast import _abi

    assert errors.TRANSPORT_FAILURES == {
        _abi.ERR_CONNECT: "connect", _abi.ERR_TIMEOUT: "timeout",
        _abi.ERR_TLS: "tls", _abi.ERR_NOMEM: "out of memory",
        _abi.ERR_CLOSED: "closed",
    }
    assert _abi.TransportError is errors.TransportError
