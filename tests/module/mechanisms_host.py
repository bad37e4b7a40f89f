"""Prints what the module says about mechanisms, as JSON: C_GetMechanismList, and
C_GetMechanismInfo ([min, max, flags], or the CKR as an int) of every mechanism
p11fast.mechanisms knows, listed or not.

Usage: python mechanisms_host.py MODULE PIN (the PIN is not used: no session is opened)."""

import ctypes
import json

from ctypes_module import UL, P, call

from p11fast import mechanisms

NULL = P(None)
assert call("C_Initialize", NULL) == 0
count = UL()
assert call("C_GetMechanismList", 0, NULL, ctypes.byref(count)) == 0
listed = (UL * count.value)()
assert call("C_GetMechanismList", 0, listed, ctypes.byref(count)) == 0
info = {}
for mechanism in mechanisms.PKCS11:
    fields = (UL * 3)()
    rv = call("C_GetMechanismInfo", 0, mechanism.type, fields)
    info[mechanism.name] = list(fields) if rv == 0 else rv
call("C_Finalize", NULL)
print(json.dumps({"list": list(listed[: count.value]), "info": info}))
