"""Unauthenticated clients cannot hold the HSM's connections: a TLS handshake or request head
that does not arrive in time closes the connection, an idle unauthenticated connection is
closed after the same time, a body that does not arrive gets 408, and beyond a number of
unauthenticated connections the oldest idle one is closed so that new clients get in. The
HSMs here run with short limits (server options) to keep the tests fast; the bounds passed to
`closed_by_server` are bounds on a hang, not performance thresholds."""

from __future__ import annotations

import socket

import requests
from hsm_client import ADMIN, basic, closed_by_server, connect, tls_socket

from p11fast.hsm.testing import running_hsm

PARTIAL_HEAD = b"GET /api/v1/health/state HTTP/1.1\r\nHost: hsm\r\n"


def test_a_request_head_that_does_not_arrive_in_time_closes_the_connection(tmp_path) -> None:
    with running_hsm(tmp_path / "hsm", serve_args=("--header-timeout", "1")) as hsm:
        stalled_head = tls_socket(hsm)
        stalled_head.sendall(PARTIAL_HEAD)
        no_handshake = socket.create_connection((hsm.host, hsm.port))
        assert closed_by_server(stalled_head)
        assert closed_by_server(no_handshake)
        assert requests.get(hsm.url + "/health/state", verify=False, timeout=30).ok


def test_an_idle_connection_stays_open_only_once_it_has_authenticated(tmp_path) -> None:
    with running_hsm(tmp_path / "hsm", serve_args=("--header-timeout", "1")) as hsm:
        public, authenticated = connect(hsm), connect(hsm)
        public.request("GET", "/api/v1/health/state")
        assert public.getresponse().read()
        authenticated.request("GET", "/api/v1/keys", headers={"Authorization": basic(ADMIN)})
        assert authenticated.getresponse().read()
        assert closed_by_server(public.sock)
        # Far past the header timeout, the same connection (http.client does not reconnect
        # an open one) still serves.
        authenticated.request("GET", "/api/v1/keys", headers={"Authorization": basic(ADMIN)})
        assert authenticated.getresponse().status == 200


def test_beyond_the_limit_the_oldest_idle_connections_close_and_new_clients_get_in(
    tmp_path,
) -> None:
    limits = ("--max-unauthenticated", "8", "--header-timeout", "600")
    with running_hsm(tmp_path / "hsm", serve_args=limits) as hsm:
        silent = [socket.create_connection((hsm.host, hsm.port)) for _ in range(30)]
        assert requests.get(hsm.url + "/health/state", verify=False, timeout=30).ok
        closed = [sock for sock in silent if closed_by_server(sock, within=0.5)]
        assert len(closed) >= len(silent) - 8
        assert silent[-1] not in closed  # the newest of them is still waited for


def test_a_request_body_that_does_not_arrive_in_time_gets_408(tmp_path) -> None:
    with running_hsm(tmp_path / "hsm", init=False, serve_args=("--body-timeout", "1")) as hsm:
        sock = tls_socket(hsm)
        sock.sendall(
            b"POST /api/v1/provision HTTP/1.1\r\nHost: hsm\r\nContent-Type: application/json\r\n"
            b'Content-Length: 200\r\n\r\n{"unlockPassphrase": '
        )
        sock.settimeout(20)
        answer = sock.recv(65536)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 408 ")


def test_an_update_image_that_does_not_arrive_in_time_gets_408(tmp_path) -> None:
    with running_hsm(tmp_path / "hsm", init=True, serve_args=("--body-timeout", "1")) as hsm:
        sock = tls_socket(hsm)
        sock.sendall(
            b"POST /api/v1/system/update HTTP/1.1\r\nHost: hsm\r\n"
            + f"Authorization: {basic(ADMIN)}\r\n".encode()
            + b"Content-Type: application/octet-stream\r\nContent-Length: 4096\r\n\r\n"
            + b"_NETHSM_UPDATE_\x00"
        )
        sock.settimeout(20)
        answer = sock.recv(65536)
        sock.close()
        assert answer.startswith(b"HTTP/1.1 408 ")
