"""The server's self-signed TLS certificate, made once per state directory."""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

CERT_FILE, KEY_FILE = "tls.crt", "tls.key"


def ensure_certificate(state_dir: str) -> str:
    """Create the certificate if missing; return its SHA-256 fingerprint."""
    cert_path = os.path.join(state_dir, CERT_FILE)
    if not os.path.exists(cert_path):
        _create(state_dir)
    return fingerprint(certificate_pem(state_dir))


def certificate_pem(state_dir: str) -> bytes:
    with open(os.path.join(state_dir, CERT_FILE), "rb") as f:
        return f.read()


def private_key_pem(state_dir: str) -> bytes:
    with open(os.path.join(state_dir, KEY_FILE), "rb") as f:
        return f.read()


def public_key_pem(state_dir: str) -> bytes:
    cert = x509.load_pem_x509_certificate(certificate_pem(state_dir))
    return cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(cert_pem: bytes) -> str:
    """`AA:BB:…`, the format of `sha256_fingerprints` in p11nethsm.conf."""
    digest = x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def server_context(state_dir: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(os.path.join(state_dir, CERT_FILE), os.path.join(state_dir, KEY_FILE))
    return context


def _create(state_dir: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p11fast software HSM")])
    now = datetime.datetime.now(datetime.timezone.utc)
    san = x509.SubjectAlternativeName(
        [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(san, critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(os.path.join(state_dir, KEY_FILE), key_pem, 0o600)
    _write(os.path.join(state_dir, CERT_FILE), cert.public_bytes(serialization.Encoding.PEM), 0o644)


def _write(path: str, data: bytes, mode: int) -> None:
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # a stale .tmp left by a crash keeps its mode through O_CREAT
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
