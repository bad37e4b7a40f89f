"""`p11fast check` against a running software HSM: one line per finding, exit 0 only if all pass."""

import subprocess
import sys

import pytest

from p11fast.hsm.testing import running_hsm


@pytest.fixture(scope="module")
def hsm(tmp_path_factory):
    with running_hsm(tmp_path_factory.mktemp("check") / "hsm") as hsm:
        yield hsm


def run_check(config_path):
    result = subprocess.run(
        [sys.executable, "-m", "p11fast", "check", "--config", str(config_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout.splitlines()


def variant(hsm, tmp_path, old, new):
    text = open(hsm.config_path).read()
    assert old in text
    path = tmp_path / "variant.conf"
    path.write_text(text.replace(old, new))
    path.chmod(0o600)
    return path


def test_healthy_hsm_passes_every_check(hsm):
    status, lines = run_check(hsm.config_path)
    assert status == 0
    assert lines[1:] == [
        "slot p11fast-dev",
        f"  instance {hsm.url}",
        "    ok    TLS certificate matches a pinned SHA-256 fingerprint",
        "    ok    reachable",
        "    ok    HSM state: Operational",
        '    ok    operator "operator": credentials valid',
        '    ok    administrator "admin": credentials valid',
        "    ok    keys visible: 0",
        "slot p11fast-dev: ok",
    ]


def test_wrong_operator_password_fails_with_what_to_do(hsm, tmp_path):
    status, lines = run_check(variant(hsm, tmp_path, "operatoroperator", "wrong-password"))
    assert status == 1
    failure = lines.index('    FAIL  operator "operator": credentials refused (HTTP 401)')
    assert "check username and password of the operator" in lines[failure + 1]
    assert lines[-1] == "slot p11fast-dev: FAILED"


def test_wrong_pin_fails_and_prints_the_actual_fingerprint(hsm, tmp_path):
    status, lines = run_check(variant(hsm, tmp_path, hsm.fingerprint, ":".join(["00"] * 32)))
    assert status == 1
    assert (
        f"    FAIL  TLS certificate {hsm.fingerprint} matches no sha256_fingerprints entry" in lines
    )


def test_unreachable_instance_fails(hsm, tmp_path):
    status, lines = run_check(variant(hsm, tmp_path, f":{hsm.port}/", ":1/"))
    assert status == 1
    assert any(line.startswith("    FAIL  not reachable") for line in lines)


def test_invalid_configuration_reports_file_and_line(tmp_path):
    path = tmp_path / "bad.conf"
    path.write_text("log_levl: Debug\n")
    status, lines = run_check(path)
    assert status == 1
    assert lines[0] == f"config: FAIL {path}:1: log_levl: unknown key (see docs/configuration.md)"
