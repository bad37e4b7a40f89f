"""Failover: a cluster member dies under load and comes back; no signature is lost."""

from __future__ import annotations

import time

from tests.reliability.conftest import cluster, report, start_load, write_config

THREADS = 8
SECONDS = 14
TIMEOUT = 5  # timeout_seconds: no call may come near it, a dead instance is skipped at once


def test_sigkilled_instance_costs_no_failed_signature_and_takes_load_again_after_restart(
    module_path, host, key_state, tmp_path
):
    with cluster(key_state, tmp_path, 3) as hsms:
        config = write_config(
            tmp_path / "p11fast.conf",
            [h.url for h in hsms.instances],
            hsms.fingerprint,
            retries=2,
            delay=0.05,
            timeout=TIMEOUT,
            log_file=str(tmp_path / "module.log"),
        )
        load = start_load(host, module_path, config, THREADS, SECONDS, TIMEOUT * 1000)
        try:
            time.sleep(3)
            victim = hsms.instances[1]
            before_kill = hsms.operations(1)
            victim.kill()
            time.sleep(3)  # the load runs on two instances
            victim.start()
            restarted_at = hsms.operations(1)
            out, err = load.communicate(timeout=SECONDS + 60)
            after = [hsms.operations(i) for i in range(3)]
        finally:
            if load.poll() is None:
                load.kill()
    result = report(out, "attempted")
    assert result["attempted"] > 100, out
    assert result["failed"] == 0, out + err[-2000:]
    assert result["ok"] == result["attempted"]
    # No call waited for a timeout: the dead instance was skipped, not tried and waited on.
    assert result["slow"] == 0, out
    # Every instance served, and the restarted one served again after the probe saw it back.
    assert before_kill > 0
    assert after[0] > 0 and after[2] > 0
    assert after[1] > restarted_at, (restarted_at, after)
