"""`p11fast check` against a running software HSM: one line per finding, exit 0 only if all pass."""

import subprocess
import sys

import pytest
import yaml

from p11fast.hsm.testing import ADMIN_PASSPHRASE, ADMIN_USER, running_hsm
from tests.hsm_api import HsmApi

TOKEN_URI = "pkcs11:model=NetHSM;manufacturer=p11fast;serial=0000000000000000;token=p11fast-dev"


@pytest.fixture(scope="module")
def hsm(tmp_path_factory):
    with running_hsm(tmp_path_factory.mktemp("check") / "hsm") as hsm:
        yield hsm


def run_check(config_path, *flags):
    result = subprocess.run(
        [sys.executable, "-m", "p11fast", "check", "--config", str(config_path), *flags],
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
        f"  token {TOKEN_URI}",
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


def test_a_missing_configuration_says_where_to_get_one(tmp_path):
    status, lines = run_check(tmp_path / "absent.conf")
    assert status == 1
    assert lines == [
        f"config: FAIL {tmp_path / 'absent.conf'}: configuration file not found",
        "        → docs/configuration.md has the search path and every key; "
        "`p11fast hsm init` writes a file for the software HSM",
    ]


def test_an_http_error_is_the_hsms_message_and_what_to_do(hsm, tmp_path):
    # The operator fails as "rushed"; the administrator "rushed" then asks within the second
    # the HSM holds that user's logins back after a failure: HTTP 429. A user of its own, whose
    # credentials the HSM has not seen succeed (it would not check them again).
    user = {"realName": "Rushed", "role": "Administrator", "passphrase": "rushedrushed"}
    HsmApi(hsm.url, ADMIN_USER, ADMIN_PASSPHRASE).expect(201, "PUT", "/users/rushed", user)
    with open(hsm.config_path) as f:
        cfg = yaml.safe_load(f)
    slot = cfg["slots"][0]
    slot["operator"] = {"username": "rushed", "password": "wrong-password"}
    slot["administrator"] = {"username": "rushed", "password": "rushedrushed"}
    path = tmp_path / "rushed.conf"
    path.write_text(yaml.safe_dump(cfg))
    path.chmod(0o600)
    status, lines = run_check(path)
    assert status == 1
    (line,) = [line for line in lines if line.startswith('    FAIL  administrator "rushed"')]
    prefix = '    FAIL  administrator "rushed": HTTP 429 Too Many Requests: '
    assert line.startswith(prefix) and "b'" not in line and len(line) > len(prefix), line
    assert lines[lines.index(line) + 1] == (
        "          → the HSM slows logins down after a failed one: wait a second and check again"
    )


def test_uris_name_the_token_and_every_object_as_p11tool_does(hsm, tmp_path):
    api = HsmApi(hsm.url, ADMIN_USER, ADMIN_PASSPHRASE)
    api.generate("EC_P256", ["ECDSA_Signature"], "uriec")
    try:
        status, lines = run_check(hsm.config_path, "--uris")
    finally:
        api.delete("uriec")
    assert status == 0
    objects = lines[lines.index("  objects") + 1 : -1]
    assert objects == [
        f"    {TOKEN_URI};id=%75%72%69%65%63;object=uriec;type=private",
        f"    {TOKEN_URI};id=%75%72%69%65%63;object=uriec;type=public",
    ]
