"""Keep-alive reuse, request shape, concurrency, idle cap, close under load."""

import json
import threading

import pytest
from tp_helpers import free_port, instance, slot, wait_for

from p11fast import _abi
from p11fast.errors import TransportError


def test_sequential_requests_reuse_one_connection(servers, pools):
    srv = servers()
    pool = pools(slot(instance(srv.url())))
    for _ in range(20):
        status, body, ctype = pool.call("GET", "/info")
        assert status == 200
        assert ctype == "application/json"
        assert json.loads(body)["path"] == "/api/v1/info"
    assert srv.connections == 1
    stats = pool.stats()
    assert stats["connections_opened"] == 1
    assert stats["requests"] == 20
    assert stats["retries"] == 0


def test_methods_body_and_headers(servers, pools):
    srv = servers()
    pool = pools(slot(instance(srv.url())))
    auth = b"Authorization: Basic b3BlcmF0b3I6c2VjcmV0"
    body = b'{"mode":"ECDSA","message":"AAEC"}' + b"\x00\xff" * 800  # binary, > 1 KiB
    big = body * 4  # longer than the framed request buffer: sent apart from the head
    calls = [  # framed: GET and the sign POST; full transfers: the rest
        ("GET", "/keys/k1", None),
        ("POST", "/keys/k1/sign", body),
        ("POST", "/keys/k1/sign", big),
        ("POST", "/keys/k1", body),
        ("PUT", "/keys/k1", body),
        ("DELETE", "/keys/k1", None),
    ]
    for method, path, sent in calls:
        ctype = "application/json" if sent is not None else None
        status, out, _ = pool.call(method, path, sent, auth, ctype)
        assert status == 200
        assert json.loads(out)["method"] == method
    reqs = srv.api_requests()
    assert [(r[0], r[1], r[3]) for r in reqs] == [
        (m, "/api/v1" + p, b if b is not None else b"") for m, p, b in calls
    ]
    for method, _, headers, got in reqs:
        assert headers["Authorization"] == "Basic b3BlcmF0b3I6c2VjcmV0"
        assert headers["Host"] == f"127.0.0.1:{srv.port}"
        assert "Expect" not in headers
        if method in ("POST", "PUT"):
            assert headers["Content-Type"] == "application/json"
            assert headers["Content-Length"] == str(len(got))
    # a POST without body carries no libcurl default form content type, framed or not
    pool.call("POST", "/keys/k1/restrict", b"", auth)
    pool.call("POST", "/keys/k1/sign", b"", auth)
    for _, _, headers, _ in srv.api_requests()[-2:]:
        assert "Content-Type" not in headers
        assert headers["Content-Length"] == "0"
    assert srv.connections == 2  # one framed keep-alive connection, one for full transfers
    assert pool.stats()["framing_fallbacks"] == 0


def test_status_and_empty_body_are_returned_not_raised(servers, pools):
    srv = servers()
    srv.statuses = [404, 401, 204]
    pool = pools(slot(instance(srv.url())))
    assert pool.call("GET", "/keys/nope")[0] == 404
    assert pool.call("GET", "/keys/nope")[0] == 401
    assert pool.call("GET", "/keys/nope")[0] == 204


def test_proxy_environment_is_ignored(servers, pools, monkeypatch):
    srv = servers()
    dead = f"http://127.0.0.1:{free_port()}"
    for var in ("http_proxy", "HTTP_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.setenv(var, dead)
    monkeypatch.delenv("no_proxy", raising=False)
    monkeypatch.delenv("NO_PROXY", raising=False)
    pool = pools(slot(instance(srv.url())))
    assert pool.call("GET", "/info")[0] == 200
    assert len(srv.api_requests()) == 1


def test_eight_threads_share_the_pool(servers, pools):
    srv = servers()
    pool = pools(slot(instance(srv.url(), max_idle_connections=8)))
    errors = []
    done = []

    def work():
        try:
            for i in range(40):
                path = f"/keys/k{i}/sign"
                status, body, _ = pool.call("POST", path, b"{}", None, "application/json")
                assert status == 200 and json.loads(body)["path"] == "/api/v1" + path
            done.append(1)
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(done) == 8
    assert len(srv.api_requests()) == 320
    assert 1 <= srv.connections <= 8
    stats = pool.stats()
    assert stats["connections_opened"] == srv.connections
    assert stats["connections_converted"] == 0


def test_cap_makes_overlapping_callers_wait_not_reconnect(servers, pools):
    srv = servers()
    srv.delay = 0.3  # four calls overlap, one connection: three of them wait for it
    pool = pools(slot(instance(srv.url(), max_idle_connections=1)))
    barrier = threading.Barrier(4)
    statuses = []

    def work():
        barrier.wait()
        statuses.append(pool.call("GET", "/info")[0])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = pool.stats()
    assert statuses == [200] * 4
    assert srv.connections == 1
    assert stats["connections_opened"] == 1
    assert stats["connection_waits"] == 3


def test_the_cap_counts_both_kinds_of_connection(servers, pools):
    srv = servers()
    pool = pools(slot(instance(srv.url(), max_idle_connections=1)))
    assert pool.call("GET", "/info")[0] == 200  # framed
    assert pool.call("PUT", "/keys/k1", b"{}", None, "application/json")[0] == 200  # full
    assert pool.call("GET", "/info")[0] == 200
    stats = pool.stats()
    # one connection at a time: the idle one of the other kind is closed to make room
    assert stats["connections_converted"] == 2
    assert srv.connections == 3
    assert wait_for(lambda: srv.closed == 2)


def test_close_while_requests_are_in_flight(servers):
    srv = servers()
    srv.delay = 0.2
    pool = _abi.Pool(slot(instance(srv.url())))
    results = []
    started = threading.Barrier(5)

    def work():
        started.wait()
        try:
            results.append(pool.call("GET", "/info")[0])
        except TransportError as e:
            results.append(e.error_code)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    started.wait()
    pool.close()
    for t in threads:
        t.join()
    # in-flight requests complete; nothing crashes; the pool is closed for everyone after
    assert len(results) == 4
    assert set(results) <= {200, _abi.ERR_CLOSED}
    with pytest.raises(TransportError) as exc:
        pool.call("GET", "/info")
    assert exc.value.error_code == _abi.ERR_CLOSED
    pool.close()  # idempotent
