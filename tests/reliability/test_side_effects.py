"""No duplicate side effects: a key generation, import or deletion whose response was lost
(the HSM did the work, the connection closed before the answer) is retried by the transport;
the retry must not create a second key, and the application sees the outcome of the first."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.reliability.conftest import PIN, cluster, fields, host_env, write_config
from tests.reliability.netutil import StatusInjector

HERE = os.path.dirname(os.path.abspath(__file__))
GENERATE = ("POST", r"^/api/v1/keys/generate$")
IMPORT = ("PUT", r"^/api/v1/keys/[^/]+$")
DELETE = ("DELETE", r"^/api/v1/keys/[^/]+$")


@pytest.fixture
def lossy(key_state, tmp_path):
    with cluster(key_state, tmp_path, 1) as hsms:
        front = StatusInjector(hsms.instances[0].port)
        config = write_config(
            tmp_path / "c.conf", front.urls, retries=2, delay=0.05,
            log_file=str(tmp_path / "module.log"), policy={"allow_key_import": True},
        )  # fmt: skip
        try:
            yield hsms.api(0), front, config
        finally:
            front.close()


def run_steps(module_path, config, *steps) -> dict[str, str]:
    done = subprocess.run(
        [sys.executable, os.path.join(HERE, "side_effects_host.py"), module_path, PIN, *steps],
        env=host_env(config), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    steps = [fields(line) | {"name": line.split()[0][5:]} for line in done.stdout.splitlines()]
    return {step["name"]: step["rv"] for step in steps}


def key_ids(api) -> list[str]:
    import json

    return sorted(k["id"] for k in json.loads(api.expect(200, "GET", "/keys")))


def test_generation_with_an_id_the_module_chose_is_retried_into_one_key_and_succeeds(
    module_path, lossy
):
    api, front, config = lossy
    before = key_ids(api)
    front.lose[GENERATE] = 1
    result = run_steps(module_path, config, "generate-chosen-id")
    new = sorted(set(key_ids(api)) - set(before))
    assert front.lost == ["POST /api/v1/keys/generate"], front.seen  # the loss really happened
    assert len(new) == 1, new
    assert result == {"generate-chosen-id": 0}


def test_generation_with_the_applications_cka_id_is_retried_into_one_key_and_succeeds(
    module_path, lossy
):
    api, front, config = lossy
    before = key_ids(api)
    front.lose[GENERATE] = 1
    result = run_steps(module_path, config, "generate-given-id")
    new = sorted(set(key_ids(api)) - set(before))
    assert front.lost == ["POST /api/v1/keys/generate"]
    assert len(new) == 1, new
    assert result == {"generate-given-id": 0}


def test_import_whose_answer_was_lost_creates_one_key_and_succeeds(module_path, lossy):
    api, front, config = lossy
    before = key_ids(api)
    front.lose[IMPORT] = 1
    result = run_steps(module_path, config, "import")
    new = sorted(set(key_ids(api)) - set(before))
    assert len(front.lost) == 1, front.lost
    assert len(new) == 1, new
    assert result == {"import": 0}


def test_destroy_whose_answer_was_lost_deletes_the_key_and_succeeds(module_path, lossy):
    api, front, config = lossy
    assert run_steps(module_path, config, "generate-given-id") == {"generate-given-id": 0}
    assert any(k != "ecp256" for k in key_ids(api))
    front.lose[DELETE] = 1
    result = run_steps(module_path, config, "destroy")
    assert len(front.lost) == 1, front.lost
    assert key_ids(api) == ["ecp256"]
    assert result == {"destroy": 0}
