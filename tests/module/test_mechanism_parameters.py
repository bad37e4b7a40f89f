"""A key that holds OAEP or PSS over some hashes only: asking for another hash is a parameter the
key refuses (CKR_MECHANISM_PARAM_INVALID), not a function it lacks (CKR_KEY_FUNCTION_NOT_PERMITTED,
which stays the answer when the key holds no OAEP or PSS at all). pkcs11-tool --test depends on
the difference: it aborts on the second and goes on after the first."""

from __future__ import annotations

import PyKCS11 as K

from p11fast import attrs as A
from p11fast import ckr
from p11fast.hsm.testing import ADMIN_PASSPHRASE, ADMIN_USER, OPERATOR_PASSPHRASE, running_hsm
from tests.hosts import pkcs11_tool
from tests.hsm_api import HsmApi
from tests.module.crypt_cases import (
    PRIVATE,
    PUBLIC,
    import_rsa,
    oaep_params,
    pss_params,
    run_cases,
)

OAEP_SHA1 = oaep_params(K.CKM_SHA_1, K.CKG_MGF1_SHA1)
OAEP_SHA256 = oaep_params(K.CKM_SHA256, K.CKG_MGF1_SHA256)
PSS_SHA1 = pss_params(K.CKM_SHA_1, K.CKG_MGF1_SHA1, 20)
PSS_SHA256 = pss_params(K.CKM_SHA256, K.CKG_MGF1_SHA256, 32)


def assert_init_codes(module_path, config, table: list[tuple]) -> None:
    """Runs C_<fn>Init for each row (fn, key label, class, mechanism, parameter, expected CKR)."""
    cases = [{"fn": fn, "key": key, "cls": cls, "mech": mech, "param": param, "data": b"",
              "sig": b""} for fn, key, cls, mech, param, _ in table]  # fmt: skip
    codes = [result["init"] for result in run_cases(module_path, config, cases)]
    assert codes == [row[-1] for row in table]


def test_oaep_with_a_hash_the_key_lacks_is_a_parameter_error(module_path, login_config, api):
    import_rsa(api, "oaeponly1", ["RSA_Decryption_OAEP_SHA1"])
    import_rsa(api, "nooaep", ["RSA_Decryption_PKCS1"])
    oaep = A.CKM_RSA_PKCS_OAEP
    assert_init_codes(module_path, login_config, [
        ("decrypt", "oaeponly1", PRIVATE, oaep, OAEP_SHA1, ckr.CKR_OK),
        ("decrypt", "oaeponly1", PRIVATE, oaep, OAEP_SHA256, ckr.CKR_MECHANISM_PARAM_INVALID),
        ("encrypt", "oaeponly1", PUBLIC, oaep, OAEP_SHA256, ckr.CKR_MECHANISM_PARAM_INVALID),
        ("decrypt", "nooaep", PRIVATE, oaep, OAEP_SHA1, ckr.CKR_KEY_FUNCTION_NOT_PERMITTED),
    ])  # fmt: skip


def test_pss_with_a_hash_the_key_lacks_is_a_parameter_error(module_path, login_config, api):
    import_rsa(api, "pssonly256", ["RSA_Signature_PSS_SHA256"])
    import_rsa(api, "nopss", ["RSA_Signature_PKCS1"])
    pss, sha1_pss = A.CKM_RSA_PKCS_PSS, A.CKM_SHA1_RSA_PKCS_PSS
    assert_init_codes(module_path, login_config, [
        ("sign", "pssonly256", PRIVATE, pss, PSS_SHA256, ckr.CKR_OK),
        ("sign", "pssonly256", PRIVATE, pss, PSS_SHA1, ckr.CKR_MECHANISM_PARAM_INVALID),
        ("verify", "pssonly256", PUBLIC, pss, PSS_SHA1, ckr.CKR_MECHANISM_PARAM_INVALID),
        # the hash is the mechanism's own here: the key lacks the mechanism itself
        ("sign", "pssonly256", PRIVATE, sha1_pss, PSS_SHA1, ckr.CKR_KEY_FUNCTION_NOT_PERMITTED),
        ("sign", "nopss", PRIVATE, pss, PSS_SHA256, ckr.CKR_KEY_FUNCTION_NOT_PERMITTED),
    ])  # fmt: skip


def test_md5_oaep_or_pss_alone_gives_a_key_no_oaep_or_pss(module_path, login_config, api):
    # PKCS#11 has no MGF1 over MD5, so CKA_ALLOWED_MECHANISMS lists neither mechanism: no
    # parameter could select what the key holds.
    import_rsa(api, "md5only", ["RSA_Decryption_OAEP_MD5", "RSA_Signature_PSS_MD5"])
    assert_init_codes(module_path, login_config, [
        ("decrypt", "md5only", PRIVATE, A.CKM_RSA_PKCS_OAEP, OAEP_SHA1,
         ckr.CKR_KEY_FUNCTION_NOT_PERMITTED),
        ("sign", "md5only", PRIVATE, A.CKM_RSA_PKCS_PSS, PSS_SHA256,
         ckr.CKR_KEY_FUNCTION_NOT_PERMITTED),
    ])  # fmt: skip


def test_pkcs11_tool_test_goes_past_an_rsa_key_with_oaep_sha1_only(module_path, tmp_path):
    with running_hsm(str(tmp_path / "hsm")) as hsm:
        mechanisms = ["RSA_Signature_PKCS1", "RSA_Decryption_RAW", "RSA_Decryption_PKCS1",
                      "RSA_Decryption_OAEP_SHA1"]  # fmt: skip
        HsmApi(hsm.url, ADMIN_USER, ADMIN_PASSPHRASE).generate("RSA", mechanisms, "rsasha1", 2048)
        out = pkcs11_tool(module_path, hsm.config_path, "--test", "--login", "--pin",
                          OPERATOR_PASSPHRASE)  # fmt: skip
    # pkcs11-tool --test exits 0 even when it counts errors: its last line is the verdict.
    assert out.strip().splitlines()[-1] == "No errors", out
    assert "RSA-X-509: OK" in out
