"""ECDSA through the real module on every curve and every input length: the HSM takes exactly the
curve's digest size (64 bytes for P-521, as keyfender's `Key.sign` does), and the signature must
mean what ECDSA says for the input the application gave (the leftmost bits of the order's
length, FIPS 186-5 6.4.1), which `cryptography` checks."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from p11fast import attrs as A
from p11fast import ckr
from tests.module.crypt_cases import PRIVATE, run_cases

# NetHSM key type -> (curve order bits, the digest size the HSM takes)
CURVES = {
    "EC_P256": (256, 32),
    "EC_P384": (384, 48),
    "EC_P521": (521, 64),
    "EC_P256K1": (256, 32),
    "BrainpoolP256": (256, 32),
    "BrainpoolP384": (384, 48),
    "BrainpoolP512": (512, 64),
}
HASHED = {
    A.CKM_ECDSA_SHA1: hashlib.sha1,
    A.CKM_ECDSA_SHA224: hashlib.sha224,
    A.CKM_ECDSA_SHA256: hashlib.sha256,
    A.CKM_ECDSA_SHA384: hashlib.sha384,
    A.CKM_ECDSA_SHA512: hashlib.sha512,
}


@pytest.fixture(scope="module")
def ec_keys(api) -> dict[str, ec.EllipticCurvePublicKey]:
    keys = {}
    for key_type in CURVES:
        api.generate(key_type, ["ECDSA_Signature"], key_label(key_type))
        keys[key_type] = serialization.load_pem_public_key(api.public_pem(key_label(key_type)))
    return keys


def key_label(key_type: str) -> str:
    return "dg" + key_type.lower().replace("_", "")


def raw_ecdsa_verify(public: ec.EllipticCurvePublicKey, raw_sig: bytes, digest: bytes) -> None:
    """Verifies with OpenSSL reading `digest` by ECDSA's own rule, whatever its length."""

    class Raw(hashes.HashAlgorithm):
        name, digest_size, block_size = "sha512", len(digest), None

    half = len(raw_sig) // 2
    der = utils.encode_dss_signature(
        int.from_bytes(raw_sig[:half], "big"), int.from_bytes(raw_sig[half:], "big")
    )
    public.verify(der, digest, ec.ECDSA(utils.Prehashed(Raw())))


def lengths(order_bits: int) -> list[int]:
    size = (order_bits + 7) // 8
    return sorted({1, 20, 28, 32, 48, 64, size - 1, size, size + 1, 2 * size, 100})


def test_raw_ecdsa_of_every_length_verifies_by_the_standard_rule(
    module_path, login_config, ec_keys
):
    cases, expected = [], []
    for key_type, (order_bits, _) in CURVES.items():
        for n in lengths(order_bits):
            # 0x01 first: P-521 inputs longer than 64 bytes stay expressible (see below)
            data = b"\x01" + bytes((i * 37 + n) % 251 for i in range(n - 1))
            if key_type == "EC_P521" and 65 <= n:
                data = bytes(n)[:2] + data[2:]  # 16 leading zero bits: e < 2^512
            cases.append({"fn": "sign", "key": key_label(key_type), "cls": PRIVATE,
                          "mech": A.CKM_ECDSA, "data": data})
            expected.append((key_type, data))
    results = run_cases(module_path, login_config, cases)
    for (key_type, data), result in zip(expected, results, strict=True):
        assert (result["init"], result["rv"]) == (ckr.CKR_OK, ckr.CKR_OK), (key_type, len(data))
        raw_ecdsa_verify(ec_keys[key_type], bytes.fromhex(result["out"]), data)


@pytest.mark.parametrize("mech", sorted(HASHED), ids=lambda m: HASHED[m]().name)
def test_hashing_ecdsa_on_p521_verifies_with_that_hash(module_path, login_config, ec_keys, mech):
    message = b"P-521 signs a digest of 64 bytes or less"
    cases = [{"fn": "sign", "key": key_label("EC_P521"), "cls": PRIVATE, "mech": mech,
              "data": message}, {"fn": "sign", "key": key_label("EC_P521"), "cls": PRIVATE,
              "mech": mech, "data": message, "parts": [10, 0, len(message) - 10]}]
    digest = HASHED[mech](message).digest()
    for result in run_cases(module_path, login_config, cases):
        assert result["rv"] == ckr.CKR_OK
        raw_ecdsa_verify(ec_keys["EC_P521"], bytes.fromhex(result["out"]), digest)


def test_p521_input_whose_leftmost_521_bits_exceed_512_is_data_len_range(
    module_path, login_config, ec_keys
):
    label = key_label("EC_P521")
    fits = b"\x00\x7f" + b"\x55" * 64
    cases = [
        # 65 bytes: 520 bits, all of them the number, which needs 513 or more bits
        {"fn": "sign", "key": label, "cls": PRIVATE, "mech": A.CKM_ECDSA, "data": b"\x01" * 65},
        # 66 bytes: the leftmost 521 bits start with a one
        {"fn": "sign", "key": label, "cls": PRIVATE, "mech": A.CKM_ECDSA, "data": b"\x80" * 66},
        # 66 bytes whose leftmost 521 bits fit 512: the 9 bits after the first 7 are zero
        {"fn": "sign", "key": label, "cls": PRIVATE, "mech": A.CKM_ECDSA, "data": fits},
    ]
    results = run_cases(module_path, login_config, cases)
    assert [r["rv"] for r in results[:2]] == [ckr.CKR_DATA_LEN_RANGE] * 2
    assert results[2]["rv"] == ckr.CKR_OK
    raw_ecdsa_verify(ec_keys["EC_P521"], bytes.fromhex(results[2]["out"]), fits)
    with pytest.raises(InvalidSignature):  # not the first 64 bytes taken as the digest
        raw_ecdsa_verify(ec_keys["EC_P521"], bytes.fromhex(results[2]["out"]), fits[:64])
