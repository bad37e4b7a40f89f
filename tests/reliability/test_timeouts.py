"""Stalls and timeouts: an instance that accepts connections and never answers costs at most
`timeout_seconds` per attempt; the worst case of one call is bounded by the documented formula
(retries.count + instances) * timeout_seconds + retries.count * delay_seconds + 3
(docs/reliability.md)."""

from __future__ import annotations

import time

import pytest

from tests.reliability.conftest import ScriptHost, cluster, write_config
from tests.reliability.netutil import TcpProxy

CKR_DEVICE_ERROR = 0x30


@pytest.fixture
def two_fronts(key_state, tmp_path):
    """One HSM behind two proxies: two instances of one slot that share everything."""
    with cluster(key_state, tmp_path, 1) as hsms:
        fronts = [TcpProxy(hsms.instances[0].port) for _ in range(2)]
        try:
            yield hsms, fronts
        finally:
            for front in fronts:
                front.close()


def urls(fronts):
    return [f"https://127.0.0.1:{f.port}/api/v1" for f in fronts]


def test_hung_instance_costs_one_timeout_then_calls_fail_over_and_skip_it(
    module_path, host, two_fronts, tmp_path
):
    hsms, fronts = two_fronts
    timeout = 2
    config = write_config(
        tmp_path / "c.conf", urls(fronts), hsms.fingerprint, retries=1, timeout=timeout
    )
    h = ScriptHost(host, module_path, config)
    try:
        assert h.sign(4)["failed"] == 0  # both instances carry keep-alive connections now
        fronts[0].mode = "stall"
        started = time.monotonic()
        result = h.sign(20)
        elapsed = time.monotonic() - started
    finally:
        h.close()
    assert result["attempted"] == 20 and result["failed"] == 0, result
    # The one call that met the hung instance waited for the timeout, then went elsewhere ...
    assert timeout * 1000 * 0.9 <= result["max_ms"] < timeout * 1000 + 2000, result
    # ... and no other call did: the instance was marked down and skipped.
    assert elapsed < 2 * timeout, elapsed


@pytest.mark.parametrize("threads", ["background probes", "disable_threads"])
def test_worst_case_of_a_call_to_a_hung_cluster_is_bounded_by_the_formula(
    module_path, host, two_fronts, tmp_path, threads
):
    hsms, fronts = two_fronts
    retries, timeout, delay = 2, 1, 0.2
    config = write_config(
        tmp_path / "c.conf",
        urls(fronts),
        hsms.fingerprint,
        retries=retries,
        delay=delay,
        timeout=timeout,
        disable_threads=threads == "disable_threads",
        log_file=str(tmp_path / "module.log"),
    )
    h = ScriptHost(host, module_path, config)
    try:
        assert h.sign(2)["failed"] == 0
        for front in fronts:
            front.mode = "stall"
        # Twice: the second call starts with every instance already marked down.
        results = []
        for _ in range(2):
            started = time.monotonic()
            results.append((h.sign(1), time.monotonic() - started))
    finally:
        h.close()
    formula = (retries + len(fronts)) * timeout + retries * delay + 3
    for result, elapsed in results:
        assert result["failed"] == 1 and result["last_rv"] == CKR_DEVICE_ERROR, result
        # Every attempt waited for its timeout (the retries happened) ...
        assert elapsed >= (retries + 1) * timeout * 0.9, elapsed
        # ... and the call ended: a correctness bound on a hang, not a performance assertion.
        assert elapsed < formula + 5, (elapsed, formula)
    # One line per failed call, naming the last instance tried and why.
    failures = [
        line for line in (tmp_path / "module.log").read_text().splitlines() if "C_Sign" in line
    ]
    assert len(failures) == 2, failures
    assert all("timeout" in line and "127.0.0.1:" in line for line in failures), failures
