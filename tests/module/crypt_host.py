"""Runs sign/verify/encrypt/decrypt cases against the module through ctypes, so a test controls
every argument (mechanism parameters as raw structs, short buffers, how data is split into
parts), and prints each case's return codes and output as JSON.

Usage: python crypt_host.py MODULE PIN < cases.json, where cases is a list of
  {"fn": "sign"|"verify"|"encrypt"|"decrypt", "key": label, "cls": CKO_*, "mech": CKM_*,
   "param": hex or null, "data": hex, "sig": hex (verify), "parts": [sizes] or null (multi-part),
   "short": true (single-part: size query, then a 1-byte buffer, then the size reported),
  "create": [[CKA_*, hex], ...] (instead of key and cls: the key is C_CreateObject's object)}
Each result: {"init": rv, "rv": rv, "out": hex, "parts": [hex...]} (+ "query", "short_rv",
"short_len" for short cases). Run in its own process: it initialises and finalises the module."""

import ctypes
import json
import sys

from ctypes_module import UL, Attribute, Mechanism, P, call, pin

CKA_CLASS, CKA_LABEL = 0x0, 0x3
CKR_OK = 0


NULL = P(None)
assert call("C_Initialize", NULL) == CKR_OK
session = UL()
assert call("C_OpenSession", 0, 6, NULL, NULL, ctypes.byref(session)) == CKR_OK
s = session.value
assert call("C_Login", s, 1, pin, len(pin)) == CKR_OK
keep = []  # ctypes buffers that must outlive the calls using them


def buf(data: bytes):
    b = ctypes.create_string_buffer(data, len(data) or 1)
    keep.append(b)
    return b


def find(label: str, cls: int) -> int:
    value_cls, value_label = UL(cls), label.encode()
    template = (Attribute * 2)(
        Attribute(CKA_CLASS, ctypes.cast(ctypes.byref(value_cls), P), ctypes.sizeof(UL)),
        Attribute(CKA_LABEL, ctypes.cast(ctypes.c_char_p(value_label), P), len(value_label)),
    )
    assert call("C_FindObjectsInit", s, template, 2) == CKR_OK
    handle, count = UL(), UL()
    assert call("C_FindObjects", s, ctypes.byref(handle), 1, ctypes.byref(count)) == CKR_OK
    call("C_FindObjectsFinal", s)
    assert count.value == 1, (label, cls)
    return handle.value


def create(attributes: list) -> int:
    """C_CreateObject with the template [[CKA_*, hex value], ...]: the new object's handle."""
    values = [(kind, bytes.fromhex(value)) for kind, value in attributes]
    template = (Attribute * len(values))(
        *(Attribute(kind, ctypes.cast(buf(value), P), len(value)) for kind, value in values)
    )
    handle = UL()
    assert call("C_CreateObject", s, template, len(values), ctypes.byref(handle)) == CKR_OK
    return handle.value


def with_output(name, *args, size=8192):
    """Calls name(*args, out, &len) with a buffer large enough: (rv, bytes)."""
    out, length = ctypes.create_string_buffer(size), UL(size)
    rv = call(name, *args, out, ctypes.byref(length))
    return rv, out.raw[: length.value] if rv == CKR_OK else b""


def run(case: dict) -> dict:
    fn = case["fn"]
    name = {"sign": "Sign", "verify": "Verify", "encrypt": "Encrypt", "decrypt": "Decrypt"}[fn]
    param = bytes.fromhex(case["param"]) if case.get("param") is not None else None
    mech = Mechanism(
        case["mech"],
        ctypes.cast(buf(param), P) if param is not None else None,
        len(param) if param is not None else 0,
    )
    key = create(case["create"]) if case.get("create") else find(case["key"], case["cls"])
    result = {"init": call(f"C_{name}Init", s, ctypes.byref(mech), key)}
    if result["init"] != CKR_OK:
        return result
    data = bytes.fromhex(case["data"])
    parts = case.get("parts")
    if fn == "verify":
        sig = bytes.fromhex(case["sig"])
        if parts is None:
            result["rv"] = call("C_Verify", s, buf(data), len(data), buf(sig), len(sig))
        else:
            for size in parts:
                chunk, data = data[:size], data[size:]
                assert call("C_VerifyUpdate", s, buf(chunk), len(chunk)) == CKR_OK
            result["rv"] = call("C_VerifyFinal", s, buf(sig), len(sig))
        return result
    if parts is not None:
        outs = []
        for size in parts:
            chunk, data = data[:size], data[size:]
            if fn == "sign":
                rv, out = call("C_SignUpdate", s, buf(chunk), len(chunk)), b""
            else:
                rv, out = with_output(
                    f"C_{name}Update", s, buf(chunk), len(chunk), size=len(chunk) + 8192
                )
            if rv != CKR_OK:
                result["rv"] = rv
                return result
            outs.append(out.hex())
        result["rv"], out = with_output(f"C_{name}Final", s)
        result["parts"] = outs + [out.hex()]
        result["out"] = "".join(result["parts"])
        return result
    if case.get("short"):
        length = UL(0)
        assert call(f"C_{name}", s, buf(data), len(data), NULL, ctypes.byref(length)) == CKR_OK
        result["query"] = length.value
        small, length = ctypes.create_string_buffer(1), UL(1)
        result["short_rv"] = call(f"C_{name}", s, buf(data), len(data), small, ctypes.byref(length))
        result["short_len"] = length.value
        out = ctypes.create_string_buffer(max(length.value, 1))
        result["rv"] = call(f"C_{name}", s, buf(data), len(data), out, ctypes.byref(length))
        result["out"] = out.raw[: length.value].hex()
        return result
    result["rv"], out = with_output(f"C_{name}", s, buf(data), len(data), size=len(data) + 8192)
    result["out"] = out.hex()
    return result


results = [run(case) for case in json.load(sys.stdin)]
call("C_CloseSession", s)
call("C_Finalize", NULL)
print(json.dumps(results))
