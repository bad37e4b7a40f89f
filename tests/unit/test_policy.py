"""p11fast.policy: the secure defaults and what each check refuses. The mechanism policy is the
ABI's own check: tests/module/test_mechanism_table.py and test_manage.py drive it."""

import pytest

from p11fast import ckr
from p11fast.errors import P11Error
from p11fast.policy import PolicyConfig, check_key_import, check_session_object


def test_defaults_allow_every_mechanism_session_objects_and_import():
    policy = PolicyConfig()
    assert policy.allowed_mechanisms is None
    assert policy.allow_session_objects and policy.allow_key_import
    assert not policy.key_invalidation


def test_key_import_is_allowed_by_default():
    check_key_import(PolicyConfig())


def test_key_import_is_refused_when_switched_off():
    with pytest.raises(P11Error, match="allow_key_import") as info:
        check_key_import(PolicyConfig(allow_key_import=False))
    assert info.value.ckr == ckr.CKR_TEMPLATE_INCONSISTENT


def test_session_objects_are_allowed_by_default():
    check_session_object(PolicyConfig())


def test_session_objects_are_refused_when_switched_off():
    with pytest.raises(P11Error, match="allow_session_objects") as info:
        check_session_object(PolicyConfig(allow_session_objects=False))
    assert info.value.ckr == ckr.CKR_ATTRIBUTE_VALUE_INVALID


def test_policy_records_compare_by_value_and_are_immutable():
    assert PolicyConfig(key_invalidation=True) == PolicyConfig(key_invalidation=True)
    with pytest.raises(AttributeError):
        PolicyConfig().allow_key_import = False


def test_unknown_policy_field_is_rejected():
    with pytest.raises(TypeError):
        PolicyConfig(allow_export=True)
