"""Concurrency: 64 threads mixing every kind of call for a bounded time."""

from __future__ import annotations

from tests.reliability.conftest import KEY_ID, PIN, cluster, fields, run_host, write_config

THREADS = 64
SECONDS = 15


def test_sixty_four_threads_of_mixed_calls_finish_without_errors_leaks_or_deadlock(
    module_path, host, key_state, tmp_path
):
    with cluster(key_state, tmp_path, 1) as hsms:
        config = write_config(
            tmp_path / "c.conf", [hsms.instances[0].url], hsms.fingerprint, retries=1, timeout=10
        )
        # The time bound is the deadlock check: a stuck thread fails the run here.
        done = run_host(
            host, config, "mixed", module_path, PIN, KEY_ID, str(THREADS), str(SECONDS),
            timeout=SECONDS + 60,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    counts = fields(next(line for line in lines if line.startswith("attempted=")))
    usage = fields(next(line for line in lines if line.startswith("rss1_kb=")))
    assert counts["attempted"] > 1000, counts
    assert counts["failed"] == 0, done.stderr[-3000:]
    assert counts["ok"] == counts["attempted"]
    assert usage["sessions_left"] == 0 and usage["tokeninfo"] == 0
    # Stable between the two windows: pools and caches were warm at the first one.
    assert usage["fds2"] <= usage["fds1"] + 2, usage
    assert usage["rss2_kb"] <= usage["rss1_kb"] * 1.10 + 2048, usage
