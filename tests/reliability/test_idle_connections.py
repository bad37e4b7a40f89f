"""Idle connection loss: pooled keep-alive connections that die while idle are replaced without
an error reaching the application — even with no retries configured."""

from __future__ import annotations

from tests.reliability.conftest import ScriptHost, cluster, write_config
from tests.reliability.netutil import TcpProxy


def test_connections_cut_while_idle_are_replaced_without_an_error(
    module_path, host, key_state, tmp_path
):
    with cluster(key_state, tmp_path, 1) as hsms:
        front = TcpProxy(hsms.instances[0].port)
        config = write_config(
            tmp_path / "c.conf",
            [f"https://127.0.0.1:{front.port}/api/v1"],
            hsms.fingerprint,
            retries=0,
        )
        h = ScriptHost(host, module_path, config)
        try:
            first = h.sign(10)
            opened = front.accepted
            cut = front.drop_all()  # a NAT/firewall forgets every idle flow
            second = h.sign(10)
        finally:
            h.close()
            front.close()
    assert first["failed"] == 0 and second["failed"] == 0, (first, second)
    assert second["ok"] == 10
    assert cut > 0
    assert front.accepted > opened  # the dead connection was replaced by a new one


def test_connections_left_over_from_before_a_server_restart_are_replaced_without_an_error(
    module_path, host, key_state, tmp_path
):
    with cluster(key_state, tmp_path, 1) as hsms:
        config = write_config(
            tmp_path / "c.conf", [hsms.instances[0].url], hsms.fingerprint, retries=0
        )
        h = ScriptHost(host, module_path, config)
        try:
            first = h.sign(10)
            hsms.instances[0].stop()
            hsms.instances[0].start()
            second = h.sign(10)
        finally:
            h.close()
    assert first["failed"] == 0, first
    assert second["failed"] == 0 and second["ok"] == 10, second
