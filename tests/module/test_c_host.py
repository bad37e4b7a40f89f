"""A multithreaded C host: sessions, login state and object lookups under concurrency."""

from __future__ import annotations

import os
import re
import subprocess

from tests.module.conftest import OPERATOR_PIN, host_env

HERE = os.path.dirname(os.path.abspath(__file__))
INCLUDE = os.path.join(HERE, "..", "..", "include")


def build_host(tmp_path, name: str) -> str:
    exe = str(tmp_path / name)
    subprocess.run(
        [
            "cc",
            "-O1",
            "-Wall",
            "-I",
            INCLUDE,
            os.path.join(HERE, f"{name}.c"),
            "-o",
            exe,
            "-ldl",
            "-lpthread",
        ],
        check=True,
    )
    return exe


def test_eight_threads_open_login_find_close_without_errors_or_leaked_sessions(
    module_path, hsm, api, tmp_path
):
    exe = build_host(tmp_path, "threads_host")
    done = subprocess.run(
        [exe, module_path, OPERATOR_PIN, "4"],
        env=host_env(hsm.config_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    found = re.search(r"ops=(\d+) errors=(\d+) sessions_left=(\d+) tokeninfo=0x0", done.stdout)
    assert found, done.stdout + done.stderr
    ops, errors, left = map(int, found.groups())
    assert ops > 100
    assert errors == 0, done.stderr[-2000:]
    assert left == 0
