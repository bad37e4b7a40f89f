"""The objects one NetHSM key becomes: attributes derived from canned key JSON."""

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from p11fast import attrs as A
from p11fast import der
from p11fast.model.objects import KeyDataError, P11Object, build_objects
from tests.unit.model.nethsm_keys import (
    SPKI,
    X962,
    U,
    by_class,
    ec_json,
    ed_json,
    generic_json,
    make_cert,
    mechs,
    rsa_json,
)

REPO = Path(__file__).resolve().parents[3]


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


def test_model_imports_nothing_heavy():
    # On the way to the first signature of a one-shot process (docs/architecture.md).
    code = ("import sys; import p11fast.model.inventory, p11fast.model.session_objects; "
            "print(' '.join(m for m in ('json', 're', 'logging', 'threading', 'dataclasses', "
            "'cryptography', 'hashlib', 'base64', 'struct') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == ""
