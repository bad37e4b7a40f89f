"""OpenSSL through Debian's libengine-pkcs11-openssl: `pkcs11:` URIs for pkeyutl, req and
s_server. These use an HSM without Ed25519 keys: the engine crashes on a token that holds one."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import threading
import time

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding

from p11fast.hsm.testing import free_port
from tests.interop.conftest import OPERATOR_PIN, host_env, key_uri, public_key


def engine_env(openssl_conf: str, config: str) -> dict[str, str]:
    env = host_env(config)
    env["OPENSSL_CONF"] = openssl_conf
    return env


def openssl(openssl_conf: str, config: str, *args: str) -> subprocess.CompletedProcess:
    done = subprocess.run(
        ["openssl", *args],
        env=engine_env(openssl_conf, config),
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, (done.stdout + done.stderr).decode(errors="replace")
    return done


def self_signed(openssl_conf: str, config: str, key_id: str, path) -> x509.Certificate:
    openssl(
        openssl_conf, config, "req", "-x509", "-engine", "pkcs11", "-keyform", "engine",
        "-key", key_uri(key_id), "-sha256", "-days", "2", "-subj", "/CN=localhost",
        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1", "-out", str(path),
    )  # fmt: skip
    return x509.load_pem_x509_certificate(path.read_bytes())


MESSAGE = b"openssl pkeyutl signs this"


def test_pkeyutl_ecdsa_signature_after_login_by_uri_pin_verifies(
    openssl_conf, tls_login_config, tls_api, tmp_path
):
    (tmp_path / "digest").write_bytes(hashlib.sha256(MESSAGE).digest())
    openssl(
        openssl_conf, tls_login_config, "pkeyutl", "-sign", "-engine", "pkcs11",
        "-keyform", "engine", "-inkey", key_uri("ecp256", **{"pin-value": OPERATOR_PIN}),
        "-in", str(tmp_path / "digest"), "-out", str(tmp_path / "sig"),
    )  # fmt: skip
    public_key(tls_api, "ecp256").verify(
        (tmp_path / "sig").read_bytes(), MESSAGE, ec.ECDSA(hashes.SHA256())
    )


def test_pkeyutl_rsa_pkcs1_signature_verifies(openssl_conf, tls_hsm, tls_api, tmp_path):
    (tmp_path / "digest").write_bytes(hashlib.sha256(MESSAGE).digest())
    openssl(
        openssl_conf, tls_hsm.config_path, "pkeyutl", "-sign", "-engine", "pkcs11",
        "-keyform", "engine", "-inkey", key_uri("rsa2048"), "-pkeyopt", "digest:sha256",
        "-in", str(tmp_path / "digest"), "-out", str(tmp_path / "sig"),
    )  # fmt: skip
    public_key(tls_api, "rsa2048").verify(
        (tmp_path / "sig").read_bytes(), MESSAGE, padding.PKCS1v15(), hashes.SHA256()
    )


def test_dgst_rsa_pss_signature_verifies(openssl_conf, tls_hsm, tls_api, tmp_path):
    (tmp_path / "msg").write_bytes(MESSAGE)
    openssl(
        openssl_conf, tls_hsm.config_path, "dgst", "-sha256", "-engine", "pkcs11",
        "-keyform", "engine", "-sign", key_uri("rsa2048"), "-sigopt", "rsa_padding_mode:pss",
        "-sigopt", "rsa_pss_saltlen:32", "-out", str(tmp_path / "sig"), str(tmp_path / "msg"),
    )  # fmt: skip
    public_key(tls_api, "rsa2048").verify(
        (tmp_path / "sig").read_bytes(),
        MESSAGE,
        padding.PSS(padding.MGF1(hashes.SHA256()), 32),
        hashes.SHA256(),
    )


@pytest.mark.parametrize("key_id", ["ecp256", "rsa2048"])
def test_req_x509_makes_a_certificate_signed_by_the_hsm_key(
    openssl_conf, tls_hsm, tls_api, tmp_path, key_id
):
    cert = self_signed(openssl_conf, tls_hsm.config_path, key_id, tmp_path / "cert.pem")
    hsm_public = public_key(tls_api, key_id)
    assert cert.public_key() == hsm_public
    cert.verify_directly_issued_by(cert)
    openssl(
        openssl_conf, tls_hsm.config_path, "verify", "-CAfile", str(tmp_path / "cert.pem"),
        str(tmp_path / "cert.pem"),
    )  # fmt: skip


def wait_for_port(port: int, process: subprocess.Popen, deadline_s: float = 60) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        assert process.poll() is None, "server exited before listening"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def s_client_exchange(port: int, cafile, line: bytes, expect: bytes) -> str:
    """s_client sends a line, waits until `expect` comes back, then ends at EOF. Its output."""
    client = subprocess.Popen(
        [
            "openssl",
            "s_client",
            "-connect",
            f"127.0.0.1:{port}",
            "-CAfile",
            str(cafile),
            "-verify_return_error",
            "-verify_hostname",
            "localhost",
        ],  # fmt: skip
        env={k: v for k, v in os.environ.items() if k != "OPENSSL_CONF"},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    watchdog = threading.Timer(60, client.kill)
    watchdog.start()
    try:
        client.stdin.write(line)
        client.stdin.flush()
        seen = b""
        for received in client.stdout:
            seen += received
            if expect in received:
                break
        client.stdin.close()
        seen += client.stdout.read()
        client.wait()
    finally:
        watchdog.cancel()
        client.kill()
    return seen.decode(errors="replace")


@pytest.mark.parametrize("key_id", ["ecp256", "rsa2048"])
def test_s_server_completes_a_verified_tls_handshake_and_echoes(
    openssl_conf, tls_hsm, tls_api, tmp_path, key_id
):
    cert = tmp_path / "cert.pem"
    self_signed(openssl_conf, tls_hsm.config_path, key_id, cert)
    port = free_port()
    server = subprocess.Popen(
        [
            "openssl",
            "s_server",
            "-engine",
            "pkcs11",
            "-keyform",
            "engine",
            "-key",
            key_uri(key_id),
            "-cert",
            str(cert),
            "-accept",
            f"127.0.0.1:{port}",
            "-rev",
        ],  # fmt: skip
        env=engine_env(openssl_conf, tls_hsm.config_path),
        stdin=subprocess.PIPE,  # s_server stops at EOF on its standard input
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, server)
        out = s_client_exchange(port, cert, b"hello p11fast\n", expect=b"tsaf11p olleh")
    finally:
        server.kill()
        server.communicate()
    assert "Verify return code: 0 (ok)" in out
    assert "Cipher is (NONE)" not in out and "Protocol  : TLSv1.3" in out
    assert "tsaf11p olleh" in out  # -rev: the server echoes each line reversed
