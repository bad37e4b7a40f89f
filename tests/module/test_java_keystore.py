"""A Java SunPKCS11 application (Debian's JDK 17) keeps keys and certificate chains in p11fast
through `java.security.KeyStore`, with Nitrokey's `enable_set_attribute_value` mode on.

The application (`java/P11KeyStoreHost.java`) generates an RSA and an EC key pair with the
SunPKCS11 provider and stores them with `KeyStore.setKeyEntry`: SunPKCS11 gives the private key
the alias as `CKA_ID` (`C_SetAttributeValue`) and creates the certificates under that `CKA_ID`
(`C_CreateObject`). A new JVM then loads the KeyStore, finds both entries and signs with
SHA256withRSA and SHA256withECDSA. Java has no public API to create certificates, so this test
makes them: the CA certificate is self-signed by the HSM's RSA key (the JVM signs the
to-be-signed bytes), the EC key's certificate is issued by that CA. The chains are therefore
`rsa-ca: [CA]` and `ec-leaf: [EC leaf, CA]`; a NetHSM keeps certificates only with their keys,
so a chain's CA certificate must belong to a key on the HSM — SunPKCS11 finds it already
stored and does not create it again.

Credentials: generating keys and storing certificates are NetHSM Administrator requests,
signing is the Operator's, and a Java KeyStore logs in only as the PKCS#11 user. So the
module's configuration carries the administrator's password (as an EJBCA deployment's would)
and not the operator's: that comes from `KeyStore.load(null, pin)` (`C_Login(CKU_USER)`; with
the operator's password configured, SunPKCS11 sees a logged-in session and never logs in).
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from p11fast.hsm.testing import ADMIN_PASSPHRASE, ADMIN_USER, HsmProcess, running_hsm
from tests.hsm_api import HsmApi
from tests.module.conftest import OPERATOR_PIN, host_env

pytestmark = pytest.mark.skipif(shutil.which("javac") is None, reason="needs a JDK (javac)")

JAVA_SOURCE = os.path.join(os.path.dirname(__file__), "java", "P11KeyStoreHost.java")
MESSAGE = b"signed through java.security.Signature and p11fast"
RSA_ALIAS, EC_ALIAS = "rsa-ca", "ec-leaf"

# Why `CKA_TOKEN = true` for generated keys: SunPKCS11's KeyPairGenerator makes session keys
# (CKA_TOKEN=FALSE), and KeyStore.setKeyEntry turns a session key into a token key with
# C_CopyObject, which p11fast refuses (CKR_ACTION_PROHIBITED: an HSM key cannot be duplicated).
# EJBCA's SunPKCS11 configurations carry the same line.
SUNPKCS11_CONFIG = """\
name = p11fast
library = {library}
slotListIndex = 0
{attributes}"""
TOKEN_KEYS = "attributes(generate, *, *) = {\n  CKA_TOKEN = true\n}\n"


@dataclass
class Java:
    """Runs P11KeyStoreHost (compiled once into `classes`) against one SunPKCS11 config."""

    classes: str
    sunpkcs11_config: str
    module_config: str

    def command(self, *args: str) -> list[str]:
        return ["java", "-cp", self.classes, "P11KeyStoreHost", self.sunpkcs11_config,
                OPERATOR_PIN, *args]

    def store_session(self) -> StoreSession:
        process = subprocess.Popen(self.command("store"), env=host_env(self.module_config),
                                   stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        return StoreSession(process)

    def use(self, *uses: str) -> dict[str, list[str]]:
        """A new JVM loads the KeyStore and signs MESSAGE: {first word: rest} of each line."""
        done = subprocess.run(
            self.command("use", base64.b64encode(MESSAGE).decode(), *uses),
            env=host_env(self.module_config), capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stdout + done.stderr
        out: dict[str, list[str]] = {}
        for line in done.stdout.splitlines():
            word = line.split(" ")
            key = word[0] if word[0] == "ALIASES" else f"{word[0]} {word[1]}"
            out[key] = word[1:] if word[0] == "ALIASES" else word[2:]
        return out


class StoreSession:
    """One JVM that keeps its generated key pairs while the test makes their certificates."""

    def __init__(self, process: subprocess.Popen) -> None:
        self.process = process
        # a JVM that stops answering would block readline() for ever
        self.watchdog = threading.Timer(60, process.kill)
        self.watchdog.start()

    def ask(self, line: str) -> str:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        if not answer:
            self.process.stdin.close()
            error = self.process.stderr.read()
            raise AssertionError(f"the JVM ended on {line.split()[0]}: {error}")
        return answer.split(" ", 1)[1].strip()

    def generate(self, name: str, algorithm: str, parameter: str):
        der = base64.b64decode(self.ask(f"GENERATE {name} {algorithm} {parameter}"))
        return serialization.load_der_public_key(der)

    def sign(self, name: str, algorithm: str, data: bytes) -> bytes:
        return base64.b64decode(self.ask(f"SIGN {name} {algorithm} {b64(data)}"))

    def store(self, alias: str, name: str, chain: list[x509.Certificate]) -> None:
        certs = " ".join(b64(c.public_bytes(serialization.Encoding.DER)) for c in chain)
        self.ask(f"STORE {alias} {name} {certs}")

    def close(self) -> str:
        self.process.stdin.close()
        self.process.wait(timeout=30)
        self.watchdog.cancel()
        return self.process.stderr.read()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- certificates signed by HSM keys ----------------------------------------------------------

def der_tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    length = bytes([n]) if n < 0x80 else bytes([0x80 | (n.bit_length() + 7) // 8]) + \
        n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + content


SHA256_WITH_RSA = der_tlv(0x30, bytes.fromhex("06092a864886f70d01010b0500"))


def certificate(subject: str, public_key, issuer: str, sign_rsa_sha256, ca: bool
                ) -> x509.Certificate:
    """A certificate whose signature the HSM's RSA key makes (`sign_rsa_sha256(tbs)`): built
    with a throw-away key for its to-be-signed bytes, then assembled with the HSM signature."""
    now = datetime.datetime.now(datetime.timezone.utc)
    draft = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .sign(rsa.generate_private_key(65537, 1024), hashes.SHA256())
    )
    tbs = draft.tbs_certificate_bytes
    signature = sign_rsa_sha256(tbs)
    der = der_tlv(0x30, tbs + SHA256_WITH_RSA + der_tlv(0x03, b"\x00" + signature))
    return x509.load_der_x509_certificate(der)


# --- the scenario ------------------------------------------------------------------------------

@dataclass
class Stored:
    ca: x509.Certificate
    ec_leaf: x509.Certificate
    generated: list[dict]  # GET /keys/{id} (with "id") of the token keys the application made
    reloaded: dict[str, list[str]]  # what the second JVM printed

    @property
    def keys(self) -> dict[str, dict]:
        return {k["type"]: k for k in self.generated}


@pytest.fixture(scope="module")
def java_hsm(tmp_path_factory) -> Iterator[HsmProcess]:
    """An HSM of its own: the KeyStore lists every key with a certificate, and this test
    expects to see exactly its own."""
    with running_hsm(str(tmp_path_factory.mktemp("java-hsm"))) as process:
        yield process


@pytest.fixture(scope="module")
def hsm_api(java_hsm) -> HsmApi:
    return HsmApi(java_hsm.url, ADMIN_USER, ADMIN_PASSPHRASE)


@pytest.fixture(scope="module")
def classes(tmp_path_factory) -> str:
    out = str(tmp_path_factory.mktemp("java-classes"))
    subprocess.run(["javac", "-d", out, JAVA_SOURCE], check=True, timeout=120)
    return out


def java_for(module_path, hsm, classes, directory, attributes: str) -> Java:
    with open(hsm.config_path) as f:
        cfg = yaml.safe_load(f)
    cfg["enable_set_attribute_value"] = True
    for slot in cfg["slots"]:
        slot["operator"].pop("password")  # the application's PIN logs the operator in
    module_config = os.path.join(directory, "p11fast.conf")
    with open(module_config, "w") as f:
        yaml.safe_dump(cfg, f)
    os.chmod(module_config, 0o600)
    sunpkcs11 = os.path.join(directory, "sunpkcs11.cfg")
    with open(sunpkcs11, "w") as f:
        f.write(SUNPKCS11_CONFIG.format(library=module_path, attributes=attributes))
    return Java(classes, sunpkcs11, module_config)


def key_ids(api: HsmApi) -> set[str]:
    return {k["id"] for k in json.loads(api.expect(200, "GET", "/keys"))}


def token_key_ids(api: HsmApi) -> set[str]:
    """Without the keys behind session objects, which a JVM leaves behind: it exits without
    C_Finalize, and the next administrator use of the module removes them."""
    return {k for k in key_ids(api) if not k.startswith("p11fastsession")}


@pytest.fixture(scope="module")
def stored(module_path, java_hsm, hsm_api, classes, tmp_path_factory) -> Stored:
    java = java_for(module_path, java_hsm, classes, str(tmp_path_factory.mktemp("java")),
                    TOKEN_KEYS)
    keys_before = key_ids(hsm_api)
    session = java.store_session()
    try:
        rsa_public = session.generate("rsa", "RSA", "2048")
        ec_public = session.generate("ec", "EC", "secp256r1")

        def sign(tbs: bytes) -> bytes:
            return session.sign("rsa", "SHA256withRSA", tbs)

        ca = certificate("p11fast Java CA", rsa_public, "p11fast Java CA", sign, ca=True)
        ec_leaf = certificate("p11fast Java EC", ec_public, "p11fast Java CA", sign, ca=False)
        session.store(RSA_ALIAS, "rsa", [ca])
        session.store(EC_ALIAS, "ec", [ec_leaf, ca])
    finally:
        stderr = session.close()
    assert session.process.returncode == 0, stderr
    keys = [hsm_api.key(k) | {"id": k} for k in token_key_ids(hsm_api) - keys_before]
    reloaded = java.use(f"{RSA_ALIAS}=SHA256withRSA", f"{EC_ALIAS}=SHA256withECDSA")
    return Stored(ca, ec_leaf, keys, reloaded)


def der_certs(words: list[str]) -> list[x509.Certificate]:
    return [x509.load_der_x509_certificate(base64.b64decode(w)) for w in words]


def test_reloaded_keystore_lists_both_aliases(stored):
    assert stored.reloaded["ALIASES"] == sorted([RSA_ALIAS, EC_ALIAS])


def test_reloaded_entries_carry_their_certificate_chains(stored):
    assert der_certs(stored.reloaded[f"CHAIN {RSA_ALIAS}"]) == [stored.ca]
    assert der_certs(stored.reloaded[f"CHAIN {EC_ALIAS}"]) == [stored.ec_leaf, stored.ca]


def test_the_chain_verifies(stored):
    ca_key = stored.ca.public_key()
    for cert in (stored.ca, stored.ec_leaf):
        ca_key.verify(cert.signature, cert.tbs_certificate_bytes, padding.PKCS1v15(),
                      hashes.SHA256())


def test_sha256_with_rsa_signature_verifies_with_certificate_and_hsm_key(stored, hsm_api):
    signature = base64.b64decode(stored.reloaded[f"SIGNATURE {RSA_ALIAS}"][0])
    hsm_key = serialization.load_pem_public_key(hsm_api.public_pem(stored.keys["RSA"]["id"]))
    for public_key in (stored.ca.public_key(), hsm_key):
        public_key.verify(signature, MESSAGE, padding.PKCS1v15(), hashes.SHA256())


def test_sha256_with_ecdsa_signature_verifies_with_certificate_and_hsm_key(stored, hsm_api):
    signature = base64.b64decode(stored.reloaded[f"SIGNATURE {EC_ALIAS}"][0])
    hsm_key = serialization.load_pem_public_key(hsm_api.public_pem(stored.keys["EC_P256"]["id"]))
    for public_key in (stored.ec_leaf.public_key(), hsm_key):
        public_key.verify(signature, MESSAGE, ec.ECDSA(hashes.SHA256()))


def test_the_application_made_one_token_key_per_key_pair(stored):
    """No key was duplicated (C_CopyObject) or left as a session key."""
    assert sorted(k["type"] for k in stored.generated) == ["EC_P256", "RSA"]


def test_certificates_are_stored_with_their_keys_on_the_hsm(stored, hsm_api):
    for key_type, cert in (("RSA", stored.ca), ("EC_P256", stored.ec_leaf)):
        pem = hsm_api.expect(200, "GET", f"/keys/{stored.keys[key_type]['id']}/cert")
        assert x509.load_pem_x509_certificate(pem) == cert


def test_compatibility_mode_keeps_the_hsm_key_ids(stored, hsm_api):
    """The alias reaches the module as CKA_ID; in enable_set_attribute_value mode the key is
    not renamed to it (as in Nitrokey's module), only the certificate is mapped to the key."""
    assert not {RSA_ALIAS, EC_ALIAS} & key_ids(hsm_api)


def test_aliases_are_kept_as_the_key_labels(stored, hsm_api):
    """SunPKCS11 creates the end certificate with CKA_LABEL = alias; a NetHSM certificate has
    its key's label, so the alias is stored there — which is how the reload finds it."""
    labels = {t: hsm_api.key(k["id"])["label"] for t, k in stored.keys.items()}
    assert labels == {"RSA": RSA_ALIAS, "EC_P256": EC_ALIAS}


def test_session_keys_cannot_become_keystore_entries(module_path, java_hsm, hsm_api, classes,
                                                      tmp_path):
    """Why SUNPKCS11_CONFIG needs TOKEN_KEYS: without it the KeyPairGenerator makes session
    keys, which setKeyEntry would duplicate as token keys with C_CopyObject."""
    java = java_for(module_path, java_hsm, classes, str(tmp_path), attributes="")
    token_keys_before = token_key_ids(hsm_api)
    session = java.store_session()
    public = session.generate("ec", "EC", "secp256r1")
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "session key")])
    stand_in = ec.generate_private_key(ec.SECP256R1())  # any signature: the store fails first
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(public)
            .serial_number(1).not_valid_before(now).not_valid_after(now)
            .sign(stand_in, hashes.SHA256()))
    with pytest.raises(AssertionError, match=r"CKR_ACTION_PROHIBITED(.|\n)*C_CopyObject"):
        session.store("session", "ec", [cert])
    session.close()
    assert token_key_ids(hsm_api) == token_keys_before


def test_keytool_genkeypair_stores_an_hsm_key_with_its_self_signed_certificate(
        module_path, java_hsm, hsm_api, classes, tmp_path):
    """keytool's one-step path: generate on the HSM, self-sign through the HSM, store."""
    java = java_for(module_path, java_hsm, classes, str(tmp_path), TOKEN_KEYS)
    keytool = ["keytool", "-keystore", "NONE", "-storetype", "PKCS11", "-providerClass",
               "sun.security.pkcs11.SunPKCS11", "-providerArg", java.sunpkcs11_config,
               "-providerName", "SunPKCS11-p11fast", "-storepass", OPERATOR_PIN]
    env = host_env(java.module_config)
    done = subprocess.run(
        [*keytool, "-genkeypair", "-alias", "keytool-ec", "-keyalg", "EC", "-groupname",
         "secp256r1", "-sigalg", "SHA256withECDSA", "-dname", "CN=keytool"],
        env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = subprocess.run([*keytool, "-list"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert "keytool-ec, PrivateKeyEntry" in listed.stdout, listed.stdout + listed.stderr
    key_id = next(k for k in token_key_ids(hsm_api) if hsm_api.key(k)["label"] == "keytool-ec")
    cert = x509.load_pem_x509_certificate(hsm_api.expect(200, "GET", f"/keys/{key_id}/cert"))
    hsm_key = serialization.load_pem_public_key(hsm_api.public_pem(key_id))
    hsm_key.verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA256()))
