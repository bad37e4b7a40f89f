"""Object management through the real module, checked through the HSM's own API: key
generation, import, certificates, destroy, rename, session objects, PINs and policy."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from p11fast.hsm.testing import ADMIN_PASSPHRASE, OPERATOR_USER
from tests.hsm_api import HsmApi
from tests.module.conftest import OPERATOR_PIN, host_env, run_python

SO = ("--login", "--login-type", "so", "--so-pin", ADMIN_PASSPHRASE)


def tool(module_path: str, config: str, *args: str, ok: bool = True) -> str:
    done = subprocess.run(["pkcs11-tool", "--module", module_path, *args], env=host_env(config),
                          capture_output=True, text=True, timeout=120)
    if ok:
        assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def write_config(hsm, directory, name: str, change) -> str:
    with open(hsm.config_path) as f:
        cfg = yaml.safe_load(f)
    change(cfg)
    path = os.path.join(str(directory), name)
    with open(path, "w") as f:
        yaml.safe_dump(cfg, f)
    os.chmod(path, 0o600)
    return path


def with_policy(**policy):
    def change(cfg):
        cfg["policy"] = policy
    return change


def write_der_key(path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.DER,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def session_keys(api: HsmApi) -> list[str]:
    return [k["id"] for k in json.loads(api.expect(200, "GET", "/keys"))
            if k["id"].startswith("p11fastsession")]


# A PyKCS11 host: runs the body (indented Python) with `lib`, `slot`, `out` (printed as JSON),
# `ckr(fn)` (the CKR an call raises, 0 if none) and the PyKCS11 names.
PYKCS11 = """
import json, sys
from PyKCS11 import *
lib = PyKCS11Lib()
lib.load(sys.argv[1])
slot = lib.getSlotList(tokenPresent=True)[0]
out = {}
def ckr(fn):
    try:
        fn()
        return 0
    except PyKCS11Error as e:
        return e.value
def ec_pair(session, token, cka_id=b"", label="k"):
    pub = [(CKA_CLASS, CKO_PUBLIC_KEY), (CKA_TOKEN, token), (CKA_VERIFY, True),
           (CKA_EC_PARAMS, bytes.fromhex("06082a8648ce3d030107")), (CKA_LABEL, label)]
    priv = [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_TOKEN, token), (CKA_SIGN, True),
            (CKA_SENSITIVE, True), (CKA_PRIVATE, True), (CKA_LABEL, label)]
    if cka_id:
        pub.append((CKA_ID, cka_id))
        priv.append((CKA_ID, cka_id))
    return session.generateKeyPair(pub, priv, MechanismECGENERATEKEYPAIR)
BODY
print(json.dumps(out))
"""


def pykcs11(module_path: str, config: str, body: str) -> dict:
    script = PYKCS11.replace("BODY", body)
    done = run_python(script, config, module_path)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(("key_type", "nethsm_type"), [
    ("rsa:2048", "RSA"), ("EC:prime256v1", "EC_P256"), ("EC:secp384r1", "EC_P384"),
    ("EC:secp521r1", "EC_P521"), ("EC:secp256k1", "EC_P256K1"),
    ("EC:brainpoolP256r1", "BrainpoolP256"), ("EC:brainpoolP384r1", "BrainpoolP384"),
    ("EC:brainpoolP512r1", "BrainpoolP512"), ("EC:edwards25519", "Curve25519"),
])
def test_keypairgen_makes_the_key_on_the_hsm(module_path, hsm, api, key_type, nethsm_type):
    key_id = "gen" + nethsm_type.replace("_", "").lower()
    tool(module_path, hsm.config_path, *SO, "--keypairgen", "--key-type", key_type,
         "--id", key_id.encode().hex(), "--label", f"label {key_id}", "--usage-sign")
    key = api.key(key_id)
    assert key["type"] == nethsm_type
    assert key["label"] == f"label {key_id}"
    signing = {"RSA": "RSA_Signature_PKCS1", "Curve25519": "EdDSA_Signature"}
    assert signing.get(nethsm_type, "ECDSA_Signature") in key["mechanisms"]
    assert not any("Decryption" in m for m in key["mechanisms"])  # only what was asked for
    out = tool(module_path, hsm.config_path, "--login", "--pin", OPERATOR_PIN, "-O",
               "--id", key_id.encode().hex())
    assert "Private Key Object" in out and "Public Key Object" in out


def test_aes_key_generated_by_label_is_found_by_that_label(module_path, hsm, api):
    label = "CMS MK 4099"
    tool(module_path, hsm.config_path, *SO, "--keygen", "--key-type", "AES:32", "--label", label,
         "--sensitive")
    keys = json.loads(api.expect(200, "GET", "/keys?label=CMS%20MK%204099"))
    assert len(keys) == 1
    key = api.key(keys[0]["id"])
    assert key["type"] == "Generic"
    assert set(key["mechanisms"]) == {"AES_Encryption_CBC", "AES_Decryption_CBC"}
    out = pykcs11(module_path, hsm.config_path, f"""
session = lib.openSession(slot)
found = session.findObjects([(CKA_LABEL, {label!r})])
out["found"] = [session.getAttributeValue(o, [CKA_CLASS, CKA_KEY_TYPE]) for o in found]
""")
    assert out["found"] == [[4, 0x1F]]  # CKO_SECRET_KEY, CKK_AES


def test_private_key_and_certificate_written_found_and_deleted(module_path, hsm, api, tmp_path):
    config = hsm.config_path  # no policy: import is on, as with nethsm-pkcs11
    key = ec.generate_private_key(ec.SECP256R1())
    write_der_key(tmp_path / "key.der", key)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "imported")])
    import datetime

    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(7).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    (tmp_path / "cert.der").write_bytes(cert.public_bytes(serialization.Encoding.DER))
    key_id = "imported1"
    hex_id = key_id.encode().hex()
    tool(module_path, config, *SO, "--write-object", str(tmp_path / "key.der"), "--type",
         "privkey", "--id", hex_id, "--label", "imported key", "--usage-sign", "--sensitive")
    stored = api.key(key_id)
    assert stored["type"] == "EC_P256" and stored["mechanisms"] == ["ECDSA_Signature"]
    assert serialization.load_pem_public_key(api.public_pem(key_id)).public_numbers() == \
        key.public_key().public_numbers()
    tool(module_path, config, *SO, "--write-object", str(tmp_path / "cert.der"), "--type",
         "cert", "--id", hex_id, "--label", "imported cert")
    assert x509.load_pem_x509_certificate(api.expect(200, "GET", f"/keys/{key_id}/cert")) == cert
    out = tool(module_path, config, "-O", "--type", "cert", "--id", hex_id)
    assert "Certificate Object" in out and "CN=imported" in out

    tool(module_path, config, *SO, "--delete-object", "--type", "cert", "--id", hex_id)
    assert api.request("GET", f"/keys/{key_id}/cert")[0] == 404
    tool(module_path, config, *SO, "--delete-object", "--type", "privkey", "--id", hex_id)
    assert api.request("GET", f"/keys/{key_id}")[0] == 404


def test_key_import_is_refused_when_the_policy_turns_it_off(module_path, hsm, api, tmp_path):
    config = write_config(hsm, tmp_path, "noimport.conf", with_policy(allow_key_import=False))
    key = ec.generate_private_key(ec.SECP256R1())
    write_der_key(tmp_path / "key.der", key)
    out = tool(module_path, config, *SO, "--write-object", str(tmp_path / "key.der"),
               "--type", "privkey", "--id", "aa", "--sensitive", ok=False)
    assert "CKR_TEMPLATE_INCONSISTENT" in out
    assert api.request("GET", "/keys/aa")[0] == 404


def test_rename_and_relabel_through_set_attribute_value(module_path, hsm, api):
    api.generate("EC_P256", ["ECDSA_Signature"], "tobemoved")
    pykcs11(module_path, hsm.config_path, """
session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
key = session.findObjects([(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_ID, b"tobemoved")])[0]
session.setAttributeValue(key, [(CKA_ID, b"moved"), (CKA_LABEL, "new label")])
out["id"] = bytes(session.getAttributeValue(key, [CKA_ID])[0]).decode()
""")
    assert api.request("GET", "/keys/tobemoved")[0] == 404
    assert api.key("moved")["label"] == "new label"


def test_template_errors_get_the_standard_codes(module_path, hsm):
    out = pykcs11(module_path, hsm.config_path, """
session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
ec_params = bytes.fromhex("06082a8648ce3d030107")
pub = [(CKA_TOKEN, True), (CKA_EC_PARAMS, ec_params)]
priv = [(CKA_TOKEN, True), (CKA_SIGN, True)]
gen = lambda p, q, m=MechanismECGENERATEKEYPAIR: session.generateKeyPair(p, q, m)
rsa = MechanismRSAGENERATEKEYPAIR
out["ids differ"] = ckr(lambda: gen(pub + [(CKA_ID, b"a1")], priv + [(CKA_ID, b"b1")]))
out["unknown attribute"] = ckr(lambda: gen(pub + [(0x7FFF0001, b"x")], priv))
out["extractable"] = ckr(lambda: gen(pub, priv + [(CKA_EXTRACTABLE, True)]))
out["not sensitive"] = ckr(lambda: gen(pub, priv + [(CKA_SENSITIVE, False)]))
out["wrong key type"] = ckr(lambda: gen(pub + [(CKA_KEY_TYPE, CKK_RSA)], priv))
out["wrong class"] = ckr(lambda: gen(pub, priv + [(CKA_CLASS, CKO_PUBLIC_KEY)]))
p224 = bytes.fromhex("06052b81040021")
out["unknown curve"] = ckr(lambda: gen([(CKA_TOKEN, True), (CKA_EC_PARAMS, p224)], priv))
out["no curve"] = ckr(lambda: gen([(CKA_TOKEN, True)], priv))
e3 = [(CKA_TOKEN, True), (CKA_MODULUS_BITS, 2048), (CKA_PUBLIC_EXPONENT, b"\\x03")]
out["exponent 3"] = ckr(lambda: gen(e3, priv, rsa))
out["512 bits"] = ckr(lambda: gen([(CKA_TOKEN, True), (CKA_MODULUS_BITS, 512)], priv, rsa))
out["aes 20 bytes"] = ckr(lambda: session.generateKey([(CKA_TOKEN, True), (CKA_VALUE_LEN, 20)]))
key = session.findObjects([(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_ID, b"ecp256")])[0]
out["set class"] = ckr(lambda: session.setAttributeValue(key, [(CKA_CLASS, CKO_SECRET_KEY)]))
""")
    assert out == {
        "ids differ": 0xD1, "unknown attribute": 0x12, "extractable": 0xD1, "not sensitive": 0xD1,
        "wrong key type": 0xD1, "wrong class": 0xD1, "unknown curve": 0x140, "no curve": 0xD0,
        "exponent 3": 0x13, "512 bits": 0x62, "aes 20 bytes": 0x62, "set class": 0x10,
    }


def test_generation_needs_the_administrator(module_path, hsm, api, tmp_path):
    def operator_only(cfg):
        for slot in cfg["slots"]:
            slot["administrator"].pop("password", None)

    config = write_config(hsm, tmp_path, "operator.conf", operator_only)
    out = pykcs11(module_path, config, """
session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
out["rv"] = ckr(lambda: ec_pair(session, True, b"nogen"))
""")
    assert out["rv"] == 0x101  # CKR_USER_NOT_LOGGED_IN
    assert api.request("GET", "/keys/nogen")[0] == 404


def test_session_objects_live_as_long_as_their_session(module_path, hsm, api):
    out = pykcs11(module_path, hsm.config_path, """
creator = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
other = lib.openSession(slot)
pub, priv = ec_pair(creator, False, b"sess1", "session pair")
data = creator.createObject([(CKA_CLASS, CKO_DATA), (CKA_TOKEN, False), (CKA_LABEL, "note"),
                             (CKA_VALUE, b"hello")])
count = lambda s, t: len(s.findObjects(t))
out["pair seen by the other session"] = count(other, [(CKA_ID, b"sess1"), (CKA_TOKEN, False)])
out["data seen"] = count(other, [(CKA_CLASS, CKO_DATA), (CKA_LABEL, "note")])
out["token objects"] = count(other, [(CKA_ID, b"sess1"), (CKA_TOKEN, True)])
out["signature bytes"] = len(creator.sign(priv, b"x" * 32, Mechanism(CKM_ECDSA)))
creator.closeSession()
out["after close"] = count(other, [(CKA_ID, b"sess1")]) + count(other, [(CKA_CLASS, CKO_DATA)])
""")
    assert out == {"pair seen by the other session": 2, "data seen": 1, "token objects": 0,
                   "signature bytes": 64, "after close": 0}
    assert session_keys(api) == []


def test_no_session_key_survives_finalize_or_a_killed_process(module_path, hsm, api):
    pykcs11(module_path, hsm.config_path, """
session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
ec_pair(session, False)
out["on the hsm"] = 1
lib.lib.C_Finalize()
""")
    assert session_keys(api) == []
    done = run_python(PYKCS11.replace("BODY", """
session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
ec_pair(session, False)
import os, signal
os.kill(os.getpid(), signal.SIGKILL)
"""), hsm.config_path, module_path)
    assert done.returncode == -9
    assert len(session_keys(api)) == 1
    pykcs11(module_path, hsm.config_path, """
session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
session.login(sys.argv[2] if len(sys.argv) > 2 else "", CKU_SO)
""".replace('sys.argv[2] if len(sys.argv) > 2 else ""', repr(ADMIN_PASSPHRASE)))
    assert session_keys(api) == []


def test_session_objects_refused_by_policy(module_path, hsm, tmp_path):
    config = write_config(hsm, tmp_path, "nosession.conf", with_policy(allow_session_objects=False))
    out = pykcs11(module_path, config, """
session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
out["pair"] = ckr(lambda: ec_pair(session, False))
out["data"] = ckr(lambda: session.createObject([(CKA_CLASS, CKO_DATA), (CKA_TOKEN, False)]))
""")
    assert out == {"pair": 0x13, "data": 0x13}


def test_set_pin_and_init_pin_change_the_operator_passphrase(module_path, hsm, login_config):
    new = "a-new-operator-passphrase"
    as_operator = HsmApi(hsm.url, OPERATOR_USER, new)
    pykcs11(module_path, login_config, f"""
session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
session.login({OPERATOR_PIN!r})
out["wrong old"] = ckr(lambda: session.setPin("not-the-pin", {new!r}))
session.setPin({OPERATOR_PIN!r}, {new!r})
""")
    assert as_operator.request("GET", "/keys")[0] == 200
    out = pykcs11(module_path, login_config, f"""
session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
out["init without SO"] = ckr(lambda: session.initPin({OPERATOR_PIN!r}))
session.login({ADMIN_PASSPHRASE!r}, CKU_SO)
session.initPin({OPERATOR_PIN!r})
""")
    assert out == {"init without SO": 0x101}
    # (no check that the new passphrase now fails: the HSM delays a user after a failed login)
    assert HsmApi(hsm.url, OPERATOR_USER, OPERATOR_PIN).request("GET", "/keys")[0] == 200


def test_policy_mechanisms_are_refused_and_not_listed(module_path, hsm, api, tmp_path):
    config = write_config(hsm, tmp_path, "mechs.conf",
                          with_policy(allowed_mechanisms=["CKM_ECDSA", "CKM_SHA256"]))
    out = tool(module_path, config, "-M")
    assert "ECDSA," in out and "SHA256," in out
    assert "RSA-PKCS" not in out and "KEY-PAIR-GEN" not in out
    (tmp_path / "data").write_bytes(b"data")
    out = tool(module_path, config, "--sign", "--id", b"rsa2048".hex(), "-m", "SHA256-RSA-PKCS",
               "-i", str(tmp_path / "data"), "-o", str(tmp_path / "sig"), ok=False)
    assert "CKR_MECHANISM_INVALID" in out and "policy.allowed_mechanisms" in out


def test_key_invalidation_archives_instead_of_deleting(module_path, hsm, api, tmp_path):
    config = write_config(hsm, tmp_path, "archive.conf", with_policy(key_invalidation=True))
    api.generate("EC_P256", ["ECDSA_Signature"], "archiveme")
    tool(module_path, config, *SO, "--delete-object", "--type", "privkey", "--id",
         b"archiveme".hex())
    ids = [k["id"] for k in json.loads(api.expect(200, "GET", "/keys"))]
    assert "archiveme" not in ids
    assert any(i.startswith("zzarchive") and i.endswith(".archiveme") for i in ids)
    out = tool(module_path, config, "--login", "--pin", OPERATOR_PIN, "-O")
    assert "zzarchive" not in out and "archiveme" not in out
