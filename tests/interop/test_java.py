"""Java SunPKCS11 (JDK 17): a provider configured with the module's path, the KeyStore,
and signatures made by the HSM and verified both in Java and with `cryptography`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from tests.interop.conftest import CERTIFIED, OPERATOR_PIN, host_env, public_key

SOURCE = Path(__file__).parent / "java" / "P11Java.java"
MESSAGE = b"signed by Java through SunPKCS11"
SIGNATURES = (
    ("ecp256", "SHA256withECDSA"),
    ("rsa2048", "SHA256withRSA"),
    ("rsa2048", "RSASSA-PSS"),
)


@pytest.fixture(scope="module")
def rsa_secret(api) -> tuple[bytes, bytes]:
    """(plaintext, its RSA PKCS#1 v1.5 encryption to the HSM key rsa2048)."""
    secret = b"decrypted by Java"
    return secret, public_key(api, "rsa2048").encrypt(secret, padding.PKCS1v15())


@pytest.fixture(scope="module")
def java_run(module_path, login_config, api, rsa_secret, tmp_path_factory) -> dict:
    """Compiles P11Java and runs it once with every command; returns what it printed."""
    work = tmp_path_factory.mktemp("java")
    shutil.copy(SOURCE, work)
    subprocess.run(["javac", "P11Java.java"], cwd=work, check=True, timeout=120)
    (work / "p11fast.cfg").write_text(
        f"name = p11fast\nlibrary = {module_path}\nslotListIndex = 0\n"
    )
    commands = [f"sign:{alias}:{algorithm}" for alias, algorithm in SIGNATURES]
    commands += [f"decrypt:rsa2048:{rsa_secret[1].hex()}", "aes:aes256", "generate:EC"]
    done = subprocess.run(
        ["java", "-cp", str(work), "P11Java", str(work / "p11fast.cfg"), OPERATOR_PIN, *commands],
        env=host_env(login_config),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result: dict = {"aliases": {}, "signatures": {}}
    for line in done.stdout.splitlines():
        kind, *fields = line.split()
        if kind == "alias":
            result["aliases"][fields[0]] = fields[1]
        elif kind == "signature":
            alias, algorithm, verdict, signature = fields
            result["signatures"][alias, algorithm] = (verdict, bytes.fromhex(signature))
        elif kind in ("decrypted", "aes", "generated"):
            result[kind] = fields
    return result


def test_keystore_lists_the_private_keys_that_have_a_certificate(java_run):
    private = sorted(a for a, kind in java_run["aliases"].items() if kind == "private")
    assert private == sorted(CERTIFIED)


def test_keystore_lists_the_aes_key_as_a_secret_key(java_run):
    assert java_run["aliases"]["aes256"] == "secret"


@pytest.mark.parametrize(("alias", "algorithm"), SIGNATURES)
def test_signature_verifies_in_java(java_run, alias, algorithm):
    verdict, _ = java_run["signatures"][alias, algorithm]
    assert verdict == "verified"


def test_sha256_with_ecdsa_verifies_with_the_hsm_public_key(java_run, api):
    _, signature = java_run["signatures"]["ecp256", "SHA256withECDSA"]
    public_key(api, "ecp256").verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))


def test_sha256_with_rsa_verifies_with_the_hsm_public_key(java_run, api):
    _, signature = java_run["signatures"]["rsa2048", "SHA256withRSA"]
    public_key(api, "rsa2048").verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())


def test_rsassa_pss_verifies_with_the_hsm_public_key(java_run, api):
    _, signature = java_run["signatures"]["rsa2048", "RSASSA-PSS"]
    public_key(api, "rsa2048").verify(
        signature, MESSAGE, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
    )


def test_cipher_rsa_pkcs1_decrypts_what_was_encrypted_to_the_hsm_key(java_run, rsa_secret):
    alias, plain = java_run["decrypted"]
    assert bytes.fromhex(plain) == rsa_secret[0]


def test_cipher_aes_cbc_encrypts_with_the_hsm_key_and_decrypts_back(java_run):
    alias, plain, cipher, back = java_run["aes"]
    assert back == plain != cipher
    assert len(bytes.fromhex(cipher)) == (len(bytes.fromhex(plain)) // 16 + 1) * 16


def test_key_pair_generator_makes_an_ec_session_key_that_signs(java_run):
    curve, verdict, public_der, signature = java_run["generated"]
    assert verdict == "verified"
    public = serialization.load_der_public_key(bytes.fromhex(public_der))
    assert isinstance(public.curve, ec.SECP256R1)
    public.verify(bytes.fromhex(signature), b"signed by a generated key", ec.ECDSA(hashes.SHA256()))
