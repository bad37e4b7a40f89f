"""Raw HTTP access to a software HSM for tests (imported by the tests in this folder)."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import time

import requests
import urllib3

from p11fast.hsm.testing import (
    ADMIN_PASSPHRASE,
    ADMIN_USER,
    OPERATOR_PASSPHRASE,
    OPERATOR_USER,
    HsmProcess,
)

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

ADMIN = (ADMIN_USER, ADMIN_PASSPHRASE)
OPERATOR = (OPERATOR_USER, OPERATOR_PASSPHRASE)


class Client:
    """Raw HTTP against one HSM: `client.get("/keys", auth=ADMIN)`."""

    def __init__(self, hsm: HsmProcess) -> None:
        self.hsm = hsm
        self.session = requests.Session()

    def request(self, method: str, path: str, **kwargs) -> requests.Response:
        kwargs.setdefault("timeout", 30)
        # per request: a REQUESTS_CA_BUNDLE in the environment overrides session.verify
        kwargs.setdefault("verify", False)
        return self.session.request(method, self.hsm.url + path, **kwargs)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def put(self, path: str, **kwargs) -> requests.Response:
        return self.request("PUT", path, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.request("DELETE", path, **kwargs)


def error_message(response: requests.Response) -> str:
    """The spec's error body; asserting on it checks the body is JSON with a message."""
    assert response.headers["Content-Type"].startswith("application/json"), response.text
    message = response.json()["message"]
    assert isinstance(message, str) and message
    return message


class HeldRequest:
    """A request whose body is sent in two parts: the server has started handling it (found
    its target, checked credentials) and waits for the rest while the test acts."""

    def __init__(
        self,
        hsm: HsmProcess,
        method: str,
        path: str,
        body: bytes,
        auth: tuple[str, str],
        content_type: str = "application/json",
    ) -> None:
        self.connection = connect(hsm)
        self.connection.putrequest(method, "/api/v1" + path)
        self.connection.putheader("Authorization", basic(auth))
        self.connection.putheader("Content-Type", content_type)
        self.connection.putheader("Content-Length", str(len(body)))
        self.connection.endheaders()
        self.connection.send(body[:1])
        self.rest = body[1:]
        time.sleep(0.3)  # let the server reach the body read; the outcome must not depend on it

    def finish(self) -> int:
        """Send the rest of the body; the response status."""
        self.connection.send(self.rest)
        response = self.connection.getresponse()
        response.read()
        self.connection.close()
        return response.status


def connect(hsm: HsmProcess, source: str | None = None) -> http.client.HTTPSConnection:
    """An unverified HTTPS connection, from the loopback address `source` if given."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return http.client.HTTPSConnection(
        hsm.host, hsm.port, context=context, timeout=30, source_address=source and (source, 0)
    )


def basic(auth: tuple[str, str]) -> str:
    return "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()


def status_from(hsm: HsmProcess, source: str, method: str, path: str, auth) -> int:
    """The status of a body-less request sent from another loopback address."""
    connection = connect(hsm, source)
    connection.request(method, "/api/v1" + path, headers={"Authorization": basic(auth)})
    status = connection.getresponse().status
    connection.close()
    return status


def tls_socket(hsm: HsmProcess) -> ssl.SSLSocket:
    """A raw TLS connection to the HSM, handshake done, for writing HTTP by hand."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context.wrap_socket(socket.create_connection((hsm.host, hsm.port), timeout=30))


def closed_by_server(sock: socket.socket, within: float = 20.0) -> bool:
    """Whether the server closes `sock` within `within` seconds (a bound on a hang); any
    bytes it sends first are read and dropped."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, min(0.5, deadline - time.monotonic())))
        try:
            if sock.recv(65536) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:  # reset, or a TLS connection cut without close_notify
            return True
    return False
