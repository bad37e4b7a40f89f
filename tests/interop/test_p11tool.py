"""GnuTLS p11tool with `--provider` (p11-kit loads the module; libp11-kit exports a
C_GetFunctionList of its own, which the loader must not mistake for itself)."""

from __future__ import annotations

import json
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from tests.interop.conftest import KEYS, OPERATOR_PIN, TOKEN, host_env, key_uri


def p11tool(module_path: str, config: str, *args: str) -> str:
    env = host_env(config)
    env["GNUTLS_PIN"] = OPERATOR_PIN
    done = subprocess.run(
        ["p11tool", "--provider", module_path, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr  # --test-sign reports on stderr


def test_list_tokens_shows_the_token_url(module_path, hsm):
    out = p11tool(module_path, hsm.config_path, "--list-tokens")
    assert f"Label: {TOKEN}" in out
    assert f"manufacturer=p11fast;serial=0000000000000000;token={TOKEN}" in out


def test_list_all_after_login_shows_each_private_key_with_its_uri(module_path, login_config, api):
    out = p11tool(module_path, login_config, "--login", "--list-all")
    for key_id, *_ in KEYS[:4]:
        hex_id = "".join(f"%{b:02x}" for b in key_id.encode())
        assert f"id={hex_id};object={key_id};type=private" in out
    assert "Type: Private key (EC/ECDSA-SECP256R1)" in out
    assert "Type: Private key (RSA-2048)" in out
    assert "Type: Private key (EdDSA (Ed25519))" in out
    assert "Type: X.509 Certificate" in out


def test_list_mechanisms_offers_hsm_signatures(module_path, hsm):
    out = p11tool(module_path, hsm.config_path, "--list-mechanisms")
    for name in ("CKM_ECDSA ", "CKM_RSA_PKCS ", "CKM_RSA_PKCS_PSS ", "CKM_SHA256_RSA_PKCS "):
        line = next(line for line in out.splitlines() if name in line + " ")
        assert "hw" in line and "sign" in line, line


@pytest.mark.parametrize(
    ("key_id", "algorithm"), [("ecp256", "ECDSA-SHA256"), ("rsa2048", "RSA-SHA256")]
)
def test_test_sign_verifies_against_the_public_key_on_the_token(
    module_path, login_config, api, key_id, algorithm
):
    out = p11tool(module_path, login_config, "--login", "--test-sign", key_uri(key_id))
    assert f"Signing using {algorithm}... ok" in out
    assert "Verifying against private key parameters... ok" in out
    assert "Verifying against public key in the token... ok" in out


def test_generate_privkey_ed25519_makes_the_key_on_the_hsm(
    module_path, scratch_hsm, scratch_api, tmp_path
):
    # GnuTLS asks C_GenerateKeyPair for CKM_EDDSA here, not CKM_EC_EDWARDS_KEY_PAIR_GEN.
    out_file = tmp_path / "pub.pem"
    p11tool(
        module_path, scratch_hsm.config_path, "--login", "--generate-privkey", "ed25519",
        "--label", "gnutlsed", "--outfile", str(out_file), f"pkcs11:token={TOKEN}",
    )  # fmt: skip
    listed = scratch_api.expect(200, "GET", "/keys?label=gnutlsed")
    (key_id,) = [item["id"] for item in json.loads(listed)]
    assert scratch_api.key(key_id)["type"] == "Curve25519"
    assert serialization.load_pem_public_key(out_file.read_bytes()) == (
        serialization.load_pem_public_key(scratch_api.public_pem(key_id))
    )
