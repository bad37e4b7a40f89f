"""TLS: system CA by default, cacert, leaf-certificate pinning, insecure mode."""

import hashlib

import pytest
from tp_helpers import instance, slot

from p11fast import _abi
from p11fast.errors import TransportError


@pytest.fixture
def tls_server(servers, tls_context):
    return servers(tls=tls_context)


def test_pinned_self_signed_certificate_is_accepted(tls_server, tls_cert, pools):
    pin = tls_cert[2]
    other = hashlib.sha256(b"another certificate").digest()
    pool = pools(slot(instance(tls_server.url(), sha256_fingerprints=(other, pin))))
    for _ in range(5):
        assert pool.call("GET", "/info")[0] == 200
    assert tls_server.connections == 1


def test_pin_accepts_the_configs_hex_form(tls_server, tls_cert, pools):
    hex_pin = ":".join(f"{b:02X}" for b in tls_cert[2])
    pool = pools(slot(instance(tls_server.url(), sha256_fingerprints=(hex_pin,))))
    assert pool.call("GET", "/info")[0] == 200


def test_pin_mismatch_fails_before_any_request_byte(tls_server, pools):
    wrong = hashlib.sha256(b"not the server's certificate").digest()
    pool = pools(slot(instance(tls_server.url(), sha256_fingerprints=(wrong,)), retries=1))
    auth = b"Authorization: Basic c2VjcmV0OnNlY3JldA=="
    with pytest.raises(TransportError) as exc:
        pool.call("POST", "/keys/k1/sign", b"{}", auth, "application/json")
    assert exc.value.error_code == _abi.ERR_TLS
    assert tls_server.connections >= 2  # the handshake was tried, and retried
    assert tls_server.api_requests() == []  # the credentials never left the client


def test_pin_mismatch_names_the_certificate_the_server_presented(tls_server, tls_cert, pools):
    wrong = hashlib.sha256(b"not the server's certificate").digest()
    pool = pools(slot(instance(tls_server.url(), sha256_fingerprints=(wrong,))))
    with pytest.raises(TransportError) as exc:
        pool.call("GET", "/info")
    presented = ":".join(f"{b:02X}" for b in tls_cert[2])
    assert exc.value.message == f"certificate {presented} matches no sha256_fingerprints entry"


def test_pin_of_the_public_key_is_not_a_certificate_pin(tls_server, tls_cert, pools):
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    with open(tls_cert[0], "rb") as f:
        cert = x509.load_pem_x509_certificate(f.read())
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    pool = pools(
        slot(instance(tls_server.url(), sha256_fingerprints=(hashlib.sha256(spki).digest(),)))
    )
    with pytest.raises(TransportError) as exc:
        pool.call("GET", "/info")
    assert exc.value.error_code == _abi.ERR_TLS


def test_system_ca_rejects_a_self_signed_certificate(tls_server, pools):
    pool = pools(slot(instance(tls_server.url())))
    with pytest.raises(TransportError) as exc:
        pool.call("GET", "/info")
    assert exc.value.error_code == _abi.ERR_TLS
    assert tls_server.api_requests() == []


def test_cacert_verifies_against_the_given_bundle(tls_server, tls_cert, pools):
    pool = pools(slot(instance(tls_server.url(), cacert=tls_cert[0])))
    assert pool.call("GET", "/info")[0] == 200


def test_danger_insecure_cert_skips_verification(tls_server, pools):
    pool = pools(slot(instance(tls_server.url(), danger_insecure_cert=True)))
    assert pool.call("GET", "/info")[0] == 200


def test_bad_pin_length_is_refused_at_construction():
    with pytest.raises(ValueError):
        _abi.Pool(slot(instance("https://127.0.0.1:1/api/v1", sha256_fingerprints=(b"x",))))
