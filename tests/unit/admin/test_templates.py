"""p11fast.admin.templates: what an application's template asks the HSM for, the key spec and
request body it becomes, and what it refuses with which CKR."""

import base64
import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from p11fast import attrs as A
from p11fast import ckr, der, errors
from p11fast.admin import templates as T
from p11fast.keyid import SESSION_PREFIX

TRUE, FALSE = A.TRUE, A.FALSE
RSA_GEN, EC_GEN, ED_GEN = A.CKM_RSA_PKCS_KEY_PAIR_GEN, A.CKM_EC_KEY_PAIR_GEN, \
    A.CKM_EC_EDWARDS_KEY_PAIR_GEN
RSA_SIGNATURES = ["RSA_Signature_PKCS1", "RSA_Signature_PSS_SHA1", "RSA_Signature_PSS_SHA224",
                  "RSA_Signature_PSS_SHA256", "RSA_Signature_PSS_SHA384",
                  "RSA_Signature_PSS_SHA512"]
AES_BOTH = ["AES_Encryption_CBC", "AES_Decryption_CBC"]


def tpl(*pairs) -> dict:
    """A read template from (CKA_*, value) pairs; ints become CK_ULONGs, bools CK_BBOOLs."""
    out = {}
    for kind, value in pairs:
        if isinstance(value, bool):
            value = A.bbool(value)
        elif isinstance(value, int):
            value = A.ulong(value)
        out[kind] = value
    return out


def refused(cls, rv, call, *args):
    with pytest.raises(cls) as info:
        call(*args)
    assert info.value.ckr == rv
    return str(info.value)


def rsa_pair(pub=(), priv=()):
    return T.key_pair_spec(RSA_GEN, False, tpl((A.CKA_MODULUS_BITS, 2048), *pub), tpl(*priv))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- reading templates ------------------------------------------------------------------------


def test_unknown_attribute_types_are_attribute_type_invalid():
    refused(errors.AttributeTypeInvalid, ckr.CKR_ATTRIBUTE_TYPE_INVALID, T.read,
            [(0x7FFF0001, b"")])


def test_an_attribute_twice_is_fine_with_one_value_and_inconsistent_with_two():
    assert T.read([(A.CKA_LABEL, b"a"), (A.CKA_LABEL, b"a")]) == {A.CKA_LABEL: b"a"}
    refused(errors.TemplateInconsistent, ckr.CKR_TEMPLATE_INCONSISTENT, T.read,
            [(A.CKA_LABEL, b"a"), (A.CKA_LABEL, b"b")])


def test_bools_and_ulongs_of_another_size_are_attribute_value_invalid():
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, T.flag,
            {A.CKA_SIGN: b"\x01\x00"}, A.CKA_SIGN)
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, T.ulong,
            {A.CKA_CLASS: b"\x01"}, A.CKA_CLASS)
    assert T.flag({A.CKA_SIGN: b"\x02"}, A.CKA_SIGN) is True
    assert T.flag({}, A.CKA_SIGN) is None


def test_objects_are_session_objects_unless_the_template_says_token():
    assert T.token({}) is False
    assert T.token(tpl((A.CKA_TOKEN, True))) is True


# --- key pairs --------------------------------------------------------------------------------


def test_rsa_pair_gets_the_signature_mechanisms_its_usages_ask_for_with_id_and_label():
    spec = rsa_pair(pub=[(A.CKA_VERIFY, True), (A.CKA_ID, b"\x01")],
                    priv=[(A.CKA_SIGN, True), (A.CKA_DECRYPT, False), (A.CKA_LABEL, b"k"),
                          (A.CKA_TOKEN, True), (A.CKA_ID, b"\x01")])
    assert (spec.key_type, spec.length, spec.label, spec.token, spec.cka_id) == (
        "RSA", 2048, "k", True, b"\x01")
    assert spec.mechanisms == RSA_SIGNATURES


def test_a_template_without_usages_gets_everything_the_key_type_can_do():
    spec = rsa_pair()
    assert spec.mechanisms[:2] == ["RSA_Decryption_RAW", "RSA_Decryption_PKCS1"]
    assert len(spec.mechanisms) == 13 and "RSA_Decryption_OAEP_MD5" not in spec.mechanisms
    p384 = der.ec_params_for_key_type("EC_P384")
    spec = T.key_pair_spec(EC_GEN, False, tpl((A.CKA_EC_PARAMS, p384)), {})
    assert (spec.key_type, spec.mechanisms, spec.length) == ("EC_P384", ["ECDSA_Signature"], None)


def test_decryption_asked_of_the_public_or_private_template_gives_rsa_decryption():
    by_public = rsa_pair(pub=[(A.CKA_ENCRYPT, True), (A.CKA_VERIFY, False)])
    by_private = rsa_pair(priv=[(A.CKA_UNWRAP, True), (A.CKA_SIGN, False)])
    assert by_public.mechanisms == by_private.mechanisms
    assert all("_Decryption_" in m for m in by_public.mechanisms)


def test_usages_an_ec_key_cannot_serve_are_ignored_but_one_left_without_any_is_refused():
    p256 = der.ec_params_for_key_type("EC_P256")
    spec = T.key_pair_spec(EC_GEN, False, tpl((A.CKA_EC_PARAMS, p256)),
                           tpl((A.CKA_SIGN, True), (A.CKA_DECRYPT, True)))
    assert spec.mechanisms == ["ECDSA_Signature"]
    refused(errors.TemplateInconsistent, ckr.CKR_TEMPLATE_INCONSISTENT, T.key_pair_spec,
            EC_GEN, False, tpl((A.CKA_EC_PARAMS, p256)),
            tpl((A.CKA_SIGN, False), (A.CKA_DECRYPT, True)))


def test_rsa_generation_needs_a_size_in_range_and_the_exponent_65537():
    refused(errors.TemplateIncomplete, ckr.CKR_TEMPLATE_INCOMPLETE, T.key_pair_spec, RSA_GEN,
            False, {}, {})
    refused(errors.KeySizeRange, ckr.CKR_KEY_SIZE_RANGE, T.key_pair_spec, RSA_GEN, False,
            tpl((A.CKA_MODULUS_BITS, 512)), {})
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, rsa_pair,
            [(A.CKA_PUBLIC_EXPONENT, b"\x03")])
    assert rsa_pair(pub=[(A.CKA_PUBLIC_EXPONENT, b"\x01\x00\x01")]).length == 2048
    # the size may come with the private template too
    assert T.key_pair_spec(RSA_GEN, False, {}, tpl((A.CKA_MODULUS_BITS, 3072))).length == 3072


def test_ec_generation_needs_a_curve_the_hsm_has_and_that_fits_the_mechanism():
    refused(errors.TemplateIncomplete, ckr.CKR_TEMPLATE_INCOMPLETE, T.key_pair_spec, EC_GEN,
            False, {}, {})
    p224 = der.oid("1.3.132.0.33")
    refused(errors.CurveNotSupported, ckr.CKR_CURVE_NOT_SUPPORTED, T.key_pair_spec, EC_GEN,
            False, tpl((A.CKA_EC_PARAMS, p224)), {})
    ed = der.ec_params_for_key_type("Curve25519")
    refused(errors.TemplateInconsistent, ckr.CKR_TEMPLATE_INCONSISTENT, T.key_pair_spec, EC_GEN,
            False, tpl((A.CKA_EC_PARAMS, ed)), {})
    assert T.key_pair_spec(ED_GEN, False, {}, {}).key_type == "Curve25519"
    # GnuTLS generates Ed25519 keys with CKM_EDDSA
    assert T.key_pair_spec(A.CKM_EDDSA, False, {}, {}).mechanisms == ["EdDSA_Signature"]


def test_generation_mechanisms_are_checked_before_the_templates():
    refused(errors.MechanismInvalid, ckr.CKR_MECHANISM_INVALID, T.key_pair_spec, A.CKM_ECDSA,
            False, {}, {})
    refused(errors.MechanismParamInvalid, ckr.CKR_MECHANISM_PARAM_INVALID, T.key_pair_spec,
            RSA_GEN, True, {}, {})
    refused(errors.MechanismInvalid, ckr.CKR_MECHANISM_INVALID, T.key_pair_spec,
            A.CKM_AES_KEY_GEN, False, {}, {})
    refused(errors.MechanismInvalid, ckr.CKR_MECHANISM_INVALID, T.secret_key_spec, RSA_GEN,
            False, tpl((A.CKA_VALUE_LEN, 32)))


def test_class_and_key_type_must_be_the_mechanisms():
    refused(errors.TemplateInconsistent, ckr.CKR_TEMPLATE_INCONSISTENT, rsa_pair,
            [(A.CKA_CLASS, A.CKO_PRIVATE_KEY)])
    refused(errors.TemplateInconsistent, ckr.CKR_TEMPLATE_INCONSISTENT, rsa_pair, (),
            [(A.CKA_KEY_TYPE, A.CKK_EC)])
    assert rsa_pair([(A.CKA_CLASS, A.CKO_PUBLIC_KEY)], [(A.CKA_KEY_TYPE, A.CKK_RSA)])


def test_a_key_asked_to_be_extractable_or_not_sensitive_is_inconsistent():
    refused(errors.TemplateInconsistent, ckr.CKR_TEMPLATE_INCONSISTENT, rsa_pair, (),
            [(A.CKA_SENSITIVE, False)])
    refused(errors.TemplateInconsistent, ckr.CKR_TEMPLATE_INCONSISTENT, rsa_pair, (),
            [(A.CKA_EXTRACTABLE, True)])


@pytest.mark.parametrize("kind, value", [
    (A.CKA_ALWAYS_AUTHENTICATE, True), (A.CKA_WRAP_WITH_TRUSTED, True), (A.CKA_COPYABLE, True),
    (A.CKA_MODIFIABLE, False), (A.CKA_DESTROYABLE, False), (A.CKA_START_DATE, b"20240101"),
])
def test_what_an_hsm_key_cannot_be_is_attribute_value_invalid(kind, value):
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, rsa_pair, (),
            [(kind, value)])


def test_the_public_key_may_say_it_is_not_destroyable_on_its_own():
    assert rsa_pair(pub=[(A.CKA_DESTROYABLE, False)]).key_type == "RSA"


def test_the_public_and_private_templates_must_agree_on_the_id():
    refused(errors.TemplateInconsistent, ckr.CKR_TEMPLATE_INCONSISTENT, rsa_pair,
            [(A.CKA_ID, b"a")], [(A.CKA_ID, b"b")])
    # python-pkcs11 sends an empty CKA_ID for a key generated without one
    assert rsa_pair([(A.CKA_ID, b"")], [(A.CKA_ID, b"x")]).cka_id == b"x"


# --- secret keys ------------------------------------------------------------------------------


def aes(*pairs):
    return T.secret_key_spec(A.CKM_AES_KEY_GEN, False, tpl((A.CKA_VALUE_LEN, 32), *pairs))


def test_aes_key_gets_both_directions_of_cbc_unless_its_usages_say_otherwise():
    spec = aes()
    assert (spec.key_type, spec.length, spec.value_len, spec.mechanisms) == (
        "Generic", 256, 32, AES_BOTH)
    assert aes((A.CKA_DECRYPT, True), (A.CKA_ENCRYPT, False)).mechanisms == [
        "AES_Decryption_CBC"]
    # CMAC is AES-CBC encryption on the HSM
    assert aes((A.CKA_SIGN, True)).mechanisms == ["AES_Encryption_CBC"]


def test_an_aes_key_that_signs_but_may_not_encrypt_is_inconsistent():
    refused(errors.TemplateInconsistent, ckr.CKR_TEMPLATE_INCONSISTENT, aes,
            (A.CKA_SIGN, True), (A.CKA_ENCRYPT, False))


def test_secret_key_lengths_are_the_hsms():
    refused(errors.TemplateIncomplete, ckr.CKR_TEMPLATE_INCOMPLETE, T.secret_key_spec,
            A.CKM_AES_KEY_GEN, False, {})
    refused(errors.KeySizeRange, ckr.CKR_KEY_SIZE_RANGE, T.secret_key_spec, A.CKM_AES_KEY_GEN,
            False, tpl((A.CKA_VALUE_LEN, 20)))
    generic = A.CKM_GENERIC_SECRET_KEY_GEN
    refused(errors.KeySizeRange, ckr.CKR_KEY_SIZE_RANGE, T.secret_key_spec, generic, False,
            tpl((A.CKA_VALUE_LEN, 8)))
    refused(errors.KeySizeRange, ckr.CKR_KEY_SIZE_RANGE, T.secret_key_spec, generic, False,
            tpl((A.CKA_VALUE_LEN, 1025)))
    assert T.secret_key_spec(generic, False, tpl((A.CKA_VALUE_LEN, 1024))).length == 8192


# --- key IDs and the request ------------------------------------------------------------------


def test_the_key_id_comes_from_cka_id_else_a_label_that_is_one_else_a_random_one():
    by_id = T.KeySpec("RSA", [], cka_id=b"\xff", label="web")
    by_id.place(None)
    assert (by_id.key_id, by_id.chosen) == ("0---FF", False)
    by_label = T.KeySpec("RSA", [], label="web")
    by_label.place(None)
    assert (by_label.key_id, by_label.chosen) == ("web", False)
    for label in (None, "not an id", SESSION_PREFIX + "-x"):
        spec = T.KeySpec("RSA", [], label=label)
        spec.place(None)
        assert spec.chosen and len(spec.key_id) == 20 and spec.key_id != label
    session = T.KeySpec("RSA", [], cka_id=b"\x01")
    session.place(SESSION_PREFIX + "-abc")
    assert (session.key_id, session.chosen) == (SESSION_PREFIX + "-abc", True)


def test_a_cka_id_naming_a_key_the_module_reserves_is_refused():
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, T.key_id_for,
            (SESSION_PREFIX + "-1").encode())


def test_a_generated_key_is_posted_with_its_id_length_and_label():
    spec = rsa_pair(pub=[(A.CKA_VERIFY, True)], priv=[(A.CKA_LABEL, b"web")])
    spec.place(None)
    assert spec.request() == ("POST", "/keys/generate", {
        "type": "RSA", "mechanisms": RSA_SIGNATURES, "id": "web", "length": 2048,
        "label": "web"})


def test_an_imported_key_is_put_under_its_id_with_its_private_part():
    spec, private = T.import_spec(A.CKO_SECRET_KEY, tpl(
        (A.CKA_KEY_TYPE, A.CKK_AES), (A.CKA_VALUE, bytes(16)), (A.CKA_ID, b"k1")))
    spec.place(None)
    assert spec.request(private) == ("PUT", "/keys/k1", {
        "type": "Generic", "mechanisms": AES_BOTH, "private": {"data": b64(bytes(16))}})
    assert spec.value_len == 16 and not spec.token


# --- imports ----------------------------------------------------------------------------------


def test_an_rsa_private_key_is_imported_from_its_primes_and_exponent():
    t = tpl((A.CKA_KEY_TYPE, A.CKK_RSA), (A.CKA_PRIME_1, b"\x0b"), (A.CKA_PRIME_2, b"\x0d"),
            (A.CKA_PUBLIC_EXPONENT, b"\x01\x00\x01"), (A.CKA_SIGN, True))
    spec, private = T.import_spec(A.CKO_PRIVATE_KEY, t)
    assert private == {"primeP": "Cw==", "primeQ": "DQ==", "publicExponent": "AQAB"}
    assert spec.mechanisms == RSA_SIGNATURES
    del t[A.CKA_PRIME_2]
    refused(errors.TemplateIncomplete, ckr.CKR_TEMPLATE_INCOMPLETE, T.import_spec,
            A.CKO_PRIVATE_KEY, t)


def test_an_ec_private_scalar_is_sent_at_the_curves_full_length():
    t = tpl((A.CKA_KEY_TYPE, A.CKK_EC), (A.CKA_EC_PARAMS, der.ec_params_for_key_type("EC_P256")),
            (A.CKA_VALUE, b"\x07"))
    spec, private = T.import_spec(A.CKO_PRIVATE_KEY, t)
    assert spec.key_type == "EC_P256" and private == {"data": b64(bytes(31) + b"\x07")}
    t[A.CKA_VALUE] = bytes(33)
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, T.import_spec,
            A.CKO_PRIVATE_KEY, t)


@pytest.mark.parametrize("cls, key_type", [(A.CKO_PRIVATE_KEY, 0x1), (A.CKO_SECRET_KEY, 0x13)])
def test_key_types_the_hsm_does_not_have_are_not_imported(cls, key_type):
    refused(errors.TemplateInconsistent, ckr.CKR_TEMPLATE_INCONSISTENT, T.import_spec, cls,
            tpl((A.CKA_KEY_TYPE, key_type), (A.CKA_VALUE, bytes(16))))


def test_an_import_needs_its_key_type():
    refused(errors.TemplateIncomplete, ckr.CKR_TEMPLATE_INCOMPLETE, T.import_spec,
            A.CKO_SECRET_KEY, tpl((A.CKA_VALUE, bytes(16))))


# --- certificates and changes -----------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "p11fast")])
    now = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1).not_valid_before(now)
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.DER)


def test_a_token_certificate_goes_to_the_key_its_cka_id_names(certificate):
    t = tpl((A.CKA_VALUE, certificate), (A.CKA_ID, b"web"), (A.CKA_LABEL, b"Web"))
    assert T.certificate_target(t, {}) == ("web", certificate, "Web")
    assert T.certificate_target(t, {"web": "0---FF"})[0] == "0---FF"


def test_a_token_certificate_needs_an_id_and_an_x509_value(certificate):
    refused(errors.TemplateIncomplete, ckr.CKR_TEMPLATE_INCOMPLETE, T.certificate_target,
            tpl((A.CKA_VALUE, certificate)), {})
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, T.certificate_target,
            tpl((A.CKA_VALUE, b"\x30\x00"), (A.CKA_ID, b"web")), {})
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, T.certificate_target,
            tpl((A.CKA_VALUE, certificate), (A.CKA_ID, b"web"), (A.CKA_CERTIFICATE_TYPE, 1)), {})


def test_changes_are_what_differs_and_only_what_may_change():
    current = {A.CKA_LABEL: b"a", A.CKA_SIGN: TRUE, A.CKA_VERIFY: FALSE}
    assert T.changes(current, [(A.CKA_LABEL, b"b"), (A.CKA_SIGN, TRUE)], T.HSM_MUTABLE) == {
        A.CKA_LABEL: b"b"}
    refused(errors.AttributeReadOnly, ckr.CKR_ATTRIBUTE_READ_ONLY, T.changes, current,
            [(A.CKA_SIGN, FALSE)], T.HSM_MUTABLE)
    refused(errors.AttributeReadOnly, ckr.CKR_ATTRIBUTE_READ_ONLY, T.changes, current,
            [(A.CKA_VERIFY, TRUE)], T.HSM_MUTABLE)
    assert T.changes(current, [(A.CKA_VERIFY, TRUE)], T.HELD_MUTABLE) == {A.CKA_VERIFY: TRUE}
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, T.changes, current,
            [(A.CKA_LABEL, b"\xff")], T.HSM_MUTABLE)
