"""Hands every mechanism the module lists a parameter it did not ask for, in every function its
CK_MECHANISM_INFO flags name, and prints the return codes as JSON:
{mechanism name: {function: [rv with (NULL, 64), rv with 64 bytes]}}.

Usage: python mechanism_params_host.py MODULE PIN. Keys (by label): rsa2048, ecp256, ed1,
aes256, as tests/module/conftest.py creates them."""

import ctypes
import json

import PyKCS11 as K
from ctypes_module import UL, Attribute, Mechanism, P, call, pin

NULL = P(None)
PARAMETER = ctypes.create_string_buffer(64)
FORMS = ((NULL, 64), (ctypes.cast(PARAMETER, P), 64))  # a length without a buffer; 64 bytes
FUNCTIONS = (  # flag, function, the class of the asymmetric key it takes (None: no key)
    (K.CKF_SIGN, "C_SignInit", K.CKO_PRIVATE_KEY),
    (K.CKF_VERIFY, "C_VerifyInit", K.CKO_PUBLIC_KEY),
    (K.CKF_ENCRYPT, "C_EncryptInit", K.CKO_PUBLIC_KEY),
    (K.CKF_DECRYPT, "C_DecryptInit", K.CKO_PRIVATE_KEY),
    (K.CKF_DIGEST, "C_DigestInit", None),
    (K.CKF_GENERATE, "C_GenerateKey", None),
    (K.CKF_GENERATE_KEY_PAIR, "C_GenerateKeyPair", None),
)


def key_label(name: str) -> str:
    if name.startswith("CKM_AES"):
        return "aes256"
    if "RSA" in name:
        return "rsa2048"
    if "ECDSA" in name:
        return "ecp256"
    if "EDDSA" in name:
        return "ed1"
    raise AssertionError(f"no test key for {name}")


def find(label: str, cls: int) -> int:
    value_cls, value_label = UL(cls), label.encode()
    template = (Attribute * 2)(
        Attribute(K.CKA_CLASS, ctypes.cast(ctypes.byref(value_cls), P), ctypes.sizeof(UL)),
        Attribute(K.CKA_LABEL, ctypes.cast(ctypes.c_char_p(value_label), P), len(value_label)),
    )
    assert call("C_FindObjectsInit", s, template, 2) == 0
    handle, count = UL(), UL()
    assert call("C_FindObjects", s, ctypes.byref(handle), 1, ctypes.byref(count)) == 0
    call("C_FindObjectsFinal", s)
    assert count.value == 1, (label, cls)
    return handle.value


def attempt(function: str, mech: Mechanism, name: str, cls) -> int:
    out1, out2 = UL(), UL()
    if function == "C_DigestInit":
        rv = call(function, s, ctypes.byref(mech))
    elif function == "C_GenerateKey":
        rv = call(function, s, ctypes.byref(mech), NULL, 0, ctypes.byref(out1))
    elif function == "C_GenerateKeyPair":
        rv = call(function, s, ctypes.byref(mech), NULL, 0, NULL, 0, ctypes.byref(out1),
                  ctypes.byref(out2))
    else:
        label = key_label(name)
        key = find(label, K.CKO_SECRET_KEY if label == "aes256" else cls)
        rv = call(function, s, ctypes.byref(mech), key)
    if rv == 0 and function.endswith("Init"):
        call(function, s, NULL, *(() if function == "C_DigestInit" else (0,)))  # ends it
    return rv


assert call("C_Initialize", NULL) == 0
session = UL()
assert call("C_OpenSession", 0, K.CKF_SERIAL_SESSION | K.CKF_RW_SESSION, NULL, NULL,
            ctypes.byref(session)) == 0
s = session.value
assert call("C_Login", s, K.CKU_USER, pin, len(pin)) == 0
count = UL()
assert call("C_GetMechanismList", 0, NULL, ctypes.byref(count)) == 0
mechanisms = (UL * count.value)()
assert call("C_GetMechanismList", 0, mechanisms, ctypes.byref(count)) == 0
results = {}
for mechanism in mechanisms:
    info = (UL * 3)()
    assert call("C_GetMechanismInfo", 0, mechanism, info) == 0
    name = K.CKM[mechanism]
    results[name] = {
        function: [attempt(function, Mechanism(mechanism, pointer, length), name, cls)
                   for pointer, length in FORMS]
        for flag, function, cls in FUNCTIONS if info[2] & flag
    }
call("C_CloseSession", s)
call("C_Finalize", NULL)
print(json.dumps(results))
