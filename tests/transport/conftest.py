"""Fixtures of the transport tests: servers, pools, TLS material (helpers in tp_helpers)."""

import datetime
import hashlib
import ipaddress
import ssl

import pytest
import tp_helpers

from tests import builds

builds.ensure_inplace()


@pytest.fixture
def servers():
    """Factory for servers that are stopped at the end of the test."""
    made = []

    def make(kind=tp_helpers.Server, **kw):
        s = kind(**kw)
        made.append(s)
        return s

    yield make
    for s in made:
        s.stop()


@pytest.fixture
def pools():
    """Factory for pools that are closed at the end of the test, returned once their background
    warm-up is over (so tests that count connections see a deterministic pool)."""
    from p11fast._abi import Pool

    made = []

    def make(config, **kw):
        p = Pool(config, **kw)
        made.append(p)
        tp_helpers.settle(p)
        return p

    yield make
    for p in made:
        p.close()


# ---------------------------------------------------------------- TLS material


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """Self-signed certificate for 127.0.0.1: (cert_path, key_path, sha256 of its DER)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p11fast test HSM")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    d = tmp_path_factory.mktemp("tls")
    cert_path, key_path = d / "cert.pem", d / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    pin = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest()
    return str(cert_path), str(key_path), pin


@pytest.fixture
def tls_context(tls_cert):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(tls_cert[0], tls_cert[1])
    return ctx
