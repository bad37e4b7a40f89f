"""Java SunPKCS11 (JDK 17): a provider configured with the module's path, the KeyStore,
and signatures made by the HSM and verified both in Java and with `cryptography`."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
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
def java_run(module_path, login_config, api, tmp_path_factory) -> dict:
    """Compiles P11Java and runs it once; returns its aliases and signatures."""
    work = tmp_path_factory.mktemp("java")
    shutil.copy(SOURCE, work)
    subprocess.run(["javac", "P11Java.java"], cwd=work, check=True, timeout=120)
    (work / "p11fast.cfg").write_text(
        f"name = p11fast\nlibrary = {module_path}\nslotListIndex = 0\n"
    )
    args = [part for pair in SIGNATURES for part in pair]
    done = subprocess.run(
        ["java", "-cp", str(work), "P11Java", str(work / "p11fast.cfg"), OPERATOR_PIN, *args],
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
