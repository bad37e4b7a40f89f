"""`p11fast check` talks to the HSM through the module's own transport: every connection it
sends anything on (credentials included) had its certificate verified as the module verifies
it, and no proxy of the environment is used."""

from __future__ import annotations

import datetime
import os
import socket
import ssl
import subprocess
import sys
import threading

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from p11fast.hsm.testing import ADMIN_PASSPHRASE, OPERATOR_PASSPHRASE
from tests.reliability.conftest import cluster, write_config
from tests.reliability.netutil import TcpProxy


@pytest.fixture(scope="module")
def hsm(key_state, tmp_path_factory):
    with cluster(key_state, tmp_path_factory.mktemp("check"), 1) as hsms:
        yield hsms


class Impostor:
    """A TLS server with a certificate of its own that answers like an HSM and records the
    head of every request it gets."""

    def __init__(self, directory) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "impostor")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(1).not_valid_before(now)
                .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
        pem = os.path.join(str(directory), "impostor.pem")
        with open(pem, "wb") as f:
            f.write(key.private_bytes(serialization.Encoding.PEM,
                                      serialization.PrivateFormat.PKCS8,
                                      serialization.NoEncryption()))
            f.write(cert.public_bytes(serialization.Encoding.PEM))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(pem)
        self.heads: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                head = b""
                while b"\r\n\r\n" not in head:
                    data = tls.recv(4096)
                    if not data:
                        return
                    head += data
                self.heads.append(head)
                body = b'{"state": "Operational"}' if b"/health/state" in head else b"[]"
                tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s"
                            % (len(body), body))
        except OSError:
            pass  # the client refused the certificate

    def close(self) -> None:
        self.listener.close()


class FirstConnectionToTheHsm(TcpProxy):
    """A front whose first connection reaches the HSM and every later one the impostor: a
    check that verifies the certificate once and then connects again unverified talks to it."""

    def __init__(self, hsm_port: int, impostor_port: int) -> None:
        self.hsm_port = hsm_port
        self.impostor_port = impostor_port
        super().__init__(hsm_port)

    @property
    def upstream_port(self) -> int:
        return self.hsm_port if self.accepted <= 1 else self.impostor_port

    @upstream_port.setter
    def upstream_port(self, port: int) -> None:
        pass  # chosen per connection


def check(config: str, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()}
    return subprocess.run([sys.executable, "-m", "p11fast", "check", "--config", config],
                          env={**environment, **env}, capture_output=True, text=True,
                          timeout=120)


def test_check_sends_credentials_only_over_a_verified_connection(hsm, tmp_path):
    impostor = Impostor(tmp_path)
    front = FirstConnectionToTheHsm(int(hsm.instances[0].port), impostor.port)
    try:
        config = write_config(tmp_path / "c.conf", [f"https://127.0.0.1:{front.port}/api/v1"],
                              hsm.fingerprint, operator_password=OPERATOR_PASSPHRASE)
        done = check(config)
    finally:
        front.close()
        impostor.close()
    sent = b"".join(impostor.heads)
    assert b"Authorization" not in sent
    assert impostor.heads == []  # not even a request without credentials
    assert done.returncode in (0, 1), done.stderr  # a finding, not a crash
    assert OPERATOR_PASSPHRASE not in done.stdout and ADMIN_PASSPHRASE not in done.stdout


def test_check_uses_no_proxy_from_the_environment(hsm, tmp_path):
    proxy = socket.create_server(("127.0.0.1", 0))
    proxy.settimeout(0)
    url = f"http://127.0.0.1:{proxy.getsockname()[1]}"
    config = write_config(tmp_path / "c.conf", [hsm.instances[0].url], hsm.fingerprint,
                          operator_password=OPERATOR_PASSPHRASE)
    try:
        done = check(config, https_proxy=url, HTTPS_PROXY=url, ALL_PROXY=url, all_proxy=url)
        try:
            proxy.accept()
            reached = True
        except BlockingIOError:
            reached = False
    finally:
        proxy.close()
    assert not reached
    assert done.returncode == 0, done.stdout + done.stderr

