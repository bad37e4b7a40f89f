"""PKCS#11 URIs (RFC 7512): `p11fast check` prints the token's and, with --uris, every object's
as GnuTLS's p11tool lists them, and a printed URI is what the OpenSSL engine signs with."""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
from collections.abc import Iterator

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from p11fast.hsm.testing import ADMIN_PASSPHRASE, ADMIN_USER, HsmProcess, running_hsm
from tests.hosts import host_env
from tests.hsm_api import HsmApi
from tests.interop.conftest import OPERATOR_PIN, public_key, store_certificate
from tests.interop.test_openssl_engine import openssl

# A label with what URIs must percent-encode: a space, ';', '%', '/', and UTF-8.
LABEL = "signing key; 100% ünïcode/x"


@pytest.fixture(scope="module")
def uri_hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HsmProcess]:
    with running_hsm(str(tmp_path_factory.mktemp("uri-hsm"))) as hsm:
        api = HsmApi(hsm.url, ADMIN_USER, ADMIN_PASSPHRASE)
        api.generate("EC_P256", ["ECDSA_Signature"], "urikey", label=LABEL)
        api.generate("EC_P256", ["ECDSA_Signature"], "plainkey")
        store_certificate(api, "plainkey")
        yield hsm


def check_output(config: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "p11fast", "check", "--uris", "--config", config],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout.splitlines()


def p11tool_urls(module_path: str, config: str, *args: str) -> list[str]:
    done = subprocess.run(
        ["p11tool", "--provider", module_path, *args],
        env={**host_env(config), "GNUTLS_PIN": OPERATOR_PIN},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return re.findall(r"^\s*URL: (pkcs11:\S*)$", done.stdout, re.M)


def test_check_prints_the_token_uri_p11tool_lists(module_path, uri_hsm):
    (token,) = [line.split()[1] for line in check_output(uri_hsm.config_path)
                if line.startswith("  token ")]  # fmt: skip
    assert p11tool_urls(module_path, uri_hsm.config_path, "--list-tokens") == [token]


def test_check_prints_every_object_uri_p11tool_lists(module_path, uri_hsm):
    lines = check_output(uri_hsm.config_path)
    printed = [line.strip() for line in lines[lines.index("  objects") + 1 : -1]]
    listed = p11tool_urls(module_path, uri_hsm.config_path, "--login", "--list-all")
    assert sorted(printed) == sorted(listed)
    assert len(printed) == 5  # two key pairs and a certificate
    assert any("type=cert" in uri for uri in printed)


def test_the_openssl_engine_signs_with_a_printed_uri(openssl_conf, uri_hsm, tmp_path):
    lines = check_output(uri_hsm.config_path)
    urikey_id = "".join(f"%{b:02X}" for b in b"urikey")
    (key,) = [line.strip() for line in lines
              if f";id={urikey_id};" in line and line.endswith(";type=private")]  # fmt: skip
    message = b"signed through a URI that p11fast check printed"
    (tmp_path / "digest").write_bytes(hashlib.sha256(message).digest())
    openssl(
        openssl_conf, uri_hsm.config_path, "pkeyutl", "-sign", "-engine", "pkcs11",
        "-keyform", "engine", "-inkey", key,
        "-in", str(tmp_path / "digest"), "-out", str(tmp_path / "sig"),
    )  # fmt: skip
    api = HsmApi(uri_hsm.url, ADMIN_USER, ADMIN_PASSPHRASE)
    public_key(api, "urikey").verify(
        (tmp_path / "sig").read_bytes(), message, ec.ECDSA(hashes.SHA256())
    )
