"""The module inside a running interpreter: python-pkcs11 and PyKCS11 (the loader reuses it)."""

from __future__ import annotations

import json

from pkcs11 import KeyType, ObjectClass

from p11fast.hsm.testing import ADMIN_PASSPHRASE, ADMIN_USER, running_hsm
from tests.hsm_api import HsmApi
from tests.module.conftest import OPERATOR_PIN, run_python

PYTHON_PKCS11 = r"""
import json, sys
import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass

lib = pkcs11.lib(sys.argv[1])
slots = lib.get_slots(token_present=True)
token = lib.get_token(token_label="p11fast-dev")
with token.open(user_pin=sys.argv[2]) as session:
    keys = sorted(k.label for k in session.get_objects({Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="ecp256")
    sig = key.sign(b"python-pkcs11", mechanism=Mechanism.ECDSA_SHA256)
    pub = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label="ecp256")
    point = pub[Attribute.EC_POINT].hex()
print(json.dumps({"slots": len(slots), "keys": keys, "sig": sig.hex(), "point": point}))
"""

PYKCS11 = r"""
import json, sys
import PyKCS11

lib = PyKCS11.PyKCS11Lib()
lib.load(sys.argv[1])
slots = lib.getSlotList(tokenPresent=True)
session = lib.openSession(slots[0])
session.login(sys.argv[2])
objs = session.findObjects([(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY)])
labels = sorted(session.getAttributeValue(o, [PyKCS11.CKA_LABEL])[0] for o in objs)
rsa = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_LABEL, "rsa2048")]
key = session.findObjects(rsa)[0]
sig = bytes(session.sign(key, b"pykcs11", PyKCS11.Mechanism(PyKCS11.CKM_SHA256_RSA_PKCS, None)))
session.logout()
session.closeSession()
print(json.dumps({"slots": len(slots), "keys": labels, "sig": sig.hex()}))
"""


def result(done) -> dict:
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_python_pkcs11_lists_logs_in_finds_and_signs(module_path, login_config, api):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, utils

    out = result(run_python(PYTHON_PKCS11, login_config, module_path, OPERATOR_PIN))
    assert out["slots"] == 1
    assert {"ecp256", "rsa2048", "ed1"} <= set(out["keys"])
    raw = bytes.fromhex(out["sig"])
    der = utils.encode_dss_signature(
        int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    )
    public = serialization.load_pem_public_key(api.public_pem("ecp256"))
    public.verify(der, b"python-pkcs11", ec.ECDSA(hashes.SHA256()))
    assert out["point"].endswith(
        public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        ).hex()
    )


def test_pykcs11_lists_logs_in_finds_and_signs(module_path, login_config, api):
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding

    out = result(run_python(PYKCS11, login_config, module_path, OPERATOR_PIN))
    assert out["slots"] == 1
    assert {"ecp256", "rsa2048", "ed1"} <= set(out["keys"])
    serialization.load_pem_public_key(api.public_pem("rsa2048")).verify(
        bytes.fromhex(out["sig"]), b"pykcs11", padding.PKCS1v15(), hashes.SHA256()
    )


LOADED = r"""
import json, sys
import PyKCS11

def ours():
    return sorted(m for m in sys.modules if m.startswith("p11fast") or m == "cryptography")

lib = PyKCS11.PyKCS11Lib()
lib.load(sys.argv[1])
slot = lib.getSlotList(tokenPresent=True)[0]
lib.getSlotInfo(slot)
lib.getTokenInfo(slot)
listed = ours()
session = lib.openSession(slot)
session.login(sys.argv[2])
key = session.findObjects([(PyKCS11.CKA_LABEL, "ecp256"),
                           (PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY)])[0]
session.sign(key, b"x" * 32, PyKCS11.Mechanism(PyKCS11.CKM_ECDSA, None))
signed = ours()
session.logout()
session.closeSession()
print(json.dumps({"listed": listed, "signed": signed}))
"""


def test_signing_never_imports_cryptography(module_path, login_config, api):
    out = result(run_python(LOADED, login_config, module_path, OPERATOR_PIN))
    assert "p11fast.model.objects" in out["signed"]
    assert "cryptography" not in out["signed"]


def test_a_search_and_signature_without_session_objects_load_not_their_model(
    module_path, login_config, api
):
    out = result(run_python(LOADED, login_config, module_path, OPERATOR_PIN))
    assert "p11fast.model.inventory" in out["signed"]
    assert "p11fast.model.session_objects" not in out["signed"]


def test_without_threads_listing_tokens_loads_no_object_model(
    module_path, login_config, api, tmp_path
):
    # With a background thread the object model loads during the warm-up's TLS handshake;
    # without one nothing hides its cost, so only a call about objects loads it.
    config = tmp_path / "nothreads.conf"
    with open(login_config) as f:
        config.write_text("disable_threads: true\n" + f.read())
    config.chmod(0o600)
    out = result(run_python(LOADED, str(config), module_path, OPERATOR_PIN))
    assert "p11fast._abi" in out["listed"]
    assert "p11fast.model.objects" not in out["listed"]
    assert "p11fast.model.session_objects" not in out["listed"]
    assert "p11fast.model.objects" in out["signed"]


CMS_MASTER_KEY = r"""
import json, sys
import pkcs11
from pkcs11 import Attribute, KeyType, ObjectClass

lib = pkcs11.lib(sys.argv[1])
token = lib.get_token(token_label="p11fast-dev")
out = {}
if sys.argv[3] == "generate":
    with token.open(rw=True, user_pin=sys.argv[2]) as session:
        session.generate_key(KeyType.AES, 256, label="CMS MK 4099", store=True)
with token.open(user_pin=sys.argv[2]) as session:
    keys = list(session.get_objects({Attribute.LABEL: "CMS MK 4099"}))
    out["found"] = [(k.object_class, k.key_type, k[Attribute.LABEL]) for k in keys]
    out["id"] = keys[0][Attribute.ID].hex() if keys else None
print(json.dumps(out))
"""


def test_python_pkcs11_key_generated_without_an_id_is_found_by_its_label(module_path, tmp_path):
    # vSEC:CMS creates its master keys so: python-pkcs11 sends CKA_ID = b"" for "no ID".
    with running_hsm(str(tmp_path / "hsm")) as hsm:
        made = result(run_python(CMS_MASTER_KEY, hsm.config_path, module_path, OPERATOR_PIN,
                                 "generate"))
        again = result(run_python(CMS_MASTER_KEY, hsm.config_path, module_path, OPERATOR_PIN,
                                  "find"))
        on_hsm = json.loads(HsmApi(hsm.url, ADMIN_USER, ADMIN_PASSPHRASE)
                            .expect(200, "GET", "/keys?label=CMS%20MK%204099"))
    secret_aes = [ObjectClass.SECRET_KEY, KeyType.AES, "CMS MK 4099"]
    assert made["found"] == again["found"] == [secret_aes]
    assert made["id"] == again["id"] != ""
    assert len(on_hsm) == 1 and on_hsm[0]["id"].encode().hex() == made["id"]
