"""p11fast.model.session_objects: the objects the module holds for a session (from the
application's template, completed as the standard says) and the store of what each session
owns."""

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from p11fast import attrs as A
from p11fast import ckr, der, errors
from p11fast.model.objects import P11Object, build_objects
from p11fast.model.session_objects import (
    HELD_CLASSES,
    SessionObjects,
    as_session_object,
    held_object,
)
from tests.unit.model.nethsm_keys import SPKI, X962, U, ec_json, make_cert

RSA_VERIFY = {"RSA_Signature_PKCS1", "RSA_Signature_PSS_SHA1", "RSA_Signature_PSS_SHA224",
              "RSA_Signature_PSS_SHA256", "RSA_Signature_PSS_SHA384", "RSA_Signature_PSS_SHA512"}


def refused(cls, rv, *args):
    with pytest.raises(cls) as info:
        held_object(*args)
    assert info.value.ckr == rv


def rsa_public(rsa_key, extra=None) -> dict:
    numbers = rsa_key.public_key().public_numbers()
    return {A.CKA_KEY_TYPE: U(A.CKK_RSA), A.CKA_MODULUS: numbers.n.to_bytes(256, "big"),
            A.CKA_PUBLIC_EXPONENT: b"\x01\x00\x01", **(extra or {})}


def test_the_module_holds_data_objects_certificates_and_public_keys():
    assert HELD_CLASSES == {A.CKO_DATA, A.CKO_CERTIFICATE, A.CKO_PUBLIC_KEY}


def test_a_data_object_gets_the_standards_defaults_under_the_templates_values():
    obj = held_object("~1", A.CKO_DATA, {A.CKA_VALUE: b"v", A.CKA_LABEL: b"note"})
    assert obj.cls == A.CKO_DATA and obj.key_id == "~1" and obj.mechanisms == frozenset()
    assert obj.attrs == {
        A.CKA_CLASS: U(A.CKO_DATA), A.CKA_TOKEN: A.FALSE, A.CKA_PRIVATE: A.FALSE,
        A.CKA_MODIFIABLE: A.TRUE, A.CKA_COPYABLE: A.FALSE, A.CKA_DESTROYABLE: A.TRUE,
        A.CKA_LABEL: b"note", A.CKA_APPLICATION: b"", A.CKA_OBJECT_ID: b"", A.CKA_VALUE: b"v",
        A.CKA_UNIQUE_ID: b"~1",
    }


def test_a_certificate_takes_subject_issuer_serial_and_key_from_its_value(p256_key):
    cert = make_cert(p256_key)
    value = cert.public_bytes(serialization.Encoding.DER)
    obj = held_object("~2", A.CKO_CERTIFICATE, {A.CKA_VALUE: value, A.CKA_SUBJECT: b"mine"})
    a = obj.attrs
    assert a[A.CKA_CERTIFICATE_TYPE] == U(A.CKC_X_509) and a[A.CKA_TRUSTED] == A.FALSE
    assert a[A.CKA_SUBJECT] == b"mine"  # the template's own value stays
    assert a[A.CKA_ISSUER] == cert.issuer.public_bytes()
    assert a[A.CKA_PUBLIC_KEY_INFO] == p256_key.public_key().public_bytes(*SPKI)
    assert a[A.CKA_SERIAL_NUMBER] == b"\x02\x02\x12\x34"


def test_a_certificate_must_be_an_x509_value():
    refused(errors.TemplateIncomplete, ckr.CKR_TEMPLATE_INCOMPLETE, "~3", A.CKO_CERTIFICATE, {})
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, "~3",
            A.CKO_CERTIFICATE, {A.CKA_VALUE: b"\x30\x00"})
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, "~3",
            A.CKO_CERTIFICATE, {A.CKA_VALUE: b"", A.CKA_CERTIFICATE_TYPE: U(1)})


def test_an_rsa_public_key_verifies_locally_with_every_rsa_signature_unless_told_not_to(rsa_key):
    obj = held_object("~4", A.CKO_PUBLIC_KEY, rsa_public(rsa_key))
    assert (obj.key_type, obj.bits, obj.mechanisms) == ("RSA", 2048, RSA_VERIFY)
    assert obj.attrs[A.CKA_VERIFY] == A.TRUE and obj.attrs[A.CKA_MODULUS_BITS] == U(2048)
    assert obj.attrs[A.CKA_PUBLIC_KEY_INFO] == rsa_key.public_key().public_bytes(*SPKI)
    quiet = held_object("~5", A.CKO_PUBLIC_KEY, rsa_public(rsa_key, {A.CKA_VERIFY: A.FALSE}))
    assert quiet.mechanisms == frozenset()


@pytest.mark.parametrize("wrapped", [False, True])
def test_an_ec_point_is_taken_raw_or_as_the_standards_octet_string(p256_key, wrapped):
    point = p256_key.public_key().public_bytes(*X962)
    obj = held_object("~6", A.CKO_PUBLIC_KEY, {
        A.CKA_KEY_TYPE: U(A.CKK_EC), A.CKA_EC_PARAMS: der.ec_params_for_key_type("EC_P256"),
        A.CKA_EC_POINT: der.octet_string(point) if wrapped else point})
    assert (obj.key_type, obj.bits, obj.mechanisms) == ("EC_P256", 256, {"ECDSA_Signature"})
    assert obj.attrs[A.CKA_PUBLIC_KEY_INFO] == p256_key.public_key().public_bytes(*SPKI)


def test_an_ed25519_public_key_verifies_eddsa():
    raw = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    obj = held_object("~7", A.CKO_PUBLIC_KEY, {
        A.CKA_KEY_TYPE: U(A.CKK_EC_EDWARDS),
        A.CKA_EC_PARAMS: der.ec_params_for_key_type("Curve25519"), A.CKA_EC_POINT: raw})
    assert obj.mechanisms == {"EdDSA_Signature"}


def test_public_keys_the_module_cannot_use_are_refused(p256_key):
    point = p256_key.public_key().public_bytes(*X962)
    p256 = der.ec_params_for_key_type("EC_P256")
    refused(errors.TemplateIncomplete, ckr.CKR_TEMPLATE_INCOMPLETE, "~8", A.CKO_PUBLIC_KEY, {})
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, "~8",
            A.CKO_PUBLIC_KEY, {A.CKA_KEY_TYPE: U(A.CKK_AES)})
    # P-256 parameters under an Edwards key type, and a point of another length
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, "~8",
            A.CKO_PUBLIC_KEY, {A.CKA_KEY_TYPE: U(A.CKK_EC_EDWARDS), A.CKA_EC_PARAMS: p256,
                               A.CKA_EC_POINT: point})
    refused(errors.AttributeValueInvalid, ckr.CKR_ATTRIBUTE_VALUE_INVALID, "~8",
            A.CKO_PUBLIC_KEY, {A.CKA_KEY_TYPE: U(A.CKK_EC), A.CKA_EC_PARAMS: p256,
                               A.CKA_EC_POINT: point[:-1]})


def test_an_hsm_key_shows_as_a_session_object_with_the_id_the_application_gave(p256_key):
    private, _ = build_objects("p11fastsession-x", ec_json(p256_key, "EC_P256"))
    shown = as_session_object(private, b"app-id")
    assert shown.attrs[A.CKA_TOKEN] == A.FALSE and shown.attrs[A.CKA_ID] == b"app-id"
    assert shown.sensitive == private.sensitive and private.attrs[A.CKA_TOKEN] == A.TRUE
    assert as_session_object(private, None).attrs[A.CKA_ID] == private.attrs[A.CKA_ID]


class Inventory:
    """What SessionObjects asks an inventory: the objects of one key, without certificates."""

    def __init__(self, objects: dict):
        self.objects = objects
        self.asked = []

    def get(self, key_id, with_cert=True):
        self.asked.append((key_id, with_cert))
        return self.objects.get(key_id, [])


def test_the_store_shows_a_slots_held_objects_and_hsm_keys_as_session_objects(p256_key):
    store = SessionObjects()
    first, second = store.new_held_id(), store.new_held_id()
    assert (first, second) == ("~1", "~2")
    held = P11Object(A.CKO_DATA, first, "", frozenset(), 0, {A.CKA_TOKEN: A.FALSE})
    store.hold(7, 0, held)
    store.add_hsm_key(7, 0, "p11fastsession-k", b"app-id")
    store.add_hsm_key(8, 1, "p11fastsession-other-slot", None)
    keys = build_objects("p11fastsession-k", ec_json(p256_key, "EC_P256"))
    inventory = Inventory({"p11fastsession-k": keys})
    shown = store.objects(0, inventory)
    assert shown[0] is held and [o.attrs[A.CKA_ID] for o in shown[1:]] == [b"app-id"] * 2
    assert inventory.asked == [("p11fastsession-k", False)]
    assert store.is_hsm_key("p11fastsession-k") and not store.is_hsm_key(first)
    store.set_cka_id("p11fastsession-k", b"renamed")
    assert store.cka_id("p11fastsession-k") == b"renamed"


def test_the_store_says_what_a_session_or_a_slot_owns_and_forgets_on_request():
    store = SessionObjects()
    store.hold(7, 0, P11Object(A.CKO_DATA, store.new_held_id(), "", frozenset(), 0, {}))
    store.add_hsm_key(7, 0, "p11fastsession-a", None)
    store.add_hsm_key(8, 1, "p11fastsession-b", None)
    assert store.owned_by(7, -1) == [("~1", 0, False), ("p11fastsession-a", 0, True)]
    assert store.owned_by(None, 1) == [("p11fastsession-b", 1, True)]
    store.forget("p11fastsession-a")
    store.forget("never held")
    assert not store.owns("p11fastsession-a") and store.owns("~1")
    assert store.owned_by(None, -1) == [("~1", 0, False), ("p11fastsession-b", 1, True)]
