"""Fork: a C host (no Python of its own, so only the loader's pthread_atfork handlers protect
it) forks after C_Initialize; parent and children keep working, nothing leaks."""

from __future__ import annotations

import pytest

from p11fast.hsm.testing import free_port
from tests.reliability.conftest import KEY_ID, PIN, cluster, report, run_host, write_config

FORKS = 50


@pytest.fixture(scope="module")
def hsm_config(key_state, tmp_path_factory):
    directory = tmp_path_factory.mktemp("fork")
    with cluster(key_state, directory, 1) as hsms:
        # A second instance that is down: the module's probe thread runs while the host forks.
        down = f"https://127.0.0.1:{free_port()}/api/v1"
        yield write_config(
            directory / "c.conf", [hsms.instances[0].url, down], hsms.fingerprint, retries=1
        )


def run_forks(host, module_path, config, mode):
    done = run_host(host, config, "fork", module_path, PIN, KEY_ID, str(FORKS), mode, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    return report(done.stdout, "forks"), done.stderr


def test_children_that_initialise_again_work_and_fifty_forks_leak_no_thread_or_descriptor(
    module_path, host, hsm_config
):
    result, stderr = run_forks(host, module_path, hsm_config, "reinit")
    assert result["children_ok"] == FORKS, stderr[-3000:]
    assert result["children_failed"] == 0
    assert result["threads_before"] >= 2  # the host's and the module's probe thread
    # The parent signs between forks with the session it had before them.
    assert result["parent_ok"] == FORKS
    assert result["threads_after"] == result["threads_before"], result
    assert result["fds_after"] == result["fds_before"], result


def test_children_that_do_not_initialise_get_not_initialized_and_can_initialise_later(
    module_path, host, hsm_config
):
    result, stderr = run_forks(host, module_path, hsm_config, "noreinit")
    assert result["children_ok"] == FORKS, stderr[-3000:]
    assert result["parent_ok"] == FORKS
    assert result["threads_after"] == result["threads_before"], result
    assert result["fds_after"] == result["fds_before"], result
