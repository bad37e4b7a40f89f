"""What test_crypt and test_verify share: their keys on the software HSM (imported with key
material the tests know, so `cryptography` can check every result) and the ctypes host."""

from __future__ import annotations

import base64
import json
import os
import struct

from cryptography.hazmat.primitives.asymmetric import rsa

from p11fast import attrs as A
from tests.module.conftest import OPERATOR_PIN, run_host

HOST = os.path.join(os.path.dirname(__file__), "crypt_host.py")

RSA_DECRYPTION = ["RSA_Decryption_RAW", "RSA_Decryption_PKCS1"] + [
    f"RSA_Decryption_OAEP_{h}" for h in ("SHA1", "SHA224", "SHA256", "SHA384", "SHA512")
]
RSA_SIGNATURE = ["RSA_Signature_PKCS1"] + [
    f"RSA_Signature_PSS_{h}" for h in ("SHA1", "SHA224", "SHA256", "SHA384", "SHA512")
]
AES_BOTH = ["AES_Encryption_CBC", "AES_Decryption_CBC"]

# RFC 4493 §4: the key and the message of the examples.
RFC4493_KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
RFC4493_MESSAGE = bytes.fromhex(
    "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
    "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
)

PRIVATE, PUBLIC, SECRET = A.CKO_PRIVATE_KEY, A.CKO_PUBLIC_KEY, A.CKO_SECRET_KEY


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def import_rsa(api, key_id: str, mechanisms: list[str]) -> rsa.RSAPrivateKey:
    key = rsa.generate_private_key(65537, 2048)
    numbers = key.private_numbers()

    def raw(value: int) -> str:
        return b64(value.to_bytes((value.bit_length() + 7) // 8, "big"))

    private = {
        "primeP": raw(numbers.p),
        "primeQ": raw(numbers.q),
        "publicExponent": raw(numbers.public_numbers.e),
    }
    api.expect(
        204, "PUT", f"/keys/{key_id}", {"type": "RSA", "mechanisms": mechanisms, "private": private}
    )
    return key


def import_aes(api, key_id: str, value: bytes, mechanisms: list[str]) -> bytes:
    api.expect(
        204,
        "PUT",
        f"/keys/{key_id}",
        {"type": "Generic", "mechanisms": mechanisms, "private": {"data": b64(value)}},
    )
    return value


def oaep_params(hash_mech: int, mgf: int, source: int = 1, label_len: int = 0) -> str:
    # CK_RSA_PKCS_OAEP_PARAMS: hashAlg, mgf, source, pSourceData (NULL), ulSourceDataLen
    return struct.pack("LLLPL", hash_mech, mgf, source, 0, label_len).hex()


def pss_params(hash_mech: int, mgf: int, salt: int) -> str:
    return struct.pack("LLL", hash_mech, mgf, salt).hex()


def run_cases(module_path: str, config: str, cases: list[dict]) -> list[dict]:
    for case in cases:
        case.setdefault("param", None)
        if isinstance(case.get("data"), bytes):
            case["data"] = case["data"].hex()
        if isinstance(case.get("sig"), bytes):
            case["sig"] = case["sig"].hex()
    return run_host(HOST, config, module_path, OPERATOR_PIN, stdin=json.dumps(cases))
