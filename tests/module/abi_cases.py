"""Runs bad-argument calls against the module through ctypes and prints each case's CKR as JSON.

Usage: python abi_cases.py MODULE PIN. Run in its own process: it initialises and finalises
the module."""

import ctypes
import json

from ctypes_module import UL, Attribute, Mechanism, P, call, pin


class PssParams(ctypes.Structure):
    _fields_ = [("hashAlg", UL), ("mgf", UL), ("sLen", UL)]


class InitArgs(ctypes.Structure):
    _fields_ = [
        ("CreateMutex", P),
        ("DestroyMutex", P),
        ("LockMutex", P),
        ("UnlockMutex", P),
        ("flags", UL),
        ("pReserved", P),
    ]


NULL = P(None)
out = {}
big = ctypes.create_string_buffer(4096)
count = UL(0)
info = ctypes.create_string_buffer(512)

out["GetInfo before C_Initialize"] = call("C_GetInfo", info)
out["OpenSession before C_Initialize"] = call(
    "C_OpenSession", 0, 6, NULL, NULL, ctypes.byref(count)
)
out["Initialize with some mutex functions"] = call(
    "C_Initialize", ctypes.byref(InitArgs(CreateMutex=1))
)
out["Initialize"] = call("C_Initialize", NULL)
out["Initialize twice"] = call("C_Initialize", NULL)
out["GetInfo NULL"] = call("C_GetInfo", NULL)
out["GetSlotList NULL count"] = call("C_GetSlotList", 0, NULL, NULL)
count.value = 0
out["GetSlotList short buffer"] = call("C_GetSlotList", 0, big, ctypes.byref(count))
out["GetSlotList short buffer count"] = count.value
out["GetSlotInfo bad slot"] = call("C_GetSlotInfo", 99, info)
out["GetTokenInfo bad slot"] = call("C_GetTokenInfo", 99, info)
out["GetMechanismInfo unknown mechanism"] = call("C_GetMechanismInfo", 0, 0x7FFFFFF0, info)
out["OpenSession without serial flag"] = call(
    "C_OpenSession", 0, 0, NULL, NULL, ctypes.byref(count)
)
out["OpenSession NULL handle"] = call("C_OpenSession", 0, 6, NULL, NULL, NULL)
session = UL(0)
out["OpenSession"] = call("C_OpenSession", 0, 6, NULL, NULL, ctypes.byref(session))
s = session.value
out["CloseSession unknown handle"] = call("C_CloseSession", 0xDEAD)
out["Login bad user type"] = call("C_Login", s, 99, pin, len(pin))
out["Login NULL pin with length"] = call("C_Login", s, 1, NULL, 5)
out["Logout when not logged in"] = call("C_Logout", s)
out["Login wrong pin"] = call("C_Login", s, 1, b"not-the-pin", 11)
out["Login"] = call("C_Login", s, 1, pin, len(pin))
out["Login twice"] = call("C_Login", s, 1, pin, len(pin))
out["Login SO while user logged in"] = call("C_Login", s, 0, pin, len(pin))
out["FindObjects before Init"] = call("C_FindObjects", s, big, 1, ctypes.byref(count))
out["FindObjectsInit NULL template with count"] = call("C_FindObjectsInit", s, NULL, 1)
label = ctypes.create_string_buffer(b"ecp256", 6)
cls = UL(3)
template = (Attribute * 2)(
    Attribute(3, ctypes.cast(label, P), 6), Attribute(0, ctypes.cast(ctypes.byref(cls), P), 8)
)
out["FindObjectsInit"] = call("C_FindObjectsInit", s, template, 2)
out["FindObjectsInit twice"] = call("C_FindObjectsInit", s, template, 2)
handles = (UL * 4)()
out["FindObjects"] = call("C_FindObjects", s, handles, 4, ctypes.byref(count))
out["FindObjects count"] = count.value
out["FindObjectsFinal"] = call("C_FindObjectsFinal", s)
key = handles[0]
value = ctypes.create_string_buffer(2)
attrs = (Attribute * 1)(Attribute(0x180, ctypes.cast(value, P), 2))  # CKA_EC_PARAMS, too short
out["GetAttributeValue short buffer"] = call("C_GetAttributeValue", s, key, attrs, 1)
out["GetAttributeValue short buffer length"] = attrs[0].ulValueLen
attrs = (Attribute * 1)(Attribute(0x7FFFFF00, NULL, 0))
out["GetAttributeValue unknown type"] = call("C_GetAttributeValue", s, key, attrs, 1)
attrs = (Attribute * 1)(Attribute(0x11, NULL, 0))  # CKA_VALUE of a private key
out["GetAttributeValue sensitive"] = call("C_GetAttributeValue", s, key, attrs, 1)
out["GetAttributeValue bad object"] = call("C_GetAttributeValue", s, 0xBAD0BAD, attrs, 1)
mech = Mechanism(0x1041, NULL, 0)  # CKM_ECDSA
out["SignInit NULL mechanism"] = call("C_SignInit", s, NULL, key)
wrapped_len, derived = UL(256), UL(0)
out["WrapKey NULL mechanism"] = call("C_WrapKey", s, NULL, 0, 0, NULL, ctypes.byref(wrapped_len))
out["UnwrapKey NULL mechanism"] = call(
    "C_UnwrapKey", s, NULL, key, b"x", 1, NULL, 0, ctypes.byref(derived)
)
out["DeriveKey NULL mechanism"] = call("C_DeriveKey", s, NULL, key, NULL, 0, ctypes.byref(derived))
out["DeriveKey"] = call("C_DeriveKey", s, ctypes.byref(mech), key, NULL, 0, ctypes.byref(derived))
out["SignInit bad key"] = call("C_SignInit", s, ctypes.byref(mech), 0xBAD0BAD)
out["SignInit unknown mechanism"] = call(
    "C_SignInit", s, ctypes.byref(Mechanism(0x7FFFFFF0, NULL, 0)), key
)
out["SignInit RSA mechanism on EC key"] = call(
    "C_SignInit", s, ctypes.byref(Mechanism(1, NULL, 0)), key
)
out["Sign before SignInit"] = call("C_Sign", s, b"x" * 32, 32, big, ctypes.byref(count))
out["SignInit"] = call("C_SignInit", s, ctypes.byref(mech), key)
out["SignInit twice"] = call("C_SignInit", s, ctypes.byref(mech), key)
count.value = 0
out["Sign size query"] = call("C_Sign", s, b"x" * 32, 32, NULL, ctypes.byref(count))
out["Sign size query length"] = count.value
count.value = 10
out["Sign short buffer"] = call("C_Sign", s, b"x" * 32, 32, big, ctypes.byref(count))
count.value = 4096
out["Sign"] = call("C_Sign", s, b"x" * 32, 32, big, ctypes.byref(count))
out["Sign length"] = count.value
out["Sign after the operation ended"] = call("C_Sign", s, b"x" * 32, 32, big, ctypes.byref(count))
out["Finalize with reserved pointer"] = call("C_Finalize", P(1))
out["Finalize"] = call("C_Finalize", NULL)
out["OpenSession after C_Finalize"] = call("C_OpenSession", 0, 6, NULL, NULL, ctypes.byref(count))
out["Finalize twice"] = call("C_Finalize", NULL)
print(json.dumps(out))
