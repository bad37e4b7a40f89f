"""Public values of the HSM's keys, read through the module, equal the HSM's public.pem."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from p11fast import der
from tests.module.conftest import OPERATOR_PIN, run_python

READ = r"""
import json, sys
import PyKCS11

lib = PyKCS11.PyKCS11Lib()
lib.load(sys.argv[1])
session = lib.openSession(lib.getSlotList(tokenPresent=True)[0])
session.login(sys.argv[2])
names = {"MODULUS": PyKCS11.CKA_MODULUS, "PUBLIC_EXPONENT": PyKCS11.CKA_PUBLIC_EXPONENT,
         "MODULUS_BITS": PyKCS11.CKA_MODULUS_BITS, "EC_PARAMS": PyKCS11.CKA_EC_PARAMS,
         "EC_POINT": PyKCS11.CKA_EC_POINT}
out = {}
for cls, cls_name in ((PyKCS11.CKO_PUBLIC_KEY, "public"), (PyKCS11.CKO_PRIVATE_KEY, "private")):
    [obj] = session.findObjects([(PyKCS11.CKA_CLASS, cls), (PyKCS11.CKA_LABEL, sys.argv[3])])
    wanted = sys.argv[4].split(",")
    values = session.getAttributeValue(obj, [names[n] for n in wanted])
    out[cls_name] = {n: v if isinstance(v, int) else bytes(v).hex() for n, v in zip(wanted, values)}
print(json.dumps(out))
"""


def read(module_path, config, label: str, names: list[str]) -> dict:
    done = run_python(READ, config, module_path, OPERATOR_PIN, label, ",".join(names))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_rsa_modulus_exponent_and_bits_match_the_hsm(module_path, login_config, api):
    public = serialization.load_pem_public_key(api.public_pem("rsa2048"))
    assert isinstance(public, rsa.RSAPublicKey)
    numbers = public.public_numbers()
    values = read(
        module_path, login_config, "rsa2048", ["MODULUS", "PUBLIC_EXPONENT", "MODULUS_BITS"]
    )
    for cls in ("public", "private"):
        assert int(values[cls]["MODULUS"], 16) == numbers.n
        assert int(values[cls]["PUBLIC_EXPONENT"], 16) == numbers.e
    assert values["public"]["MODULUS_BITS"] == 2048


@pytest.mark.parametrize(
    ("label", "key_type"), [("ecp256", "EC_P256"), ("ecp384", "EC_P384"), ("ecp521", "EC_P521")]
)
def test_ec_params_and_point_match_the_hsm(module_path, login_config, api, label, key_type):
    public = serialization.load_pem_public_key(api.public_pem(label))
    assert isinstance(public, ec.EllipticCurvePublicKey)
    point = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    values = read(module_path, login_config, label, ["EC_PARAMS", "EC_POINT"])
    for cls in ("public", "private"):
        assert bytes.fromhex(values[cls]["EC_PARAMS"]) == der.ec_params_for_key_type(key_type)
        assert bytes.fromhex(values[cls]["EC_POINT"]) == der.octet_string(point)
