"""Encryption, decryption and CMAC through the real module against the software HSM, every result
checked with `cryptography` on the same (imported) key material."""

from __future__ import annotations

import os
import subprocess

import PyKCS11 as K
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.padding import PKCS7

from p11fast import attrs as A
from p11fast import ckr
from tests.module.conftest import OPERATOR_PIN, host_env
from tests.module.crypt_cases import (
    AES_BOTH,
    PRIVATE,
    PUBLIC,
    RFC4493_KEY,
    RFC4493_MESSAGE,
    RSA_DECRYPTION,
    SECRET,
    import_aes,
    import_rsa,
    oaep_params,
    run_cases,
)

AES_KEY = bytes(range(100, 132))
IV = bytes(range(16))
OAEP_HASHES = {
    K.CKM_SHA_1: (K.CKG_MGF1_SHA1, hashes.SHA1),
    K.CKM_SHA224: (K.CKG_MGF1_SHA224, hashes.SHA224),
    K.CKM_SHA256: (K.CKG_MGF1_SHA256, hashes.SHA256),
    K.CKM_SHA384: (K.CKG_MGF1_SHA384, hashes.SHA384),
    K.CKM_SHA512: (K.CKG_MGF1_SHA512, hashes.SHA512),
}


@pytest.fixture(scope="module")
def keys(api):
    return {
        "rsa": import_rsa(api, "crypt-rsa", RSA_DECRYPTION),
        "aes": import_aes(api, "crypt-aes", AES_KEY, AES_BOTH),
        "rfc": import_aes(api, "crypt-rfc", RFC4493_KEY, ["AES_Encryption_CBC"]),
    }


@pytest.fixture
def run(module_path, login_config, keys):
    return lambda cases: run_cases(module_path, login_config, cases)


def aes(mode, encrypt: bool, data: bytes, key: bytes = AES_KEY) -> bytes:
    op = (
        Cipher(algorithms.AES(key), mode).encryptor()
        if encrypt
        else Cipher(algorithms.AES(key), mode).decryptor()
    )
    return op.update(data) + op.finalize()


def pkcs7(data: bytes) -> bytes:
    p = PKCS7(128).padder()
    return p.update(data) + p.finalize()


# --- RSA ---------------------------------------------------------------------------------------


def rsa_cases():
    """(mechanism, parameter, cryptography padding or None for raw RSA)."""
    yield A.CKM_RSA_PKCS, None, padding.PKCS1v15()
    for mech, (mgf, h) in OAEP_HASHES.items():
        yield (
            A.CKM_RSA_PKCS_OAEP,
            oaep_params(mech, mgf),
            padding.OAEP(padding.MGF1(h()), h(), None),
        )


@pytest.mark.parametrize(("mech", "param", "pad"), list(rsa_cases()))
def test_rsa_both_ways_with_cryptography(run, keys, mech, param, pad):
    public = keys["rsa"].public_key()
    message = b"the module decrypts what openssl encrypted"
    ciphertext = public.encrypt(message, pad)
    base = {"key": "crypt-rsa", "mech": mech, "param": param}
    decrypt = {**base, "fn": "decrypt", "cls": PRIVATE, "data": ciphertext}
    encrypt = {**base, "fn": "encrypt", "data": message}
    single, parts, encrypted, encrypted_parts, via_private, short = run(
        [
            decrypt,
            {**decrypt, "parts": [100, 0, 156]},
            {**encrypt, "cls": PUBLIC},
            {**encrypt, "cls": PUBLIC, "parts": [7, 0, len(message) - 7]},
            {**encrypt, "cls": PRIVATE},
            {**decrypt, "short": True},
        ]
    )
    assert single["rv"] == ckr.CKR_OK and bytes.fromhex(single["out"]) == message
    assert parts["rv"] == ckr.CKR_OK and bytes.fromhex(parts["out"]) == message
    assert parts["parts"][:3] == ["", "", ""]
    for result in (encrypted, encrypted_parts):
        assert result["rv"] == ckr.CKR_OK
        assert keys["rsa"].decrypt(bytes.fromhex(result["out"]), pad) == message
    # A private key has no CKA_ENCRYPT: encryption takes the public key object.
    assert via_private["init"] == ckr.CKR_KEY_FUNCTION_NOT_PERMITTED
    # The size query answers the modulus (an upper bound); a short buffer learns the exact size
    # and the next call gets the same plaintext.
    assert short["query"] == 256
    assert (short["short_rv"], short["short_len"]) == (ckr.CKR_BUFFER_TOO_SMALL, len(message))
    assert short["rv"] == ckr.CKR_OK and bytes.fromhex(short["out"]) == message


def test_rsa_x509_is_raw_rsa_both_ways(run, keys):
    numbers = keys["rsa"].private_numbers()
    n, e, d = numbers.public_numbers.n, numbers.public_numbers.e, numbers.d
    value = int.from_bytes(b"\x00\x01raw value", "big")
    ciphertext = pow(value, e, n).to_bytes(256, "big")
    decrypted, encrypted, short = run(
        [
            {
                "fn": "decrypt",
                "key": "crypt-rsa",
                "cls": PRIVATE,
                "mech": A.CKM_RSA_X_509,
                "data": ciphertext,
            },
            {
                "fn": "encrypt",
                "key": "crypt-rsa",
                "cls": PUBLIC,
                "mech": A.CKM_RSA_X_509,
                "data": value.to_bytes(11, "big"),
            },
            {
                "fn": "decrypt",
                "key": "crypt-rsa",
                "cls": PRIVATE,
                "mech": A.CKM_RSA_X_509,
                "data": ciphertext,
                "short": True,
            },
        ]
    )
    assert bytes.fromhex(decrypted["out"]) == value.to_bytes(256, "big")
    assert pow(int(encrypted["out"], 16), d, n) == value
    assert short["query"] == 256 and short["short_rv"] == ckr.CKR_BUFFER_TOO_SMALL
    assert bytes.fromhex(short["out"]) == value.to_bytes(256, "big")


@pytest.mark.parametrize(
    ("why", "param"),
    [
        ("MGF hash differs", oaep_params(K.CKM_SHA256, K.CKG_MGF1_SHA1)),
        ("a label", oaep_params(K.CKM_SHA256, K.CKG_MGF1_SHA256, label_len=4)),
        ("no source, a label", oaep_params(K.CKM_SHA256, K.CKG_MGF1_SHA256, source=0, label_len=4)),
        ("not a hash", oaep_params(A.CKM_RSA_PKCS, K.CKG_MGF1_SHA256)),
        ("short struct", oaep_params(K.CKM_SHA256, K.CKG_MGF1_SHA256)[:-16]),
        ("no parameter", None),
    ],
)
def test_oaep_parameters_the_hsm_cannot_honour_are_refused(run, why, param):
    for fn, cls in (("decrypt", PRIVATE), ("encrypt", PUBLIC)):
        [result] = run(
            [
                {
                    "fn": fn,
                    "key": "crypt-rsa",
                    "cls": cls,
                    "mech": A.CKM_RSA_PKCS_OAEP,
                    "param": param,
                    "data": b"x",
                }
            ]
        )
        assert result["init"] == ckr.CKR_MECHANISM_PARAM_INVALID, (why, fn)


def test_rsa_wrong_lengths(run):
    too_long, longer_than_modulus, empty = run(
        [
            {
                "fn": "encrypt",
                "key": "crypt-rsa",
                "cls": PUBLIC,
                "mech": A.CKM_RSA_PKCS,
                "data": bytes(246),
            },
            {
                "fn": "decrypt",
                "key": "crypt-rsa",
                "cls": PRIVATE,
                "mech": A.CKM_RSA_PKCS,
                "data": bytes(257),
            },
            {
                "fn": "decrypt",
                "key": "crypt-rsa",
                "cls": PRIVATE,
                "mech": A.CKM_RSA_PKCS,
                "data": b"",
            },
        ]
    )
    assert too_long["rv"] == ckr.CKR_DATA_LEN_RANGE
    assert longer_than_modulus["rv"] == empty["rv"] == ckr.CKR_ENCRYPTED_DATA_LEN_RANGE


# --- AES ---------------------------------------------------------------------------------------

AES_MODES = {
    "CBC": (A.CKM_AES_CBC, IV.hex(), lambda: modes.CBC(IV), False),
    "CBC_PAD": (A.CKM_AES_CBC_PAD, IV.hex(), lambda: modes.CBC(IV), True),
    "ECB": (A.CKM_AES_ECB, None, modes.ECB, False),
}


@pytest.mark.parametrize("name", AES_MODES)
def test_aes_both_ways_single_and_multi_part(run, name):
    mech, param, mode, pad = AES_MODES[name]
    plain = bytes(range(256))[: (77 if pad else 80)]
    padded = pkcs7(plain) if pad else plain
    ciphertext = aes(mode(), True, padded)
    base = {"key": "crypt-aes", "cls": SECRET, "mech": mech, "param": param}
    results = run(
        [
            {**base, "fn": "decrypt", "data": ciphertext},
            {
                **base,
                "fn": "decrypt",
                "data": ciphertext,
                "parts": [5, 11, 0, 16, 33, len(ciphertext) - 65],
            },
            {**base, "fn": "decrypt", "data": ciphertext, "parts": [32, 64]},
            {**base, "fn": "encrypt", "data": plain},
            {**base, "fn": "encrypt", "data": plain, "parts": [1, 15, 16, 17, 0, len(plain) - 49]},
            {**base, "fn": "decrypt", "data": ciphertext, "short": True},
            {**base, "fn": "encrypt", "data": plain, "short": True},
        ]
    )
    single, parts, aligned, encrypted, encrypted_parts, short_decrypt, short_encrypt = results
    for result in (single, parts, aligned):
        assert result["rv"] == ckr.CKR_OK and bytes.fromhex(result["out"]) == plain
    for result in (encrypted, encrypted_parts):
        assert result["rv"] == ckr.CKR_OK and bytes.fromhex(result["out"]) == ciphertext
    # Updates give whole blocks once complete (CBC_PAD decryption holds the last one back).
    sizes = [len(bytes.fromhex(p)) for p in encrypted_parts["parts"]]
    assert sizes[:3] == [0, 16, 16] and all(size % 16 == 0 for size in sizes[:-1])
    assert [len(bytes.fromhex(p)) for p in aligned["parts"]] == (
        [16, 48, len(plain) - 64] if pad else [32, 48, 0]
    )
    assert (short_encrypt["query"], short_encrypt["short_rv"]) == (
        len(ciphertext),
        ckr.CKR_BUFFER_TOO_SMALL,
    )
    assert bytes.fromhex(short_encrypt["out"]) == ciphertext
    assert short_decrypt["short_rv"] == ckr.CKR_BUFFER_TOO_SMALL
    assert short_decrypt["short_len"] == len(plain) and bytes.fromhex(short_decrypt["out"]) == plain


def test_aes_cbc_pad_bad_padding_and_lengths(run):
    base = {"key": "crypt-aes", "cls": SECRET, "param": IV.hex()}
    bad_padding = aes(modes.CBC(IV), True, b"sixteen bytes!!\x00")
    results = run(
        [
            {**base, "fn": "decrypt", "mech": A.CKM_AES_CBC_PAD, "data": bad_padding},
            {
                **base,
                "fn": "decrypt",
                "mech": A.CKM_AES_CBC_PAD,
                "data": bad_padding,
                "parts": [16],
            },
            {**base, "fn": "decrypt", "mech": A.CKM_AES_CBC_PAD, "data": bytes(20)},
            {**base, "fn": "decrypt", "mech": A.CKM_AES_CBC, "data": bytes(20)},
            {**base, "fn": "encrypt", "mech": A.CKM_AES_CBC, "data": bytes(20)},
            {**base, "fn": "encrypt", "mech": A.CKM_AES_CBC, "data": bytes(20), "parts": [20]},
            {
                **base,
                "fn": "encrypt",
                "mech": A.CKM_AES_CBC,
                "param": IV.hex()[:-2],
                "data": bytes(16),
            },
        ]
    )
    assert [r.get("rv", r["init"]) for r in results] == [
        ckr.CKR_ENCRYPTED_DATA_INVALID,
        ckr.CKR_ENCRYPTED_DATA_INVALID,
        ckr.CKR_ENCRYPTED_DATA_LEN_RANGE,
        ckr.CKR_ENCRYPTED_DATA_LEN_RANGE,
        ckr.CKR_DATA_LEN_RANGE,
        ckr.CKR_DATA_LEN_RANGE,
        ckr.CKR_MECHANISM_PARAM_INVALID,
    ]


def test_cbc_pad_empty_plaintext(run):
    base = {"key": "crypt-aes", "cls": SECRET, "mech": A.CKM_AES_CBC_PAD, "param": IV.hex()}
    ciphertext = aes(modes.CBC(IV), True, pkcs7(b""))
    encrypted, decrypted = run(
        [{**base, "fn": "encrypt", "data": b""}, {**base, "fn": "decrypt", "data": ciphertext}]
    )
    assert bytes.fromhex(encrypted["out"]) == ciphertext
    assert decrypted["rv"] == ckr.CKR_OK and decrypted["out"] == ""


# --- CMAC --------------------------------------------------------------------------------------


def cmac(key: bytes, data: bytes) -> bytes:
    c = CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


@pytest.mark.parametrize("length", [0, 16, 40, 64])
def test_cmac_equals_cryptography_on_rfc4493_lengths(run, length):
    data = os.urandom(length)
    signs = run(
        [
            {"fn": "sign", "key": "crypt-aes", "cls": SECRET, "mech": A.CKM_AES_CMAC, "data": data},
            {
                "fn": "sign",
                "key": "crypt-aes",
                "cls": SECRET,
                "mech": A.CKM_AES_CMAC,
                "data": data,
                "parts": [length // 3, 0, length - length // 3],
            },
            {
                "fn": "sign",
                "key": "crypt-aes",
                "cls": SECRET,
                "mech": A.CKM_AES_CMAC_GENERAL,
                "param": (8).to_bytes(8, "little").hex(),
                "data": data,
            },
        ]
    )
    expected = cmac(AES_KEY, data)
    assert [bytes.fromhex(r["out"]) for r in signs] == [expected, expected, expected[:8]]
    good, bad, short, general = run(
        [
            {
                "fn": "verify",
                "key": "crypt-aes",
                "cls": SECRET,
                "mech": A.CKM_AES_CMAC,
                "data": data,
                "sig": expected,
            },
            {
                "fn": "verify",
                "key": "crypt-aes",
                "cls": SECRET,
                "mech": A.CKM_AES_CMAC,
                "data": data + b"!",
                "sig": expected,
            },
            {
                "fn": "verify",
                "key": "crypt-aes",
                "cls": SECRET,
                "mech": A.CKM_AES_CMAC,
                "data": data,
                "sig": expected[:15],
            },
            {
                "fn": "verify",
                "key": "crypt-aes",
                "cls": SECRET,
                "mech": A.CKM_AES_CMAC_GENERAL,
                "param": (8).to_bytes(8, "little").hex(),
                "data": data,
                "sig": expected[:8],
                "parts": [length],
            },
        ]
    )
    assert (good["rv"], bad["rv"], short["rv"], general["rv"]) == (
        ckr.CKR_OK,
        ckr.CKR_SIGNATURE_INVALID,
        ckr.CKR_SIGNATURE_LEN_RANGE,
        ckr.CKR_OK,
    )


def test_cmac_matches_rfc4493_examples(run):
    expected = {
        0: "bb1d6929e95937287fa37d129b756746",
        16: "070a16b46b4d4144f79bdd9dd04a287c",
        40: "dfa66747de9ae63030ca32611497c827",
        64: "51f0bebf7e3b9d92fc49741779363cfe",
    }
    results = run(
        [
            {
                "fn": "sign",
                "key": "crypt-rfc",
                "cls": SECRET,
                "mech": A.CKM_AES_CMAC,
                "data": RFC4493_MESSAGE[:n],
            }
            for n in expected
        ]
    )
    assert [r["out"] for r in results] == list(expected.values())


def test_cmac_general_length_is_checked(run):
    results = run(
        [
            {
                "fn": "sign",
                "key": "crypt-aes",
                "cls": SECRET,
                "mech": A.CKM_AES_CMAC_GENERAL,
                "param": param,
                "data": b"x",
            }
            for param in ((0).to_bytes(8, "little").hex(), (17).to_bytes(8, "little").hex(), None)
        ]
    )
    assert [r["init"] for r in results] == [ckr.CKR_MECHANISM_PARAM_INVALID] * 3


def test_cmac_needs_the_encryption_mechanism(run, api):
    import_aes(api, "crypt-aes-dec", AES_KEY, ["AES_Decryption_CBC"])
    [result] = run(
        [{"fn": "sign", "key": "crypt-aes-dec", "cls": SECRET, "mech": A.CKM_AES_CMAC, "data": b""}]
    )
    assert result["init"] == ckr.CKR_KEY_FUNCTION_NOT_PERMITTED


# --- pkcs11-tool -------------------------------------------------------------------------------


def tool(module_path, config, tmp_path, *args: str, data: bytes) -> bytes:
    (tmp_path / "in").write_bytes(data)
    done = subprocess.run(
        [
            "pkcs11-tool",
            "--module",
            module_path,
            "--login",
            "--pin",
            OPERATOR_PIN,
            *args,
            "-i",
            str(tmp_path / "in"),
            "-o",
            str(tmp_path / "out"),
        ],
        env=host_env(config),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return (tmp_path / "out").read_bytes()


def test_pkcs11_tool_rsa_pkcs_decrypt(module_path, login_config, keys, tmp_path):
    # This pkcs11-tool (OpenSC 0.23) encrypts with secret keys only: RSA encryption through the
    # module is covered by test_rsa_both_ways_with_cryptography.
    message = b"pkcs11-tool and openssl agree"
    ciphertext = keys["rsa"].public_key().encrypt(message, padding.PKCS1v15())
    assert (
        tool(
            module_path,
            login_config,
            tmp_path,
            "--decrypt",
            "--id",
            b"crypt-rsa".hex(),
            "-m",
            "RSA-PKCS",
            data=ciphertext,
        )
        == message
    )


def test_pkcs11_tool_aes_cbc_decrypt_and_encrypt(module_path, login_config, keys, tmp_path):
    plain = bytes(range(64))
    ciphertext = aes(modes.CBC(IV), True, plain)
    common = ("--id", b"crypt-aes".hex(), "-m", "AES-CBC", "--iv", IV.hex())
    assert tool(module_path, login_config, tmp_path, "--decrypt", *common, data=ciphertext) == plain
    assert tool(module_path, login_config, tmp_path, "--encrypt", *common, data=plain) == ciphertext
