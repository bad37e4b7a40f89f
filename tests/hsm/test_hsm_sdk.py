"""Nitrokey's `nethsm` SDK (a client we did not write) drives a fresh software HSM end to end;
every signature and ciphertext is checked with `cryptography`."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from nethsm import (
    Authentication,
    Base64,
    DecryptMode,
    EncryptMode,
    GenericPrivateKey,
    KeyMechanism,
    KeyType,
    NetHSM,
    NetHSMError,
    Role,
    SignMode,
    State,
)
from nethsm.backup import EncryptedBackup

from p11fast.hsm.testing import HsmProcess, running_hsm

UNLOCK, ADMIN_PW, OPERATOR_PW, BACKUP_PW = "unlock-pass", "admin-pass", "operator-pw", "backup-pass"
EC_TYPES = {
    KeyType.EC_P256: (ec.SECP256R1(), 32),
    KeyType.EC_P384: (ec.SECP384R1(), 48),
    KeyType.EC_P521: (ec.SECP521R1(), 64),  # SHA-512 size, as keyfender takes it
    KeyType.EC_P256K1: (ec.SECP256K1(), 32),
    KeyType.BRAINPOOL_P256: (ec.BrainpoolP256R1(), 32),
    KeyType.BRAINPOOL_P384: (ec.BrainpoolP384R1(), 48),
    KeyType.BRAINPOOL_P512: (ec.BrainpoolP512R1(), 64),
}
HASHES = {
    "MD5": hashes.MD5(),
    "SHA1": hashes.SHA1(),
    "SHA224": hashes.SHA224(),
    "SHA256": hashes.SHA256(),
    "SHA384": hashes.SHA384(),
    "SHA512": hashes.SHA512(),
}
RSA_MECHANISMS = [m for m in KeyMechanism if m.value.startswith("RSA_")]
SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


@dataclass
class Clients:
    hsm: HsmProcess
    public: NetHSM
    admin: NetHSM
    operator: NetHSM

    def connect(self, user: str, passphrase: str) -> NetHSM:
        return NetHSM(self.hsm.host_port, Authentication(user, passphrase), verify_tls=False)


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clients]:
    """A fresh (not initialised) HSM, provisioned through the SDK."""
    with running_hsm(tmp_path_factory.mktemp("sdk-hsm"), init=False) as hsm:
        public = NetHSM(hsm.host_port, verify_tls=False)
        assert public.get_state() == State.UNPROVISIONED
        public.provision(UNLOCK, ADMIN_PW)
        assert public.get_state() == State.OPERATIONAL
        admin = NetHSM(hsm.host_port, Authentication("admin", ADMIN_PW), verify_tls=False)
        admin.add_user("Olga Operator", Role.OPERATOR, OPERATOR_PW, "operator")
        clients = Clients(hsm, public, admin, None)
        clients.operator = clients.connect("operator", OPERATOR_PW)
        yield clients


def public_key(sdk: Clients, key_id: str):
    return serialization.load_pem_public_key(sdk.admin.get_key_public_key(key_id).encode())


def test_users_and_roles(sdk: Clients) -> None:
    generated = sdk.admin.add_user("Mia Metrics", Role.METRICS, "metrics-pass")
    assert len(generated) == 20
    assert sorted(sdk.admin.list_users()) == sorted(["admin", "operator", generated])
    user = sdk.admin.get_user(generated)
    assert (user.real_name, user.role) == ("Mia Metrics", Role.METRICS)
    assert "keyOperations" in sdk.connect(generated, "metrics-pass").get_metrics()
    with pytest.raises(NetHSMError, match="requires the role"):
        sdk.operator.list_users()
    sdk.admin.set_passphrase(generated, "metrics-pass-2")
    assert "keyOperations" in sdk.connect(generated, "metrics-pass-2").get_metrics()
    sdk.admin.delete_user(generated)
    assert generated not in sdk.admin.list_users()


@pytest.mark.parametrize("key_type", list(EC_TYPES))
def test_ecdsa_every_curve(sdk: Clients, key_type: KeyType) -> None:
    curve, size = EC_TYPES[key_type]
    key_id = sdk.admin.generate_key(key_type, [KeyMechanism.ECDSA_SIGNATURE], 256)
    key = sdk.admin.get_key(key_id)
    assert key.type == key_type
    point = ec.EllipticCurvePublicKey.from_encoded_point(curve, key.public_key.data.decode())
    assert point.public_numbers() == public_key(sdk, key_id).public_numbers()
    digest = os.urandom(size)
    signature = sdk.operator.sign(key_id, Base64.encode(digest), SignMode.ECDSA).decode()
    verify_raw_ecdsa(point, signature, digest)
    assert sdk.admin.get_key(key_id).operations == 1


def verify_raw_ecdsa(key: ec.EllipticCurvePublicKey, signature: bytes, digest: bytes) -> None:
    class Raw(hashes.HashAlgorithm):
        name, digest_size, block_size = "sha512", len(digest), None

    key.verify(signature, digest, ec.ECDSA(utils.Prehashed(Raw())))


def test_eddsa(sdk: Clients) -> None:
    key_id = sdk.admin.generate_key(KeyType.CURVE25519, [KeyMechanism.EDDSA_SIGNATURE], 256)
    raw = sdk.admin.get_key(key_id).public_key.data.decode()
    assert len(raw) == 32
    message = b"any length message for Ed25519"
    signature = sdk.operator.sign(key_id, Base64.encode(message), SignMode.EDDSA).decode()
    ed25519.Ed25519PublicKey.from_public_bytes(raw).verify(signature, message)


@pytest.fixture(scope="module")
def rsa_key(sdk: Clients) -> str:
    return sdk.admin.generate_key(KeyType.RSA, RSA_MECHANISMS, 2048, key_id="rsa2048", label="r")


@pytest.mark.skipif(os.environ.get("P11FAST_SLOW") != "1", reason="RSA-8192 keygen is slow")
def test_rsa_8192(sdk: Clients) -> None:
    key_id = sdk.admin.generate_key(KeyType.RSA, [KeyMechanism.RSA_SIGNATURE_PKCS1], 8192)
    digest = hashlib.sha256(b"big").digest()
    message = Base64.encode(SHA256_DIGEST_INFO + digest)
    signature = sdk.operator.sign(key_id, message, SignMode.PKCS1).decode()
    public = public_key(sdk, key_id)
    assert public.key_size == 8192
    public.verify(signature, b"big", padding.PKCS1v15(), hashes.SHA256())


def test_rsa_public_parts(sdk: Clients, rsa_key: str) -> None:
    key = sdk.admin.get_key(rsa_key)
    numbers = public_key(sdk, rsa_key).public_numbers()
    assert int.from_bytes(key.public_key.modulus.decode(), "big") == numbers.n
    assert int.from_bytes(key.public_key.public_exponent.decode(), "big") == numbers.e
    assert numbers.n.bit_length() == 2048 and key.label == "r"


def test_rsa_pkcs1_sign(sdk: Clients, rsa_key: str) -> None:
    public = public_key(sdk, rsa_key)
    digest = hashlib.sha256(b"message").digest()
    message = Base64.encode(SHA256_DIGEST_INFO + digest)
    signature = sdk.operator.sign(rsa_key, message, SignMode.PKCS1).decode()
    public.verify(signature, b"message", padding.PKCS1v15(), hashes.SHA256())
    # Data that is not a DigestInfo takes the textbook path; recover it with the public key.
    odd = b"not a digest info"
    signature = sdk.operator.sign(rsa_key, Base64.encode(odd), SignMode.PKCS1).decode()
    numbers = public.public_numbers()
    encoded = pow(int.from_bytes(signature, "big"), numbers.e, numbers.n).to_bytes(256, "big")
    assert encoded == b"\x00\x01" + b"\xff" * (256 - len(odd) - 3) + b"\x00" + odd


@pytest.mark.parametrize("name", list(HASHES))
def test_rsa_pss_sign(sdk: Clients, rsa_key: str, name: str) -> None:
    algorithm = HASHES[name]
    digest = hashes.Hash(algorithm)
    digest.update(b"pss message")
    mode = SignMode[f"PSS_{name}"]
    signature = sdk.operator.sign(rsa_key, Base64.encode(digest.finalize()), mode).decode()
    pss = padding.PSS(mgf=padding.MGF1(algorithm), salt_length=algorithm.digest_size)
    public_key(sdk, rsa_key).verify(signature, b"pss message", pss, algorithm)


def test_rsa_decrypt_raw_and_pkcs1(sdk: Clients, rsa_key: str) -> None:
    public = public_key(sdk, rsa_key)
    secret = b"top secret"
    encrypted = public.encrypt(secret, padding.PKCS1v15())
    decrypted = sdk.operator.decrypt(rsa_key, Base64.encode(encrypted), DecryptMode.PKCS1)
    assert decrypted.decode() == secret
    numbers = public.public_numbers()
    textbook = pow(12345, numbers.e, numbers.n).to_bytes(256, "big")
    raw = sdk.operator.decrypt(rsa_key, Base64.encode(textbook), DecryptMode.RAW).decode()
    assert raw == (12345).to_bytes(256, "big")


@pytest.mark.parametrize("name", list(HASHES))
def test_rsa_decrypt_oaep(sdk: Clients, rsa_key: str, name: str) -> None:
    public = public_key(sdk, rsa_key)
    algorithm = HASHES[name]
    if name == "MD5":  # OpenSSL has no OAEP with MD5: encode by hand
        encrypted = oaep_md5_encrypt(public, b"oaep secret")
    else:
        oaep = padding.OAEP(mgf=padding.MGF1(algorithm), algorithm=algorithm, label=None)
        encrypted = public.encrypt(b"oaep secret", oaep)
    mode = DecryptMode[f"OAEP_{name}"]
    assert sdk.operator.decrypt(rsa_key, Base64.encode(encrypted), mode).decode() == b"oaep secret"


def oaep_md5_encrypt(public: rsa.RSAPublicKey, message: bytes) -> bytes:
    """RFC 8017 7.1.1 with MD5 and MGF1-MD5, written independently of the server's decoder."""

    def mgf(seed: bytes, length: int) -> bytes:
        blocks = (hashlib.md5(seed + i.to_bytes(4, "big")).digest() for i in range(length))
        return b"".join(blocks)[:length]

    size = public.key_size // 8
    db = hashlib.md5(b"").digest() + b"\0" * (size - len(message) - 34) + b"\1" + message
    seed = os.urandom(16)
    masked_db = bytes(a ^ b for a, b in zip(db, mgf(seed, len(db)), strict=True))
    masked_seed = bytes(a ^ b for a, b in zip(seed, mgf(masked_db, 16), strict=True))
    numbers = public.public_numbers()
    encoded = int.from_bytes(b"\0" + masked_seed + masked_db, "big")
    return pow(encoded, numbers.e, numbers.n).to_bytes(size, "big")


@pytest.mark.parametrize("bits", [128, 192, 256])
def test_aes_generated(sdk: Clients, bits: int) -> None:
    mechanisms = [KeyMechanism.AES_ENCRYPTION_CBC, KeyMechanism.AES_DECRYPTION_CBC]
    key_id = sdk.admin.generate_key(KeyType.GENERIC, mechanisms, bits)
    assert sdk.admin.get_key(key_id).public_key is None
    plain = os.urandom(48)
    result = sdk.operator.encrypt(key_id, Base64.encode(plain), EncryptMode.AES_CBC)
    assert len(result.iv.decode()) == 16 and result.encrypted.decode() != plain
    decrypted = sdk.operator.decrypt(key_id, result.encrypted, DecryptMode.AES_CBC, result.iv)
    assert decrypted.decode() == plain


def test_aes_imported_matches_local_cipher(sdk: Clients) -> None:
    secret, iv, plain = os.urandom(32), os.urandom(16), os.urandom(32)
    mechanisms = [KeyMechanism.AES_ENCRYPTION_CBC, KeyMechanism.AES_DECRYPTION_CBC]
    key_id = sdk.admin.add_key(
        "aes-imported", KeyType.GENERIC, mechanisms, GenericPrivateKey(Base64.encode(secret))
    )
    result = sdk.operator.encrypt(
        key_id, Base64.encode(plain), EncryptMode.AES_CBC, Base64.encode(iv)
    )
    local = Cipher(algorithms.AES(secret), modes.CBC(iv)).encryptor()
    assert result.encrypted.decode() == local.update(plain) + local.finalize()
    assert result.iv.decode() == iv


def test_import_pem_and_json_rsa(sdk: Clients) -> None:
    private = rsa.generate_private_key(65537, 2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    key_id = sdk.admin.add_key_pem(None, [KeyMechanism.RSA_SIGNATURE_PKCS1], pem, ["blue"], "pem")
    key = sdk.admin.get_key(key_id)
    assert (key.tags, key.label) == (["blue"], "pem")
    assert public_key(sdk, key_id).public_numbers() == private.public_key().public_numbers()


def test_import_ec_scalar(sdk: Clients) -> None:
    private = ec.generate_private_key(ec.SECP384R1())
    scalar = private.private_numbers().private_value.to_bytes(48, "big")
    sdk.admin.add_key(
        "ec-imported", KeyType.EC_P384, [KeyMechanism.ECDSA_SIGNATURE],
        GenericPrivateKey(Base64.encode(scalar)),
    )  # fmt: skip
    digest = hashlib.sha384(b"m").digest()
    signature = sdk.operator.sign("ec-imported", Base64.encode(digest), SignMode.ECDSA).decode()
    private.public_key().verify(signature, b"m", ec.ECDSA(hashes.SHA384()))


def test_certificate_label_move_tags(sdk: Clients) -> None:
    key_id = sdk.admin.generate_key(KeyType.EC_P256, [KeyMechanism.ECDSA_SIGNATURE], 256)
    csr = x509.load_pem_x509_csr(sdk.admin.key_csr(key_id, common_name="hsm.example").encode())
    assert csr.is_signature_valid
    assert csr.public_key().public_numbers() == public_key(sdk, key_id).public_numbers()
    cert = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    sdk.admin.set_key_certificate(key_id, cert)
    assert sdk.operator.get_key_certificate(key_id) == cert
    with pytest.raises(NetHSMError, match="already has a certificate"):
        sdk.admin.set_key_certificate(key_id, cert)
    sdk.admin.set_key_label(key_id, "labelled")
    assert sdk.admin.list_keys(label="labelled") == [key_id]
    sdk.admin.move_key(key_id, "moved-key")
    assert sdk.admin.get_key_certificate("moved-key") == cert
    assert key_id not in sdk.admin.list_keys()
    assert sdk.admin.list_keys(prefix="moved-") == ["moved-key"]
    sdk.admin.delete_key_certificate("moved-key")
    with pytest.raises(NetHSMError):
        sdk.admin.get_key_certificate("moved-key")


def test_key_csr_with_non_ascii_names(sdk: Clients) -> None:
    key_id = sdk.admin.generate_key(KeyType.EC_P256, [KeyMechanism.ECDSA_SIGNATURE], 256)
    csr_pem = sdk.admin.key_csr(
        key_id, common_name="bücher.example", organization="Müller GmbH", locality="Köln"
    )
    csr = x509.load_pem_x509_csr(csr_pem.encode())
    assert csr.is_signature_valid
    assert csr.subject.rfc4514_string() == "CN=bücher.example,O=Müller GmbH,L=Köln"
    # a DNS name is ASCII on the wire: the common name goes into the SAN as an IDNA A-label
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["xn--bcher-kva.example"]
    # an e-mail address is an IA5String: a non-ASCII one is a bad request, not a crash
    with pytest.raises(NetHSMError, match="400"):
        sdk.admin.key_csr(key_id, common_name="a", email_address="jörg@example.com")


def test_tag_restrictions(sdk: Clients) -> None:
    key_id = sdk.admin.generate_key(KeyType.EC_P256, [KeyMechanism.ECDSA_SIGNATURE], 256)
    sdk.admin.add_key_tag(key_id, "vault")
    digest = Base64.encode(os.urandom(32))
    with pytest.raises(NetHSMError, match="403|Access denied"):
        sdk.operator.sign(key_id, digest, SignMode.ECDSA)
    assert key_id not in sdk.operator.list_keys(filter="usable")
    sdk.admin.add_operator_tag("operator", "vault")
    assert sdk.admin.list_operator_tags("operator") == ["vault"]
    assert key_id in sdk.operator.list_keys(filter="usable")
    sdk.operator.sign(key_id, digest, SignMode.ECDSA)
    sdk.admin.delete_operator_tag("operator", "vault")


def test_namespaces(sdk: Clients) -> None:
    sdk.admin.add_user("NS Admin", Role.ADMINISTRATOR, "ns-admin-pass", "boss", namespace="team")
    sdk.admin.add_namespace("team")
    assert "team" in sdk.admin.list_namespaces()
    team = sdk.connect("team~boss", "ns-admin-pass")
    key_id = team.generate_key(KeyType.EC_P256, [KeyMechanism.ECDSA_SIGNATURE], 256)
    assert team.list_keys() == [key_id]
    assert key_id not in sdk.admin.list_keys()
    assert team.list_users() == ["team~boss"]
    with pytest.raises(NetHSMError):
        team.list_namespaces()
    sdk.admin.delete_namespace("team")
    with pytest.raises(NetHSMError):
        team.list_keys()


def test_random_lock_unlock(sdk: Clients) -> None:
    assert len(sdk.operator.get_random_data(100).decode()) == 100
    sdk.admin.lock()
    assert sdk.public.get_state() == State.LOCKED
    with pytest.raises(NetHSMError, match="Precondition failed"):
        sdk.operator.list_keys()
    with pytest.raises(NetHSMError):
        sdk.public.unlock("wrong-unlock-pass")
    time.sleep(1.1)  # a wrong unlock passphrase makes the next attempt within 1 s a 429
    sdk.public.unlock(UNLOCK)
    assert sdk.public.get_state() == State.OPERATIONAL
    assert "rsa2048" in sdk.operator.list_keys()


def test_backup_and_restore(sdk: Clients, tmp_path_factory: pytest.TempPathFactory) -> None:
    sdk.admin.set_backup_passphrase(BACKUP_PW)
    sdk.admin.add_user("Bob Backup", Role.BACKUP, "backup-user", "backup")
    data = sdk.connect("backup", "backup-user").backup()
    # The framing is NetHSM's: the SDK's own backup reader decrypts it.
    contents = EncryptedBackup.parse(data).decrypt(BACKUP_PW)
    assert "/key/rsa2048" in contents.data and "/authentication/operator" in contents.data
    before = sorted(sdk.admin.list_keys())

    with running_hsm(tmp_path_factory.mktemp("restored"), init=False) as fresh:
        public = NetHSM(fresh.host_port, verify_tls=False)
        public.restore(data, BACKUP_PW, None)
        assert public.get_state() == State.LOCKED
        public.unlock(UNLOCK)
        admin = NetHSM(fresh.host_port, Authentication("admin", ADMIN_PW), verify_tls=False)
        assert sorted(admin.list_keys()) == before
        operator = NetHSM(
            fresh.host_port, Authentication("operator", OPERATOR_PW), verify_tls=False
        )
        digest = hashlib.sha256(b"restored").digest()
        message = Base64.encode(SHA256_DIGEST_INFO + digest)
        signature = operator.sign("rsa2048", message, SignMode.PKCS1).decode()
        public_key(sdk, "rsa2048").verify(
            signature, b"restored", padding.PKCS1v15(), hashes.SHA256()
        )

    # A restore while Operational brings back deleted keys, re-sealed under this HSM's key.
    sdk.admin.delete_key("rsa2048")
    sdk.admin.restore(data, BACKUP_PW, None)
    assert sorted(sdk.admin.list_keys()) == before
    sdk.operator.sign("rsa2048", message, SignMode.PKCS1)


def test_system_info_and_tls(sdk: Clients) -> None:
    assert sdk.admin.get_system_info().software_version
    cert = x509.load_pem_x509_certificate(sdk.admin.get_certificate().encode())
    fingerprint = ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))
    assert fingerprint == sdk.hsm.fingerprint
    assert sdk.admin.get_config_unattended_boot() == "off"
