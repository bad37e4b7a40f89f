"""Runs one PKCS#11 v3.0 conformance scenario against the module through ctypes and prints its
observations as JSON (a dict of name -> CKR or value).

Usage: python semantics_host.py MODULE PIN SCENARIO. Run in its own process: it initialises and
finalises the module. tests/module/test_semantics.py states what each observation must be."""

import ctypes
import json
import sys
import threading

from ctypes_module import UL, Attribute, Mechanism, P, call, pin

NULL = P(None)
CKR_OK = 0
CKF_RW_SERIAL = 6
CKF_SERIAL = 4
CKU_SO, CKU_USER = 0, 1
CKA_CLASS, CKA_TOKEN, CKA_PRIVATE, CKA_LABEL, CKA_VALUE = 0x0, 0x1, 0x2, 0x3, 0x11
CKA_KEY_TYPE, CKA_ID, CKA_VALUE_LEN = 0x100, 0x102, 0x161
CKA_MODULUS_BITS = 0x121
CKA_ALLOWED_MECHANISMS = 0x40000600
CKO_DATA, CKO_PUBLIC_KEY, CKO_PRIVATE_KEY, CKO_SECRET_KEY = 0, 2, 3, 4
CKM_SHA256, CKM_ECDSA, CKM_AES_CBC, CKM_AES_KEY_GEN = 0x250, 0x1041, 0x1082, 0x1080
CKM_RSA_PKCS_KEY_PAIR_GEN = 0x0
CKM_SHA224_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS = 0x47, 0x0D, 0x40

out = {}
keep = []  # ctypes objects that must outlive the calls using them


class SessionInfo(ctypes.Structure):
    _fields_ = [("slotID", UL), ("state", UL), ("flags", UL), ("ulDeviceError", UL)]


class Version(ctypes.Structure):
    _fields_ = [("major", ctypes.c_ubyte), ("minor", ctypes.c_ubyte)]


class TokenInfo(ctypes.Structure):
    _fields_ = [
        ("label", ctypes.c_char * 32),
        ("manufacturerID", ctypes.c_char * 32),
        ("model", ctypes.c_char * 16),
        ("serialNumber", ctypes.c_char * 16),
        ("flags", UL),
        ("ulMaxSessionCount", UL),
        ("ulSessionCount", UL),
        ("ulMaxRwSessionCount", UL),
        ("ulRwSessionCount", UL),
        ("ulMaxPinLen", UL),
        ("ulMinPinLen", UL),
        ("ulTotalPublicMemory", UL),
        ("ulFreePublicMemory", UL),
        ("ulTotalPrivateMemory", UL),
        ("ulFreePrivateMemory", UL),
        ("hardwareVersion", Version),
        ("firmwareVersion", Version),
        ("utcTime", ctypes.c_char * 16),
    ]


def buf(data: bytes):
    b = ctypes.create_string_buffer(data, len(data) or 1)
    keep.append(b)
    return b


def ulong(v: int):
    u = UL(v)
    keep.append(u)
    return ctypes.cast(ctypes.byref(u), P), ctypes.sizeof(UL)


def template(*pairs):
    """(type, int | bool | bytes) pairs as a CK_ATTRIBUTE array."""
    t = (Attribute * len(pairs))()
    for i, (kind, value) in enumerate(pairs):
        if isinstance(value, bool):
            value = b"\x01" if value else b"\x00"
        if isinstance(value, int):
            ptr, n = ulong(value)
        else:
            ptr, n = ctypes.cast(buf(value), P), len(value)
        t[i] = Attribute(kind, ptr, n)
    keep.append(t)
    return t, len(pairs)


def open_session(flags=CKF_RW_SERIAL) -> int:
    h = UL()
    rv = call("C_OpenSession", 0, flags, NULL, NULL, ctypes.byref(h))
    assert rv == CKR_OK, hex(rv)
    return h.value


def state(s: int):
    info = SessionInfo()
    rv = call("C_GetSessionInfo", s, ctypes.byref(info))
    return info.state if rv == CKR_OK else f"rv {rv:#x}"


def find(s: int, *pairs) -> list:
    t, n = template(*pairs)
    assert call("C_FindObjectsInit", s, t, n) == CKR_OK
    handles, count = (UL * 16)(), UL()
    assert call("C_FindObjects", s, handles, 16, ctypes.byref(count)) == CKR_OK
    call("C_FindObjectsFinal", s)
    return list(handles[: count.value])


def key(s: int, label: str, cls: int) -> int:
    found = find(s, (CKA_CLASS, cls), (CKA_LABEL, label.encode()))
    assert len(found) == 1, (label, cls, found)
    return found[0]


def mech(kind: int, param: bytes = None):
    m = Mechanism(kind, ctypes.cast(buf(param), P) if param else None, len(param) if param else 0)
    keep.append(m)
    return ctypes.byref(m)


def login(s: int, user=CKU_USER):
    return (
        call("C_Login", s, user, pin, len(pin))
        if user == CKU_USER
        else call("C_Login", s, user, NULL, 0)
    )


# --- scenarios ------------------------------------------------------------------------------


def cancel():
    """v3.0: C_*Init with pMechanism NULL_PTR terminates the active operation."""
    s = open_session()
    login(s)
    ec = key(s, "ecp256", CKO_PRIVATE_KEY)
    ec_pub = key(s, "ecp256", CKO_PUBLIC_KEY)
    aes = key(s, "aes256", CKO_SECRET_KEY)
    iv = bytes(16)
    inits = {
        "Sign": (mech(CKM_ECDSA), ec),
        "Verify": (mech(CKM_ECDSA), ec_pub),
        "Encrypt": (mech(CKM_AES_CBC, iv), aes),
        "Decrypt": (mech(CKM_AES_CBC, iv), aes),
    }
    length = UL(0)
    for name, (m, k) in inits.items():
        out[f"{name}Init NULL, none active"] = call(f"C_{name}Init", s, NULL, k)
        out[f"{name}Init"] = call(f"C_{name}Init", s, m, k)
        out[f"{name}Init NULL cancels"] = call(f"C_{name}Init", s, NULL, k)
        if name == "Verify":
            out[f"{name} after cancel"] = call(
                "C_Verify", s, buf(bytes(32)), 32, buf(bytes(64)), 64
            )
        else:
            out[f"{name} after cancel"] = call(
                f"C_{name}", s, buf(bytes(32)), 32, NULL, ctypes.byref(length)
            )
        out[f"{name}Init again"] = call(f"C_{name}Init", s, m, k)
    out["DigestInit NULL, none active"] = call("C_DigestInit", s, NULL)
    out["DigestInit"] = call("C_DigestInit", s, mech(CKM_SHA256))
    out["DigestUpdate"] = call("C_DigestUpdate", s, buf(b"abc"), 3)
    out["DigestInit NULL cancels"] = call("C_DigestInit", s, NULL)
    out["DigestFinal after cancel"] = call("C_DigestFinal", s, NULL, ctypes.byref(length))
    out["DigestInit again"] = call("C_DigestInit", s, mech(CKM_SHA256))


def session_states():
    """Session states (v3.0 §5.6 / §4.5) through login, logout and C_CloseAllSessions."""
    ro = open_session(CKF_SERIAL)
    out["RO public"] = state(ro)
    out["Login user"] = login(ro)
    out["RO user"] = state(ro)
    rw = open_session()
    out["RW user"] = state(rw)
    out["Logout"] = call("C_Logout", ro)
    out["RO public after logout"] = state(ro)
    out["RW public after logout"] = state(rw)
    out["Login SO with an RO session open"] = login(rw, CKU_SO)
    out["CloseSession RO"] = call("C_CloseSession", ro)
    out["Login SO"] = login(rw, CKU_SO)
    out["RW SO"] = state(rw)
    h = UL()
    out["OpenSession RO while SO"] = call(
        "C_OpenSession", 0, CKF_SERIAL, NULL, NULL, ctypes.byref(h)
    )
    out["Login user while SO"] = login(rw)
    out["CloseAllSessions"] = call("C_CloseAllSessions", 0)
    out["closed session handle"] = state(rw)
    again = open_session()
    out["RW public after CloseAllSessions"] = state(again)


def last_sessions():
    """C_CloseAllSessions and C_Finalize end the session highest in the table, with every
    entry below it free again."""
    handles = [open_session() for _ in range(40)]
    for h in handles[:-1]:
        call("C_CloseSession", h)
    out["CloseAllSessions"] = call("C_CloseAllSessions", 0)
    out["last session after CloseAllSessions"] = state(handles[-1])
    handles = [open_session() for _ in range(40)]
    for h in handles[:-1]:
        call("C_CloseSession", h)
    out["Finalize"] = call("C_Finalize", NULL)
    out["Initialize again"] = call("C_Initialize", NULL)
    out["last session after C_Finalize"] = state(handles[-1])
    out["reopened"] = state(open_session())


def read_only():
    """A read-only session creates, changes and destroys session objects only."""
    s = open_session(CKF_SERIAL)
    login(s)
    aes = key(s, "aes256", CKO_SECRET_KEY)
    ec_pub = key(s, "ecp256", CKO_PUBLIC_KEY)
    handle = UL()
    t, n = template(
        (CKA_CLASS, CKO_SECRET_KEY),
        (CKA_TOKEN, True),
        (CKA_VALUE_LEN, 32),
        (CKA_LABEL, b"ro-token-aes"),
    )
    out["GenerateKey token in RO"] = call(
        "C_GenerateKey", s, mech(CKM_AES_KEY_GEN), t, n, ctypes.byref(handle)
    )
    t, n = template((CKA_CLASS, CKO_DATA), (CKA_TOKEN, False), (CKA_VALUE, b"x"))
    out["CreateObject session data in RO"] = call("C_CreateObject", s, t, n, ctypes.byref(handle))
    data = handle.value
    t, n = template((CKA_LABEL, b"renamed"))
    out["SetAttributeValue session object in RO"] = call("C_SetAttributeValue", s, data, t, n)
    out["SetAttributeValue token key in RO"] = call("C_SetAttributeValue", s, aes, t, n)
    t, n = template((CKA_CLASS, CKO_SECRET_KEY))
    out["SetAttributeValue CKA_CLASS"] = call("C_SetAttributeValue", s, data, t, n)
    out["DestroyObject session object in RO"] = call("C_DestroyObject", s, data)
    attr = (Attribute * 1)(Attribute(CKA_CLASS, NULL, 0))
    out["destroyed session object"] = call("C_GetAttributeValue", s, data, attr, 1)
    other = open_session(CKF_SERIAL)
    t, n = template((CKA_CLASS, CKO_DATA), (CKA_TOKEN, False), (CKA_VALUE, b"y"))
    call("C_CreateObject", other, t, n, ctypes.byref(handle))
    out["CloseSession with a session object"] = call("C_CloseSession", other)
    out["session object of a closed session"] = call(
        "C_GetAttributeValue", s, handle.value, attr, 1
    )
    out["DestroyObject token key in RO"] = call("C_DestroyObject", s, aes)
    out["DestroyObject public key of a pair"] = call("C_DestroyObject", s, ec_pub)
    flag = ctypes.c_ubyte(7)
    attr = (Attribute * 1)(
        Attribute(0x172, ctypes.cast(ctypes.byref(flag), P), 1)
    )  # CKA_DESTROYABLE
    call("C_GetAttributeValue", s, ec_pub, attr, 1)
    out["public key of a pair: CKA_DESTROYABLE"] = flag.value
    out["GenerateRandom NULL 0"] = call("C_GenerateRandom", s, NULL, 0)
    out["GenerateRandom buffer 0"] = call("C_GenerateRandom", s, buf(b"\x00"), 0)


def read_only_verify():
    """A read-only session verifies with a session key pair's public key and with an HSM key's,
    single-part and multi-part; the signatures come from a read-write session."""
    rw = open_session()
    login(rw)
    pub, priv = UL(), UL()
    pt, pn = template((CKA_TOKEN, False), (CKA_MODULUS_BITS, 2048))
    kt, kn = template((CKA_TOKEN, False))
    rv = call(
        "C_GenerateKeyPair",
        rw,
        mech(CKM_RSA_PKCS_KEY_PAIR_GEN),
        pt,
        pn,
        kt,
        kn,
        ctypes.byref(pub),
        ctypes.byref(priv),
    )
    assert rv == CKR_OK, hex(rv)
    pairs = {
        "session key pair": (priv.value, pub.value),
        "HSM key": (key(rw, "rsa2048", CKO_PRIVATE_KEY), key(rw, "rsa2048", CKO_PUBLIC_KEY)),
    }
    data = buf(b"verify in a read-only session")
    size = len(data.raw)
    ro = open_session(CKF_SERIAL)
    out["read-only session"] = state(ro)
    for name, (signer, verifier) in pairs.items():
        sig, length = ctypes.create_string_buffer(256), UL(256)
        assert call("C_SignInit", rw, mech(CKM_SHA256_RSA_PKCS), signer) == CKR_OK
        assert call("C_Sign", rw, data, size, sig, ctypes.byref(length)) == CKR_OK
        out[f"{name}: VerifyInit"] = call("C_VerifyInit", ro, mech(CKM_SHA256_RSA_PKCS), verifier)
        out[f"{name}: Verify"] = call("C_Verify", ro, data, size, sig, length.value)
        call("C_VerifyInit", ro, mech(CKM_SHA256_RSA_PKCS), verifier)
        out[f"{name}: VerifyUpdate"] = call("C_VerifyUpdate", ro, data, size)
        out[f"{name}: VerifyFinal"] = call("C_VerifyFinal", ro, sig, length.value)
    call("C_DestroyObject", rw, priv.value)


def churn():
    """Objects made and destroyed for a long time: the object table must not run out."""
    s = open_session()
    handle = UL()
    t, n = template((CKA_CLASS, CKO_DATA), (CKA_TOKEN, False), (CKA_VALUE, b"x"))
    seen = set()
    failures = {}
    for _ in range(70000):
        rv = call("C_CreateObject", s, t, n, ctypes.byref(handle))
        if rv != CKR_OK:
            failures[f"{rv:#x}"] = failures.get(f"{rv:#x}", 0) + 1
            continue
        seen.add(handle.value)
        rv = call("C_DestroyObject", s, handle.value)
        if rv != CKR_OK:
            failures[f"destroy {rv:#x}"] = failures.get(f"destroy {rv:#x}", 0) + 1
    out["failures"] = failures
    out["distinct handles"] = len(seen)
    # A destroyed object's handle stays invalid, even when its table entry is reused.
    first = min(seen)
    attr = (Attribute * 1)(Attribute(CKA_CLASS, NULL, 0))
    out["stale handle"] = call("C_GetAttributeValue", s, first, attr, 1)


def no_operator():
    """A slot without an operator: the user PIN is not initialised."""
    info = TokenInfo()
    out["GetTokenInfo"] = call("C_GetTokenInfo", 0, ctypes.byref(info))
    out["CKF_USER_PIN_INITIALIZED"] = bool(info.flags & 0x8)
    s = open_session()
    out["Login user"] = login(s)
    out["Login SO"] = login(s, CKU_SO)


def attributes():
    """C_GetAttributeValue: every entry processed; CKA_ALLOWED_MECHANISMS is a CK_ULONG array."""
    s = open_session()
    login(s)
    rsa = key(s, "rsa2048", CKO_PRIVATE_KEY)
    t = (Attribute * 1)(Attribute(CKA_ALLOWED_MECHANISMS, NULL, 0))
    out["ALLOWED_MECHANISMS size query"] = call("C_GetAttributeValue", s, rsa, t, 1)
    size = t[0].ulValueLen
    out["ALLOWED_MECHANISMS size is a CK_ULONG array"] = size > 0 and size % ctypes.sizeof(UL) == 0
    value = (UL * (size // ctypes.sizeof(UL)))()
    t[0].pValue = ctypes.cast(value, P)
    out["ALLOWED_MECHANISMS"] = call("C_GetAttributeValue", s, rsa, t, 1)
    out["ALLOWED_MECHANISMS has CKM_SHA256_RSA_PKCS"] = CKM_SHA256_RSA_PKCS in list(value)
    label, key_type = ctypes.create_string_buffer(64), UL(0)
    t = (Attribute * 3)(
        Attribute(CKA_LABEL, ctypes.cast(label, P), 64),
        Attribute(0x7FFFFF00, NULL, 0),
        Attribute(CKA_KEY_TYPE, ctypes.cast(ctypes.byref(key_type), P), 1),
    )
    out["mixed template"] = call("C_GetAttributeValue", s, rsa, t, 3)
    out["mixed: label filled"] = label.raw[: t[0].ulValueLen].decode()
    out["mixed: unknown type length"] = t[1].ulValueLen
    out["mixed: short buffer length"] = t[2].ulValueLen
    size = UL(0)
    out["GetObjectSize"] = call("C_GetObjectSize", s, rsa, ctypes.byref(size))


def key_use():
    """Which CKR a C_SignInit gets for a key that cannot do the mechanism."""
    s = open_session()
    login(s)
    rsa = key(s, "rsa2048", CKO_PRIVATE_KEY)
    ed = key(s, "ed1", CKO_PRIVATE_KEY)
    ec_pub = key(s, "ecp256", CKO_PUBLIC_KEY)
    out["ECDSA on an Ed25519 key"] = call("C_SignInit", s, mech(CKM_ECDSA), ed)
    out["ECDSA with a public key"] = call("C_SignInit", s, mech(CKM_ECDSA), ec_pub)
    # rsa2048 may sign PSS with SHA-1/256/384/512 only
    params = bytes(UL(0x255)) + bytes(UL(5)) + bytes(UL(28))  # SHA224, MGF1_SHA224, 28
    out["PSS-SHA224 not among the key's mechanisms"] = call(
        "C_SignInit", s, mech(CKM_SHA224_RSA_PKCS_PSS, params), rsa
    )
    params = bytes(UL(CKM_SHA256)) + bytes(UL(2)) + bytes(UL(20))  # salt != hash length
    out["PSS salt the HSM cannot do"] = call("C_SignInit", s, mech(CKM_RSA_PKCS_PSS, params), rsa)
    out["PSS without parameters"] = call("C_SignInit", s, mech(CKM_RSA_PKCS_PSS), rsa)


def finalize_race():
    """C_Finalize while other threads are in calls: every call returns a CKR, none crashes; a
    call that lost the race says CKR_CRYPTOKI_NOT_INITIALIZED, not CKR_GENERAL_ERROR."""
    s = open_session()
    login(s)
    stop = threading.Event()
    seen = {}
    lock = threading.Lock()
    info = TokenInfo()

    def worker():
        count = UL()
        t, n = template((CKA_CLASS, CKO_PRIVATE_KEY))
        while not stop.is_set():
            for rv in (
                call("C_GetSlotList", 0, NULL, ctypes.byref(count)),
                call("C_GetTokenInfo", 0, ctypes.byref(info)),
                call("C_FindObjectsInit", s, t, n),
                call("C_FindObjectsFinal", s),
            ):
                with lock:
                    seen[rv] = seen.get(rv, 0) + 1

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for th in threads:
        th.start()
    import time

    time.sleep(0.5)
    out["Finalize"] = call("C_Finalize", NULL)
    time.sleep(0.2)
    stop.set()
    for th in threads:
        th.join()
    out["codes"] = sorted(f"{rv:#x}" for rv in seen)
    out["Initialize again"] = call("C_Initialize", NULL)


def private_objects():
    """Only public objects are created unless a user is logged in (the SO may create HSM keys:
    on a NetHSM only the Administrator can)."""
    s = open_session()
    handle = UL()
    t, n = template(
        (CKA_CLASS, CKO_DATA), (CKA_TOKEN, False), (CKA_PRIVATE, True), (CKA_VALUE, b"x")
    )
    out["private data object, no login"] = call("C_CreateObject", s, t, n, ctypes.byref(handle))
    t2, n2 = template((CKA_CLASS, CKO_DATA), (CKA_TOKEN, False), (CKA_VALUE, b"x"))
    out["public data object, no login"] = call("C_CreateObject", s, t2, n2, ctypes.byref(handle))
    g, gn = template((CKA_CLASS, CKO_SECRET_KEY), (CKA_TOKEN, False), (CKA_VALUE_LEN, 32))
    out["GenerateKey, no login"] = call(
        "C_GenerateKey", s, mech(CKM_AES_KEY_GEN), g, gn, ctypes.byref(handle)
    )
    login(s)
    out["private data object, user"] = call("C_CreateObject", s, t, n, ctypes.byref(handle))
    out["GenerateKey, user"] = call(
        "C_GenerateKey", s, mech(CKM_AES_KEY_GEN), g, gn, ctypes.byref(handle)
    )
    call("C_Logout", s)
    login(s, CKU_SO)
    out["private data object, SO"] = call("C_CreateObject", s, t, n, ctypes.byref(handle))
    out["GenerateKey, SO"] = call(
        "C_GenerateKey", s, mech(CKM_AES_KEY_GEN), g, gn, ctypes.byref(handle)
    )


def private_keys_per_token():
    """Login belongs to the token: a session opened without its own login sees the private keys
    while another session of the application is logged in, and none before or after."""
    rsa = ((CKA_CLASS, CKO_PRIVATE_KEY), (CKA_LABEL, b"rsa2048"))
    other = open_session(CKF_SERIAL)
    out["no login"] = len(find(other, *rsa))
    s = open_session()
    login(s)
    out["another session logged in"] = len(find(other, *rsa))
    opened = open_session(CKF_SERIAL)
    out["opened after the login"] = len(find(opened, *rsa))
    call("C_Logout", s)
    out["after logout"] = len(find(other, *rsa))


def mixing():
    """C_Sign (C_Verify, C_Digest, C_Encrypt, C_Decrypt) after an Update: CKR_OPERATION_ACTIVE,
    and, as every single-part call but a size query or a short buffer, it ends the operation."""
    s = open_session()
    login(s)
    rsa = key(s, "rsa2048", CKO_PRIVATE_KEY)
    rsa_pub = key(s, "rsa2048", CKO_PUBLIC_KEY)
    aes = key(s, "aes256", CKO_SECRET_KEY)
    iv = bytes(16)
    length = UL(0)
    data = buf(bytes(32))
    for name, m, k in (
        ("Sign", mech(CKM_SHA256_RSA_PKCS), rsa),
        ("Verify", mech(CKM_SHA256_RSA_PKCS), rsa_pub),
        ("Encrypt", mech(CKM_AES_CBC, iv), aes),
        ("Decrypt", mech(CKM_AES_CBC, iv), aes),
        ("Digest", mech(CKM_SHA256), None),
    ):
        out[f"{name}Init"] = (
            call(f"C_{name}Init", s, m) if k is None else call(f"C_{name}Init", s, m, k)
        )
        if name in ("Sign", "Verify", "Digest"):
            out[f"{name}Update"] = call(f"C_{name}Update", s, data, 32)
        else:
            length.value = 64
            out[f"{name}Update"] = call(
                f"C_{name}Update", s, data, 32, buf(bytes(64)), ctypes.byref(length)
            )
        if name == "Verify":
            out[f"{name} after Update"] = call("C_Verify", s, data, 32, buf(bytes(256)), 256)
            out[f"{name}Final after that"] = call("C_VerifyFinal", s, buf(bytes(256)), 256)
        else:
            length.value = 0
            out[f"{name} after Update"] = call(f"C_{name}", s, data, 32, NULL, ctypes.byref(length))
            out[f"{name}Final after that"] = call(f"C_{name}Final", s, NULL, ctypes.byref(length))


def wait_finalize():
    """C_Finalize wakes a thread blocked in C_WaitForSlotEvent: CKR_CRYPTOKI_NOT_INITIALIZED."""
    import time

    slot, result = UL(), {}

    def waiter():
        result["rv"] = call("C_WaitForSlotEvent", 0, ctypes.byref(slot), NULL)
        result["at"] = time.monotonic()

    out["DONT_BLOCK, no event"] = call("C_WaitForSlotEvent", 1, ctypes.byref(slot), NULL)
    th = threading.Thread(target=waiter)
    th.start()
    time.sleep(0.5)
    start = time.monotonic()
    out["Finalize"] = call("C_Finalize", NULL)
    th.join(10)
    out["waiter"] = result.get("rv")
    out["woken within 2 s"] = result.get("at", 1e9) - start < 2
    out["Initialize again"] = call("C_Initialize", NULL)


scenario = sys.argv[3]
assert call("C_Initialize", NULL) == CKR_OK
globals()[scenario]()
call("C_Finalize", NULL)
print(json.dumps(out))
