"""Fork, and threads_allowed=False (run in a fresh interpreter so its thread count is exact)."""

import json
import os
import subprocess
import sys
import textwrap

from tp_helpers import ROOT, Server, free_port, instance, slot

from p11fast import _abi
from p11fast.errors import TransportError


def test_forked_child_gets_closed_and_parent_keeps_its_connection(
    servers, tls_context, tls_cert, pools
):
    srv = servers(tls=tls_context)
    pool = pools(slot(instance(srv.url(), sha256_fingerprints=(tls_cert[2],))))
    assert pool.call("GET", "/info")[0] == 200
    pid = os.fork()
    if pid == 0:  # child: only the transport runs here, then _exit
        code = 1
        try:
            pool.call("GET", "/info")
        except TransportError as e:
            code = 0 if e.error_code == _abi.ERR_CLOSED else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    # the child neither used nor shut down the parent's TLS connection: still the same one
    for _ in range(3):
        assert pool.call("GET", "/info")[0] == 200
    assert srv.connections == 1
    assert len(srv.api_requests()) == 4


_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from types import SimpleNamespace as NS
    from p11fast import _abi

    ports, retries, threads_allowed = json.loads(sys.argv[1])
    tasks = lambda: len(os.listdir("/proc/self/task"))
    before = tasks()
    inst = [NS(url=f"http://127.0.0.1:{p}/api/v1", max_idle_connections=None,
               sha256_fingerprints=(), danger_insecure_cert=False, cacert=None) for p in ports]
    cfg = NS(label="t", instances=inst, retries=NS(count=retries, delay_seconds=0),
             timeout_seconds=2, tcp_keepalive=None, connections_max_idle_duration=None)
    pool = _abi.Pool(cfg, threads_allowed=threads_allowed)
    try:
        pool.call("GET", "/info")  # every port is closed: all attempts fail
    except _abi.TransportError:
        pass
    down = sum(not i["up"] for i in pool.stats()["instances"])
    print(json.dumps({"down": down}), flush=True)
    sys.stdin.readline()  # the parent starts the servers
    time.sleep(1.1)  # an instance is re-checked at most once a second
    status = pool.call("GET", "/info")[0]
    after = tasks()
    stats = pool.stats()
    pool.close()
    print(json.dumps({"status": status, "threads": after - before,
                      "health_checks": stats["health_checks"]}), flush=True)
    """
)


def _run_child(retries, n_instances, threads_allowed):
    ports = [free_port() for _ in range(n_instances)]
    env = dict(os.environ, PYTHONPATH=ROOT)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, json.dumps([ports, retries, threads_allowed])],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    first = json.loads(child.stdout.readline())
    srvs = [Server(port=p) for p in ports]
    try:
        for s in srvs:
            s.default_status = 503  # every API request fails over and uses up the retries
        child.stdin.write("go\n")
        child.stdin.flush()
        second = json.loads(child.stdout.readline())
        assert child.wait(timeout=30) == 0
        api = sum(len(s.api_requests()) for s in srvs)
        health = sum(len(s.health_requests()) for s in srvs)
    finally:
        for s in srvs:
            s.stop()
    return first, second, api, health


def test_without_threads_no_thread_is_created_and_inline_checks_are_capped():
    retries = 2
    first, second, api, health = _run_child(retries, 5, False)
    assert first["down"] == 5  # every instance tried once (failover), then the retries
    assert second["threads"] == 0
    assert second["status"] == 503
    # 3 inline checks at most; the instances they found Operational took the call in turn
    # (failover), then the retries went to instances out of rotation
    assert health == 3 and second["health_checks"] == 3
    assert api == 3 + retries
    # the bound for one API call: retries.count + instances + 3 requests
    assert api + health <= retries + 5 + 3


def test_with_threads_one_probe_thread_checks_in_the_background():
    first, second, api, health = _run_child(1, 2, True)
    assert first["down"] == 2
    assert second["threads"] == 1  # the process-wide probe thread, started on first failure
    assert second["status"] == 503
    assert api == 3  # both instances (failover), then the one retry
