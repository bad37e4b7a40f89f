"""Verification through the real module: every sign mechanism (done locally with the public key)
accepts the module's own signatures and cryptography's, with the public or the private key
handle, single- and multi-part, and rejects altered ones."""

from __future__ import annotations

import PyKCS11 as K
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from p11fast import attrs as A
from p11fast import ckr
from tests.module.crypt_cases import (
    PRIVATE,
    PUBLIC,
    RSA_SIGNATURE,
    import_rsa,
    pss_params,
    run_cases,
)

PSS = {  # CKM_SHA*_RSA_PKCS_PSS: (hash mechanism, MGF, digest length)
    K.CKM_SHA1_RSA_PKCS_PSS: (K.CKM_SHA_1, K.CKG_MGF1_SHA1, 20),
    K.CKM_SHA224_RSA_PKCS_PSS: (K.CKM_SHA224, K.CKG_MGF1_SHA224, 28),
    K.CKM_SHA256_RSA_PKCS_PSS: (K.CKM_SHA256, K.CKG_MGF1_SHA256, 32),
    K.CKM_SHA384_RSA_PKCS_PSS: (K.CKM_SHA384, K.CKG_MGF1_SHA384, 48),
    K.CKM_SHA512_RSA_PKCS_PSS: (K.CKM_SHA512, K.CKG_MGF1_SHA512, 64),
}
DATA = b"verified here, signed there" * 5


def cases():
    """(key label, mechanism, parameter, data)."""
    for mech in (
        K.CKM_SHA1_RSA_PKCS,
        K.CKM_SHA224_RSA_PKCS,
        K.CKM_SHA256_RSA_PKCS,
        K.CKM_SHA384_RSA_PKCS,
        K.CKM_SHA512_RSA_PKCS,
    ):
        yield "verify-rsa", mech, None, DATA
    yield "verify-rsa", K.CKM_RSA_PKCS, None, b"any short message"
    for mech, (h, mgf, size) in PSS.items():
        yield "verify-rsa", mech, pss_params(h, mgf, size), DATA
        yield "verify-rsa", K.CKM_RSA_PKCS_PSS, pss_params(h, mgf, size), bytes(range(size))
    for label in ("ecp256", "ecp384", "ecp521"):
        for mech in (
            K.CKM_ECDSA_SHA1,
            K.CKM_ECDSA_SHA224,
            K.CKM_ECDSA_SHA256,
            K.CKM_ECDSA_SHA384,
            K.CKM_ECDSA_SHA512,
        ):
            yield label, mech, None, DATA
        yield label, K.CKM_ECDSA, None, bytes(range(32))
        yield label, K.CKM_ECDSA, None, bytes(range(64))
    yield "ed1", K.CKM_EDDSA, None, DATA


@pytest.fixture(scope="module")
def rsa_key(api):
    return import_rsa(api, "verify-rsa", RSA_SIGNATURE)


@pytest.mark.parametrize(("label", "mech", "param", "data"), list(cases()))
def test_verify_accepts_good_and_rejects_bad_signatures(
    module_path, login_config, rsa_key, label, mech, param, data
):
    base = {"key": label, "mech": mech, "param": param, "data": data}
    [signed] = run_cases(module_path, login_config, [{**base, "fn": "sign", "cls": PRIVATE}])
    assert signed["rv"] == ckr.CKR_OK
    sig = bytes.fromhex(signed["out"])
    flipped = bytes([sig[0] ^ 1]) + sig[1:]
    results = run_cases(
        module_path,
        login_config,
        [
            {**base, "fn": "verify", "cls": PUBLIC, "sig": sig},
            {**base, "fn": "verify", "cls": PRIVATE, "sig": sig},
            {
                **base,
                "fn": "verify",
                "cls": PUBLIC,
                "sig": sig,
                "parts": [len(data) // 2, 0, len(data) - len(data) // 2],
            },
            {**base, "fn": "verify", "cls": PUBLIC, "sig": flipped},
            {
                **base,
                "fn": "verify",
                "cls": PUBLIC,
                "sig": sig,
                "data": bytes([data[0] ^ 1]) + data[1:],
            },
            {**base, "fn": "verify", "cls": PUBLIC, "sig": sig[:-1]},
        ],
    )
    assert [r["rv"] for r in results] == [ckr.CKR_OK] * 3 + [ckr.CKR_SIGNATURE_INVALID] * 2 + [
        ckr.CKR_SIGNATURE_LEN_RANGE
    ]


def test_verify_accepts_signatures_made_by_cryptography(module_path, login_config, rsa_key):
    pkcs1 = rsa_key.sign(DATA, padding.PKCS1v15(), hashes.SHA256())
    pss = rsa_key.sign(DATA, padding.PSS(padding.MGF1(hashes.SHA384()), 48), hashes.SHA384())
    results = run_cases(
        module_path,
        login_config,
        [
            {
                "fn": "verify",
                "key": "verify-rsa",
                "cls": PUBLIC,
                "mech": K.CKM_SHA256_RSA_PKCS,
                "data": DATA,
                "sig": pkcs1,
            },
            {
                "fn": "verify",
                "key": "verify-rsa",
                "cls": PUBLIC,
                "mech": K.CKM_SHA384_RSA_PKCS_PSS,
                "param": pss_params(K.CKM_SHA384, K.CKG_MGF1_SHA384, 48),
                "data": DATA,
                "sig": pss,
            },
        ],
    )
    assert [r["rv"] for r in results] == [ckr.CKR_OK, ckr.CKR_OK]


@pytest.mark.parametrize(
    ("why", "param"),
    [
        ("salt not the hash length", pss_params(K.CKM_SHA256, K.CKG_MGF1_SHA256, 20)),
        ("MGF hash differs", pss_params(K.CKM_SHA256, K.CKG_MGF1_SHA1, 32)),
        ("hash differs from the mechanism's", pss_params(K.CKM_SHA_1, K.CKG_MGF1_SHA1, 20)),
        ("no parameter", None),
    ],
)
def test_verify_pss_parameters_are_validated_like_sign(
    module_path, login_config, rsa_key, why, param
):
    [result] = run_cases(
        module_path,
        login_config,
        [
            {
                "fn": "verify",
                "key": "verify-rsa",
                "cls": PUBLIC,
                "mech": K.CKM_SHA256_RSA_PKCS_PSS,
                "param": param,
                "data": DATA,
                "sig": bytes(256),
            }
        ],
    )
    assert result["init"] == ckr.CKR_MECHANISM_PARAM_INVALID, why


def test_verify_needs_a_key_of_the_mechanism(module_path, login_config, rsa_key):
    wrong_type, secret = run_cases(
        module_path,
        login_config,
        [
            {
                "fn": "verify",
                "key": "ecp256",
                "cls": PUBLIC,
                "mech": K.CKM_SHA256_RSA_PKCS,
                "data": DATA,
                "sig": b"",
            },
            {
                "fn": "verify",
                "key": "aes256",
                "cls": A.CKO_SECRET_KEY,
                "mech": K.CKM_ECDSA,
                "data": DATA,
                "sig": b"",
            },
        ],
    )
    assert wrong_type["init"] == ckr.CKR_KEY_TYPE_INCONSISTENT
    assert secret["init"] == ckr.CKR_KEY_FUNCTION_NOT_PERMITTED
