"""p11fast.errors and p11fast.ckr: CKR values, the exception hierarchy, the HTTP mapping."""

import os

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


TRANSPORT_MAPPING = [
    (errors.TIMEOUT, SIGN, errors.DeviceError),
    (errors.CONNECT, DECRYPT, errors.DeviceError),
    (errors.TLS, LOGIN, errors.DeviceError),
    (errors.PROTOCOL, OBJECT, errors.DeviceError),
    (errors.CONNECT, TOKEN, errors.TokenNotPresent),
    (errors.TIMEOUT, TOKEN, errors.TokenNotPresent),
]


@pytest.mark.parametrize("failure, context, cls", TRANSPORT_MAPPING)
def test_transport_failure_in_context_maps_to_exception(failure, context, cls):
    exc = errors.from_transport(failure, context, "connection refused", "https://hsm1")
    assert type(exc) is cls
    assert str(exc) == f"https://hsm1: {failure} during {context}: connection refused"
