"""The framed path (CONNECT_ONLY + curl_easy_send/recv) and its fall back to a full transfer.

A scripted raw server answers each request with exactly the bytes a test gives it, so the
framing meets split heads, long bodies, chunked answers, closes and stalls. (Keep-alive reuse,
request shape, pinning before any byte and stalls on the usual server: test_transport_pool,
test_transport_tls, test_transport_failover — their GETs and sign POSTs are framed too.)"""

import json
import socket
import threading
import time

import pytest
from tp_helpers import instance, settle, slot, wait_for

from p11fast import _abi
from p11fast.errors import TransportError

AUTH = b"Authorization: Basic b3BlcmF0b3I6c2VjcmV0"
SIGN = b'{"mode":"ECDSA","message":"AAEC"}'


def ok(body=b'{"signature":"c2ln"}', *headers):
    head = [
        b"HTTP/1.1 200 OK",
        b"Content-Type: application/json",
        b"Content-Length: " + str(len(body)).encode(),
        *headers,
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


class ScriptServer:
    """Answers the n-th request with script[n]: bytes, or a list of bytes (sent apart, 20 ms
    between), or None (close the connection without answering). After the script: ok().
    Closes the connection after an answer saying `Connection: close`, or after every answer."""

    def __init__(self, script=(), close_after_each=False):
        self.script = list(script)
        self.close_after_each = close_after_each
        self.requests = []  # (request line, headers dict, body)
        self.connections = 0
        self.lock = threading.Lock()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self):
        return f"http://127.0.0.1:{self.port}/api/v1"

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.connections += 1
                self.conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _read_request(self, conn, buf):
        while b"\r\n\r\n" not in buf:
            chunk = conn.recv(65536)
            if not chunk:
                return None, b""
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode().split("\r\n")
        headers = dict(line.split(": ", 1) for line in lines[1:])
        length = int(headers.get("Content-Length", 0))
        while len(buf) < length:
            buf += conn.recv(65536)
        return (lines[0], headers, buf[:length]), buf[length:]

    def _serve(self, conn):
        buf = b""
        with conn:
            while True:
                try:
                    req, buf = self._read_request(conn, buf)
                except OSError:
                    return
                if req is None:
                    return
                with self.lock:
                    self.requests.append(req)
                    answer = self.script.pop(0) if self.script else ok()
                if answer is None:
                    return
                parts = answer if isinstance(answer, list) else [answer]
                for i, part in enumerate(parts):
                    if i:
                        time.sleep(0.02)
                    conn.sendall(part)
                if self.close_after_each or b"\r\nConnection: close\r\n" in parts[0]:
                    return

    def close_idle(self):
        """Closes every connection from the server side, as an HSM's idle timeout does."""
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self):
        self.sock.close()
        self.close_idle()


@pytest.fixture
def script(servers):
    return lambda answers=(), **kw: servers(ScriptServer, script=answers, **kw)


def sign(pool):
    return pool.call("POST", "/keys/k1/sign", SIGN, AUTH, "application/json")


def test_sign_requests_share_one_connection(script, pools):
    srv = script()
    pool = pools(slot(instance(srv.url())))
    for _ in range(10):
        assert sign(pool) == (200, b'{"signature":"c2ln"}', "application/json")
    assert srv.connections == 1
    line, headers, body = srv.requests[0]
    assert line == "POST /api/v1/keys/k1/sign HTTP/1.1"
    assert headers["Authorization"] == "Basic b3BlcmF0b3I6c2VjcmV0"
    assert body == SIGN
    stats = pool.stats()
    assert stats["connections_opened"] == 1
    assert stats["framing_fallbacks"] == 0


def test_head_and_body_split_over_many_reads(script, pools):
    body = json.dumps({"signature": "x" * 300_000}).encode()
    whole = ok(body)
    pieces = [whole[:5], whole[5:40], whole[40:90]] + [
        whole[i : i + 65536] for i in range(90, len(whole), 65536)
    ]
    srv = script([pieces, ok(b"")])
    pool = pools(slot(instance(srv.url())))
    assert sign(pool) == (200, body, "application/json")
    assert sign(pool) == (200, b"", "application/json")  # Content-Length: 0
    assert srv.connections == 1
    assert pool.stats()["framing_fallbacks"] == 0


def test_header_names_and_values_are_parsed_as_http_says(script, pools):
    odd = (
        b"HTTP/1.1 404 Not Found\r\ncontent-TYPE:  application/problem+json \r\n"
        b"X-Other: a:b\r\nCONTENT-LENGTH: 2\r\nConnection: keep-alive\r\n\r\n{}"
    )
    srv = script([odd])
    pool = pools(slot(instance(srv.url())))
    assert sign(pool) == (404, b"{}", "application/problem+json")
    assert sign(pool)[0] == 200
    assert srv.connections == 1


@pytest.mark.parametrize(
    "answer",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n"
        b'\r\n6\r\n{"a":1\r\n1\r\n}\r\n0\r\n\r\n',
        b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b'{"a":1}'),
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n"
        b'{"a":1}',  # no Content-Length: the body ends with the connection
        ok(b'{"a":1}', b"X-Padding: " + b"p" * 9000),  # a head longer than the framing's buffer
    ],
    ids=["chunked", "1xx", "no-length", "long-head"],
)
def test_unexpected_framing_is_redone_as_a_full_transfer(script, pools, answer):
    # The full transfer's request gets the same unexpected answer; libcurl decodes it.
    srv = script([answer, answer])
    pool = pools(slot(instance(srv.url())))
    status, body, ctype = sign(pool)
    assert (status, ctype) == (200, "application/json")
    assert json.loads(body) == {"a": 1}
    assert len(srv.requests) == 2  # sent framed, then again by libcurl
    assert srv.requests[0][0] == srv.requests[1][0]
    assert srv.requests[0][2] == srv.requests[1][2] == SIGN
    stats = pool.stats()
    assert stats["framing_fallbacks"] == 1
    assert stats["retries"] == 0
    assert sign(pool)[0] == 200  # the framed path is used again afterwards
    assert stats["framing_fallbacks"] == pool.stats()["framing_fallbacks"]


def test_requests_that_must_not_repeat_are_never_framed(script, pools):
    srv = script()
    pool = pools(slot(instance(srv.url())))
    pool.call("POST", "/keys/generate", b"{}", AUTH, "application/json")
    pool.call("PUT", "/keys/k1", b"{}", AUTH, "application/json")
    pool.call("DELETE", "/keys/k1", None, AUTH)
    pool.call("GET", "/keys", None, AUTH)
    sign(pool)
    # one connection per kind of handle: full transfers, framed (the GET and the sign)
    assert srv.connections == 2
    assert [r[0].split()[0] for r in srv.requests] == ["POST", "PUT", "DELETE", "GET", "POST"]


def test_connection_close_answer_is_used_then_the_connection_is_dropped(script, pools):
    srv = script([ok(b'{"a":1}', b"Connection: close")])
    pool = pools(slot(instance(srv.url())))
    assert sign(pool) == (200, b'{"a":1}', "application/json")
    settle(pool)  # the background reconnects; a caller meanwhile would open its own
    assert sign(pool)[0] == 200
    assert srv.connections == 2
    assert len(srv.requests) == 2
    assert pool.stats()["framing_fallbacks"] == 0


def test_http_1_0_answer_without_keep_alive_closes(script, pools):
    srv = script([b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\n{}"])
    pool = pools(slot(instance(srv.url())))
    assert sign(pool) == (200, b"{}", "")
    settle(pool)  # the background reconnects; a caller meanwhile would open its own
    assert sign(pool)[0] == 200
    assert srv.connections == 2


def test_bytes_after_the_response_drop_the_connection(script, pools):
    srv = script([ok(b"{}") + b"HTTP/1.1 200 OK\r\n"])
    pool = pools(slot(instance(srv.url())))
    assert sign(pool)[1] == b"{}"
    settle(pool)  # the background reconnects; a caller meanwhile would open its own
    assert sign(pool)[0] == 200
    assert srv.connections == 2


def test_server_closing_an_idle_connection_is_invisible(script, pools):
    srv = script()
    pool = pools(slot(instance(srv.url())))
    assert sign(pool)[0] == 200
    srv.close_idle()
    time.sleep(0.1)
    assert sign(pool)[0] == 200
    assert srv.connections == 2
    stats = pool.stats()
    assert stats["retries"] == 0
    assert stats["framing_fallbacks"] == 0
    assert stats["instances"][0]["up"] is True


def test_fresh_connection_closed_without_answer_is_a_failure(script, pools):
    srv = script([None, None])
    # no background warm-up: the caller's request opens the connection
    pool = pools(slot(instance(srv.url())), threads_allowed=False)
    with pytest.raises(TransportError) as exc:
        sign(pool)
    assert exc.value.error_code == _abi.ERR_CONNECT
    assert "without a response" in exc.value.message
    assert len(srv.requests) == 1  # a new connection is not retried behind the caller's back


def test_warmed_connection_closed_without_answer_is_retried_as_stale(script, pools):
    # A connection the background set up sat idle like any kept-alive one: the server may have
    # dropped it, so it gets the same single retry on a fresh connection.
    srv = script([None])
    pool = pools(slot(instance(srv.url())))
    assert wait_for(lambda: srv.connections == 1)  # warmed up before the first request
    assert sign(pool)[0] == 200
    assert len(srv.requests) == 2
    assert pool.stats()["retries"] == 0


def test_a_dropped_connection_is_refilled_in_the_background(script, pools):
    srv = script([ok(b'{"signature":"c2ln"}', b"Connection: close")])
    pool = pools(slot(instance(srv.url())))
    assert sign(pool)[0] == 200
    settle(pool)
    # warm-up, then the refill after the server's close: both before any further request
    assert wait_for(lambda: srv.connections == 2)
    assert len(srv.requests) == 1
    assert pool.stats()["background_setups"] == 2
    assert sign(pool)[0] == 200
    assert srv.connections == 2


def test_close_inside_the_body_is_a_failure(script, pools):
    srv = script([ok(b'{"signature":"abcdef"}')[:-5]], close_after_each=True)
    pool = pools(slot(instance(srv.url())))
    with pytest.raises(TransportError) as exc:
        sign(pool)
    assert exc.value.error_code == _abi.ERR_CONNECT
    assert "inside the response body" in exc.value.message


def test_stall_inside_the_head_times_out(script, pools):
    stall = ok()[:20]
    srv = script([stall])
    pool = pools(slot(instance(srv.url()), timeout=0.5))
    with pytest.raises(TransportError) as exc:
        sign(pool)
    assert exc.value.error_code == _abi.ERR_TIMEOUT
    assert sign(pool)[0] == 200  # the half-read connection was dropped: a new one answers
    signs = [r for r in srv.requests if r[0].startswith("POST")]
    assert len(signs) == 2  # (the instance's health check may have connected as well)
