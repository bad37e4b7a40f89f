"""The administration endpoints a real NetHSM serves — TLS key, CSR and certificates, cluster
CA, network and logging configuration, reboot, shutdown, factory reset, software update —
driven through Nitrokey's `nethsm` SDK against a software HSM running as a process."""

from __future__ import annotations

import concurrent.futures
import datetime
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from keyfender_backup import certificates, open_backup
from nethsm import (
    Authentication,
    Ipv6Config,
    KeyMechanism,
    KeyType,
    LogLevel,
    NetHSM,
    NetHSMError,
    Role,
    State,
    TlsKeyType,
    UnattendedBootStatus,
)

from p11fast.hsm.testing import HsmProcess, running_hsm

UNLOCK, ADMIN_PW = "unlock-pass", "admin-pass"


@dataclass
class Device:
    hsm: HsmProcess
    public: NetHSM
    admin: NetHSM

    def served_certificate(self) -> x509.Certificate:
        """The certificate a new TLS connection is given."""
        pem = ssl.get_server_certificate((self.hsm.host, self.hsm.port), timeout=10)
        return x509.load_pem_x509_certificate(pem.encode())


def connect(hsm: HsmProcess, auth: Authentication | None = None) -> NetHSM:
    return NetHSM(hsm.host_port, auth, verify_tls=False)


@pytest.fixture
def device(tmp_path) -> Iterator[Device]:
    """A fresh HSM provisioned through the SDK (unattended boot off, as from the factory)."""
    with running_hsm(tmp_path / "hsm", init=False) as hsm:
        public = connect(hsm)
        public.provision(UNLOCK, ADMIN_PW)
        yield Device(hsm, public, connect(hsm, Authentication("admin", ADMIN_PW)))


def fingerprint(cert: x509.Certificate) -> bytes:
    return cert.fingerprint(hashes.SHA256())


def issue(subject: x509.Name, issuer: x509.Name, public_key, signing_key, *extensions):
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
    )
    for extension in extensions:
        builder = builder.add_extension(extension, critical=True)
    return builder.sign(signing_key, hashes.SHA256())


def make_ca() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test CA")])
    constraints = x509.BasicConstraints(ca=True, path_length=None)
    usage = x509.KeyUsage(False, False, False, False, False, True, True, False, False)
    return key, issue(name, name, key.public_key(), key, constraints, usage)


def sign_csr(csr_pem: str, ca_key, ca_cert: x509.Certificate) -> x509.Certificate:
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    return issue(csr.subject, ca_cert.subject, csr.public_key(), ca_key)


def pem(*certs: x509.Certificate) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def test_tls_csr_is_signed_by_the_tls_key(device: Device) -> None:
    csr_pem = device.admin.csr(
        common_name="hsm.example", organization="Example", subject_alt_names=["IP:192.0.2.1"]
    )
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    tls_public = serialization.load_pem_public_key(device.admin.get_public_key().encode())
    assert csr.public_key() == tls_public
    assert csr.subject.rfc4514_string() == "CN=hsm.example,O=Example"
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["192.0.2.1"]


def test_generated_tls_key_is_served(device: Device) -> None:
    before = device.served_certificate()
    device.admin.generate_tls_key(TlsKeyType.EC_P384)
    served = device.served_certificate()
    assert fingerprint(served) != fingerprint(before)
    assert isinstance(served.public_key().curve, ec.SECP384R1)
    assert served == x509.load_pem_x509_certificate(device.admin.get_certificate().encode())
    with pytest.raises(NetHSMError, match="400"):
        device.admin.generate_tls_key(TlsKeyType.RSA, 512)


def test_certificate_for_the_tls_key_is_installed_and_served(device: Device) -> None:
    ca_key, ca_cert = make_ca()
    cert = sign_csr(device.admin.csr(common_name="hsm.example"), ca_key, ca_cert)
    device.admin.set_certificate(pem(cert, ca_cert))
    assert device.admin.get_certificate().encode() == pem(cert, ca_cert)
    assert fingerprint(device.served_certificate()) == fingerprint(cert)
    # a certificate for some other key is refused
    with pytest.raises(NetHSMError, match="invalid certificate"):
        device.admin.set_certificate(pem(ca_cert))


def test_a_backup_carries_the_whole_tls_certificate_chain(device: Device) -> None:
    ca_key, ca_cert = make_ca()
    cert = sign_csr(device.admin.csr(common_name="hsm.example"), ca_key, ca_cert)
    device.admin.set_certificate(pem(cert, ca_cert))
    device.admin.set_backup_passphrase("backup-pass", "")
    device.admin.add_user("Backup", Role.BACKUP, "backup-user-pass", "backup1")
    data = connect(device.hsm, Authentication("backup1", "backup-user-pass")).backup()
    chain = open_backup(data, "backup-pass", UNLOCK).clear["certificate"]
    der = serialization.Encoding.DER
    assert certificates(chain) == [cert.public_bytes(der), ca_cert.public_bytes(der)]


def test_cluster_ca_is_absent_until_set(device: Device) -> None:
    with pytest.raises(NetHSMError, match="404"):
        device.admin.get_cluster_ca_certificate()
    ca_key, ca_cert = make_ca()
    # the installed (self-signed) TLS certificate is not signed by this CA yet
    with pytest.raises(NetHSMError, match="Precondition failed(.|\n)*not signed by"):
        device.admin.set_cluster_ca_certificate(pem(ca_cert))
    device.admin.set_certificate(
        pem(sign_csr(device.admin.csr(common_name="hsm.example"), ca_key, ca_cert))
    )
    device.admin.set_cluster_ca_certificate(pem(ca_cert))
    assert device.admin.get_cluster_ca_certificate().encode() == pem(ca_cert)
    with pytest.raises(NetHSMError, match="Precondition failed"):
        device.admin.generate_tls_key(TlsKeyType.EC_P256)


def test_logging_configuration_is_kept(device: Device) -> None:
    config = device.admin.get_config_logging()
    assert (config.ip_address, config.port, config.log_level) == ("0.0.0.0", 514, LogLevel.INFO)
    device.admin.set_logging_config("192.0.2.7", 1514, LogLevel.WARNING)
    config = device.admin.get_config_logging()
    assert (config.ip_address, config.port, config.log_level) == (
        "192.0.2.7", 1514, LogLevel.WARNING,
    )  # fmt: skip
    with pytest.raises(NetHSMError, match="invalid input"):
        device.admin.set_logging_config("not-an-address", 514, LogLevel.INFO)


def test_network_configuration_is_kept(device: Device) -> None:
    config = device.admin.get_config_network()
    assert (config.ip_address, config.netmask, config.gateway) == (
        "192.168.1.1", "255.255.255.0", "0.0.0.0",
    )  # fmt: skip
    device.admin.set_network_config(
        "10.1.2.3", "255.255.0.0", "10.1.0.1", Ipv6Config("2001:db8::5/64", "2001:db8::1")
    )
    config = device.admin.get_config_network()
    assert (config.ip_address, config.netmask, config.gateway) == (
        "10.1.2.3", "255.255.0.0", "10.1.0.1",
    )  # fmt: skip
    assert (config.ipv6.cidr, config.ipv6.gateway) == ("2001:db8::5/64", "2001:db8::1")
    with pytest.raises(NetHSMError, match="invalid input"):
        device.admin.set_network_config("10.1.2.3", "255.0.255.0", "10.1.0.1")


def test_reboot_comes_back_locked(device: Device) -> None:
    key_id = device.admin.generate_key(KeyType.EC_P256, [KeyMechanism.ECDSA_SIGNATURE], 256)
    device.admin.reboot()
    assert device.public.get_state() == State.LOCKED
    device.public.unlock(UNLOCK)
    assert device.admin.list_keys() == [key_id]


def test_reboot_with_unattended_boot_comes_back_operational(device: Device) -> None:
    device.admin.set_unattended_boot(UnattendedBootStatus.ON)
    device.admin.reboot()
    assert device.public.get_state() == State.OPERATIONAL


def test_shutdown_ends_the_process_cleanly(device: Device) -> None:
    device.admin.shutdown()
    assert device.hsm.process.wait(timeout=30) == 0


def test_shutdown_needs_no_credentials_while_locked(device: Device) -> None:
    device.admin.lock()
    device.public.shutdown()
    assert device.hsm.process.wait(timeout=30) == 0


def test_factory_reset_erases_everything_durably(device: Device) -> None:
    device.admin.add_user("Olga", Role.OPERATOR, "operator-pw", "operator")
    device.admin.generate_key(KeyType.EC_P256, [KeyMechanism.ECDSA_SIGNATURE], 256, "old-key")
    device.admin.set_logging_config("192.0.2.7", 1514, LogLevel.DEBUG)
    old_tls = device.served_certificate()
    device.admin.factory_reset()
    assert device.public.get_state() == State.UNPROVISIONED
    device.hsm.kill()  # nothing may come back from before the reset
    device.hsm.start()
    assert device.public.get_state() == State.UNPROVISIONED
    assert fingerprint(device.served_certificate()) != fingerprint(old_tls)
    device.public.provision(UNLOCK, "new-admin-pass")
    admin = connect(device.hsm, Authentication("admin", "new-admin-pass"))
    assert admin.list_keys() == []
    assert admin.list_users() == ["admin"]
    assert admin.get_config_logging().log_level == LogLevel.INFO


def test_factory_reset_during_an_unlock_passphrase_change_leaves_nothing_of_it(
    device: Device,
) -> None:
    body = {"currentPassphrase": UNLOCK, "newPassphrase": "changed-unlock-pass"}
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        change = pool.submit(
            requests.put, device.hsm.url + "/config/unlock-passphrase", json=body,
            auth=("admin", ADMIN_PW), verify=False, timeout=60,
        )  # fmt: skip
        time.sleep(0.3)  # the change is checking the current passphrase (scrypt, ~1 s)
        device.admin.factory_reset()
        assert change.result().status_code == 204
    device.hsm.kill()
    device.hsm.start()
    assert device.public.get_state() == State.UNPROVISIONED


def test_factory_reset_keeps_the_device_id(device: Device) -> None:
    def device_id() -> str:
        response = requests.get(
            device.hsm.url + "/system/info", auth=("admin", ADMIN_PW), verify=False, timeout=30
        )
        assert response.status_code == 200, response.text
        return response.json()["deviceId"]

    before = device_id()
    device.admin.factory_reset()
    device.public.provision(UNLOCK, ADMIN_PW)
    assert device_id() == before  # a NetHSM's hardware keeps it


def test_an_image_that_is_no_valid_update_is_refused(device: Device) -> None:
    with pytest.raises(NetHSMError, match="malformed image"):
        device.admin.update(b"this is not a NetHSM update image")
    # well framed, but not signed by Nitrokey: still 400, as on the device
    image = b"_NETHSM_UPDATE_\x00"
    for field in (b"\x00" * 256, b"release notes", b"9.9"):
        image += len(field).to_bytes(3, "big") + field
    image += (1).to_bytes(4, "big") + b"\x00" * 512
    with pytest.raises(NetHSMError, match="malformed image"):
        device.admin.update(image)
    with pytest.raises(NetHSMError, match="Precondition failed"):
        device.admin.commit_update()
    with pytest.raises(NetHSMError, match="Precondition failed"):
        device.admin.cancel_update()
