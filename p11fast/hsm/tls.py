"""The server's TLS key and certificate chain, kept in the state directory.

Like NetHSM (keyfender `src/keyfender/hsm.ml`, Config): a self-signed certificate at first
start; `generate` replaces key and certificate, `replace_certificate` installs a chain for
the existing key. The key is written before the certificate; if a crash leaves a
certificate that does not belong to the key, the next start issues a self-signed one for it.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import ssl

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from p11fast.hsm import csr
from p11fast.hsm.errors import BadRequest, PreconditionFailed
from p11fast.hsm.keys import KeyMaterial

CERT_FILE, KEY_FILE = "tls.crt", "tls.key"
COMMON_NAME = "p11fast software HSM"
# TlsKeyType in the NetHSM spec
KEY_TYPES = (
    "RSA", "Curve25519", "EC_P256", "EC_P384", "EC_P521",
    "BrainpoolP256", "BrainpoolP384", "BrainpoolP512",
)  # fmt: skip

log = logging.getLogger("p11fast.hsm")


def ensure_certificate(state_dir: str) -> str:
    """Create key and certificate if missing (or repair a torn replacement); return the
    certificate's SHA-256 fingerprint."""
    if not os.path.exists(_path(state_dir, KEY_FILE)):
        create(state_dir)
    elif not _belongs_to_key(state_dir):
        log.warning("TLS certificate does not match the TLS key: issuing a self-signed one")
        _write_self_signed(state_dir, private_key(state_dir))
    return fingerprint(certificate_pem(state_dir))


def create(state_dir: str) -> None:
    """A new EC P-256 key with a self-signed certificate (first start, factory reset)."""
    _install_key(state_dir, ec.generate_private_key(ec.SECP256R1()))


def generate(state_dir: str, key_type: str, length: int | None) -> None:
    if key_type not in KEY_TYPES:
        raise BadRequest(f"unsupported key type for TLS: {key_type[:32]!r}")
    _install_key(state_dir, KeyMaterial.generate(key_type, length).private)


def certificate_pem(state_dir: str) -> bytes:
    """The certificate chain, server certificate first."""
    with open(_path(state_dir, CERT_FILE), "rb") as f:
        return f.read()


def private_key_pem(state_dir: str) -> bytes:
    with open(_path(state_dir, KEY_FILE), "rb") as f:
        return f.read()


def private_key(state_dir: str):
    return serialization.load_pem_private_key(private_key_pem(state_dir), password=None)


def public_key_pem(state_dir: str) -> bytes:
    return _spki(private_key(state_dir).public_key(), serialization.Encoding.PEM)


def csr_pem(state_dir: str, dn: dict) -> bytes:
    return csr.csr_pem(private_key(state_dir), dn)


def fingerprint(cert_pem: bytes) -> str:
    """`AA:BB:…`, the format of `sha256_fingerprints` in p11nethsm.conf."""
    digest = x509.load_pem_x509_certificate(cert_pem).fingerprint(hashes.SHA256())
    return ":".join(f"{b:02X}" for b in digest)


def server_context(state_dir: str) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    load_into(context, state_dir)
    return context


def load_into(context: ssl.SSLContext, state_dir: str) -> None:
    """(Re)load key and chain; connections accepted afterwards present the new certificate."""
    context.load_cert_chain(_path(state_dir, CERT_FILE), _path(state_dir, KEY_FILE))


def replace_certificate(state_dir: str, pem: bytes, cluster_ca: bytes | None) -> None:
    """Install a chain (server certificate first) for the current key. The chain must verify
    up to its last certificate, and to the cluster CA when one is set."""
    chain = _load_chain(pem)
    server = chain[0]
    own = _spki(private_key(state_dir).public_key(), serialization.Encoding.DER)
    if _spki(server.public_key(), serialization.Encoding.DER) != own:
        raise BadRequest("public key in certificate does not match private key")
    for cert, issuer in zip(chain, chain[1:], strict=False):
        _check_issued_by(cert, issuer, BadRequest)
    if cluster_ca is not None:
        ca = x509.load_pem_x509_certificate(cluster_ca)
        _check_issued_by(server, ca, PreconditionFailed, "the cluster CA is set and ")
    pems = b"".join(cert.public_bytes(serialization.Encoding.PEM) for cert in chain)
    _write(state_dir, CERT_FILE, pems)


def check_cluster_ca(state_dir: str, pem: bytes) -> bytes:
    """A CA certificate that signed the installed TLS certificate, as PEM."""
    ca = _load_chain(pem)[0]
    try:
        constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        usage = ca.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise BadRequest(f"this is not a valid CA: {exc}") from exc
    if not constraints.ca or not usage.key_cert_sign:
        raise BadRequest("this is not a valid CA: basicConstraints CA and keyCertSign needed")
    server = x509.load_pem_x509_certificate(certificate_pem(state_dir))
    _check_issued_by(server, ca, PreconditionFailed, "the installed TLS cert is ")
    return ca.public_bytes(serialization.Encoding.PEM)


def _load_chain(pem: bytes) -> list[x509.Certificate]:
    try:
        chain = x509.load_pem_x509_certificates(pem)
    except ValueError as exc:
        raise BadRequest("not a PEM certificate (chain)") from exc
    if not chain:
        raise BadRequest("empty certificate chain")
    return chain


def _check_issued_by(
    cert: x509.Certificate, issuer: x509.Certificate, error: type, context: str = ""
) -> None:
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature) as exc:
        raise error(f"{context}not signed by {issuer.subject.rfc4514_string()[:128]}") from exc


def _install_key(state_dir: str, key) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    _write(state_dir, KEY_FILE, pem, 0o600)
    _write_self_signed(state_dir, key)


def _write_self_signed(state_dir: str, key) -> None:
    alt_names = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    _write(state_dir, CERT_FILE, csr.self_signed(key, COMMON_NAME, alt_names))


def _belongs_to_key(state_dir: str) -> bool:
    try:
        cert = x509.load_pem_x509_certificate(certificate_pem(state_dir))
    except (OSError, ValueError):
        return False
    own = private_key(state_dir).public_key()
    der = serialization.Encoding.DER
    return _spki(cert.public_key(), der) == _spki(own, der)


def _spki(public_key, encoding: serialization.Encoding) -> bytes:
    return public_key.public_bytes(encoding, serialization.PublicFormat.SubjectPublicKeyInfo)


def _path(state_dir: str, name: str) -> str:
    return os.path.join(state_dir, name)


def _write(state_dir: str, name: str, data: bytes, mode: int = 0o644) -> None:
    path = _path(state_dir, name)
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    os.fchmod(fd, mode)  # a stale .tmp left by a crash keeps its mode through O_CREAT
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(state_dir, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # the rename itself must survive a crash
    finally:
        os.close(dir_fd)
