"""Cluster chaos: two members of one slot, eight C threads signing, and one member failing in
turn — SIGKILL and restart, lock and unlock, 500s, 503s, a TLS-silent stall. With the default
configuration (no `retries`, no `timeout_seconds`) plus a second instance, not one signature
fails, and the failed member takes load again once a probe finds it Operational.

The stall's cost on the other threads is reported (printed, and recorded as a property of the
test in the JUnit XML), not asserted: only counts are."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from p11fast._abi import DEFAULT_TIMEOUT_SECONDS

from p11fast.hsm.testing import UNLOCK_PASSPHRASE
from tests.reliability.conftest import Cluster, cluster, report, start_load, write_config
from tests.reliability.netutil import StatusInjector, TcpProxy

THREADS = 8
LEAD = 2.0  # seconds of normal load before the fault
SETTLE = 3.0  # seconds of load after the recovery: the probe brings the member back
DEFAULT_TIMEOUT = DEFAULT_TIMEOUT_SECONDS  # what the stall costs the calls already on it
SLOW_MS = 1000
BUCKET_S = 0.1  # the host's timeline resolution


@dataclass
class Fault:
    """How member 1 is reached (its URL) and how it fails and recovers."""

    url: str
    fail: Callable[[], None]
    recover: Callable[[], None]
    seconds: float  # how long it stays failed


@contextmanager
def direct(hsms: Cluster, kind: str) -> Iterator[Fault]:
    member = hsms.instances[1]
    api = hsms.api(1)
    if kind == "sigkill":
        yield Fault(member.url, member.kill, member.start, 2.0)
    else:
        yield Fault(
            member.url,
            lambda: api.expect(204, "POST", "/lock"),
            lambda: api.expect(204, "POST", "/unlock", {"passphrase": UNLOCK_PASSPHRASE}),
            4.0,
        )


@contextmanager
def injected(hsms: Cluster, status: int) -> Iterator[Fault]:
    front = StatusInjector(hsms.instances[1].port)

    def fail() -> None:
        front.sign_status = status

    def recover() -> None:
        front.sign_status = None

    try:
        yield Fault(front.urls[0], fail, recover, 3.0)
    finally:
        front.close()


@contextmanager
def stalled(hsms: Cluster) -> Iterator[Fault]:
    proxy = TcpProxy(hsms.instances[1].port)

    def mode(m: str) -> Callable[[], None]:
        return lambda: setattr(proxy, "mode", m)

    try:
        # Longer than the request timeout: the calls waiting on it pay it, once.
        yield Fault(
            f"https://127.0.0.1:{proxy.port}/api/v1",
            mode("stall"),
            mode("pass"),
            DEFAULT_TIMEOUT + 3.0,
        )
    finally:
        proxy.close()


FAULTS = {
    "sigkill": lambda hsms: direct(hsms, "sigkill"),
    "lock": lambda hsms: direct(hsms, "lock"),
    "500": lambda hsms: injected(hsms, 500),
    "503": lambda hsms: injected(hsms, 503),
    "stall": stalled,
}


@pytest.fixture(scope="module")
def members(key_state, tmp_path_factory) -> Iterator[Cluster]:
    with cluster(key_state, tmp_path_factory.mktemp("chaos"), 2) as hsms:
        yield hsms


def timeline(stdout: str) -> list[int]:
    for line in stdout.splitlines():
        if line.startswith("timeline="):
            return [int(n) for n in line.split("=", 1)[1].split(",") if n]
    raise AssertionError(f"no timeline in:\n{stdout}")


def rate(counts: list[int], start: float, end: float) -> float:
    """Signatures per second between two times (seconds since the threads started)."""
    window = counts[int(start / BUCKET_S) : int(end / BUCKET_S)]
    return sum(window) / (len(window) * BUCKET_S) if window else 0.0


def slowest_calls(stdout: str, failed_at: float) -> str:
    """Each thread's slowest call: how long, and when it started relative to the fault."""
    threads = [report(line, "thread") for line in stdout.splitlines() if line.startswith("thread=")]
    return " ".join(
        f"{t['max_ms']}ms@{t['max_at_ms'] / 1000 - failed_at:+.1f}s"
        for t in sorted(threads, key=lambda t: t["max_ms"])
    )


@pytest.mark.parametrize("kind", list(FAULTS))
def test_a_failing_member_costs_no_signature_with_the_default_configuration(
    kind, members, module_path, host, tmp_path, record_property
):
    with FAULTS[kind](members) as fault:
        config = write_config(
            tmp_path / "p11fast.conf",
            [members.instances[0].url, fault.url],
            members.fingerprint,
            log_file=str(tmp_path / "module.log"),
            retries=None,
        )
        seconds = int(LEAD + fault.seconds + SETTLE + 2)
        load = start_load(host, module_path, config, THREADS, seconds, SLOW_MS)
        try:
            started = time.monotonic()
            time.sleep(LEAD)
            failed_at = time.monotonic() - started
            fault.fail()
            time.sleep(fault.seconds)
            fault.recover()
            recovered_at = time.monotonic() - started
            # The member is counted after its recovery (a restarted one from its restart).
            served_before = members.operations(1)
            try:
                out, err = load.communicate(timeout=seconds + 3 * DEFAULT_TIMEOUT)
            except subprocess.TimeoutExpired:
                pytest.fail(f"{kind}: the signing threads hung (a call waited without a bound)")
        finally:
            if load.poll() is None:
                load.kill()
                load.communicate()
        served_after = members.operations(1)
    result = report(out, "attempted")
    counts = timeline(out)
    slowest = slowest_calls(out, failed_at)
    summary = (
        f"{kind}: attempted={result['attempted']} failed={result['failed']} "
        f"slow(>={SLOW_MS}ms)={result['slow']} "
        f"slowest call per thread (duration@start after the fault)=[{slowest}] "
        f"sig/s before={rate(counts, 0.5, failed_at):.0f} "
        f"during={rate(counts, failed_at, recovered_at):.0f} "
        f"first second={rate(counts, failed_at, failed_at + 1):.0f} "
        f"after={rate(counts, recovered_at + 1, seconds):.0f}"
    )
    print(summary)
    record_property("chaos", summary)
    assert result["attempted"] > 100, out
    assert result["failed"] == 0, summary + "\n" + out + err[-3000:]
    # The member came back into rotation once a probe found it Operational.
    assert served_after > served_before, (kind, served_before, served_after)
