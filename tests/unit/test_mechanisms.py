"""p11fast.mechanisms, the one mechanism table: against the NetHSM API (as Nitrokey's `nethsm`
SDK spells it), against itself, and against what the compiled ABI was built from it."""

import subprocess
import sys
from pathlib import Path

import nethsm
import pytest

from p11fast import _abi
from p11fast import attrs as A
from p11fast import mechanisms as M

REPO = Path(__file__).resolve().parents[2]
FLAG_OF = {M.SIGN: A.CKF_SIGN, M.DECRYPT: A.CKF_DECRYPT, M.ENCRYPT: A.CKF_ENCRYPT}
API_MODES = {M.SIGN: nethsm.SignMode, M.DECRYPT: nethsm.DecryptMode,
             M.ENCRYPT: nethsm.EncryptMode}


def test_nethsm_table_is_the_apis_key_mechanisms_in_the_apis_order():
    assert [m.name for m in M.NETHSM] == [m.value for m in nethsm.KeyMechanism]


@pytest.mark.parametrize("operation", M.OPERATIONS)
def test_modes_of_each_operation_are_the_apis_modes_in_the_apis_order(operation):
    assert [m.mode for m in M.modes(operation)] == [m.value for m in API_MODES[operation]]


def test_each_nethsm_mechanism_allows_the_operation_its_name_says_over_the_hash_it_names():
    kind = {"Signature": M.SIGN, "Decryption": M.DECRYPT, "Encryption": M.ENCRYPT}
    for m in M.NETHSM:
        word = m.name.split("_")[1 if m.family in (M.RSA, M.GENERIC) else -1]
        assert m.operation == kind[word], m
        assert m.hash == (m.name.rsplit("_", 1)[1] if "_PSS_" in m.name or "_OAEP_" in m.name
                          else None), m
        assert m.hash is None or m.mode.endswith("_" + m.hash), m


def test_families_are_the_key_types_each_mechanism_serves():
    assert M.family("RSA") == M.RSA and M.family("Generic") == M.GENERIC
    assert M.family("Curve25519") == M.EDWARDS
    for key_type in ("EC_P256", "EC_P384", "EC_P521", "EC_P256K1", "BrainpoolP256",
                     "BrainpoolP384", "BrainpoolP512"):
        assert M.family(key_type) == M.EC
    assert {M.family(t.value) for t in nethsm.KeyType} == {m.family for m in M.NETHSM}


def test_every_pkcs11_mechanism_a_key_offers_is_offered_by_the_module_for_its_operation():
    for m in M.NETHSM:
        for ckm in m.pkcs11:
            (offered,) = [p for p in M.PKCS11 if p.type == ckm]
            # CMAC signs with the HSM's CBC encryption
            flag = A.CKF_SIGN if ckm in (A.CKM_AES_CMAC, A.CKM_AES_CMAC_GENERAL) else \
                FLAG_OF[m.operation]
            assert offered.flags & flag, (m, offered)


def test_every_key_operation_the_module_offers_is_given_by_some_nethsm_mechanism():
    given = {ckm for m in M.NETHSM for ckm in m.pkcs11}
    key_flags = A.CKF_SIGN | A.CKF_DECRYPT | A.CKF_ENCRYPT
    assert {p.type for p in M.PKCS11 if p.flags & key_flags} == given


def test_generators_are_the_mechanisms_that_generate_plus_gnutls_eddsa():
    generating = {p.type for p in M.PKCS11
                  if p.flags & (A.CKF_GENERATE | A.CKF_GENERATE_KEY_PAIR)}
    assert set(M.GENERATORS) == generating | {A.CKM_EDDSA}
    key_types = {t.value for t in nethsm.KeyType}
    for ckk, key_type in M.GENERATORS.values():
        assert key_type is None or key_type in key_types
        assert (ckk in (A.CKK_AES, A.CKK_GENERIC_SECRET)) == (key_type == M.GENERIC)


def test_policy_names_are_the_offered_mechanisms_by_their_header_names():
    assert M.NAMES == {p.name for p in M.PKCS11}
    assert all(M.BY_NAME[name].type == getattr(A, name) for name in M.NAMES)
    assert len({p.type for p in M.PKCS11}) == len(M.PKCS11)


def test_a_keys_allowed_mechanisms_come_from_its_nethsm_mechanisms():
    assert M.allowed_mechanisms(["RSA_Signature_PSS_SHA256"]) == [
        A.CKM_RSA_PKCS_PSS, A.CKM_SHA256_RSA_PKCS_PSS]
    assert M.allowed_mechanisms(["AES_Encryption_CBC", "AES_Decryption_CBC"]) == sorted(
        [A.CKM_AES_CBC, A.CKM_AES_CBC_PAD, A.CKM_AES_ECB, A.CKM_AES_CMAC,
         A.CKM_AES_CMAC_GENERAL])
    assert M.allowed_mechanisms(["RSA_Decryption_RAW"]) == [A.CKM_RSA_X_509]
    assert M.allowed_mechanisms(["BIP340_Signature", "RSA_Signature_PSS_MD5", "Future"]) == []


def test_a_key_serves_an_operation_only_through_a_pkcs11_mechanism():
    assert M.serves(["RSA_Decryption_OAEP_SHA1"], M.DECRYPT)
    assert not M.serves(["RSA_Decryption_OAEP_MD5"], M.DECRYPT)
    assert not M.serves(["RSA_Decryption_OAEP_SHA1"], M.SIGN)
    assert M.serves(["AES_Encryption_CBC"], M.ENCRYPT)


def test_usable_mechanisms_of_a_key_type_leave_out_what_pkcs11_cannot_reach():
    assert M.usable("EC_P256K1") == ["ECDSA_Signature"]
    assert M.usable("Curve25519") == ["EdDSA_Signature"]
    assert M.usable("Generic", M.DECRYPT) == ["AES_Decryption_CBC"]
    rsa_signing = M.usable("RSA", M.SIGN)
    assert rsa_signing[0] == "RSA_Signature_PKCS1" and "RSA_Signature_PSS_MD5" not in rsa_signing
    assert len(M.usable("RSA")) == 13


def test_import_is_light_and_needs_no_extension():
    code = ("import sys; import p11fast.mechanisms; "
            "print(' '.join(sorted(m for m in sys.modules if m.startswith('p11fast'))))")
    out = subprocess.run([sys.executable, "-S", "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True)
    assert out.stdout.split() == ["p11fast", "p11fast.attrs", "p11fast.mechanisms"]


# --- the compiled side: what mechanisms_build.py wrote into the ABI ----------------------------


def test_compiled_nethsm_mechanisms_are_the_table_in_its_bit_order():
    assert list(_abi.mechanism_tables()["nethsm"]) == [m.name for m in M.NETHSM]


@pytest.mark.parametrize("operation", M.OPERATIONS)
def test_compiled_modes_are_the_apis_and_need_their_nethsm_mechanism(operation):
    compiled = _abi.mechanism_tables()[operation]
    assert [mode for mode, _ in compiled] == [m.value for m in API_MODES[operation]]
    names = [m.name for m in M.NETHSM]
    assert [names[needs.bit_length() - 1] for _, needs in compiled] == [
        m.name for m in M.modes(operation)]
    assert all(needs & (needs - 1) == 0 for _, needs in compiled)  # one mechanism each


@pytest.mark.parametrize("operation", [M.SIGN, M.DECRYPT])
def test_compiled_modes_by_hash_are_the_pss_and_oaep_modes(operation):
    tables = _abi.mechanism_tables()
    modes = [mode for mode, _ in tables[operation]]
    for name, (index, hash_back) in tables[f"{operation}_by_hash"].items():
        assert modes[index].endswith("_" + name)
        assert hash_back == tables["hashes"][name]


def test_compiled_nethsm_mechanisms_offering_each_pkcs11_mechanism_match_the_table():
    offering = _abi.mechanism_tables()["offering"]
    for p in M.PKCS11:
        bits = {M.NETHSM[i].name for i in range(len(M.NETHSM)) if offering[p.type] >> i & 1}
        assert bits == {m.name for m in M.NETHSM if p.type in m.pkcs11}, p
