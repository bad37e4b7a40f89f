"""OpenSC pkcs11-tool, a C host that starts its own interpreter through the loader."""

from __future__ import annotations

import subprocess

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding

from tests.hosts import host_env
from tests.hosts import pkcs11_tool as tool
from tests.hosts import pkcs11_tool_sign as sign
from tests.module.conftest import OPERATOR_PIN


def test_info_names_the_library(module_path, hsm):
    out = tool(module_path, hsm.config_path, "-I")
    assert "Cryptoki version 3.0" in out  # pkcs11-tool takes the 3.0 interface
    assert "p11fast" in out


def test_slot_list_shows_the_token_of_the_running_hsm(module_path, hsm):
    out = tool(module_path, hsm.config_path, "-L")
    assert "token label        : p11fast-dev" in out
    assert "token state:   uninitialized" not in out


def test_mechanism_list_offers_hsm_signatures_as_hardware(module_path, hsm):
    out = tool(module_path, hsm.config_path, "-M")
    for name in ("ECDSA-SHA256", "SHA256-RSA-PKCS", "SHA256-RSA-PKCS-PSS", "EDDSA"):
        line = next(line for line in out.splitlines() if line.strip().startswith(name + ","))
        assert "hw" in line and "sign" in line


def test_objects_after_login_include_each_key_with_its_public_values(
    module_path, login_config, api
):
    out = tool(module_path, login_config, "--login", "--pin", OPERATOR_PIN, "-O")
    for key_id in ("ecp256", "rsa2048", "ed1"):
        assert f"label:      {key_id}" in out
    ec_pub = serialization.load_pem_public_key(api.public_pem("ecp256"))
    point = ec_pub.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    assert point.hex() in out.replace(" ", "").replace("\n", "")


def test_wrong_pin_is_refused(module_path, login_config, api):
    done = subprocess.run(
        ["pkcs11-tool", "--module", module_path, "--login", "--pin", "wrong-pin-123", "-O"],
        env=host_env(login_config),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "CKR_PIN_INCORRECT" in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("key_id", "mechanism", "hash_cls"),
    [
        ("ecp256", "ECDSA-SHA256", hashes.SHA256),
        ("ecp384", "ECDSA-SHA384", hashes.SHA384),
        ("ecp521", "ECDSA-SHA512", hashes.SHA512),
    ],
)
def test_ecdsa_signature_verifies_with_the_hsm_public_key(
    module_path, login_config, api, tmp_path, key_id, mechanism, hash_cls
):
    data = b"p11fast signs this"
    sig = sign(
        module_path,
        login_config,
        tmp_path,
        key_id,
        mechanism,
        data,
        "--signature-format",
        "openssl",
    )
    serialization.load_pem_public_key(api.public_pem(key_id)).verify(
        sig, data, ec.ECDSA(hash_cls())
    )


def test_rsa_pkcs1_sha256_signature_verifies(module_path, login_config, api, tmp_path):
    data = b"rsa pkcs1 v1.5"
    sig = sign(module_path, login_config, tmp_path, "rsa2048", "SHA256-RSA-PKCS", data)
    serialization.load_pem_public_key(api.public_pem("rsa2048")).verify(
        sig, data, padding.PKCS1v15(), hashes.SHA256()
    )


def test_rsa_pss_sha256_signature_verifies(module_path, login_config, api, tmp_path):
    data = b"rsa pss"
    sig = sign(
        module_path,
        login_config,
        tmp_path,
        "rsa2048",
        "SHA256-RSA-PKCS-PSS",
        data,
        "--mgf",
        "MGF1-SHA256",
        "--salt-len",
        "-1",
    )
    serialization.load_pem_public_key(api.public_pem("rsa2048")).verify(
        sig, data, padding.PSS(padding.MGF1(hashes.SHA256()), 32), hashes.SHA256()
    )


def test_eddsa_signature_verifies(module_path, login_config, api, tmp_path):
    data = b"ed25519 over the raw message"
    sig = sign(module_path, login_config, tmp_path, "ed1", "EDDSA", data)
    public = serialization.load_pem_public_key(api.public_pem("ed1"))
    assert isinstance(public, ed25519.Ed25519PublicKey)
    public.verify(sig, data)


def test_signature_with_configured_password_needs_no_login(module_path, hsm, api, tmp_path):
    data = b"no login"
    (tmp_path / "data").write_bytes(data)
    tool(
        module_path,
        hsm.config_path,
        "--sign",
        "--id",
        b"ecp256".hex(),
        "-m",
        "ECDSA-SHA256",
        "-i",
        str(tmp_path / "data"),
        "-o",
        str(tmp_path / "sig"),
        "--signature-format",
        "openssl",
    )
    serialization.load_pem_public_key(api.public_pem("ecp256")).verify(
        (tmp_path / "sig").read_bytes(), data, ec.ECDSA(hashes.SHA256())
    )


def test_digest_matches_sha256(module_path, hsm, tmp_path):
    import hashlib

    (tmp_path / "data").write_bytes(b"digest me" * 1000)
    tool(
        module_path,
        hsm.config_path,
        "--hash",
        "-m",
        "SHA256",
        "-i",
        str(tmp_path / "data"),
        "-o",
        str(tmp_path / "out"),
    )
    assert (tmp_path / "out").read_bytes() == hashlib.sha256(b"digest me" * 1000).digest()


def test_random_bytes_come_from_the_hsm(module_path, hsm, tmp_path):
    tool(module_path, hsm.config_path, "--generate-random", "3000", "-o", str(tmp_path / "rnd"))
    data = (tmp_path / "rnd").read_bytes()
    assert len(data) == 3000 and len(set(data)) > 200


def test_disable_thread_pool_of_nethsm_pkcs11_is_accepted(module_path, hsm, api, tmp_path):
    # nethsm-pkcs11 2.2 runs its worker pool's jobs on the calling thread with this; p11fast
    # always does, so a configuration carrying it simply works.
    config = tmp_path / "nopool.conf"
    with open(hsm.config_path) as f:
        config.write_text("disable_thread_pool: true\n" + f.read())
    config.chmod(0o600)
    data = b"signed with disable_thread_pool"
    sig = sign(module_path, str(config), tmp_path, "ecp256", "ECDSA-SHA256", data,
               "--signature-format", "openssl")  # fmt: skip
    serialization.load_pem_public_key(api.public_pem("ecp256")).verify(
        sig, data, ec.ECDSA(hashes.SHA256())
    )
