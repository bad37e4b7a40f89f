"""Fixtures for the interoperability suite: real clients (OpenSC, OpenSSL, nginx, GnuTLS, Python
bindings, Java, pkcs11-check) against the module and software HSMs of their own."""

from __future__ import annotations

import datetime
import os
import subprocess
from collections.abc import Iterator

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from p11fast.hsm.testing import ADMIN_PASSPHRASE, ADMIN_USER, HsmProcess, running_hsm
from tests.hsm_api import HsmApi
from tests.module.conftest import (  # noqa: F401  (helpers shared with tests/module)
    OPERATOR_PIN,
    config_without_password,
    host_env,
    run_python,
)

TOKEN = "p11fast-dev"
RSA_MECHANISMS = [
    "RSA_Signature_PKCS1",
    "RSA_Signature_PSS_SHA1",
    "RSA_Signature_PSS_SHA224",
    "RSA_Signature_PSS_SHA256",
    "RSA_Signature_PSS_SHA384",
    "RSA_Signature_PSS_SHA512",
    "RSA_Decryption_RAW",
    "RSA_Decryption_PKCS1",
    "RSA_Decryption_OAEP_MD5",
    "RSA_Decryption_OAEP_SHA1",
    "RSA_Decryption_OAEP_SHA224",
    "RSA_Decryption_OAEP_SHA256",
    "RSA_Decryption_OAEP_SHA384",
    "RSA_Decryption_OAEP_SHA512",
]
# pkcs11-tool --test tries every RSA decryption mechanism the token offers and aborts at the
# first CKR_KEY_FUNCTION_NOT_PERMITTED, which the module answers for a mechanism the NetHSM key
# was not created with: the RSA key here holds all of them.

# Every client but the OpenSSL engine: one key of each kind. (id, type, length, mechanisms)
KEYS = (
    ("ecp256", "EC_P256", None, ["ECDSA_Signature"]),
    ("ecp384", "EC_P384", None, ["ECDSA_Signature"]),
    ("rsa2048", "RSA", 2048, RSA_MECHANISMS),
    ("ed1", "Curve25519", None, ["EdDSA_Signature"]),
    ("aes256", "Generic", 256, ["AES_Encryption_CBC", "AES_Decryption_CBC"]),
)
# libengine-pkcs11-openssl 0.4.12 crashes on a token that holds an Ed25519 key: the engine and
# nginx get an HSM without one.
TLS_KEYS = (
    ("ecp256", "EC_P256", None, ["ECDSA_Signature"]),
    ("rsa2048", "RSA", 2048, RSA_MECHANISMS),
)
# Keys that carry a certificate on the HSM (the Java KeyStore lists only those).
CERTIFIED = ("ecp256", "rsa2048")


def generate(api: HsmApi, keys) -> None:
    for key_id, key_type, length, mechanisms in keys:
        api.generate(key_type, mechanisms, key_id, length)


def public_key(api: HsmApi, key_id: str):
    return serialization.load_pem_public_key(api.public_pem(key_id))


def store_certificate(api: HsmApi, key_id: str) -> x509.Certificate:
    """A certificate for the HSM key's public key (issued by a throwaway key: only the CKA_ID
    pairing matters to the clients), stored with PUT /keys/{id}/cert."""
    issuer = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, key_id)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key(api, key_id))
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .sign(issuer, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    api.expect(201, "PUT", f"/keys/{key_id}/cert", pem, content_type="application/x-pem-file")
    return cert


@pytest.fixture(scope="session")
def hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HsmProcess]:
    with running_hsm(str(tmp_path_factory.mktemp("hsm"))) as process:
        yield process


@pytest.fixture(scope="session")
def api(hsm: HsmProcess) -> HsmApi:
    client = HsmApi(hsm.url, ADMIN_USER, ADMIN_PASSPHRASE)
    generate(client, KEYS)
    for key_id in CERTIFIED:
        store_certificate(client, key_id)
    return client


@pytest.fixture(scope="session")
def login_config(hsm: HsmProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The HSM's config without the operator password: clients must log in with the PIN."""
    return config_without_password(hsm, tmp_path_factory.mktemp("cfg"))


@pytest.fixture(scope="module")
def scratch_hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HsmProcess]:
    """An empty HSM for one test module's key generation and object flows, so the keys they
    make never show up in another module's listings."""
    with running_hsm(str(tmp_path_factory.mktemp("scratch-hsm"))) as process:
        yield process


@pytest.fixture(scope="module")
def scratch_api(scratch_hsm: HsmProcess) -> HsmApi:
    return HsmApi(scratch_hsm.url, ADMIN_USER, ADMIN_PASSPHRASE)


@pytest.fixture(scope="session")
def tls_hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HsmProcess]:
    with running_hsm(str(tmp_path_factory.mktemp("tls-hsm"))) as process:
        yield process


@pytest.fixture(scope="session")
def tls_api(tls_hsm: HsmProcess) -> HsmApi:
    client = HsmApi(tls_hsm.url, ADMIN_USER, ADMIN_PASSPHRASE)
    generate(client, TLS_KEYS)
    return client


@pytest.fixture(scope="session")
def tls_login_config(tls_hsm: HsmProcess, tmp_path_factory: pytest.TempPathFactory) -> str:
    return config_without_password(tls_hsm, tmp_path_factory.mktemp("tls-cfg"))


def engines_dir() -> str:
    out = subprocess.run(["openssl", "version", "-e"], capture_output=True, text=True).stdout
    return out.split('"')[1]


@pytest.fixture(scope="session")
def openssl_conf(module_path: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """An openssl.cnf that loads libengine-pkcs11-openssl with our module."""
    engine = os.path.join(engines_dir(), "pkcs11.so")
    assert os.path.exists(engine), f"{engine} is missing: apt install libengine-pkcs11-openssl"
    path = tmp_path_factory.mktemp("openssl") / "openssl.cnf"
    path.write_text(
        "openssl_conf = openssl_init\n"
        "[openssl_init]\n"
        "engines = engine_section\n"
        "[engine_section]\n"
        "pkcs11 = pkcs11_section\n"
        "[pkcs11_section]\n"
        "engine_id = pkcs11\n"
        f"dynamic_path = {engine}\n"
        f"MODULE_PATH = {module_path}\n"
        "init = 0\n"
    )
    return str(path)


def key_uri(key_id: str, **extra: str) -> str:
    """An RFC 7512 URI for one of the HSM's private keys."""
    fields = {"token": TOKEN, "object": key_id, "type": "private", **extra}
    return "pkcs11:" + ";".join(f"{k}={v}" for k, v in fields.items())
