"""Round robin, failover, probes, timeouts, retries; counted at the servers."""

import json
import time

import pytest
from tp_helpers import HangUpServer, Server, StallServer, free_port, instance, slot

from p11fast import _abi
from p11fast.errors import TransportError


def _ports_answering(pool, n):
    return [json.loads(pool.call("GET", "/info")[1])["port"] for _ in range(n)]


def _wait_up(pool, index, seconds=5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if pool.stats()["instances"][index]["up"]:
            return True
        time.sleep(0.05)
    return False


def test_round_robin_over_two_instances(servers, pools):
    a, b = servers(), servers()
    pool = pools(slot(instance(a.url()), instance(b.url())))
    ports = _ports_answering(pool, 10)
    assert ports.count(a.port) == 5 and ports.count(b.port) == 5
    assert a.connections == 1 and b.connections == 1


def test_dead_instance_fails_over_then_is_skipped_at_once(servers, pools):
    good = servers()
    dead_url = f"http://127.0.0.1:{free_port()}/api/v1"
    pool = pools(slot(instance(dead_url), instance(good.url()), retries=1, timeout=4))
    t0 = time.monotonic()
    ports = _ports_answering(pool, 10)
    elapsed = time.monotonic() - t0
    assert ports == [good.port] * 10
    stats = pool.stats()
    assert stats["instances"][0]["up"] is False
    # at most the first call that happened to pick the dead instance needed a retry
    assert stats["retries"] <= 1
    assert elapsed < 2  # coarse: no call waited for a timeout


def test_down_instance_comes_back_after_the_probe(servers, pools):
    good = servers()
    port = free_port()
    pool = pools(slot(instance(f"http://127.0.0.1:{port}/api/v1"), instance(good.url()), retries=1))
    _ports_answering(pool, 4)
    assert pool.stats()["instances"][0]["up"] is False
    back = servers(port=port)
    assert _wait_up(pool, 0), "background probe did not see the instance back"
    assert len(back.health_requests()) >= 1
    ports = _ports_answering(pool, 10)
    assert ports.count(back.port) == 5 and ports.count(good.port) == 5


def test_all_instances_down_are_tried_anyway(servers, pools):
    port = free_port()
    pool = pools(slot(instance(f"http://127.0.0.1:{port}/api/v1")))
    with pytest.raises(TransportError) as exc:
        pool.call("GET", "/info")
    assert exc.value.error_code == _abi.ERR_CONNECT
    assert exc.value.instance_url == f"http://127.0.0.1:{port}/api/v1"
    back = servers(port=port)
    # the only instance is down, but a request still goes to it (no wait for the probe)
    assert pool.call("GET", "/info")[0] == 200
    assert len(back.api_requests()) == 1
    assert pool.stats()["instances"][0]["up"] is True


def test_stall_costs_the_timeout_then_fails_over(servers, pools):
    stall = servers(StallServer)
    good = servers()
    timeout = 1.0
    pool = pools(slot(instance(stall.url()), instance(good.url()), retries=1, timeout=timeout))
    t0 = time.monotonic()
    status, body, _ = pool.call("GET", "/info")  # round robin starts at the stalled instance
    first = time.monotonic() - t0
    assert status == 200 and json.loads(body)["port"] == good.port
    assert first >= timeout * 0.9
    assert (pool.stats()["failovers"], pool.stats()["retries"]) == (1, 0)
    assert pool.stats()["instances"][0]["up"] is False
    t0 = time.monotonic()
    assert _ports_answering(pool, 5) == [good.port] * 5
    assert time.monotonic() - t0 < timeout / 2  # the stalled instance is skipped


def test_timeout_without_other_instance(servers, pools):
    stall = servers(StallServer)
    pool = pools(slot(instance(stall.url()), timeout=0.5))
    with pytest.raises(TransportError) as exc:
        pool.call("GET", "/info")
    assert exc.value.error_code == _abi.ERR_TIMEOUT


def test_retry_count_is_honoured(servers, pools):
    hang = servers(HangUpServer)
    pool = pools(slot(instance(hang.url()), retries=3))
    with pytest.raises(TransportError) as exc:
        pool.call("POST", "/keys/generate", b"{}", None, "application/json")
    assert exc.value.error_code == _abi.ERR_CONNECT
    assert hang.requests == 4  # 1 + retries.count
    assert pool.stats()["retries"] == 3


def test_no_retry_configured_means_one_request(servers, pools):
    hang = servers(HangUpServer)
    # the caller makes the connection: a warmed-up idle one failing without an answer would be
    # retried once as stale (test_transport_framing)
    pool = pools(slot(instance(hang.url())), threads_allowed=False)
    with pytest.raises(TransportError):
        pool.call("GET", "/info")
    assert hang.requests == 1


def test_429_is_retried_after_at_least_a_second(servers, pools):
    srv = servers()
    srv.statuses = [429]
    pool = pools(slot(instance(srv.url()), retries=2))
    t0 = time.monotonic()
    assert pool.call("GET", "/info")[0] == 200
    assert time.monotonic() - t0 >= 0.9
    assert len(srv.api_requests()) == 2


def test_429_when_retries_run_out_is_returned(servers, pools):
    srv = servers()
    srv.default_status = 429
    pool = pools(slot(instance(srv.url())))
    assert pool.call("GET", "/info")[0] == 429
    assert len(srv.api_requests()) == 1


def test_5xx_moves_to_another_instance(servers, pools):
    bad, good = servers(), servers()
    bad.default_status = 503
    pool = pools(slot(instance(bad.url()), instance(good.url()), retries=2))
    status, body, _ = pool.call("GET", "/info")  # starts at the failing instance
    assert status == 200 and json.loads(body)["port"] == good.port
    assert len(bad.api_requests()) == 1


def test_5xx_of_the_only_instance_is_its_answer(servers, pools):
    srv = servers()
    srv.default_status = 500
    pool = pools(slot(instance(srv.url()), retries=3))
    assert pool.call("GET", "/info")[0] == 500
    assert len(srv.api_requests()) == 1


def test_5xx_everywhere_is_returned_after_retries(servers, pools):
    a, b = servers(), servers()
    a.default_status = b.default_status = 502
    pool = pools(slot(instance(a.url()), instance(b.url()), retries=2))
    assert pool.call("GET", "/info")[0] == 502
    # each instance once (failover), then the retries
    assert len(a.api_requests()) + len(b.api_requests()) == 2 + 2


def test_keepalive_and_idle_age_options_are_accepted(servers, pools):
    srv = servers()
    keepalive = type("K", (), {"time_seconds": 30, "interval_seconds": 5, "retries": 3})()
    pool = pools(slot(instance(srv.url()), keepalive=keepalive, max_idle_duration=1))
    assert pool.call("GET", "/info")[0] == 200
    assert pool.call("GET", "/info")[0] == 200
    assert srv.connections == 1
    time.sleep(2.2)  # idle longer than connections_max_idle_duration: not reused
    assert pool.call("GET", "/info")[0] == 200
    assert srv.connections == 2


def test_server_restart_while_idle_is_invisible(pools):
    port = free_port()
    srv = Server(port=port)
    pool = pools(slot(instance(srv.url())))
    try:
        assert pool.call("GET", "/info")[0] == 200
        srv.stop()
        srv = Server(port=port)
        # the idle keep-alive connection died; libcurl notices and reconnects, no error
        assert pool.call("GET", "/info")[0] == 200
        assert pool.stats()["retries"] == 0
    finally:
        srv.stop()
