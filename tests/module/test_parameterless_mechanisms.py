"""A mechanism that takes no parameter refuses one, in every function it serves."""

from __future__ import annotations

import os

from p11fast import ckr
from tests.module.conftest import OPERATOR_PIN, run_host

HOST = os.path.join(os.path.dirname(__file__), "mechanism_params_host.py")

# The mechanisms whose parameter the module reads (their checks have tests of their own).
TAKES_A_PARAMETER = {
    "CKM_RSA_PKCS_PSS", "CKM_SHA1_RSA_PKCS_PSS", "CKM_SHA224_RSA_PKCS_PSS",
    "CKM_SHA256_RSA_PKCS_PSS", "CKM_SHA384_RSA_PKCS_PSS", "CKM_SHA512_RSA_PKCS_PSS",
    "CKM_RSA_PKCS_OAEP", "CKM_AES_CBC", "CKM_AES_CBC_PAD", "CKM_AES_CMAC_GENERAL",
}  # fmt: skip


def test_every_mechanism_without_a_parameter_refuses_one(module_path, login_config, api):
    results = run_host(HOST, login_config, module_path, OPERATOR_PIN)
    checked = {name: by_function for name, by_function in results.items()
               if name not in TAKES_A_PARAMETER}
    wrong = {
        (name, function): codes
        for name, by_function in checked.items()
        for function, codes in by_function.items()
        if codes != [ckr.CKR_MECHANISM_PARAM_INVALID] * 2
    }
    assert wrong == {}
    assert {"CKM_ECDSA", "CKM_RSA_PKCS", "CKM_SHA256", "CKM_AES_KEY_GEN"} <= checked.keys()
    assert all(checked.values())  # each was tried in at least one function
