"""OpenSC pkcs11-tool: the scripted flows an operator runs, and its own self-test."""

from __future__ import annotations

import hashlib

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

from tests.hosts import pkcs11_tool as tool
from tests.hosts import pkcs11_tool_sign as sign
from tests.interop.conftest import CERTIFIED, KEYS, OPERATOR_PIN, TOKEN, public_key


def test_info_shows_the_library(module_path, hsm):
    out = tool(module_path, hsm.config_path, "-I")
    assert "Cryptoki version 3.0" in out  # OpenSC asks C_GetInterface for the 3.0 list
    assert "Manufacturer     p11fast" in out


def test_slot_list_shows_an_initialised_token(module_path, hsm):
    out = tool(module_path, hsm.config_path, "-L")
    assert f"token label        : {TOKEN}" in out
    assert "token initialized" in out.replace("token state:", "")


def test_mechanism_list_marks_hsm_signatures_as_hardware(module_path, hsm):
    out = tool(module_path, hsm.config_path, "-M")
    for name in ("ECDSA", "ECDSA-SHA256", "RSA-PKCS", "SHA256-RSA-PKCS", "RSA-PKCS-PSS", "EDDSA"):
        line = next(line for line in out.splitlines() if line.strip().startswith(name + ","))
        assert "hw" in line and "sign" in line, line


def test_objects_after_login_list_every_key_and_certificate(module_path, login_config, api):
    out = tool(module_path, login_config, "--login", "--pin", OPERATOR_PIN, "-O")
    for key_id, *_ in KEYS:
        assert f"label:      {key_id}" in out
    assert out.count("Private Key Object") == 4
    assert out.count("Secret Key Object") == 1
    assert out.count("Certificate Object") == len(CERTIFIED)


def test_self_test_after_login_ends_without_errors(module_path, login_config, api):
    out = tool(module_path, login_config, "--test", "--login", "--pin", OPERATOR_PIN)
    # pkcs11-tool --test exits 0 even when it counts errors: its last line is the verdict.
    assert out.strip().splitlines()[-1] == "No errors", out
    assert "RSA-PKCS: OK" in out and "SHA256-RSA-PKCS: OK" in out


MESSAGE = b"pkcs11-tool signs this for p11fast"


@pytest.mark.parametrize(
    ("key_id", "mechanism", "hash_cls"),
    [
        ("ecp256", "ECDSA-SHA1", hashes.SHA1),
        ("ecp256", "ECDSA-SHA256", hashes.SHA256),
        ("ecp384", "ECDSA-SHA384", hashes.SHA384),
        ("ecp384", "ECDSA-SHA512", hashes.SHA512),
    ],
)
def test_ecdsa_with_hashing_verifies(
    module_path, login_config, api, tmp_path, key_id, mechanism, hash_cls
):
    sig = sign(
        module_path, login_config, tmp_path, key_id, mechanism, MESSAGE,
        "--signature-format", "openssl",
    )  # fmt: skip
    public_key(api, key_id).verify(sig, MESSAGE, ec.ECDSA(hash_cls()))


def test_raw_ecdsa_over_a_digest_verifies(module_path, login_config, api, tmp_path):
    digest = hashlib.sha256(MESSAGE).digest()
    sig = sign(
        module_path, login_config, tmp_path, "ecp256", "ECDSA", digest,
        "--signature-format", "openssl",
    )  # fmt: skip
    public_key(api, "ecp256").verify(sig, digest, ec.ECDSA(utils.Prehashed(hashes.SHA256())))


@pytest.mark.parametrize(
    ("mechanism", "hash_cls"),
    [
        ("SHA1-RSA-PKCS", hashes.SHA1),
        ("SHA224-RSA-PKCS", hashes.SHA224),
        ("SHA256-RSA-PKCS", hashes.SHA256),
        ("SHA384-RSA-PKCS", hashes.SHA384),
        ("SHA512-RSA-PKCS", hashes.SHA512),
    ],
)
def test_rsa_pkcs1_with_hashing_verifies(
    module_path, login_config, api, tmp_path, mechanism, hash_cls
):
    sig = sign(module_path, login_config, tmp_path, "rsa2048", mechanism, MESSAGE)
    public_key(api, "rsa2048").verify(sig, MESSAGE, padding.PKCS1v15(), hash_cls())


def test_raw_rsa_pkcs1_over_a_digest_info_verifies(module_path, login_config, api, tmp_path):
    digest_info = bytes.fromhex("3031300d060960864801650304020105000420")
    digest = hashlib.sha256(MESSAGE).digest()
    sig = sign(module_path, login_config, tmp_path, "rsa2048", "RSA-PKCS", digest_info + digest)
    public_key(api, "rsa2048").verify(
        sig, digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256())
    )


@pytest.mark.parametrize(
    ("mechanism", "mgf", "hash_cls"),
    [
        ("SHA1-RSA-PKCS-PSS", "MGF1-SHA1", hashes.SHA1),
        ("SHA256-RSA-PKCS-PSS", "MGF1-SHA256", hashes.SHA256),
        ("SHA384-RSA-PKCS-PSS", "MGF1-SHA384", hashes.SHA384),
        ("SHA512-RSA-PKCS-PSS", "MGF1-SHA512", hashes.SHA512),
    ],
)
def test_rsa_pss_with_hashing_verifies(
    module_path, login_config, api, tmp_path, mechanism, mgf, hash_cls
):
    sig = sign(
        module_path, login_config, tmp_path, "rsa2048", mechanism, MESSAGE,
        "--mgf", mgf, "--salt-len", "-1",
    )  # fmt: skip
    public_key(api, "rsa2048").verify(
        sig, MESSAGE, padding.PSS(padding.MGF1(hash_cls()), hash_cls().digest_size), hash_cls()
    )


def test_raw_rsa_pss_over_a_digest_verifies(module_path, login_config, api, tmp_path):
    digest = hashlib.sha256(MESSAGE).digest()
    sig = sign(
        module_path, login_config, tmp_path, "rsa2048", "RSA-PKCS-PSS", digest,
        "--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256", "--salt-len", "-1",
    )  # fmt: skip
    public_key(api, "rsa2048").verify(
        sig,
        digest,
        padding.PSS(padding.MGF1(hashes.SHA256()), 32),
        utils.Prehashed(hashes.SHA256()),
    )


def test_eddsa_verifies(module_path, login_config, api, tmp_path):
    sig = sign(module_path, login_config, tmp_path, "ed1", "EDDSA", MESSAGE)
    public_key(api, "ed1").verify(sig, MESSAGE)


def test_public_key_read_from_the_token_matches_the_hsm(module_path, hsm, api, tmp_path):
    tool(
        module_path, hsm.config_path, "--read-object", "--type", "pubkey", "--label", "rsa2048",
        "-o", str(tmp_path / "pub.der"),
    )  # fmt: skip
    read = serialization.load_der_public_key((tmp_path / "pub.der").read_bytes())
    assert read.public_numbers() == public_key(api, "rsa2048").public_numbers()


def test_certificate_read_from_the_token_is_the_stored_one(module_path, hsm, api, tmp_path):
    tool(
        module_path, hsm.config_path, "--read-object", "--type", "cert", "--label", "ecp256",
        "-o", str(tmp_path / "cert.der"),
    )  # fmt: skip
    stored = api.expect(200, "GET", "/keys/ecp256/cert")
    from cryptography import x509

    assert x509.load_der_x509_certificate((tmp_path / "cert.der").read_bytes()) == (
        x509.load_pem_x509_certificate(stored)
    )
