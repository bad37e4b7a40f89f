"""HSM-side failures: each status the HSM can answer a signature with becomes the CKR that
p11fast.errors.from_http documents (the compiled sign path has its own copy of that table,
ckr_for_http, and must agree with it), after the retries the transport documents, with one log
line naming the instance and the reason."""

from __future__ import annotations

import time

import pytest

from p11fast import errors
from tests.reliability.conftest import ScriptHost, cluster, write_config
from tests.reliability.netutil import StatusInjector

RETRIES = 2


@pytest.fixture(scope="module")
def upstream(key_state, tmp_path_factory):
    with cluster(key_state, tmp_path_factory.mktemp("failures"), 1) as hsms:
        yield hsms.instances[0]


@pytest.fixture
def injected(upstream, module_path, host, tmp_path, request):
    """A script host on a slot of `fronts` injector instances, and the module's log file."""
    fronts = getattr(request, "param", 1)
    injector = StatusInjector(upstream.port, fronts)
    log = tmp_path / "module.log"
    config = write_config(
        tmp_path / "c.conf", injector.urls, retries=RETRIES, delay=0.05, log_file=str(log)
    )
    h = ScriptHost(host, module_path, config)
    try:
        assert h.sign(1)["ok"] == 1
        yield h, injector, log
    finally:
        h.close()
        injector.close()


def expected(status: int) -> int:
    return errors.from_http(status, errors.SIGN, "", "instance").ckr


def sign_with(h, injector, status):
    injector.sign_status = status
    before = injector.sign_requests
    result = h.sign(1)
    return result, injector.sign_requests - before


def test_every_http_status_maps_to_the_documented_ckr_on_the_compiled_sign_path(injected):
    h, injector, _ = injected
    disagree = {}
    for status in [*range(300, 429), *range(430, 500)]:  # 429 and 5xx are retried: below
        result, _ = sign_with(h, injector, status)
        if result["last_rv"] != expected(status):
            disagree[status] = (hex(result["last_rv"]), hex(expected(status)))
    assert disagree == {}


@pytest.mark.parametrize(
    "status,ckr_name",
    [
        (401, "CKR_USER_NOT_LOGGED_IN"),
        (403, "CKR_KEY_FUNCTION_NOT_PERMITTED"),
        (404, "CKR_KEY_HANDLE_INVALID"),
        (412, "CKR_TOKEN_NOT_PRESENT"),
    ],
)
def test_refusals_are_not_retried_and_logged_with_instance_and_reason(injected, status, ckr_name):
    from p11fast import ckr

    h, injector, log = injected
    result, attempts = sign_with(h, injector, status)
    assert result["last_rv"] == getattr(ckr, ckr_name) == expected(status)
    assert attempts == 1  # the HSM's answer: asking again changes nothing
    line = log.read_text().splitlines()[-1]
    assert injector.urls[0] in line and str(status) in line, line
    assert f"injected status {status}" in line, line  # the HSM's own reason


def test_rate_limited_signature_is_retried_after_the_limit_then_device_error(injected):
    h, injector, log = injected
    started = time.monotonic()
    result, attempts = sign_with(h, injector, 429)
    elapsed = time.monotonic() - started
    assert result["last_rv"] == expected(429) == 0x30  # CKR_DEVICE_ERROR
    assert attempts == RETRIES + 1
    assert elapsed >= RETRIES * 1.0  # at least a second between attempts after a 429
    assert "429" in log.read_text().splitlines()[-1]


def test_rate_limit_that_ends_within_the_retries_costs_no_error(injected):
    h, injector, _ = injected
    injector.sign_status = 429
    lift = time.monotonic() + 0.5
    import threading

    def lift_limit():
        time.sleep(max(0.0, lift - time.monotonic()))
        injector.sign_status = None

    threading.Thread(target=lift_limit).start()
    result = h.sign(1)
    assert result["ok"] == 1, result


@pytest.mark.parametrize("injected", [2], indirect=True)
@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_go_to_each_instance_then_the_retries_then_device_error(injected, status):
    h, injector, log = injected
    result, attempts = sign_with(h, injector, status)
    assert result["last_rv"] == expected(status) == 0x30
    assert attempts == len(injector.urls) + RETRIES
    line = log.read_text().splitlines()[-1]
    assert str(status) in line and any(url in line for url in injector.urls), line


@pytest.mark.parametrize("injected", [2], indirect=True)
def test_locked_everywhere_is_token_not_present_after_one_try_on_each_instance(injected):
    h, injector, log = injected
    result, attempts = sign_with(h, injector, 412)
    assert result["last_rv"] == expected(412) == 0xE0  # CKR_TOKEN_NOT_PRESENT
    assert attempts == len(injector.urls)  # no retry: waiting does not unlock an HSM
    assert "412" in log.read_text().splitlines()[-1]


def test_server_error_from_the_only_instance_is_its_answer_and_not_repeated(injected):
    h, injector, _ = injected
    result, attempts = sign_with(h, injector, 500)
    assert result["last_rv"] == 0x30
    assert attempts == 1
