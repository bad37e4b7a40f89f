"""OpenSC pkcs11-tool flows that change the token or use the module's verify, encrypt and
decrypt: key generation of each type, then use; certificates written, read and deleted."""

from __future__ import annotations

import base64
import hashlib
import json
import os

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding

from p11fast.hsm.testing import ADMIN_PASSPHRASE, OPERATOR_PASSPHRASE, OPERATOR_USER
from tests.hsm_api import HsmApi
from tests.interop.conftest import OPERATOR_PIN, public_key, store_certificate
from tests.interop.test_interop_pkcs11_tool import MESSAGE, sign, tool

SO = ("--login", "--login-type", "so", "--so-pin", ADMIN_PASSPHRASE)
USER = ("--login", "--pin", OPERATOR_PIN)


def verify(module_path, config, tmp_path, key_id: str, mechanism: str, data: bytes, *extra):
    """pkcs11-tool --verify of the signature in tmp_path/sig over data; its output."""
    (tmp_path / "in").write_bytes(data)
    return tool(
        module_path, config, *USER, "--verify", "--id", key_id.encode().hex(), "-m", mechanism,
        "-i", str(tmp_path / "in"), "--signature-file", str(tmp_path / "sig"), *extra,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("key_id", "mechanism", "extra"),
    [
        ("ecp256", "ECDSA-SHA256", ("--signature-format", "openssl")),
        ("rsa2048", "SHA256-RSA-PKCS", ()),
        ("rsa2048", "SHA256-RSA-PKCS-PSS", ("--mgf", "MGF1-SHA256", "--salt-len", "-1")),
        ("ed1", "EDDSA", ()),
    ],
)
def test_verify_accepts_the_signature_and_rejects_another_message(
    module_path, login_config, api, tmp_path, key_id, mechanism, extra
):
    sign(module_path, login_config, tmp_path, key_id, mechanism, MESSAGE, *extra)
    good = verify(module_path, login_config, tmp_path, key_id, mechanism, MESSAGE, *extra)
    assert "Signature is valid" in good
    bad = verify(module_path, login_config, tmp_path, key_id, mechanism, b"another", *extra)
    assert "Invalid signature" in bad


def decrypt(module_path, config, tmp_path, key_id: str, mechanism: str, data: bytes, *extra):
    (tmp_path / "cipher").write_bytes(data)
    tool(
        module_path, config, *USER, "--decrypt", "--id", key_id.encode().hex(), "-m", mechanism,
        "-i", str(tmp_path / "cipher"), "-o", str(tmp_path / "plain"), *extra,
    )  # fmt: skip
    return (tmp_path / "plain").read_bytes()


SECRET = b"a secret for the HSM to reveal"


# OpenSC 0.23 sends OAEP parameters with source 0 and no label: the module takes that as the
# empty label the HSM uses.
@pytest.mark.parametrize(
    ("mechanism", "pad", "extra"),
    [
        ("RSA-PKCS", padding.PKCS1v15(), ()),
        ("RSA-PKCS-OAEP", padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None),
         ("--hash-algorithm", "SHA256", "--mgf", "MGF1-SHA256")),
    ],
)
def test_rsa_decryption_returns_what_was_encrypted_to_the_public_key(
    module_path, login_config, api, tmp_path, mechanism, pad, extra
):
    cipher = public_key(api, "rsa2048").encrypt(SECRET, pad)
    plain = decrypt(module_path, login_config, tmp_path, "rsa2048", mechanism, cipher, *extra)
    assert plain == SECRET


def test_aes_cbc_encryption_matches_the_hsm_and_decrypts_back(
    module_path, login_config, api, tmp_path
):
    iv, plain = os.urandom(16), os.urandom(64)
    (tmp_path / "plain").write_bytes(plain)
    tool(
        module_path, login_config, *USER, "--encrypt", "--id", b"aes256".hex(), "-m", "AES-CBC",
        "--iv", iv.hex(), "-i", str(tmp_path / "plain"), "-o", str(tmp_path / "cipher"),
    )  # fmt: skip
    cipher = (tmp_path / "cipher").read_bytes()
    body = {"mode": "AES_CBC", "message": base64.b64encode(plain).decode(),
            "iv": base64.b64encode(iv).decode()}  # fmt: skip
    operator = HsmApi(api.url, OPERATOR_USER, OPERATOR_PASSPHRASE)
    by_hsm = json.loads(operator.expect(200, "POST", "/keys/aes256/encrypt", body))
    assert cipher == base64.b64decode(by_hsm["encrypted"])
    back = decrypt(
        module_path, login_config, tmp_path, "aes256", "AES-CBC", cipher, "--iv", iv.hex()
    )
    assert back == plain


@pytest.mark.parametrize(
    ("key_type", "mechanism", "check"),
    [
        ("rsa:2048", "SHA256-RSA-PKCS", lambda k, s: k.verify(s, MESSAGE, padding.PKCS1v15(),
                                                               hashes.SHA256())),
        ("EC:prime256v1", "ECDSA-SHA256", lambda k, s: k.verify(s, MESSAGE,
                                                                 ec.ECDSA(hashes.SHA256()))),
        ("EC:secp384r1", "ECDSA-SHA384", lambda k, s: k.verify(s, MESSAGE,
                                                                ec.ECDSA(hashes.SHA384()))),
        ("EC:edwards25519", "EDDSA", lambda k, s: k.verify(s, MESSAGE)),
    ],
)  # fmt: skip
def test_generated_key_pair_signs_and_the_signature_verifies(
    module_path, scratch_hsm, scratch_api, tmp_path, key_type, mechanism, check
):
    key_id = "gen" + hashlib.sha256(key_type.encode()).hexdigest()[:8]
    config = scratch_hsm.config_path
    tool(
        module_path, config, *SO, "--keypairgen", "--key-type", key_type,
        "--id", key_id.encode().hex(), "--label", key_id, "--usage-sign",
    )  # fmt: skip
    extra = ("--signature-format", "openssl") if mechanism.startswith("ECDSA") else ()
    signature = sign(module_path, config, tmp_path, key_id, mechanism, MESSAGE, *extra)
    check(public_key(scratch_api, key_id), signature)


def test_generated_rsa_key_pair_decrypts(module_path, scratch_hsm, scratch_api, tmp_path):
    config = scratch_hsm.config_path
    tool(
        module_path, config, *SO, "--keypairgen", "--key-type", "rsa:2048",
        "--id", b"genrsadec".hex(), "--label", "genrsadec", "--usage-decrypt",
    )  # fmt: skip
    cipher = public_key(scratch_api, "genrsadec").encrypt(SECRET, padding.PKCS1v15())
    assert decrypt(module_path, config, tmp_path, "genrsadec", "RSA-PKCS", cipher) == SECRET


def test_generated_aes_key_encrypts_and_decrypts(module_path, scratch_hsm, tmp_path):
    config = scratch_hsm.config_path
    tool(
        module_path, config, *SO, "--keygen", "--key-type", "AES:32", "--id", b"genaes".hex(),
        "--label", "genaes", "--sensitive",
    )  # fmt: skip
    iv, plain = os.urandom(16), os.urandom(48)
    (tmp_path / "plain").write_bytes(plain)
    tool(
        module_path, config, *USER, "--encrypt", "--id", b"genaes".hex(), "-m", "AES-CBC",
        "--iv", iv.hex(), "-i", str(tmp_path / "plain"), "-o", str(tmp_path / "cipher"),
    )  # fmt: skip
    cipher = (tmp_path / "cipher").read_bytes()
    assert cipher != plain and len(cipher) == len(plain)
    assert decrypt(
        module_path, config, tmp_path, "genaes", "AES-CBC", cipher, "--iv", iv.hex()
    ) == (plain)


def test_certificate_written_reads_back_and_is_deleted(
    module_path, scratch_hsm, scratch_api, tmp_path
):
    config = scratch_hsm.config_path
    scratch_api.generate("EC_P256", ["ECDSA_Signature"], "certkey")
    cert = store_certificate(scratch_api, "certkey")  # only to have one for this key...
    scratch_api.expect(204, "DELETE", "/keys/certkey/cert")  # ...written next by pkcs11-tool
    (tmp_path / "cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    hex_id = b"certkey".hex()
    tool(
        module_path, config, *SO, "--write-object", str(tmp_path / "cert.der"), "--type", "cert",
        "--id", hex_id, "--label", "certkey",
    )  # fmt: skip
    assert (
        x509.load_pem_x509_certificate(scratch_api.expect(200, "GET", "/keys/certkey/cert")) == cert
    )
    tool(
        module_path, config, "--read-object", "--type", "cert", "--id", hex_id,
        "-o", str(tmp_path / "read.der"),
    )  # fmt: skip
    assert (tmp_path / "read.der").read_bytes() == cert.public_bytes(serialization.Encoding.DER)
    tool(module_path, config, *SO, "--delete-object", "--type", "cert", "--id", hex_id)
    assert scratch_api.request("GET", "/keys/certkey/cert")[0] == 404
    assert "Certificate Object" not in tool(module_path, config, "-O", "--id", hex_id)


def test_deleted_key_pair_is_gone_from_the_hsm_and_the_token(module_path, scratch_hsm, scratch_api):
    config = scratch_hsm.config_path
    scratch_api.generate("EC_P256", ["ECDSA_Signature"], "doomed")
    tool(module_path, config, *SO, "--delete-object", "--type", "privkey", "--id", b"doomed".hex())
    assert scratch_api.request("GET", "/keys/doomed")[0] == 404
    assert "doomed" not in tool(module_path, config, *USER, "-O")


def test_generic_secret_of_64_bytes_is_generated_as_a_nethsm_generic_key(
    module_path, scratch_hsm, scratch_api
):
    config = scratch_hsm.config_path
    assert "GENERIC-SECRET-KEY-GEN, keySize={128,8192}" in tool(module_path, config, "-M")
    out = tool(
        module_path, config, *SO, "--keygen", "--key-type", "GENERIC:64", "--id",
        b"gen64".hex(), "--label", "gen64", "--sensitive",
    )  # fmt: skip
    assert "Secret Key Object; Generic secret length 64" in out
    assert scratch_api.key("gen64")["type"] == "Generic"
