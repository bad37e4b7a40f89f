"""How the module stores a certificate on the HSM: PEM in RFC 7468's 64-column lines, or DER with
the slot's `certificate_format: DER` (nethsm-pkcs11's option), checked through the HSM's API."""

from __future__ import annotations

import datetime

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.module.test_manage import SO, tool, write_config


def self_signed(api, key_id: str) -> x509.Certificate:
    """A certificate for a new HSM key (signed by a throwaway key: only its bytes matter)."""
    api.generate("EC_P256", ["ECDSA_Signature"], key_id)
    return self_signed_for(api, key_id, key_id)


def self_signed_for(api, key_id: str, common_name: str) -> x509.Certificate:
    """A certificate for the HSM key key_id, subject common_name, signed by a throwaway key."""
    signer = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.timezone.utc)
    public = serialization.load_pem_public_key(api.public_pem(key_id))
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
        .serial_number(x509.random_serial_number()).not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1)).sign(signer, hashes.SHA256())
    )  # fmt: skip


def write_certificate(module_path: str, config: str, tmp_path, key_id: str, cert) -> None:
    (tmp_path / "cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    tool(
        module_path, config, *SO, "--write-object", str(tmp_path / "cert.der"), "--type", "cert",
        "--id", key_id.encode().hex(),
    )  # fmt: skip


def test_certificate_is_stored_as_pem_in_64_column_lines(module_path, hsm, api, tmp_path):
    cert = self_signed(api, "pemcert")
    write_certificate(module_path, hsm.config_path, tmp_path, "pemcert", cert)
    stored = api.expect(200, "GET", "/keys/pemcert/cert")
    assert stored == cert.public_bytes(serialization.Encoding.PEM)  # RFC 7468 §2 layout
    assert max(len(line) for line in stored.splitlines()) == 64


def test_certificate_format_der_stores_the_certificate_as_der(module_path, hsm, api, tmp_path):
    def der_slots(cfg):
        cfg["slots"][0]["certificate_format"] = "DER"

    config = write_config(hsm, tmp_path, "der.conf", der_slots)
    cert = self_signed(api, "dercert")
    write_certificate(module_path, config, tmp_path, "dercert", cert)
    assert api.expect(200, "GET", "/keys/dercert/cert") == cert.public_bytes(
        serialization.Encoding.DER
    )
    tool(
        module_path, config, "--read-object", "--type", "cert", "--id", b"dercert".hex(),
        "-o", str(tmp_path / "read.der"),
    )  # fmt: skip
    assert (tmp_path / "read.der").read_bytes() == cert.public_bytes(serialization.Encoding.DER)
