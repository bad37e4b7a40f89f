"""python-pkcs11 and PyKCS11 inside a Python process (one process per test, so each starts the
module afresh; the loader reuses the host's interpreter)."""

from __future__ import annotations

import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, utils

from tests.interop.conftest import KEYS, OPERATOR_PIN, TOKEN, public_key, run_python

MESSAGE = b"a Python host signs this"


def result(done) -> dict:
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def der_from_raw(raw: bytes) -> bytes:
    half = len(raw) // 2
    return utils.encode_dss_signature(
        int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big")
    )


PYTHON_PKCS11_FIND = r"""
import json, sys
import pkcs11
from pkcs11 import Attribute, ObjectClass

lib = pkcs11.lib(sys.argv[1])
token = lib.get_token(token_label=sys.argv[3])
with token.open(user_pin=sys.argv[2]) as session:
    found = {
        kind.name: sorted(o[Attribute.LABEL] for o in session.get_objects({Attribute.CLASS: kind}))
        for kind in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY, ObjectClass.SECRET_KEY)
    }
print(json.dumps(found))
"""


def test_python_pkcs11_finds_private_public_and_secret_keys(module_path, login_config, api):
    found = result(run_python(PYTHON_PKCS11_FIND, login_config, module_path, OPERATOR_PIN, TOKEN))
    asymmetric = sorted(k for k, kind, *_ in KEYS if kind != "Generic")
    assert found["PRIVATE_KEY"] == asymmetric
    assert found["PUBLIC_KEY"] == asymmetric
    assert found["SECRET_KEY"] == ["aes256"]


PYTHON_PKCS11_SIGN = r"""
import json, sys
import pkcs11
from pkcs11 import KeyType, Mechanism, MGF, ObjectClass

lib = pkcs11.lib(sys.argv[1])
token = lib.get_token(token_label=sys.argv[3])
message = sys.argv[4].encode()
with token.open(user_pin=sys.argv[2]) as session:
    def key(label):
        return session.get_key(object_class=ObjectClass.PRIVATE_KEY, label=label)
    out = {
        "ecdsa": key("ecp256").sign(message, mechanism=Mechanism.ECDSA_SHA256).hex(),
        "rsa": key("rsa2048").sign(message, mechanism=Mechanism.SHA256_RSA_PKCS).hex(),
        "pss": key("rsa2048").sign(
            message,
            mechanism=Mechanism.SHA256_RSA_PKCS_PSS,
            mechanism_param=(Mechanism.SHA256, MGF.SHA256, 32),
        ).hex(),
        "eddsa": key("ed1").sign(message, mechanism=Mechanism.EDDSA).hex(),
    }
print(json.dumps(out))
"""


def test_python_pkcs11_signatures_verify_with_the_hsm_public_keys(module_path, login_config, api):
    out = result(
        run_python(
            PYTHON_PKCS11_SIGN, login_config, module_path, OPERATOR_PIN, TOKEN, MESSAGE.decode()
        )
    )
    public_key(api, "ecp256").verify(
        der_from_raw(bytes.fromhex(out["ecdsa"])), MESSAGE, ec.ECDSA(hashes.SHA256())
    )
    rsa = public_key(api, "rsa2048")
    rsa.verify(bytes.fromhex(out["rsa"]), MESSAGE, padding.PKCS1v15(), hashes.SHA256())
    rsa.verify(
        bytes.fromhex(out["pss"]),
        MESSAGE,
        padding.PSS(padding.MGF1(hashes.SHA256()), 32),
        hashes.SHA256(),
    )
    public_key(api, "ed1").verify(bytes.fromhex(out["eddsa"]), MESSAGE)


PYTHON_PKCS11_THREADS = r"""
import json, sys
from concurrent.futures import ThreadPoolExecutor
import pkcs11
from pkcs11 import Mechanism, ObjectClass

lib = pkcs11.lib(sys.argv[1])
token = lib.get_token(token_label=sys.argv[3])
with token.open(user_pin=sys.argv[2]) as session:
    key = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="ecp256")
    def sign(i):
        return key.sign(b"thread %d" % i, mechanism=Mechanism.ECDSA_SHA256).hex()
    with ThreadPoolExecutor(4) as pool:
        signatures = list(pool.map(sign, range(32)))
print(json.dumps(signatures))
"""


def test_python_pkcs11_signs_from_several_threads(module_path, login_config, api):
    signatures = result(
        run_python(PYTHON_PKCS11_THREADS, login_config, module_path, OPERATOR_PIN, TOKEN)
    )
    public = public_key(api, "ecp256")
    for i, signature in enumerate(signatures):
        public.verify(
            der_from_raw(bytes.fromhex(signature)), b"thread %d" % i, ec.ECDSA(hashes.SHA256())
        )


PYKCS11_SIGN = r"""
import json, sys
import PyKCS11

lib = PyKCS11.PyKCS11Lib()
lib.load(sys.argv[1])
slot = lib.getSlotList(tokenPresent=True)[0]
session = lib.openSession(slot)
session.login(sys.argv[2])
message = sys.argv[3].encode()

def key(label):
    template = [(PyKCS11.CKA_CLASS, PyKCS11.CKO_PRIVATE_KEY), (PyKCS11.CKA_LABEL, label)]
    return session.findObjects(template)[0]

pss = PyKCS11.RSA_PSS_Mechanism(
    PyKCS11.CKM_SHA256_RSA_PKCS_PSS, PyKCS11.CKM_SHA256, PyKCS11.CKG_MGF1_SHA256, 32
)
ecdsa = PyKCS11.Mechanism(PyKCS11.CKM_ECDSA_SHA384)
rsa = PyKCS11.Mechanism(PyKCS11.CKM_SHA512_RSA_PKCS)
out = {
    "ecdsa": bytes(session.sign(key("ecp384"), message, ecdsa)).hex(),
    "rsa": bytes(session.sign(key("rsa2048"), message, rsa)).hex(),
    "pss": bytes(session.sign(key("rsa2048"), message, pss)).hex(),
}
session.logout()
session.closeSession()
print(json.dumps(out))
"""


def test_pykcs11_signatures_verify_with_the_hsm_public_keys(module_path, login_config, api):
    out = result(
        run_python(PYKCS11_SIGN, login_config, module_path, OPERATOR_PIN, MESSAGE.decode())
    )
    public_key(api, "ecp384").verify(
        der_from_raw(bytes.fromhex(out["ecdsa"])), MESSAGE, ec.ECDSA(hashes.SHA384())
    )
    rsa = public_key(api, "rsa2048")
    rsa.verify(bytes.fromhex(out["rsa"]), MESSAGE, padding.PKCS1v15(), hashes.SHA512())
    rsa.verify(
        bytes.fromhex(out["pss"]),
        MESSAGE,
        padding.PSS(padding.MGF1(hashes.SHA256()), 32),
        hashes.SHA256(),
    )


PYKCS11_DIGEST_RANDOM = r"""
import json, sys
import PyKCS11

lib = PyKCS11.PyKCS11Lib()
lib.load(sys.argv[1])
session = lib.openSession(lib.getSlotList(tokenPresent=True)[0])
digest = bytes(session.digest(b"x" * 10000, PyKCS11.Mechanism(PyKCS11.CKM_SHA384))).hex()
random = bytes(session.generateRandom(64)).hex()
print(json.dumps({"digest": digest, "random": random}))
"""


def test_pykcs11_digest_matches_and_random_has_the_asked_length(module_path, hsm):
    import hashlib

    out = result(run_python(PYKCS11_DIGEST_RANDOM, hsm.config_path, module_path))
    assert bytes.fromhex(out["digest"]) == hashlib.sha384(b"x" * 10000).digest()
    assert len(bytes.fromhex(out["random"])) == 64


PYTHON_PKCS11_VERIFY = r"""
import json, sys
import pkcs11
from pkcs11 import Mechanism, ObjectClass

lib = pkcs11.lib(sys.argv[1])
token = lib.get_token(token_label=sys.argv[3])
with token.open(user_pin=sys.argv[2]) as session:
    private = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="ecp256")
    public = session.get_key(object_class=ObjectClass.PUBLIC_KEY, label="ecp256")
    signature = private.sign(b"verify me", mechanism=Mechanism.ECDSA_SHA256)
    out = {
        "same": public.verify(b"verify me", signature, mechanism=Mechanism.ECDSA_SHA256),
        "other": public.verify(b"verify you", signature, mechanism=Mechanism.ECDSA_SHA256),
    }
print(json.dumps(out))
"""


def test_python_pkcs11_verify_accepts_the_signature_and_rejects_another_message(
    module_path, login_config, api
):
    out = result(run_python(PYTHON_PKCS11_VERIFY, login_config, module_path, OPERATOR_PIN, TOKEN))
    assert out == {"same": True, "other": False}


PYTHON_PKCS11_CRYPT = r"""
import json, sys
import pkcs11
from pkcs11 import KeyType, Mechanism, MGF, ObjectClass

lib = pkcs11.lib(sys.argv[1])
token = lib.get_token(token_label=sys.argv[3])
with token.open(user_pin=sys.argv[2]) as session:
    aes = session.get_key(key_type=KeyType.AES, label="aes256")
    iv = bytes(range(16))
    plain = b"sixteen byte blk" * 3
    cipher = aes.encrypt(plain, mechanism=Mechanism.AES_CBC, mechanism_param=iv)
    back = aes.decrypt(cipher, mechanism=Mechanism.AES_CBC, mechanism_param=iv)
    rsa = session.get_key(object_class=ObjectClass.PRIVATE_KEY, label="rsa2048")
    secret = rsa.decrypt(
        bytes.fromhex(sys.argv[4]),
        mechanism=Mechanism.RSA_PKCS_OAEP,
        mechanism_param=(Mechanism.SHA256, MGF.SHA256, None),
    )
print(json.dumps({"iv": iv.hex(), "plain": plain.hex(), "cipher": cipher.hex(),
                  "back": back.hex(), "secret": secret.hex()}))
"""


def test_python_pkcs11_encrypts_and_decrypts_aes_cbc_and_decrypts_rsa_oaep(
    module_path, login_config, api
):
    from cryptography.hazmat.primitives.asymmetric import padding as asym_padding

    oaep = asym_padding.OAEP(asym_padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    cipher = public_key(api, "rsa2048").encrypt(b"the RSA secret", oaep)
    out = result(
        run_python(
            PYTHON_PKCS11_CRYPT, login_config, module_path, OPERATOR_PIN, TOKEN, cipher.hex()
        )
    )
    assert out["back"] == out["plain"] != out["cipher"]
    assert bytes.fromhex(out["secret"]) == b"the RSA secret"


PYTHON_PKCS11_GENERATE = r"""
import json, sys
import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism
from pkcs11.util.ec import encode_named_curve_parameters

lib = pkcs11.lib(sys.argv[1])
token = lib.get_token(token_label=sys.argv[3])
with token.open(user_pin=sys.argv[2], rw=True) as session:
    params = session.create_domain_parameters(
        KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters("secp256r1")}, local=True
    )
    public, private = params.generate_keypair(store=False)
    signature = private.sign(b"fresh key", mechanism=Mechanism.ECDSA_SHA256)
    aes = session.generate_key(KeyType.AES, 256, store=False)
    iv = bytes(16)
    round_trip = aes.decrypt(aes.encrypt(b"A" * 32, mechanism_param=iv), mechanism_param=iv)
    out = {"point": public[Attribute.EC_POINT].hex(), "signature": signature.hex(),
           "aes": round_trip.hex()}
print(json.dumps(out))
"""


def test_python_pkcs11_generated_session_keys_sign_and_encrypt(module_path, login_config, api):
    out = result(run_python(PYTHON_PKCS11_GENERATE, login_config, module_path, OPERATOR_PIN, TOKEN))
    point = bytes.fromhex(out["point"])
    point = point[2:] if point[0] == 0x04 and len(point) == 67 else point  # DER OCTET STRING
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    public.verify(
        der_from_raw(bytes.fromhex(out["signature"])), b"fresh key", ec.ECDSA(hashes.SHA256())
    )
    assert bytes.fromhex(out["aes"]) == b"A" * 32


PYKCS11_GENERATE_RSA = r"""
import json, sys
import PyKCS11
from PyKCS11 import *

lib = PyKCS11Lib()
lib.load(sys.argv[1])
slot = lib.getSlotList(tokenPresent=True)[0]
session = lib.openSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION)
session.login(sys.argv[2])
public_template = [(CKA_CLASS, CKO_PUBLIC_KEY), (CKA_TOKEN, False), (CKA_ENCRYPT, True),
                   (CKA_MODULUS_BITS, 2048), (CKA_PUBLIC_EXPONENT, (1, 0, 1))]
private_template = [(CKA_CLASS, CKO_PRIVATE_KEY), (CKA_TOKEN, False), (CKA_DECRYPT, True),
                    (CKA_SENSITIVE, True), (CKA_PRIVATE, True)]
public, private = session.generateKeyPair(public_template, private_template)
oaep = RSAOAEPMechanism(CKM_SHA256, CKG_MGF1_SHA256)
cipher = bytes(session.encrypt(public, b"PyKCS11 secret", oaep))
plain = bytes(session.decrypt(private, cipher, oaep))
modulus = bytes(session.getAttributeValue(public, [CKA_MODULUS])[0])
session.logout()
session.closeSession()
print(json.dumps({"cipher": cipher.hex(), "plain": plain.hex(), "modulus": modulus.hex()}))
"""


def test_pykcs11_generated_rsa_session_key_pair_encrypts_and_decrypts_oaep(
    module_path, login_config, api
):
    out = result(run_python(PYKCS11_GENERATE_RSA, login_config, module_path, OPERATOR_PIN))
    assert bytes.fromhex(out["plain"]) == b"PyKCS11 secret"
    assert len(bytes.fromhex(out["modulus"])) == 256
    assert len(bytes.fromhex(out["cipher"])) == 256
