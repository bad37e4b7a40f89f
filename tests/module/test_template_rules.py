"""What the module refuses in templates and mechanism parameters instead of silently doing
something else (tests/interop/CONFORMANCE.md, "Fixed here"): wrong-sized CK_BBOOL/CK_ULONG
values, attributes a NetHSM key cannot carry, CKA_TRUSTED from the user, RSA ciphertexts not
of the modulus length, CK_EDDSA_PARAMS, C_GenerateRandom without credentials.

The template cases run in one ctypes host (raw lengths need ctypes), which prints
{case: CKR}."""

from __future__ import annotations

import json
import os

import pytest

from p11fast import attrs as A
from p11fast import ckr
from p11fast.hsm.testing import ADMIN_PASSPHRASE
from tests.module.conftest import OPERATOR_PIN, run_python
from tests.module.crypt_cases import run_cases

HERE = os.path.dirname(os.path.abspath(__file__))

HOST = """
import ctypes, json, sys
sys.path.insert(0, HERE)
from ctypes_module import UL, Attribute, Mechanism, P, call, pin

NULL = P(None)
keep = []
out = {}


def ul(v):
    return v.to_bytes(ctypes.sizeof(UL), sys.byteorder)


def template(*pairs):
    t = (Attribute * max(len(pairs), 1))()
    for i, (kind, value) in enumerate(pairs):
        b = ctypes.create_string_buffer(value, len(value) or 1)
        keep.append(b)
        t[i] = Attribute(kind, ctypes.cast(b, P), len(value))
    return t, len(pairs)


def create(*pairs):
    h = UL()
    rv = call("C_CreateObject", s, *template(*pairs), ctypes.byref(h))
    return rv, h.value


def generate_aes(*pairs):
    mech = Mechanism(MECHS["aes"], None, 0)
    h = UL()
    base = ((A["CKA_CLASS"], ul(A["CKO_SECRET_KEY"])), (A["CKA_VALUE_LEN"], ul(32)))
    rv = call("C_GenerateKey", s, ctypes.byref(mech), *template(*base, *pairs), ctypes.byref(h))
    if rv == 0:
        call("C_DestroyObject", s, h.value)
    return rv


def generate_ec(pub, priv):
    mech = Mechanism(MECHS["ec"], None, 0)
    hpub, hpriv = UL(), UL()
    p256 = bytes.fromhex("06082a8648ce3d030107")
    pt, pn = template((A["CKA_EC_PARAMS"], p256), *pub)
    kt, kn = template((A["CKA_SIGN"], b"\\x01"), *priv)
    rv = call("C_GenerateKeyPair", s, ctypes.byref(mech), pt, pn, kt, kn,
              ctypes.byref(hpub), ctypes.byref(hpriv))
    if rv == 0:
        call("C_DestroyObject", s, hpriv.value)
    return rv


def find(*pairs):
    rv = call("C_FindObjectsInit", s, *template(*pairs))
    if rv == 0:
        call("C_FindObjectsFinal", s)
    return rv


T, F = b"\\x01", b"\\x00"
A = ATTRS
assert call("C_Initialize", NULL) == 0
session = UL()
assert call("C_OpenSession", 0, 6, NULL, NULL, ctypes.byref(session)) == 0
s = session.value
data = (A["CKA_CLASS"], ul(A["CKO_DATA"]))

# --- as the user ---
assert call("C_Login", s, 1, pin, len(pin)) == 0
out["create_bool_overlong"] = create(data, (A["CKA_PRIVATE"], ul(0)))[0]
out["create_ulong_short"] = create(data, (A["CKA_CERTIFICATE_CATEGORY"], b"\\0\\0\\0\\0"))[0]
out["create_bool_empty"] = create(data, (A["CKA_MODIFIABLE"], b""))[0]
rv, obj = create(data, (A["CKA_LABEL"], b"rules"))
assert rv == 0, rv
out["set_bool_overlong"] = call("C_SetAttributeValue", s, obj,
                                *template((A["CKA_VERIFY"], ul(1))))
out["find_bool_overlong"] = find((A["CKA_TOKEN"], ul(1)))
out["find_ulong_short"] = find((A["CKA_CLASS"], b"\\x03"))
out["find_ok"] = find((A["CKA_TOKEN"], T), (A["CKA_CLASS"], ul(A["CKO_PRIVATE_KEY"])))
out["user_trusted"] = create(data, (A["CKA_TRUSTED"], T))[0]
out["user_trusted_false"] = create(data, (A["CKA_TRUSTED"], F))[0]
out["user_set_trusted"] = call("C_SetAttributeValue", s, obj,
                               *template((A["CKA_TRUSTED"], T)))
rv, fixed = create(data, (A["CKA_MODIFIABLE"], F), (A["CKA_DESTROYABLE"], F))
assert rv == 0, rv
out["held_not_modifiable"] = call("C_SetAttributeValue", s, fixed,
                                  *template((A["CKA_LABEL"], b"new")))
out["held_not_modifiable_same_value"] = call("C_SetAttributeValue", s, fixed,
                                             *template((A["CKA_MODIFIABLE"], F)))
out["held_not_destroyable"] = call("C_DestroyObject", s, fixed)
assert call("C_Logout", s) == 0

# --- as the SO (key generation) ---
so = SO_PIN.encode()
assert call("C_Login", s, 0, so, len(so)) == 0
out["so_trusted"] = create(data, (A["CKA_TRUSTED"], T))[0]
out["keygen_bool_overlong"] = generate_aes((A["CKA_DERIVE"], ul(0)))
for name, kind, value in (
    ("always_authenticate", "CKA_ALWAYS_AUTHENTICATE", T),
    ("wrap_with_trusted", "CKA_WRAP_WITH_TRUSTED", T),
    ("copyable", "CKA_COPYABLE", T),
    ("destroyable_false", "CKA_DESTROYABLE", F),
    ("modifiable_false", "CKA_MODIFIABLE", F),
    ("start_date", "CKA_START_DATE", b"20260101"),
    ("end_date", "CKA_END_DATE", b"20300101"),
    ("ok_copyable_false", "CKA_COPYABLE", F),
    ("ok_destroyable", "CKA_DESTROYABLE", T),
    ("ok_modifiable", "CKA_MODIFIABLE", T),
    ("ok_always_authenticate_false", "CKA_ALWAYS_AUTHENTICATE", F),
    ("ok_empty_date", "CKA_START_DATE", b""),
):
    out["keygen_" + name] = generate_aes((A[kind], value))
out["keygen_sign_without_encrypt"] = generate_aes((A["CKA_SIGN"], T), (A["CKA_ENCRYPT"], F))
out["keygen_ok_sign_and_encrypt"] = generate_aes((A["CKA_SIGN"], T), (A["CKA_ENCRYPT"], T))
out["pair_always_authenticate"] = generate_ec((), ((A["CKA_ALWAYS_AUTHENTICATE"], T),))
out["pair_private_date"] = generate_ec((), ((A["CKA_END_DATE"], b"20300101"),))
out["pair_ok_public_not_destroyable"] = generate_ec(((A["CKA_DESTROYABLE"], F),), ())
call("C_Finalize", NULL)
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def results(module_path, hsm, api) -> dict:
    attrs = {k: v for k, v in vars(A).items() if k.startswith(("CKA_", "CKO_"))}
    mechs = {"aes": A.CKM_AES_KEY_GEN, "ec": A.CKM_EC_KEY_PAIR_GEN}
    script = (HOST.replace("HERE", repr(HERE)).replace("ATTRS", repr(attrs))
              .replace("MECHS", repr(mechs)).replace("SO_PIN", repr(ADMIN_PASSPHRASE)))
    done = run_python(script, hsm.config_path, module_path, OPERATOR_PIN)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def rvs(results: dict, *names: str) -> dict:
    return {name: results[name] for name in names}


# --- 1. value lengths, in every template the module reads ---------------------------------------

def test_wrong_sized_bool_and_ulong_values_are_invalid_everywhere(results):
    names = ("create_bool_overlong", "create_ulong_short", "create_bool_empty",
             "set_bool_overlong", "find_bool_overlong", "find_ulong_short",
             "keygen_bool_overlong")
    assert rvs(results, *names) == dict.fromkeys(names, ckr.CKR_ATTRIBUTE_VALUE_INVALID)
    assert results["find_ok"] == ckr.CKR_OK


# --- 2. what a NetHSM key cannot carry -------------------------------------------------------

def test_attributes_a_nethsm_key_cannot_carry_are_refused(results):
    names = ("keygen_always_authenticate", "keygen_wrap_with_trusted", "keygen_copyable",
             "keygen_destroyable_false", "keygen_modifiable_false", "keygen_start_date",
             "keygen_end_date", "pair_always_authenticate", "pair_private_date")
    assert rvs(results, *names) == dict.fromkeys(names, ckr.CKR_ATTRIBUTE_VALUE_INVALID)


def test_values_the_module_reports_anyway_are_accepted(results):
    names = ("keygen_ok_copyable_false", "keygen_ok_destroyable", "keygen_ok_modifiable",
             "keygen_ok_always_authenticate_false", "keygen_ok_empty_date",
             "keygen_ok_sign_and_encrypt", "pair_ok_public_not_destroyable")
    assert rvs(results, *names) == dict.fromkeys(names, ckr.CKR_OK)


def test_aes_key_that_signs_but_does_not_encrypt_is_inconsistent(results):
    assert results["keygen_sign_without_encrypt"] == ckr.CKR_TEMPLATE_INCONSISTENT


def test_session_objects_honour_modifiable_and_destroyable_false(results):
    # a module-held object can carry them (a key on the HSM cannot: refused above)
    assert rvs(results, "held_not_modifiable", "held_not_modifiable_same_value",
               "held_not_destroyable") == {
        "held_not_modifiable": ckr.CKR_ACTION_PROHIBITED,
        "held_not_modifiable_same_value": ckr.CKR_OK,
        "held_not_destroyable": ckr.CKR_ACTION_PROHIBITED,
    }


# --- 3. CKA_TRUSTED ---------------------------------------------------------------------------

def test_only_the_so_sets_trusted(results):
    assert rvs(results, "user_trusted", "user_set_trusted", "user_trusted_false", "so_trusted") == {
        "user_trusted": ckr.CKR_ATTRIBUTE_READ_ONLY,
        "user_set_trusted": ckr.CKR_ATTRIBUTE_READ_ONLY,
        "user_trusted_false": ckr.CKR_OK,
        "so_trusted": ckr.CKR_OK,
    }


# --- 4. and 5. mechanism input ----------------------------------------------------------------

def test_rsa_ciphertext_not_of_the_modulus_length(module_path, login_config, api):
    short, long_, exact_zero = run_cases(module_path, login_config, [
        {"fn": "decrypt", "key": "rsa2048", "cls": A.CKO_PRIVATE_KEY, "mech": A.CKM_RSA_PKCS,
         "data": b"\x01" * n} for n in (255, 257, 256)
    ])
    assert (short["init"], short["rv"]) == (ckr.CKR_OK, ckr.CKR_ENCRYPTED_DATA_LEN_RANGE)
    assert long_["rv"] == ckr.CKR_ENCRYPTED_DATA_LEN_RANGE
    # the right length reaches the HSM (this value is no valid PKCS#1 block)
    assert exact_zero["rv"] != ckr.CKR_ENCRYPTED_DATA_LEN_RANGE


@pytest.mark.parametrize("fn", ["sign", "verify"])
@pytest.mark.parametrize("params", [
    (False, b""),          # Ed25519ctx with an empty context: still not pure Ed25519
    (False, b"context"),   # Ed25519ctx
    (True, b""),           # Ed25519ph
])
def test_eddsa_params_are_refused(module_path, login_config, api, fn, params):
    import ctypes
    import sys

    ph, context = params
    # CK_EDDSA_PARAMS {CK_BBOOL phFlag; CK_ULONG ulContextDataLen; CK_BYTE_PTR pContextData}
    # with pContextData NULL: the module must refuse before reading it.
    size = ctypes.sizeof(ctypes.c_ulong)
    raw = (bytes([ph]).ljust(size, b"\0") + len(context).to_bytes(size, sys.byteorder)
           + bytes(ctypes.sizeof(ctypes.c_void_p)))
    (result,) = run_cases(module_path, login_config, [
        {"fn": fn, "key": "ed1", "cls": A.CKO_PRIVATE_KEY if fn == "sign" else A.CKO_PUBLIC_KEY,
         "mech": A.CKM_EDDSA, "param": raw.hex(), "data": b"m", "sig": bytes(64)},
    ])
    assert result["init"] == ckr.CKR_MECHANISM_PARAM_INVALID


# --- 6. C_GenerateRandom without credentials --------------------------------------------------

RANDOM = """
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
NULL = ctypes.c_void_p(None)
assert lib.C_Initialize(NULL) == 0
s = ctypes.c_ulong()
assert lib.C_OpenSession(ctypes.c_ulong(0), ctypes.c_ulong(6), NULL, NULL, ctypes.byref(s)) == 0
pin = sys.argv[2].encode()
assert lib.C_Login(s, ctypes.c_ulong(1), pin, ctypes.c_ulong(len(pin))) == 0
buf = ctypes.create_string_buffer(16)
logged_in = lib.C_GenerateRandom(s, buf, ctypes.c_ulong(16))
assert lib.C_Logout(s) == 0
print(logged_in, lib.C_GenerateRandom(s, buf, ctypes.c_ulong(16)))
lib.C_Finalize(NULL)
"""


def test_generate_random_after_logout_needs_a_login(module_path, login_config):
    done = run_python(RANDOM, login_config, module_path, OPERATOR_PIN)
    assert done.returncode == 0, done.stdout + done.stderr
    logged_in, after = map(int, done.stdout.split())
    assert (logged_in, after) == (ckr.CKR_OK, ckr.CKR_USER_NOT_LOGGED_IN)
