"""Secrets never reach a log; TLS is verified unless the configuration explicitly says not to,
and risky configurations are warned about on every C_Initialize."""

from __future__ import annotations

import base64

import pytest

from p11fast.hsm.testing import ADMIN_PASSPHRASE, ADMIN_USER, OPERATOR_USER
from tests.reliability.conftest import (
    KEY_ID,
    PIN,
    cluster,
    fields,
    report,
    run_host,
    write_config,
)

WRONG_PIN = "wrong-pin-5e1f9a"
CKR_OK, CKR_PIN_INCORRECT = 0, 0xA0
CKR_KEY_TYPE_INCONSISTENT = 0x63


@pytest.fixture(scope="module")
def hsm(key_state, tmp_path_factory):
    with cluster(key_state, tmp_path_factory.mktemp("secrets"), 1) as hsms:
        yield hsms


def secrets() -> dict[str, str]:
    """Every form in which a credential could leak into a line of text."""
    found = {}
    pairs = [(OPERATOR_USER, PIN), (ADMIN_USER, ADMIN_PASSPHRASE)]
    pairs += [(OPERATOR_USER, WRONG_PIN), (ADMIN_USER, WRONG_PIN)]
    for user, password in pairs:
        found[password] = password
        basic = base64.b64encode(f"{user}:{password}".encode()).decode()
        found[f"basic {user}:{password}"] = basic
        found[f"basic {user}:{password} (unpadded)"] = basic.rstrip("=")
    found["Authorization header"] = "Authorization"
    found["Basic scheme"] = "Basic "
    return found


def test_a_full_flow_at_trace_level_writes_no_pin_password_or_credentials(
    module_path, host, hsm, tmp_path
):
    log = tmp_path / "module.log"
    config = write_config(
        tmp_path / "c.conf",
        [hsm.instances[0].url],
        hsm.fingerprint,
        log_level="Trace",
        log_file=str(log),
        retries=1,  # the HSM answers 429 for a second after a wrong password: wait it out
    )
    done = run_host(host, config, "flow", module_path, PIN, WRONG_PIN, KEY_ID)
    assert done.returncode == 0, done.stderr
    steps = {k: v for line in done.stdout.splitlines() for k, v in fields(line).items()}
    assert steps["wrong_login"] == CKR_PIN_INCORRECT
    assert steps["login"] == CKR_OK and steps["sign"] == CKR_OK
    assert steps["refused"] == CKR_KEY_TYPE_INCONSISTENT
    assert steps["so_wrong_login"] == CKR_PIN_INCORRECT
    text = log.read_text() + done.stderr
    assert len(text.splitlines()) >= 5  # the flow really was logged
    leaked = {name: value for name, value in secrets().items() if value in text}
    assert leaked == {}


def test_tls_is_verified_by_default_and_an_unverifiable_hsm_is_no_token(
    module_path, host, hsm, tmp_path
):
    log = tmp_path / "module.log"
    # No pin, no cacert: the self-signed certificate must be checked against the system roots.
    config = write_config(tmp_path / "c.conf", [hsm.instances[0].url], None, log_file=str(log))
    done = run_host(host, config, "inits", module_path, "1")
    result = report(done.stdout, "init")
    assert result["init"] == CKR_OK
    assert result["present"] == 0
    assert result["open"] == 0xE0  # CKR_TOKEN_NOT_PRESENT
    assert "certificate" in log.read_text().lower()


def test_danger_insecure_cert_is_warned_about_on_every_initialise(module_path, host, hsm, tmp_path):
    log = tmp_path / "module.log"
    config = write_config(
        tmp_path / "c.conf",
        [hsm.instances[0].url],
        None,
        log_file=str(log),
        log_level="Warn",
        instance_extra={"danger_insecure_cert": True},
    )
    done = run_host(host, config, "inits", module_path, "3")
    results = [fields(line) for line in done.stdout.splitlines() if line.startswith("init=")]
    assert [r["present"] for r in results] == [1, 1, 1]  # it works, unverified
    warnings = [line for line in log.read_text().splitlines() if "danger_insecure_cert" in line]
    assert len(warnings) == 3, log.read_text()
    assert all("WARN" in line for line in warnings)


def test_a_config_file_with_a_password_readable_by_others_is_warned_about(
    module_path, host, hsm, tmp_path
):
    log = tmp_path / "module.log"
    config = write_config(
        tmp_path / "c.conf",
        [hsm.instances[0].url],
        hsm.fingerprint,
        log_file=str(log),
        log_level="Warn",
        mode=0o644,
    )
    done = run_host(host, config, "inits", module_path, "2")
    assert [fields(line)["init"] for line in done.stdout.splitlines()] == [0, 0]
    warnings = [line for line in log.read_text().splitlines() if config in line and "WARN" in line]
    assert len(warnings) == 2, log.read_text()
    assert ADMIN_PASSPHRASE not in log.read_text()


def test_a_private_config_file_gets_no_permission_warning(module_path, host, hsm, tmp_path):
    log = tmp_path / "module.log"
    config = write_config(
        tmp_path / "c.conf", [hsm.instances[0].url], hsm.fingerprint, log_file=str(log), mode=0o600
    )
    done = run_host(host, config, "inits", module_path, "1")
    assert report(done.stdout, "init")["init"] == 0
    assert config not in log.read_text()
