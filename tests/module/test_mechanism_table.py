"""The module's C_GetMechanismList and C_GetMechanismInfo are p11fast.mechanisms' table, as
the policy allows it."""

from __future__ import annotations

import os

import pytest

from p11fast import ckr, mechanisms
from tests.module.conftest import OPERATOR_PIN, run_host
from tests.module.test_manage import with_policy, write_config

HOST = os.path.join(os.path.dirname(__file__), "mechanisms_host.py")


def mechanism_answers(module_path: str, config: str) -> dict:
    return run_host(HOST, config, module_path, OPERATOR_PIN)


def test_every_mechanism_of_the_table_is_listed_in_order_with_its_info(module_path, hsm):
    out = mechanism_answers(module_path, hsm.config_path)
    assert out["list"] == [m.type for m in mechanisms.PKCS11]
    assert out["info"] == {m.name: [m.min_key, m.max_key, m.flags] for m in mechanisms.PKCS11}


@pytest.mark.parametrize("allowed", [["CKM_SHA256", "CKM_ECDSA"], ["CKM_AES_KEY_GEN"]])
def test_the_policy_leaves_only_its_mechanisms_in_the_list_and_the_info(
    module_path, hsm, tmp_path, allowed
):
    config = write_config(hsm, tmp_path, "policy.conf", with_policy(allowed_mechanisms=allowed))
    out = mechanism_answers(module_path, config)
    assert out["list"] == [m.type for m in mechanisms.PKCS11 if m.name in allowed]
    for m in mechanisms.PKCS11:
        expected = [m.min_key, m.max_key, m.flags] if m.name in allowed else \
            ckr.CKR_MECHANISM_INVALID
        assert out["info"][m.name] == expected, m.name
