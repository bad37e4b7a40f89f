"""Typed failures of the cold path and the one place that turns HSM answers into them.

Every exception carries the `CKR_*` its PKCS#11 function returns (`ckr`); the ABI returns
`exc.ckr` and logs `str(exc)`, so the code and the log line come from the same object.
`from_http` and `from_transport` are the only mappings from HSM status codes and network
failures to exceptions; nothing else in the module interprets HTTP statuses. The compiled
paths have `ckr_for_http` (p11fast/abi/errors.pyx) for statuses, tested to agree with `from_http`.
"""

from __future__ import annotations

from p11fast import ckr as _ckr


class P11Error(Exception):
    """A failure with the `CKR_*` value a PKCS#11 function returns for it."""

    ckr: int = _ckr.CKR_FUNCTION_FAILED


class ConfigError(P11Error):
    """The configuration cannot be loaded; the message names file, line, key and problem.

    `C_Initialize` returns CKR_FUNCTION_FAILED: the standard lists it for C_Initialize as "the
    function could not be performed", which is the case. CKR_ARGUMENTS_BAD would blame the
    caller's `pInitArgs`, and CKR_GENERAL_ERROR announces an unrecoverable state — but fixing
    the file and calling C_Initialize again works.
    """

    ckr = _ckr.CKR_FUNCTION_FAILED


class FunctionFailed(P11Error):
    ckr = _ckr.CKR_FUNCTION_FAILED


class ArgumentsBad(P11Error):
    ckr = _ckr.CKR_ARGUMENTS_BAD


class HostMemory(P11Error):
    ckr = _ckr.CKR_HOST_MEMORY


class DeviceError(P11Error):
    ckr = _ckr.CKR_DEVICE_ERROR


class DeviceMemory(P11Error):
    ckr = _ckr.CKR_DEVICE_MEMORY


class RateLimited(DeviceError):
    """HTTP 429: the caller waits and retries; if retries run out it surfaces as a device error."""


class TokenNotPresent(P11Error):
    ckr = _ckr.CKR_TOKEN_NOT_PRESENT


class PinIncorrect(P11Error):
    ckr = _ckr.CKR_PIN_INCORRECT


class UserNotLoggedIn(P11Error):
    ckr = _ckr.CKR_USER_NOT_LOGGED_IN


class KeyHandleInvalid(P11Error):
    ckr = _ckr.CKR_KEY_HANDLE_INVALID


class ObjectHandleInvalid(P11Error):
    ckr = _ckr.CKR_OBJECT_HANDLE_INVALID


class KeyFunctionNotPermitted(P11Error):
    ckr = _ckr.CKR_KEY_FUNCTION_NOT_PERMITTED


class MechanismInvalid(P11Error):
    ckr = _ckr.CKR_MECHANISM_INVALID


class MechanismParamInvalid(P11Error):
    ckr = _ckr.CKR_MECHANISM_PARAM_INVALID


class TemplateInconsistent(P11Error):
    ckr = _ckr.CKR_TEMPLATE_INCONSISTENT


class AttributeTypeInvalid(P11Error):
    ckr = _ckr.CKR_ATTRIBUTE_TYPE_INVALID


class AttributeValueInvalid(P11Error):
    ckr = _ckr.CKR_ATTRIBUTE_VALUE_INVALID


class AttributeReadOnly(P11Error):
    ckr = _ckr.CKR_ATTRIBUTE_READ_ONLY


class TemplateIncomplete(P11Error):
    ckr = _ckr.CKR_TEMPLATE_INCOMPLETE


class KeySizeRange(P11Error):
    ckr = _ckr.CKR_KEY_SIZE_RANGE


class CurveNotSupported(P11Error):
    ckr = _ckr.CKR_CURVE_NOT_SUPPORTED


class SessionReadOnly(P11Error):
    ckr = _ckr.CKR_SESSION_READ_ONLY


class UserTypeInvalid(P11Error):
    ckr = _ckr.CKR_USER_TYPE_INVALID


class PinInvalid(P11Error):
    ckr = _ckr.CKR_PIN_INVALID


class PinLenRange(P11Error):
    ckr = _ckr.CKR_PIN_LEN_RANGE


class FunctionNotSupported(P11Error):
    ckr = _ckr.CKR_FUNCTION_NOT_SUPPORTED


class ActionProhibited(P11Error):
    ckr = _ckr.CKR_ACTION_PROHIBITED


class DataInvalid(P11Error):
    ckr = _ckr.CKR_DATA_INVALID


class DataLenRange(P11Error):
    ckr = _ckr.CKR_DATA_LEN_RANGE


class EncryptedDataInvalid(P11Error):
    ckr = _ckr.CKR_ENCRYPTED_DATA_INVALID


class EncryptedDataLenRange(P11Error):
    ckr = _ckr.CKR_ENCRYPTED_DATA_LEN_RANGE


class SignatureInvalid(P11Error):
    ckr = _ckr.CKR_SIGNATURE_INVALID


# What a request was doing when the HSM answered; from_http needs it because the same status
# means different things (404 while signing is a missing key, while reading a certificate a
# missing object). KEY_USE = sign/decrypt/encrypt with an existing key.
LOGIN = "login"
SIGN = "sign"
DECRYPT = "decrypt"
ENCRYPT = "encrypt"
CREATE = "create"  # generate or import a key
OBJECT = "object"  # read, change or delete a key, certificate or user
TOKEN = "token"  # health, info, listing, random: questions about the token itself
CONTEXTS = frozenset({LOGIN, SIGN, DECRYPT, ENCRYPT, CREATE, OBJECT, TOKEN})
_KEY_USE = frozenset({SIGN, DECRYPT, ENCRYPT})

# 400 Bad Request: what the HSM rejects in each context is the caller's input.
_BAD_REQUEST = {
    SIGN: DataLenRange,  # the digest does not fit the key (ECDSA/PKCS#1 input sizes)
    DECRYPT: EncryptedDataInvalid,
    ENCRYPT: DataLenRange,  # AES-CBC input not a multiple of the block size
    CREATE: TemplateInconsistent,  # key type, size or mechanisms the HSM refuses
}


def from_http(status: int, context: str, message: str, instance: str) -> P11Error:
    """The exception for a non-2xx answer `status` from `instance` while doing `context`."""
    text = f"{instance}: HTTP {status} during {context}: {message}"
    return _http_class(status, context)(text)


def _http_class(status: int, context: str) -> type[P11Error]:
    if context not in CONTEXTS:
        raise ValueError(f"unknown request context {context!r}")
    if status == 400:
        return _BAD_REQUEST.get(context, ArgumentsBad)
    if status == 401:
        return PinIncorrect if context == LOGIN else UserNotLoggedIn
    if status == 403:
        return KeyFunctionNotPermitted if context in _KEY_USE else UserNotLoggedIn
    if status == 404:
        return KeyHandleInvalid if context in _KEY_USE else ObjectHandleInvalid
    if status == 409:
        # only key creation conflicts: the requested CKA_ID names an existing key
        return AttributeValueInvalid if context == CREATE else FunctionFailed
    if status == 412:
        return TokenNotPresent  # HSM locked or unprovisioned: not usable as a token
    if status == 413:
        return DataLenRange
    if status == 429:
        return RateLimited
    return DeviceError  # 5xx and anything the API does not define


class TransportError(Exception):
    """A request got no HTTP answer, after the transport's retries and failover.

    The transport's Python surface (`p11fast._abi.Pool`) raises it: `error_code` is one of
    the transport's failure codes (below), `instance_url` the instance tried last (None: none),
    `message` the reason libcurl gave. Never carries secrets. Not a P11Error: what it means for
    the caller depends on the PKCS#11 function (`from_transport`).
    """

    def __init__(self, error_code: int, instance_url: str | None, message: str) -> None:
        super().__init__(error_code, instance_url, message)
        self.error_code = error_code
        self.instance_url = instance_url
        self.message = message

    @property
    def failure(self) -> str:
        """The failure's name: connect, timeout, tls, out of memory, closed."""
        return TRANSPORT_FAILURES.get(self.error_code, str(self.error_code))

    def __str__(self) -> str:
        return f"{self.failure} ({self.instance_url or 'no instance'}): {self.message}"


# The transport's failure codes, the TP_ERR_* of p11fast/transport/capi.h (its ERR_* in Python;
# tests/unit/test_errors.py checks both agree), and their names.
CONNECT_FAILED = 1  # no instance could be reached (refused, unreachable, DNS)
TIMED_OUT = 2
TLS_FAILED = 3  # handshake failed, or the certificate or pin did not match
OUT_OF_MEMORY = 4
POOL_CLOSED = 5  # C_Finalize closed the pool, or the process forked
TRANSPORT_FAILURES = {
    CONNECT_FAILED: "connect",
    TIMED_OUT: "timeout",
    TLS_FAILED: "tls",
    OUT_OF_MEMORY: "out of memory",
    POOL_CLOSED: "closed",
}

# What no reachable instance means depends on the PKCS#11 function (v3.0 §5.1): a function that
# uses the token without a session handle asks about the token, and no reachable instance is no
# token (CKR_TOKEN_NOT_PRESENT, as the slot list shows it). A function with a session handle
# keeps its session, since the next call may reach another instance, and gets
# CKR_DEVICE_ERROR: §5.1.7 says such functions never return CKR_TOKEN_NOT_PRESENT. Functions
# that use no token may return neither (§5.1.3): CKR_FUNCTION_FAILED.
_TOKEN_FUNCTIONS = frozenset((
    "C_GetTokenInfo", "C_GetMechanismList", "C_GetMechanismInfo", "C_InitToken",
    "C_OpenSession", "C_CloseAllSessions",
))
_TOKENLESS_FUNCTIONS = frozenset((
    "C_Initialize", "C_Finalize", "C_GetInfo", "C_GetFunctionList", "C_GetSlotList",
    "C_GetSlotInfo", "C_WaitForSlotEvent", "C_GetInterfaceList", "C_GetInterface",
))


def from_transport(exc: TransportError, function: str) -> P11Error:
    """The exception for a request of PKCS#11 function `function` (a `C_*` name; anything else
    is taken for work done for a session) that got no HTTP answer."""
    text = f"{exc.instance_url or 'no instance'}: no answer ({exc.failure}): {exc.message}"
    if exc.error_code == OUT_OF_MEMORY:
        return HostMemory(text)
    if function in _TOKEN_FUNCTIONS:
        return TokenNotPresent(text)
    if function in _TOKENLESS_FUNCTIONS:
        return FunctionFailed(text)
    return DeviceError(text)
