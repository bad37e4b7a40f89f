"""Keys the application creates or brings: verification with public key objects made by
C_CreateObject (module-held session objects; verification is local), and AES-CBC of data
larger than one HSM request takes."""

from __future__ import annotations

import os

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.padding import PKCS7

from p11fast import attrs as A
from p11fast import ckr, der
from tests.module.crypt_cases import AES_BOTH, SECRET, import_aes, run_cases

DATA = b"signed by the application, verified by the module" * 3


def _template(ckk: int, *extra) -> list:
    return [
        [A.CKA_CLASS, A.ulong(A.CKO_PUBLIC_KEY).hex()],
        [A.CKA_KEY_TYPE, A.ulong(ckk).hex()],
        [A.CKA_TOKEN, A.FALSE.hex()],
        *([kind, value.hex()] for kind, value in extra),
    ]


def _rsa():
    key = rsa.generate_private_key(65537, 2048)
    n = key.public_key().public_numbers()
    template = _template(
        A.CKK_RSA,
        (A.CKA_MODULUS, n.n.to_bytes(256, "big")),
        (A.CKA_PUBLIC_EXPONENT, n.e.to_bytes(3, "big")),
    )
    return template, A.CKM_SHA256_RSA_PKCS, key.sign(DATA, padding.PKCS1v15(), hashes.SHA256())


def _p256(wrapped: bool):
    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    template = _template(
        A.CKK_EC,
        (A.CKA_EC_PARAMS, der.ec_params_for_key_type("EC_P256")),
        (A.CKA_EC_POINT, der.octet_string(point) if wrapped else point),
    )
    r, s = decode_dss_signature(key.sign(DATA, ec.ECDSA(hashes.SHA256())))
    return template, A.CKM_ECDSA_SHA256, r.to_bytes(32, "big") + s.to_bytes(32, "big")


def _ed25519(wrapped: bool):
    key = ed25519.Ed25519PrivateKey.generate()
    point = key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    template = _template(
        A.CKK_EC_EDWARDS,
        (A.CKA_EC_PARAMS, der.ec_params_for_key_type("Curve25519")),
        (A.CKA_EC_POINT, der.octet_string(point) if wrapped else point),
    )
    return template, A.CKM_EDDSA, key.sign(DATA)


KEYS = {
    "rsa": _rsa,
    "p256": lambda: _p256(True),
    "p256-raw-point": lambda: _p256(False),
    "ed25519": lambda: _ed25519(True),
    "ed25519-raw-point": lambda: _ed25519(False),
}


@pytest.mark.parametrize("kind", list(KEYS))
def test_created_public_key_verifies(module_path, login_config, kind):
    template, mech, sig = KEYS[kind]()
    tampered = bytes([sig[0] ^ 1]) + sig[1:]
    base = {"fn": "verify", "create": template, "mech": mech, "data": DATA}
    good, bad, parts, no_verify = run_cases(
        module_path,
        login_config,
        [
            {**base, "sig": sig},
            {**base, "sig": tampered},
            {**base, "sig": sig, "parts": [10, 0, len(DATA) - 10]},
            {**base, "sig": sig, "create": template + [[A.CKA_VERIFY, A.FALSE.hex()]]},
        ],
    )
    assert (good["init"], good.get("rv")) == (ckr.CKR_OK, ckr.CKR_OK)
    assert (bad["init"], bad.get("rv")) == (ckr.CKR_OK, ckr.CKR_SIGNATURE_INVALID)
    assert (parts["init"], parts.get("rv")) == (ckr.CKR_OK, ckr.CKR_OK)
    assert no_verify["init"] == ckr.CKR_KEY_FUNCTION_NOT_PERMITTED


# --- AES-CBC of more than one request --------------------------------------------------------

AES_KEY = bytes(range(7, 39))
IV = bytes(range(200, 216))
BIG = os.urandom(1 << 20)


def _aes(encrypt: bool, data: bytes) -> bytes:
    cipher = Cipher(algorithms.AES(AES_KEY), modes.CBC(IV))
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(data) + op.finalize()


def _padded(data: bytes) -> bytes:
    p = PKCS7(128).padder()
    return p.update(data) + p.finalize()


@pytest.fixture(scope="module")
def aes_key(api):
    return import_aes(api, "created-big-aes", AES_KEY, AES_BOTH)


@pytest.mark.parametrize("mech", [A.CKM_AES_CBC, A.CKM_AES_CBC_PAD])
def test_one_mib_aes_cbc_in_one_call(module_path, login_config, aes_key, mech):
    expected = _aes(True, _padded(BIG) if mech == A.CKM_AES_CBC_PAD else BIG)
    base = {"key": "created-big-aes", "cls": SECRET, "mech": mech, "param": IV.hex()}
    size = len(BIG) // 3 // 16 * 16  # a third, in whole blocks; the last part takes the rest
    encrypted, decrypted, encrypted_parts, decrypted_parts = run_cases(
        module_path,
        login_config,
        [
            {**base, "fn": "encrypt", "data": BIG},
            {**base, "fn": "decrypt", "data": expected},
            {**base, "fn": "encrypt", "data": BIG, "parts": [size + 5, 0, len(BIG) - size - 5]},
            {**base, "fn": "decrypt", "data": expected, "parts": [7, size, len(expected)]},
        ],
    )
    assert encrypted["rv"] == ckr.CKR_OK and bytes.fromhex(encrypted["out"]) == expected
    assert decrypted["rv"] == ckr.CKR_OK and bytes.fromhex(decrypted["out"]) == BIG
    assert encrypted_parts["rv"] == ckr.CKR_OK
    assert bytes.fromhex(encrypted_parts["out"]) == expected
    assert decrypted_parts["rv"] == ckr.CKR_OK and bytes.fromhex(decrypted_parts["out"]) == BIG
