"""Object model: attributes derived from NetHSM key JSON, and the inventory's cache and request
counts, against a fake transport returning canned NetHSM API responses."""

import base64
import datetime
import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import NameOID

from p11fast import attrs as A
from p11fast import ckr, der, errors
from p11fast.objects import (
    Inventory,
    KeyDataError,
    P11Object,
    build_objects,
    parse_json,
)

REPO = Path(__file__).resolve().parents[2]
SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
X962 = (serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
U = A.ulong


def b64(b: bytes) -> str:
    return base64.b64encode(b).decode()


# --- canned NetHSM data (GET /keys/{KeyID} PublicKey JSON, per the API spec) -----------------


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(65537, 2048)


@pytest.fixture(scope="module")
def p256_key():
    return ec.generate_private_key(ec.SECP256R1())


def rsa_json(key, mechanisms=("RSA_Signature_PKCS1",), label=None, pad=False):
    n = key.public_key().public_numbers().n.to_bytes(256, "big")
    d = {
        "mechanisms": list(mechanisms),
        "type": "RSA",
        "restrictions": {"tags": ["berlin"]},
        "public": {"modulus": b64((b"\x00" if pad else b"") + n), "publicExponent": "AQAB"},
        "operations": 3,
    }
    if label is not None:
        d["label"] = label
    return d


def ec_json(key, key_type, mechanisms=("ECDSA_Signature",), label=None):
    d = {
        "mechanisms": list(mechanisms),
        "type": key_type,
        "restrictions": {},
        "public": {"data": b64(key.public_key().public_bytes(*X962))},
        "operations": 0,
    }
    if label is not None:
        d["label"] = label
    return d


def ed_json(key, label=None):
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    d = {"mechanisms": ["EdDSA_Signature"], "type": "Curve25519", "restrictions": {},
         "public": {"data": b64(raw)}, "operations": 242}
    if label is not None:
        d["label"] = label
    return d


def generic_json(mechanisms=("AES_Encryption_CBC", "AES_Decryption_CBC"), label=None):
    d = {"mechanisms": list(mechanisms), "type": "Generic", "restrictions": {"tags": []},
         "operations": 242}
    if label is not None:
        d["label"] = label
    return d


def make_cert(key, serial=0x1234, cn="p11fast test", issuer_cn="p11fast CA"):
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    return (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_cn)]))
        .public_key(key.public_key())
        .serial_number(serial)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(key, hashes.SHA256())
    )


class FakeHSM:
    """A transport answering like a NetHSM: GET /keys, /keys?label=, /keys/{id}, /keys/{id}/cert.
    ``label_filter`` False mimics an HSM that ignores the label query (before NetHSM 5)."""

    def __init__(self, label_filter=True):
        self.keys: dict[str, dict] = {}
        self.certs: dict[str, bytes] = {}
        self.log: list[str] = []
        self.label_filter = label_filter
        self.fail: dict[str, int] = {}

    def __call__(self, method, path, body, admin):
        assert method == "GET" and body is None and admin is False
        self.log.append(path)
        if path in self.fail:
            return self.fail[path], b'{"message": "nope"}'
        if path == "/keys" or path.startswith("/keys?"):
            ids = sorted(self.keys)
            if path.startswith("/keys?label=") and self.label_filter:
                from urllib.parse import unquote

                want = unquote(path[len("/keys?label="):])
                ids = [k for k in ids if self.keys[k].get("label") == want]
            return 200, json.dumps([{"id": k} for k in ids]).encode()
        m = re.fullmatch(r"/keys/([^/?]+)(/cert)?", path)
        assert m, path
        kid = m.group(1)
        if kid not in self.keys:
            return 404, b'{"message": "not found"}'
        if m.group(2):
            if kid in self.certs:
                return 200, self.certs[kid]
            return 404, b'{"message": "no certificate"}'
        return 200, json.dumps(self.keys[kid], indent=1).encode()

    def take(self):
        log, self.log = self.log, []
        return log


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


def by_class(objs):
    out = {}
    for o in objs:
        assert o.cls not in out
        out[o.cls] = o
    return out


def mechs(b: bytes) -> list[int]:
    n = A.ULONG_SIZE
    return [int.from_bytes(b[i:i + n], sys.byteorder) for i in range(0, len(b), n)]


# --- constants --------------------------------------------------------------------------------


def _header_defines(text: str) -> dict[str, int]:
    raw = dict(re.findall(r"^\s*#\s*define\s+(CK[A-Z]?_\w+)\s+(.+?)\s*(?:/[*/].*)?$", text,
                          re.M))
    values: dict[str, int] = {}

    def value(name, depth=0):
        if name in values:
            return values[name]
        expr = raw[name]
        expr = re.sub(r"\(\s*CK_[A-Z_]+\s*\)", "", expr)  # casts
        expr = re.sub(r"\b(0[xX][0-9a-fA-F]+|\d+)[uUlL]*\b", r"\1", expr)
        expr = re.sub(r"\b(CK[A-Z]?_\w+)\b", lambda m: str(value(m.group(1), depth + 1)), expr)
        if not re.fullmatch(r"[\s0-9a-fA-FxX()|~+<-]*", expr):
            raise ValueError(f"cannot evaluate {name} = {raw[name]}")
        v = eval(expr) & ((1 << (8 * A.ULONG_SIZE)) - 1)  # noqa: S307 - digits/operators only
        values[name] = v
        return v

    for name in raw:
        try:
            value(name)
        except (ValueError, KeyError, SyntaxError):
            pass
    return values


def test_constants_match_header():
    header = REPO / "include" / "pkcs11t.h"
    defines = _header_defines(header.read_text())
    ours = {k: v for k, v in vars(A).items() if re.fullmatch(r"CK[AOKMCF]?_[A-Z0-9_]+", k)}
    assert len(ours) > 80
    missing = sorted(k for k in ours if k not in defines)
    assert not missing, f"not in include/pkcs11t.h: {missing}"
    wrong = {k: (hex(v), hex(defines[k])) for k, v in ours.items() if defines[k] != v}
    assert not wrong


def test_encodings():
    assert A.ULONG_SIZE == 8  # LP64 (Linux x86_64/aarch64)
    assert U(3) == (3).to_bytes(8, sys.byteorder)
    assert A.to_ulong(U(0x40000600)) == 0x40000600
    assert U(A.CK_UNAVAILABLE_INFORMATION) == b"\xff" * 8
    assert A.bbool(True) == b"\x01" and A.bbool(False) == b"\x00"
    assert A.ulong_array([1, 2]) == U(1) + U(2)
    with pytest.raises(ValueError):
        A.to_ulong(b"\x01")


# --- attributes -------------------------------------------------------------------------------


def test_rsa_objects(rsa_key):
    data = rsa_json(rsa_key, ["RSA_Signature_PKCS1", "RSA_Signature_PSS_SHA256",
                              "RSA_Decryption_OAEP_SHA256"], pad=True)
    objs = by_class(build_objects("myKey1", data))
    assert set(objs) == {A.CKO_PRIVATE_KEY, A.CKO_PUBLIC_KEY}
    priv, pub = objs[A.CKO_PRIVATE_KEY], objs[A.CKO_PUBLIC_KEY]
    n = rsa_key.public_key().public_numbers().n.to_bytes(256, "big")
    for o in (priv, pub):
        a = o.attrs
        assert o.key_id == "myKey1" and o.key_type == "RSA" and o.bits == 2048
        assert a[A.CKA_KEY_TYPE] == U(A.CKK_RSA)
        assert a[A.CKA_ID] == b"myKey1" and a[A.CKA_LABEL] == b"myKey1"
        assert a[A.CKA_MODULUS] == n  # leading zero of the base64 value stripped
        assert a[A.CKA_PUBLIC_EXPONENT] == b"\x01\x00\x01"
        assert a[A.CKA_MODULUS_BITS] == U(2048)
        assert a[A.CKA_TOKEN] == A.TRUE and a[A.CKA_COPYABLE] == A.FALSE
        assert a[A.CKA_MODIFIABLE] == A.TRUE
        # the public key goes with the private key (C_DestroyObject: CKR_ACTION_PROHIBITED)
        assert a[A.CKA_DESTROYABLE] == (A.TRUE if o is priv else A.FALSE)
        assert a[A.CKA_DERIVE] == A.FALSE and a[A.CKA_LOCAL] == A.FALSE
        assert a[A.CKA_KEY_GEN_MECHANISM] == U(A.CK_UNAVAILABLE_INFORMATION)
        assert a[A.CKA_START_DATE] == b"" and a[A.CKA_END_DATE] == b""
        assert a[A.CKA_SUBJECT] == b""
        assert mechs(a[A.CKA_ALLOWED_MECHANISMS]) == sorted({
            A.CKM_RSA_PKCS, A.CKM_SHA1_RSA_PKCS, A.CKM_SHA224_RSA_PKCS, A.CKM_SHA256_RSA_PKCS,
            A.CKM_SHA384_RSA_PKCS, A.CKM_SHA512_RSA_PKCS, A.CKM_RSA_PKCS_PSS,
            A.CKM_SHA256_RSA_PKCS_PSS, A.CKM_RSA_PKCS_OAEP})
        spki = a[A.CKA_PUBLIC_KEY_INFO]
        assert serialization.load_der_public_key(spki) == rsa_key.public_key()
        assert spki == rsa_key.public_key().public_bytes(*SPKI)
    p = priv.attrs
    assert p[A.CKA_CLASS] == U(A.CKO_PRIVATE_KEY)
    assert p[A.CKA_PRIVATE] == A.TRUE and p[A.CKA_SENSITIVE] == A.TRUE
    assert p[A.CKA_EXTRACTABLE] == A.FALSE and p[A.CKA_NEVER_EXTRACTABLE] == A.TRUE
    assert p[A.CKA_ALWAYS_SENSITIVE] == A.TRUE and p[A.CKA_ALWAYS_AUTHENTICATE] == A.FALSE
    assert p[A.CKA_SIGN] == A.TRUE and p[A.CKA_DECRYPT] == A.TRUE and p[A.CKA_UNWRAP] == A.TRUE
    assert p[A.CKA_SIGN_RECOVER] == A.FALSE and p[A.CKA_WRAP_WITH_TRUSTED] == A.FALSE
    assert A.CKA_VERIFY not in p and A.CKA_PRIVATE_EXPONENT not in p
    assert priv.sensitive == {A.CKA_PRIVATE_EXPONENT, A.CKA_PRIME_1, A.CKA_PRIME_2,
                              A.CKA_EXPONENT_1, A.CKA_EXPONENT_2, A.CKA_COEFFICIENT}
    assert priv.mechanisms == {"RSA_Signature_PKCS1", "RSA_Signature_PSS_SHA256",
                               "RSA_Decryption_OAEP_SHA256"}
    q = pub.attrs
    assert q[A.CKA_CLASS] == U(A.CKO_PUBLIC_KEY) and q[A.CKA_PRIVATE] == A.FALSE
    assert q[A.CKA_VERIFY] == A.TRUE and q[A.CKA_ENCRYPT] == A.TRUE and q[A.CKA_WRAP] == A.TRUE
    assert q[A.CKA_VERIFY_RECOVER] == A.FALSE and q[A.CKA_TRUSTED] == A.FALSE
    assert A.CKA_SIGN not in q and A.CKA_SENSITIVE not in q
    assert pub.sensitive == frozenset()
    assert p[A.CKA_UNIQUE_ID] != q[A.CKA_UNIQUE_ID]


def test_rsa_sign_only_key_cannot_decrypt(rsa_key):
    priv, pub = build_objects("s", rsa_json(rsa_key, ["RSA_Signature_PSS_SHA512"]))
    assert priv.attrs[A.CKA_DECRYPT] == A.FALSE and priv.attrs[A.CKA_UNWRAP] == A.FALSE
    assert priv.attrs[A.CKA_SIGN] == A.TRUE
    assert pub.attrs[A.CKA_ENCRYPT] == A.FALSE and pub.attrs[A.CKA_VERIFY] == A.TRUE
    assert mechs(priv.attrs[A.CKA_ALLOWED_MECHANISMS]) == [A.CKM_RSA_PKCS_PSS,
                                                          A.CKM_SHA512_RSA_PKCS_PSS]
    # Decrypt-only: no signing
    priv, pub = build_objects("d", rsa_json(rsa_key, ["RSA_Decryption_RAW"]))
    assert priv.attrs[A.CKA_SIGN] == A.FALSE and priv.attrs[A.CKA_DECRYPT] == A.TRUE
    assert mechs(priv.attrs[A.CKA_ALLOWED_MECHANISMS]) == [A.CKM_RSA_X_509]
    # MD5 variants have no PKCS#11 mechanism
    priv, _ = build_objects("m", rsa_json(rsa_key, ["RSA_Signature_PSS_MD5"]))
    assert priv.attrs[A.CKA_SIGN] == A.FALSE and priv.attrs[A.CKA_ALLOWED_MECHANISMS] == b""


EC_CURVES = {
    "EC_P256": ec.SECP256R1(), "EC_P384": ec.SECP384R1(), "EC_P521": ec.SECP521R1(),
    "EC_P256K1": ec.SECP256K1(), "BrainpoolP256": ec.BrainpoolP256R1(),
    "BrainpoolP384": ec.BrainpoolP384R1(), "BrainpoolP512": ec.BrainpoolP512R1(),
}


@pytest.mark.parametrize("key_type", sorted(EC_CURVES))
def test_ec_objects(key_type):
    key = ec.generate_private_key(EC_CURVES[key_type])
    point = key.public_key().public_bytes(*X962)
    priv, pub = build_objects("ec1", ec_json(key, key_type))
    assert priv.cls == A.CKO_PRIVATE_KEY and pub.cls == A.CKO_PUBLIC_KEY
    for o in (priv, pub):
        a = o.attrs
        assert a[A.CKA_KEY_TYPE] == U(A.CKK_EC)
        assert o.bits == EC_CURVES[key_type].key_size
        # CKA_EC_PARAMS: the curve OID, as in cryptography's SubjectPublicKeyInfo
        spki = key.public_key().public_bytes(*SPKI)
        assert a[A.CKA_EC_PARAMS] in spki
        assert der.key_type_for_ec_params(a[A.CKA_EC_PARAMS]) == key_type
        tag, s, e = der.read_tlv(a[A.CKA_EC_POINT])
        assert tag == 0x04 and e == len(a[A.CKA_EC_POINT])
        assert a[A.CKA_EC_POINT][s:e] == point
        assert a[A.CKA_PUBLIC_KEY_INFO] == spki
        assert serialization.load_der_public_key(a[A.CKA_PUBLIC_KEY_INFO]) == key.public_key()
        assert mechs(a[A.CKA_ALLOWED_MECHANISMS]) == [
            A.CKM_ECDSA, A.CKM_ECDSA_SHA1, A.CKM_ECDSA_SHA224, A.CKM_ECDSA_SHA256,
            A.CKM_ECDSA_SHA384, A.CKM_ECDSA_SHA512]
    assert priv.attrs[A.CKA_SIGN] == A.TRUE and priv.attrs[A.CKA_DECRYPT] == A.FALSE
    assert priv.sensitive == {A.CKA_VALUE} and A.CKA_VALUE not in priv.attrs
    assert pub.attrs[A.CKA_VERIFY] == A.TRUE and pub.attrs[A.CKA_ENCRYPT] == A.FALSE


def test_ed25519_objects():
    key = ed25519.Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw,
                                        serialization.PublicFormat.Raw)
    priv, pub = build_objects("ed", ed_json(key))
    for o in (priv, pub):
        a = o.attrs
        assert a[A.CKA_KEY_TYPE] == U(A.CKK_EC_EDWARDS)
        assert a[A.CKA_EC_PARAMS] == bytes.fromhex("06032b6570")
        assert a[A.CKA_EC_POINT] == b"\x04\x20" + raw
        assert serialization.load_der_public_key(a[A.CKA_PUBLIC_KEY_INFO]) == key.public_key()
        assert mechs(a[A.CKA_ALLOWED_MECHANISMS]) == [A.CKM_EDDSA]
        assert o.bits == 255
    assert priv.attrs[A.CKA_SIGN] == A.TRUE


def test_generic_aes_secret_key():
    (sec,) = build_objects("mk", generic_json(label="CMS MK 4099"))
    a = sec.attrs
    assert sec.cls == A.CKO_SECRET_KEY and sec.key_type == "Generic"
    assert a[A.CKA_CLASS] == U(A.CKO_SECRET_KEY) and a[A.CKA_KEY_TYPE] == U(A.CKK_AES)
    assert a[A.CKA_LABEL] == b"CMS MK 4099" and a[A.CKA_ID] == b"mk"
    assert a[A.CKA_ENCRYPT] == A.TRUE and a[A.CKA_DECRYPT] == A.TRUE
    assert a[A.CKA_SIGN] == A.TRUE and a[A.CKA_VERIFY] == A.TRUE  # CMAC
    assert a[A.CKA_WRAP] == A.FALSE and a[A.CKA_UNWRAP] == A.FALSE
    assert a[A.CKA_SENSITIVE] == A.TRUE and a[A.CKA_EXTRACTABLE] == A.FALSE
    assert a[A.CKA_PRIVATE] == A.TRUE
    assert a[A.CKA_VALUE_LEN] == U(A.CK_UNAVAILABLE_INFORMATION) and sec.bits == 0
    assert sec.sensitive == {A.CKA_VALUE} and A.CKA_CHECK_VALUE not in a
    assert mechs(a[A.CKA_ALLOWED_MECHANISMS]) == sorted(
        {A.CKM_AES_CBC, A.CKM_AES_CBC_PAD, A.CKM_AES_ECB, A.CKM_AES_CMAC, A.CKM_AES_CMAC_GENERAL})
    (sec,) = build_objects("mk", generic_json(label="CMS MK 4099"), value_len=32)
    assert sec.attrs[A.CKA_VALUE_LEN] == U(32) and sec.bits == 256


def test_generic_decrypt_only_and_plain_generic():
    (sec,) = build_objects("d", generic_json(["AES_Decryption_CBC"]))
    a = sec.attrs
    assert a[A.CKA_KEY_TYPE] == U(A.CKK_AES)
    assert a[A.CKA_ENCRYPT] == A.FALSE and a[A.CKA_DECRYPT] == A.TRUE
    assert a[A.CKA_SIGN] == A.FALSE and a[A.CKA_VERIFY] == A.FALSE
    (sec,) = build_objects("g", generic_json([]))
    assert sec.attrs[A.CKA_KEY_TYPE] == U(A.CKK_GENERIC_SECRET)
    assert sec.attrs[A.CKA_ENCRYPT] == A.FALSE and sec.attrs[A.CKA_ALLOWED_MECHANISMS] == b""


def test_label_and_id_mapping(p256_key):
    priv, pub = build_objects("0---FF", ec_json(p256_key, "EC_P256", label=""))
    assert priv.attrs[A.CKA_ID] == b"\xff" and pub.attrs[A.CKA_ID] == b"\xff"
    assert priv.attrs[A.CKA_LABEL] == b"0---FF"  # empty label -> key ID
    priv, _ = build_objects("k", ec_json(p256_key, "EC_P256", label="etestlabel✓"))
    assert priv.attrs[A.CKA_LABEL] == "etestlabel✓".encode()


def test_certificate_object(rsa_key):
    cert = make_cert(rsa_key, serial=0x8000000000000001)
    cert_der = cert.public_bytes(serialization.Encoding.DER)
    objs = by_class(build_objects("tls", rsa_json(rsa_key), cert_der))
    c = objs[A.CKO_CERTIFICATE]
    a = c.attrs
    assert a[A.CKA_CLASS] == U(A.CKO_CERTIFICATE)
    assert a[A.CKA_CERTIFICATE_TYPE] == U(A.CKC_X_509)
    assert a[A.CKA_ID] == b"tls" and a[A.CKA_LABEL] == b"tls"
    assert a[A.CKA_TOKEN] == A.TRUE and a[A.CKA_PRIVATE] == A.FALSE
    assert a[A.CKA_TRUSTED] == A.FALSE and a[A.CKA_CERTIFICATE_CATEGORY] == U(0)
    assert a[A.CKA_MODIFIABLE] == A.FALSE
    assert a[A.CKA_VALUE] == cert_der
    assert a[A.CKA_SUBJECT] == cert.subject.public_bytes()
    assert a[A.CKA_ISSUER] == cert.issuer.public_bytes()
    assert a[A.CKA_SERIAL_NUMBER] == b"\x02\x09\x00\x80" + b"\x00" * 6 + b"\x01"
    assert a[A.CKA_PUBLIC_KEY_INFO] == rsa_key.public_key().public_bytes(*SPKI)
    assert a[A.CKA_CHECK_VALUE] == hashlib.sha1(cert_der).digest()[:3]
    assert c.sensitive == frozenset() and c.bits == 0
    # key objects carry the certificate's subject
    assert objs[A.CKO_PRIVATE_KEY].attrs[A.CKA_SUBJECT] == cert.subject.public_bytes()
    assert objs[A.CKO_PUBLIC_KEY].attrs[A.CKA_SUBJECT] == cert.subject.public_bytes()
    # an unparsable certificate gives no certificate object
    assert {o.cls for o in build_objects("tls", rsa_json(rsa_key), b"\x30\x00")} == {
        A.CKO_PRIVATE_KEY, A.CKO_PUBLIC_KEY}


def test_bad_key_data(rsa_key):
    with pytest.raises(KeyDataError):
        build_objects("x", {"type": "RSA", "mechanisms": [], "public": {"modulus": "AQAB"}})
    with pytest.raises(KeyDataError):
        build_objects("x", {"type": "EC_P256", "mechanisms": [], "public": {"data": "AAAA"}})
    with pytest.raises(KeyDataError):
        build_objects("x", {"type": "EC_P224", "mechanisms": []})
    with pytest.raises(KeyDataError):
        build_objects("x", {"type": "RSA", "mechanisms": []})


def test_matches(p256_key):
    priv, pub = build_objects("k1", ec_json(p256_key, "EC_P256"))
    assert priv.matches([])
    assert priv.matches([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_ID, b"k1")])
    assert not pub.matches([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_ID, b"k1")])
    assert not priv.matches([(A.CKA_ID, b"k2")])
    assert priv.matches([(A.CKA_SIGN, b"\x01")])
    assert priv.matches([(A.CKA_SIGN, b"\x02")])  # any non-zero CK_BBOOL is true
    assert not priv.matches([(A.CKA_SIGN, b"\x00")])
    assert not priv.matches([(A.CKA_MODULUS, b"\x01")])  # attribute the object lacks
    assert not priv.matches([(A.CKA_VALUE, b"")])  # sensitive: never matches
    assert not priv.matches([(A.CKA_KEY_TYPE, U(A.CKK_EC)[:4])])
    assert priv.matches([(A.CKA_KEY_TYPE, memoryview(U(A.CKK_EC)))])
    assert isinstance(priv, P11Object) and "k1" in repr(priv)


def test_parse_json():
    assert parse_json(b' {"a": [1, 2.5, "\\u00e9", null, true]}\n') == {
        "a": [1, 2.5, "é", None, True]}
    for bad in [b"", b"{", b"[1] x", b"[NaN]", b'"a\x01"']:
        with pytest.raises(ValueError):
            parse_json(bad)


# Python's JSON scanner recurses once per level; a host that raised its recursion limit (or a
# Python whose C recursion limit is high) on a thread with a small stack crashed on this.
DEEP_JSON_HOST = """
import sys, threading
from p11fast.objects import parse_json
sys.setrecursionlimit(1_000_000)
threading.stack_size(512 * 1024)
def run():
    try:
        parse_json(b"[" * 200_000 + b"]" * 200_000)
    except ValueError as e:
        print(e)
thread = threading.Thread(target=run)
thread.start()
thread.join()
"""


def test_json_nested_beyond_the_bound_is_refused_before_parsing():
    done = subprocess.run([sys.executable, "-c", DEEP_JSON_HOST], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "arrays or objects nested deeper than 256 levels"


def test_json_nested_up_to_the_bound_and_brackets_in_strings_are_parsed():
    assert parse_json(b"[" * 256 + b"]" * 256) is not None
    assert parse_json(b'{"a": "' + b"[" * 1000 + b'\\""}') == {"a": "[" * 1000 + '"'}


def test_import_is_light():
    code = ("import sys; import p11fast.objects; "
            "print(' '.join(m for m in ('json', 're', 'logging', 'threading', 'dataclasses', "
            "'cryptography', 'hashlib', 'base64', 'struct') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == ""


# --- the inventory ----------------------------------------------------------------------------


@pytest.fixture
def hsm(rsa_key, p256_key):
    h = FakeHSM()
    h.keys["rsa1"] = rsa_json(rsa_key, ["RSA_Signature_PKCS1", "RSA_Decryption_PKCS1"])
    h.keys["ec1"] = ec_json(p256_key, "EC_P256")
    h.keys["aes1"] = generic_json(label="CMS MK 4099")
    h.certs["rsa1"] = make_cert(rsa_key).public_bytes(serialization.Encoding.PEM)
    return h


def test_refresh_request_counts(hsm, p256_key):
    clock = Clock()
    inv = Inventory(hsm, "slot0", clock=clock)
    inv.refresh()
    assert hsm.take() == ["/keys", "/keys/aes1", "/keys/aes1/cert", "/keys/ec1",
                          "/keys/ec1/cert", "/keys/rsa1", "/keys/rsa1/cert"]
    objs = inv.objects()
    assert sorted((o.key_id, o.cls) for o in objs) == [
        ("aes1", A.CKO_SECRET_KEY), ("ec1", A.CKO_PUBLIC_KEY), ("ec1", A.CKO_PRIVATE_KEY),
        ("rsa1", A.CKO_CERTIFICATE), ("rsa1", A.CKO_PUBLIC_KEY), ("rsa1", A.CKO_PRIVATE_KEY)]
    # nothing new: one request
    inv.refresh()
    assert hsm.take() == ["/keys"]
    # one new key: the listing plus that key (and its certificate)
    hsm.keys["ec2"] = ec_json(p256_key, "EC_P256")
    inv.refresh()
    assert hsm.take() == ["/keys", "/keys/ec2", "/keys/ec2/cert"]
    # a deleted key is dropped from the cache
    del hsm.keys["rsa1"]
    inv.refresh()
    assert hsm.take() == ["/keys"]
    assert {o.key_id for o in inv.objects()} == {"aes1", "ec1", "ec2"}
    # entries expire after max_age seconds
    clock.t += 61
    inv.refresh()
    assert hsm.take() == ["/keys", "/keys/aes1", "/keys/aes1/cert", "/keys/ec1",
                          "/keys/ec1/cert", "/keys/ec2", "/keys/ec2/cert"]


def test_refresh_without_certs(hsm):
    inv = Inventory(hsm, "slot0")
    inv.refresh(with_certs=False)
    assert hsm.take() == ["/keys", "/keys/aes1", "/keys/ec1", "/keys/rsa1"]
    assert A.CKO_CERTIFICATE not in {o.cls for o in inv.objects()}


def test_find_by_id_one_request(hsm, rsa_key):
    inv = Inventory(hsm, "slot0")
    tpl = [(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_ID, b"rsa1")]
    (o,) = inv.find(tpl)
    assert hsm.take() == ["/keys/rsa1"]
    assert o.cls == A.CKO_PRIVATE_KEY and o.key_id == "rsa1"
    assert o.attrs[A.CKA_MODULUS] == rsa_key.public_key().public_numbers().n.to_bytes(256, "big")
    # cached: no request
    assert inv.find(tpl) == [o]  # the cached object itself
    assert hsm.take() == []
    # without a class the certificate may match: fetched once
    found = inv.find([(A.CKA_ID, b"rsa1")])
    assert sorted(x.cls for x in found) == [A.CKO_CERTIFICATE, A.CKO_PUBLIC_KEY,
                                           A.CKO_PRIVATE_KEY]
    assert hsm.take() == ["/keys/rsa1/cert"]
    (c,) = inv.find([(A.CKA_CLASS, U(A.CKO_CERTIFICATE)), (A.CKA_ID, b"rsa1")])
    assert hsm.take() == []
    assert c.attrs[A.CKA_VALUE] == der.pem_to_der(hsm.certs["rsa1"])


def test_find_by_id_misses(hsm):
    inv = Inventory(hsm, "slot0")
    assert inv.find([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_ID, b"nope")]) == []
    assert hsm.take() == ["/keys/nope"]
    assert inv.find([(A.CKA_ID, b"")]) == []  # not a mappable CKA_ID: no request
    assert inv.find([(A.CKA_CLASS, U(A.CKO_DATA))]) == []  # class we never produce
    assert inv.find([(A.CKA_CLASS, b"\x03")]) == []  # malformed CK_ULONG
    assert hsm.take() == []


def test_find_by_encoded_id(hsm, p256_key):
    hsm.keys["0---FF"] = ec_json(p256_key, "EC_P256")
    inv = Inventory(hsm, "slot0")
    (o,) = inv.find([(A.CKA_CLASS, U(A.CKO_PUBLIC_KEY)), (A.CKA_ID, b"\xff")])
    assert hsm.take() == ["/keys/0---FF"]
    assert o.key_id == "0---FF" and o.attrs[A.CKA_ID] == b"\xff"
    # the CKA_ID b"0---FF" names key 0---FF too, but that key's CKA_ID is b"\xff"
    assert inv.find([(A.CKA_CLASS, U(A.CKO_PUBLIC_KEY)), (A.CKA_ID, b"0---FF")]) == []


def test_find_by_label_nethsm5(hsm):
    inv = Inventory(hsm, "slot0")
    tpl = [(A.CKA_CLASS, U(A.CKO_SECRET_KEY)), (A.CKA_LABEL, b"CMS MK 4099")]
    (o,) = inv.find(tpl)
    assert o.key_id == "aes1" and o.attrs[A.CKA_KEY_TYPE] == U(A.CKK_AES)
    assert hsm.take() == ["/keys?label=CMS%20MK%204099", "/keys/aes1"]
    assert inv.label_query is True
    # a key without label is found by its ID as label
    (o,) = inv.find([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_LABEL, b"ec1")])
    assert o.key_id == "ec1"
    assert hsm.take() == ["/keys/ec1", "/keys?label=ec1"]


def test_find_by_label_hsm_without_label_filter(hsm):
    hsm.label_filter = False
    inv = Inventory(hsm, "slot0")
    (o,) = inv.find([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_LABEL, b"ec1")])
    assert o.key_id == "ec1"
    # the filter was ignored (all keys listed): correct result, and not asked again
    assert hsm.take() == ["/keys/ec1", "/keys?label=ec1", "/keys/aes1", "/keys/rsa1"]
    assert inv.label_query is False
    (o,) = inv.find([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_LABEL, b"rsa1")])
    assert o.key_id == "rsa1" and hsm.take() == []


def test_find_without_id_refreshes_and_filters(hsm):
    inv = Inventory(hsm, "slot0")
    found = inv.find([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY))])
    assert sorted(o.key_id for o in found) == ["ec1", "rsa1"]
    assert hsm.take() == ["/keys", "/keys/aes1", "/keys/ec1", "/keys/rsa1"]
    found = inv.find([(A.CKA_KEY_TYPE, U(A.CKK_RSA))])
    assert sorted(o.cls for o in found) == [A.CKO_PUBLIC_KEY, A.CKO_PRIVATE_KEY]
    assert hsm.take() == ["/keys", "/keys/aes1/cert", "/keys/ec1/cert", "/keys/rsa1/cert"]
    (c,) = inv.find([(A.CKA_CLASS, U(A.CKO_CERTIFICATE))])
    assert c.key_id == "rsa1" and hsm.take() == ["/keys"]
    # CKA_SUBJECT in the template needs the certificate
    subj = c.attrs[A.CKA_SUBJECT]
    (k,) = inv.find([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_SUBJECT, subj)])
    assert k.key_id == "rsa1"


def test_get_and_invalidate(hsm):
    clock = Clock()
    inv = Inventory(hsm, "slot0", clock=clock, max_age=5)
    objs = inv.get("rsa1")
    assert sorted(o.cls for o in objs) == [A.CKO_CERTIFICATE, A.CKO_PUBLIC_KEY,
                                          A.CKO_PRIVATE_KEY]
    assert hsm.take() == ["/keys/rsa1", "/keys/rsa1/cert"]
    assert len(inv.get("rsa1")) == 3 and hsm.take() == []
    clock.t += 6
    assert len(inv.get("rsa1", with_cert=False)) == 2
    assert hsm.take() == ["/keys/rsa1"]
    assert inv.get("gone") == [] and hsm.take() == ["/keys/gone"]
    assert inv.get("-bad id") == [] and hsm.take() == []
    inv.invalidate("rsa1")
    assert len(inv.get("rsa1")) == 3
    assert hsm.take() == ["/keys/rsa1", "/keys/rsa1/cert"]
    inv.get("ec1")
    hsm.take()
    inv.invalidate()
    assert inv.objects() == []
    del hsm.keys["ec1"]
    assert inv.get("ec1") == []


def test_set_value_len(hsm):
    inv = Inventory(hsm, "slot0")
    (o,) = inv.get("aes1")
    assert o.attrs[A.CKA_VALUE_LEN] == U(A.CK_UNAVAILABLE_INFORMATION)
    inv.set_value_len("aes1", 32)
    (o,) = inv.get("aes1")
    assert o.attrs[A.CKA_VALUE_LEN] == U(32) and o.bits == 256
    tpl = [(A.CKA_CLASS, U(A.CKO_SECRET_KEY)), (A.CKA_VALUE_LEN, U(32))]
    assert [x.key_id for x in inv.find(tpl)] == ["aes1"]
    # the key leaves the HSM: the length is forgotten
    del hsm.keys["aes1"]
    inv.refresh()
    hsm.keys["aes1"] = generic_json()
    (o,) = inv.get("aes1")
    assert o.attrs[A.CKA_VALUE_LEN] == U(A.CK_UNAVAILABLE_INFORMATION)


def test_errors(hsm):
    inv = Inventory(hsm, "slot0")
    hsm.fail["/keys"] = 401
    with pytest.raises(errors.UserNotLoggedIn) as e:
        inv.refresh()
    assert e.value.ckr == ckr.CKR_USER_NOT_LOGGED_IN
    assert "slot0" in str(e.value) and "GET /keys" in str(e.value)
    hsm.fail = {"/keys/ec1": 500}
    with pytest.raises(errors.DeviceError) as e:
        inv.get("ec1")
    assert e.value.ckr == ckr.CKR_DEVICE_ERROR
    hsm.fail = {"/keys/ec1/cert": 412}
    with pytest.raises(errors.TokenNotPresent):
        inv.get("ec1")
    hsm.fail = {}
    # an unusable key JSON yields no objects and a reason
    hsm.keys["weird"] = {"type": "RSA", "mechanisms": [], "restrictions": {}, "operations": 0}
    assert inv.get("weird") == []
    assert "RSA" in inv.errors["weird"]
    # an unusable certificate: key objects only
    hsm.certs["ec1"] = b"not a certificate"
    assert sorted(o.cls for o in inv.get("ec1")) == [A.CKO_PUBLIC_KEY, A.CKO_PRIVATE_KEY]
    assert "certificate" in inv.errors["ec1"]


def test_bad_listing(hsm):
    inv = Inventory(hsm, "slot0")
    for body in [b"{}", b"[{\"id\": \"-x\"}]", b"not json", b"[1]"]:
        inv._request = lambda m, p, b, a, body=body: (200, body)
        with pytest.raises(errors.DeviceError) as e:
            inv.refresh()
        assert e.value.ckr == ckr.CKR_DEVICE_ERROR


def test_der_certificate_stored_as_der(hsm, p256_key):
    cert = make_cert(p256_key)
    hsm.certs["ec1"] = cert.public_bytes(serialization.Encoding.DER)
    inv = Inventory(hsm, "slot0")
    (c,) = inv.find([(A.CKA_CLASS, U(A.CKO_CERTIFICATE)), (A.CKA_ID, b"ec1")])
    assert c.attrs[A.CKA_VALUE] == hsm.certs["ec1"]
    assert c.attrs[A.CKA_ISSUER] == cert.issuer.public_bytes()


def test_concurrent_finds_fetch_each_key_once(hsm):
    import threading
    import time

    def slow(method, path, body, admin):
        time.sleep(0.01)
        return hsm(method, path, body, admin)

    inv = Inventory(slow, "slot0")
    results = []
    tpl = [(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY))]
    threads = [threading.Thread(target=lambda: results.append(inv.find(tpl))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [sorted(o.key_id for o in r) for r in results] == [["ec1", "rsa1"]] * 8
    log = hsm.take()
    assert sorted(p for p in log if p != "/keys") == ["/keys/aes1", "/keys/ec1", "/keys/rsa1"]
    assert log.count("/keys") == 8  # each C_FindObjectsInit lists once; keys fetched once
