"""A slot's instances are one cluster: a request one instance cannot serve for an
instance-level reason goes to another whatever `retries` says (here: none, the default), the
failing instance leaves the rotation until a probe finds it Operational, and a request that is
not safe to resend moves only when it provably was not executed. Counted at the servers."""

import json
import threading
import time

import pytest
from tp_helpers import HangUpServer, StallServer, free_port, instance, slot, wait_for

from p11fast import _abi
from p11fast.errors import TransportError

SIGN = "/keys/k1/sign"
GENERATE = "/keys/generate"


def _sign(pool):
    return pool.call("POST", SIGN, b'{"mode":"ECDSA","message":"AA=="}', None, "application/json")


def _generate(pool):
    return pool.call("POST", GENERATE, b'{"type":"EC_P256"}', None, "application/json")


def _port(answer):
    return json.loads(answer[1])["port"]


def _dead_url():
    return f"http://127.0.0.1:{free_port()}/api/v1"


def _locked(servers):
    srv = servers()
    srv.state = "Locked"
    srv.default_status = 412
    return srv


def test_a_refused_connection_sends_the_signature_to_the_other_instance(servers, pools):
    good = servers()
    pool = pools(slot(instance(_dead_url()), instance(good.url())))
    answers = [_sign(pool) for _ in range(4)]
    assert [(a[0], _port(a)) for a in answers] == [(200, good.port)] * 4
    stats = pool.stats()
    assert (stats["failovers"], stats["retries"]) == (1, 0)
    assert stats["instances"][0]["up"] is False


def test_a_412_from_one_instance_sends_the_signature_to_the_other(servers, pools):
    locked, good = _locked(servers), servers()
    pool = pools(slot(instance(locked.url()), instance(good.url())))
    answers = [_sign(pool) for _ in range(4)]
    assert [(a[0], _port(a)) for a in answers] == [(200, good.port)] * 4
    assert len(locked.api_requests()) == 1  # then out of rotation
    assert pool.stats()["instances"][0]["up"] is False


def test_a_412_from_every_instance_is_the_answer_after_one_try_on_each(servers, pools):
    a, b = _locked(servers), _locked(servers)
    pool = pools(slot(instance(a.url()), instance(b.url()), retries=2))
    assert _sign(pool)[0] == 412
    assert (len(a.api_requests()), len(b.api_requests())) == (1, 1)
    assert pool.stats()["retries"] == 0  # Locked is not a failure that waiting repairs


def test_a_locked_instance_comes_back_only_once_the_probe_finds_it_operational(servers, pools):
    locked, good = _locked(servers), servers()
    pool = pools(slot(instance(locked.url()), instance(good.url())))
    _sign(pool)
    # Alive (/health/alive is 200 while Locked) but not Operational: it stays out.
    assert wait_for(lambda: len(locked.health_requests()) >= 2)
    assert pool.stats()["instances"][0]["up"] is False
    assert [_port(_sign(pool)) for _ in range(4)] == [good.port] * 4
    assert len(locked.api_requests()) == 1
    locked.state, locked.default_status = "Operational", 200
    assert wait_for(lambda: pool.stats()["instances"][0]["up"])
    assert {_port(_sign(pool)) for _ in range(4)} == {locked.port, good.port}


def test_a_5xx_sends_the_signature_to_the_other_instance(servers, pools):
    bad, good = servers(), servers()
    bad.default_status = 503
    pool = pools(slot(instance(bad.url()), instance(good.url())))
    answer = _sign(pool)
    assert (answer[0], _port(answer)) == (200, good.port)
    assert len(bad.api_requests()) == 1


def test_a_5xx_from_every_instance_tries_each_once_and_never_the_same_twice(servers, pools):
    a, b, c = servers(), servers(), servers()
    for srv in (a, b, c):
        srv.default_status = 500
    pool = pools(slot(instance(a.url()), instance(b.url()), instance(c.url())))
    assert _sign(pool)[0] == 500
    assert [len(s.api_requests()) for s in (a, b, c)] == [1, 1, 1]


def test_a_stalled_instance_holds_only_the_call_already_waiting_on_it(servers, pools):
    stall, good = servers(StallServer), servers()
    pool = pools(slot(instance(stall.url()), instance(good.url()), timeout=3))
    first = []
    waiting = threading.Thread(target=lambda: first.append(_sign(pool)))
    waiting.start()  # round robin starts at the stalled instance
    try:
        assert wait_for(lambda: pool.stats()["instances"][0]["in_flight"] == 1)
        # While that call waits, the stalled instance is still in rotation, and yet:
        assert [_port(_sign(pool)) for _ in range(20)] == [good.port] * 20
    finally:
        waiting.join(30)
    assert (first[0][0], _port(first[0])) == (200, good.port)  # it failed over after its timeout
    assert pool.stats()["failovers"] == 1  # no other call went to the stalled instance


def test_a_refused_key_generation_goes_to_the_other_instance(servers, pools):
    good = servers()
    pool = pools(slot(instance(_dead_url()), instance(good.url())))
    answer = _generate(pool)
    assert (answer[0], _port(answer)) == (200, good.port)
    assert pool.stats()["failovers"] == 1


def test_a_key_generation_refused_with_412_goes_to_the_other_instance(servers, pools):
    locked, good = _locked(servers), servers()
    pool = pools(slot(instance(locked.url()), instance(good.url())))
    answer = _generate(pool)
    assert (answer[0], _port(answer)) == (200, good.port)


def test_a_key_generation_whose_answer_was_lost_is_not_sent_elsewhere(servers, pools):
    hang, good = servers(HangUpServer), servers()
    pool = pools(slot(instance(hang.url()), instance(good.url())), threads_allowed=False)
    with pytest.raises(TransportError) as exc:
        _generate(pool)
    assert exc.value.error_code == _abi.ERR_CONNECT
    assert (hang.requests, len(good.api_requests())) == (1, 0)


def test_a_key_generation_answered_with_5xx_is_not_sent_elsewhere(servers, pools):
    bad, good = servers(), servers()
    bad.default_status = 500
    pool = pools(slot(instance(bad.url()), instance(good.url())))
    assert _generate(pool)[0] == 500
    assert (len(bad.api_requests()), len(good.api_requests())) == (1, 0)


def test_a_tls_silent_instance_fails_in_the_connect_phase_and_even_key_generation_moves(
    servers, pools
):
    silent, good = servers(StallServer), servers()
    timeout = 8  # connecting may take CONNECT_TIMEOUT_MS (5 s) of it
    pool = pools(
        slot(
            instance(f"https://127.0.0.1:{silent.port}/api/v1"),
            instance(good.url()),
            timeout=timeout,
        ),
        threads_allowed=False,  # no background set-up: the call makes the connection
    )
    started = time.monotonic()
    answer = _generate(pool)
    elapsed = time.monotonic() - started
    assert (answer[0], _port(answer)) == (200, good.port)
    assert elapsed < timeout  # a bound: the handshake, not the whole timeout, was waited for


def test_timeouts_are_finite_when_timeout_seconds_is_unset(servers, pools):
    pool = pools(slot(instance(servers().url()), timeout=None))
    settings = pool.stats()["settings"]
    assert settings["timeout_ms"] == _abi.DEFAULT_TIMEOUT_SECONDS * 1000 > 0
    assert settings["slow_timeout_ms"] == _abi.DEFAULT_SLOW_TIMEOUT_SECONDS * 1000 > 0
    assert 0 < settings["connect_timeout_ms"] <= settings["timeout_ms"]
