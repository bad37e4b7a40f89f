"""The benchmark harness itself: benchmarks/p11load.c builds warning-free and drives a real
PKCS#11 module (SoftHSM2, with its own token directory). No timing assertions: this machine's
numbers are noise; only "it ran, it signed, nothing failed"."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
PIN = "1234"

pytestmark = pytest.mark.skipif(
    not (os.path.exists(SOFTHSM) and shutil.which("cc") and shutil.which("softhsm2-util")
         and shutil.which("pkcs11-tool")),
    reason="needs cc, SoftHSM2 and pkcs11-tool (Debian: build-essential softhsm2 opensc)",
)


@pytest.fixture(scope="module")
def p11load(tmp_path_factory) -> str:
    exe = str(tmp_path_factory.mktemp("build") / "p11load")
    subprocess.run(
        ["cc", "-O2", "-Wall", "-Wextra", "-Werror", "-rdynamic", f"-I{ROOT}/include",
         f"{ROOT}/benchmarks/p11load.c", "-o", exe, "-ldl", "-lpthread"],
        check=True,
    )
    return exe


@pytest.fixture(scope="module")
def softhsm_env(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("softhsm")
    (d / "tokens").mkdir()
    (d / "softhsm2.conf").write_text(f"directories.tokendir = {d / 'tokens'}\n"
                                     "objectstore.backend = file\nlog.level = ERROR\n")
    env = dict(os.environ, SOFTHSM2_CONF=str(d / "softhsm2.conf"))
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", "smoke", "--pin", PIN,
                    "--so-pin", "12345678"], env=env, check=True, capture_output=True)
    subprocess.run(["pkcs11-tool", "--module", SOFTHSM, "--token-label", "smoke", "--login",
                    "--pin", PIN, "--keypairgen", "--key-type", "EC:prime256v1", "--label", "k",
                    "--id", "a1"], env=env, check=True, capture_output=True)
    return env


def run(p11load: str, env: dict, *args: str) -> tuple[int, dict]:
    done = subprocess.run([p11load, "--module", SOFTHSM, "--pin", PIN, "--duration", "1",
                           "--warmup", "0.2", "--json", *args],
                          env=env, capture_output=True, text=True, timeout=60)
    return done.returncode, json.loads(done.stdout)


@pytest.mark.parametrize("select", [("--label", "k"), ("--id", "a1")])
def test_signs_from_two_threads_without_errors(p11load, softhsm_env, select):
    rc, r = run(p11load, softhsm_env, "--threads", "2", *select)
    assert rc == 0, r
    assert r["ops"] > 0 and r["errors"] == 0 and r["warmup_errors"] == 0
    assert r["threads"] == 2 and r["mech"] == "ecdsa"
    assert 0 < r["p50_us"] <= r["p99_us"] <= r["max_us"]
    assert r["cpu_us_per_op"] > 0
    assert r["conn_opened_measured"] == 0  # a local token opens no connection


def test_errors_are_counted_by_ckr_and_fail_the_exit_status(p11load, softhsm_env):
    # SoftHSM2 2.6 has no CKM_ECDSA_SHA256: every operation fails the same way.
    rc, r = run(p11load, softhsm_env, "--label", "k", "--mech", "ecdsa-sha256")
    assert rc == 1
    assert r["ops"] == 0 and r["errors"] > 0
    assert set(r["errors_by_ckr"]) == {"CKR_MECHANISM_INVALID"}
