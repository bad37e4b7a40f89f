"""The connection cap (callers beyond it wait, nothing reconnects), close while callers wait,
background warm-up, and the cap without threads. Counts, never timings."""

import json
import subprocess
import sys
import textwrap
import threading
import time
from contextlib import contextmanager

import pytest
from tp_helpers import HERE, ROOT, StallServer, instance, settle, slot, wait_for

from p11fast import _abi
from p11fast.errors import TransportError

SIGN = b'{"mode":"ECDSA","message":"AAEC"}'


def _sign(pool):
    return pool.call("POST", "/keys/k1/sign", SIGN, None, "application/json")[0]


def test_64_threads_share_exactly_the_cap_of_connections(servers, pools):
    srv = servers()
    srv.delay = 0.002  # requests overlap: every connection is busy while others wait
    pool = pools(slot(instance(srv.url(), max_idle_connections=8)))
    statuses = []
    errors = []
    start = threading.Barrier(64)

    def work():
        start.wait()
        try:
            for _ in range(20):
                statuses.append(_sign(pool))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=work) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = pool.stats()
    assert errors == []
    assert statuses == [200] * (64 * 20)
    assert srv.connections == 8
    assert srv.closed == 0  # none closed mid-run
    assert stats["connections_opened"] == 8
    assert stats["connections_converted"] == 0
    assert stats["connection_waits"] > 0
    assert stats["retries"] == 0


def test_close_wakes_waiting_callers_with_closed(servers):
    srv = servers()
    srv.delay = 3.0  # the one connection stays busy well past the waiters' wake-up
    pool = _abi.Pool(slot(instance(srv.url(), max_idle_connections=1), timeout=60))
    settle(pool)
    results = {}

    def work(i):
        try:
            results[i] = pool.call("GET", "/info")[0]
        except TransportError as e:
            results[i] = e.error_code

    busy = threading.Thread(target=work, args=(0,))
    busy.start()
    assert wait_for(lambda: len(srv.requests) == 1)
    waiters = [threading.Thread(target=work, args=(i,)) for i in range(1, 5)]
    for t in waiters:
        t.start()
    assert wait_for(lambda: pool.stats()["connection_waits"] == 4)
    pool.close()
    for t in waiters:
        t.join(timeout=2.0)  # bounded: they must not wait for the busy connection
    assert not any(t.is_alive() for t in waiters)
    assert [results[i] for i in range(1, 5)] == [_abi.ERR_CLOSED] * 4
    busy.join(timeout=30)
    assert results[0] == 200  # the request in flight finishes
    assert srv.connections == 1


def test_waiting_is_bounded_by_the_request_timeout(servers, pools):
    # One connection, a server that never answers, three callers in a row: the first holds the
    # connection until its request times out and hands it to the second, which holds it until
    # its own request times out; the third's wait ends at its own deadline first.
    stall = servers(StallServer)
    pool = pools(slot(instance(stall.url(), max_idle_connections=1), timeout=1.0))
    errors = {}

    def work(i):
        try:
            pool.call("GET", "/info")
        except TransportError as e:
            errors[i] = e

    threads = []
    for i in range(3):
        threads.append(threading.Thread(target=work, args=(i,)))
        threads[-1].start()
        if i == 0:  # the first holds the connection before the others come
            assert wait_for(lambda: pool.stats()["requests"] == 1)
            time.sleep(0.1)
        else:
            assert wait_for(lambda n=i: pool.stats()["connection_waits"] == n)
    for t in threads:
        t.join(timeout=30)
    assert sorted(errors) == [0, 1, 2]
    assert all(e.error_code == _abi.ERR_TIMEOUT for e in errors.values())
    assert "busy" in errors[2].message
    assert "busy" not in errors[0].message


def test_warm_up_connects_before_the_first_request(servers, pools):
    srv = servers()
    pool = _abi.Pool(slot(instance(srv.url())))
    try:
        assert wait_for(lambda: srv.connections == 1)
        assert srv.requests == []
        settle(pool)
        assert pool.stats()["background_setups"] == 1
        assert _sign(pool) == 200
        assert srv.connections == 1  # the first signature used the warmed connection
    finally:
        pool.close()


@contextmanager
def warming_up(servers, tls_context, tls_cert, handshake_delay: float, **slot_options):
    """A pool whose warm-up is in a TLS handshake the server holds for `handshake_delay` (later
    connections are not held)."""
    srv = servers(tls=tls_context)
    srv.handshake_delays = [handshake_delay]
    config = slot(instance(srv.url(), sha256_fingerprints=(tls_cert[2],)), **slot_options)
    pool = _abi.Pool(config)
    try:
        assert wait_for(lambda: srv.connections == 1)
        yield srv, pool
    finally:
        pool.close()


def test_a_request_during_the_warm_up_waits_for_its_connection(servers, tls_context, tls_cert):
    # A one-shot process (pkcs11-tool -L) asks right after C_Initialize: it must not pay for a
    # second TLS handshake while the warm-up's is under way.
    with warming_up(servers, tls_context, tls_cert, 0.3) as (srv, pool):
        assert pool.call("GET", "/info")[0] == 200
        assert srv.connections == 1
        assert pool.stats()["connections_opened"] == 1


def test_a_request_that_waited_for_a_failed_warm_up_fails_without_a_second_try(
    servers, tls_context, tls_cert
):
    # Against an HSM that never completes a handshake, a second attempt of its own would
    # double the time to the error. Here a second connection would succeed: the request must
    # still not be sent.
    with warming_up(servers, tls_context, tls_cert, 5.0, timeout=1) as (srv, pool):
        with pytest.raises(TransportError) as exc:
            pool.call("GET", "/info")
        assert exc.value.error_code == _abi.ERR_TIMEOUT
        assert "busy" not in exc.value.message
        assert srv.api_requests() == []


_CHILD = textwrap.dedent(
    """
    import json, os, sys, threading
    sys.path[:0] = [sys.argv[2], sys.argv[3]]
    from tp_helpers import instance, slot
    from p11fast import _abi

    tasks = lambda: len(os.listdir("/proc/self/task"))
    before = tasks()
    pool = _abi.Pool(slot(instance(sys.argv[1], max_idle_connections=2)),
                           threads_allowed=False)
    idle = tasks() - before
    first = pool.call("GET", "/info")[0]
    after = tasks() - before
    statuses = []

    def work():
        for _ in range(10):
            statuses.append(pool.call("GET", "/info")[0])

    ts = [threading.Thread(target=work) for _ in range(16)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    stats = pool.stats()
    pool.close()
    print(json.dumps({"idle": idle, "after": after, "first": first, "statuses": statuses,
                      "opened": stats["connections_opened"], "waits": stats["connection_waits"],
                      "setups": stats["background_setups"]}))
    """
)


def test_without_threads_no_thread_no_warm_up_and_still_capped(servers):
    srv = servers()
    srv.delay = 0.01
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, srv.url(), HERE, ROOT],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    got = json.loads(out)
    assert got["idle"] == 0 and got["after"] == 0  # no background thread at all
    assert got["setups"] == 0
    assert got["first"] == 200
    assert got["statuses"] == [200] * 160
    assert got["opened"] == 2 and srv.connections == 2
    assert got["waits"] > 0
    assert wait_for(lambda: srv.closed == 2)  # at the pool's close, at the end
