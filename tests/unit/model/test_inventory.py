"""The key inventory: its cache and request counts, against a fake transport returning canned
NetHSM API responses."""

import pytest
from cryptography.hazmat.primitives import serialization

from p11fast import attrs as A
from p11fast import ckr, der, errors
from p11fast.model.inventory import Inventory
from tests.unit.model.nethsm_keys import (
    Clock,
    FakeHSM,
    U,
    ec_json,
    generic_json,
    make_cert,
    rsa_json,
)


@pytest.fixture
def hsm(rsa_key, p256_key):
    h = FakeHSM()
    h.keys["rsa1"] = rsa_json(rsa_key, ["RSA_Signature_PKCS1", "RSA_Decryption_PKCS1"])
    h.keys["ec1"] = ec_json(p256_key, "EC_P256")
    h.keys["aes1"] = generic_json(label="CMS MK 4099")
    h.certs["rsa1"] = make_cert(rsa_key).public_bytes(serialization.Encoding.PEM)
    return h


def test_refresh_request_counts(hsm, p256_key):
    clock = Clock()
    inv = Inventory(hsm, "slot0", clock=clock)
    inv.refresh()
    assert hsm.take() == ["/keys", "/keys/aes1", "/keys/aes1/cert", "/keys/ec1",
                          "/keys/ec1/cert", "/keys/rsa1", "/keys/rsa1/cert"]
    objs = inv.objects()
    assert sorted((o.key_id, o.cls) for o in objs) == [
        ("aes1", A.CKO_SECRET_KEY), ("ec1", A.CKO_PUBLIC_KEY), ("ec1", A.CKO_PRIVATE_KEY),
        ("rsa1", A.CKO_CERTIFICATE), ("rsa1", A.CKO_PUBLIC_KEY), ("rsa1", A.CKO_PRIVATE_KEY)]
    # nothing new: one request
    inv.refresh()
    assert hsm.take() == ["/keys"]
    # one new key: the listing plus that key (and its certificate)
    hsm.keys["ec2"] = ec_json(p256_key, "EC_P256")
    inv.refresh()
    assert hsm.take() == ["/keys", "/keys/ec2", "/keys/ec2/cert"]
    # a deleted key is dropped from the cache
    del hsm.keys["rsa1"]
    inv.refresh()
    assert hsm.take() == ["/keys"]
    assert {o.key_id for o in inv.objects()} == {"aes1", "ec1", "ec2"}
    # entries expire after max_age seconds
    clock.t += 61
    inv.refresh()
    assert hsm.take() == ["/keys", "/keys/aes1", "/keys/aes1/cert", "/keys/ec1",
                          "/keys/ec1/cert", "/keys/ec2", "/keys/ec2/cert"]


def test_refresh_without_certs(hsm):
    inv = Inventory(hsm, "slot0")
    inv.refresh(with_certs=False)
    assert hsm.take() == ["/keys", "/keys/aes1", "/keys/ec1", "/keys/rsa1"]
    assert A.CKO_CERTIFICATE not in {o.cls for o in inv.objects()}


def test_find_by_id_one_request(hsm, rsa_key):
    inv = Inventory(hsm, "slot0")
    tpl = [(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_ID, b"rsa1")]
    (o,) = inv.find(tpl)
    assert hsm.take() == ["/keys/rsa1"]
    assert o.cls == A.CKO_PRIVATE_KEY and o.key_id == "rsa1"
    assert o.attrs[A.CKA_MODULUS] == rsa_key.public_key().public_numbers().n.to_bytes(256, "big")
    # cached: no request
    assert inv.find(tpl) == [o]  # the cached object itself
    assert hsm.take() == []
    # without a class the certificate may match: fetched once
    found = inv.find([(A.CKA_ID, b"rsa1")])
    assert sorted(x.cls for x in found) == [A.CKO_CERTIFICATE, A.CKO_PUBLIC_KEY,
                                           A.CKO_PRIVATE_KEY]
    assert hsm.take() == ["/keys/rsa1/cert"]
    (c,) = inv.find([(A.CKA_CLASS, U(A.CKO_CERTIFICATE)), (A.CKA_ID, b"rsa1")])
    assert hsm.take() == []
    assert c.attrs[A.CKA_VALUE] == der.pem_to_der(hsm.certs["rsa1"])


def test_find_by_id_misses(hsm):
    inv = Inventory(hsm, "slot0")
    assert inv.find([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_ID, b"nope")]) == []
    assert hsm.take() == ["/keys/nope"]
    assert inv.find([(A.CKA_ID, b"")]) == []  # not a mappable CKA_ID: no request
    assert inv.find([(A.CKA_CLASS, U(A.CKO_DATA))]) == []  # class we never produce
    assert inv.find([(A.CKA_CLASS, b"\x03")]) == []  # malformed CK_ULONG
    assert hsm.take() == []


def test_find_by_encoded_id(hsm, p256_key):
    hsm.keys["0---FF"] = ec_json(p256_key, "EC_P256")
    inv = Inventory(hsm, "slot0")
    (o,) = inv.find([(A.CKA_CLASS, U(A.CKO_PUBLIC_KEY)), (A.CKA_ID, b"\xff")])
    assert hsm.take() == ["/keys/0---FF"]
    assert o.key_id == "0---FF" and o.attrs[A.CKA_ID] == b"\xff"
    # the CKA_ID b"0---FF" names key 0---FF too, but that key's CKA_ID is b"\xff"
    assert inv.find([(A.CKA_CLASS, U(A.CKO_PUBLIC_KEY)), (A.CKA_ID, b"0---FF")]) == []


def test_find_by_label_nethsm5(hsm):
    inv = Inventory(hsm, "slot0")
    tpl = [(A.CKA_CLASS, U(A.CKO_SECRET_KEY)), (A.CKA_LABEL, b"CMS MK 4099")]
    (o,) = inv.find(tpl)
    assert o.key_id == "aes1" and o.attrs[A.CKA_KEY_TYPE] == U(A.CKK_AES)
    assert hsm.take() == ["/keys?label=CMS%20MK%204099", "/keys/aes1"]
    assert inv.label_query is True
    # a key without label is found by its ID as label
    (o,) = inv.find([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_LABEL, b"ec1")])
    assert o.key_id == "ec1"
    assert hsm.take() == ["/keys/ec1", "/keys?label=ec1"]


def test_find_by_label_hsm_without_label_filter(hsm):
    hsm.label_filter = False
    inv = Inventory(hsm, "slot0")
    (o,) = inv.find([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_LABEL, b"ec1")])
    assert o.key_id == "ec1"
    # the filter was ignored (all keys listed): correct result, and not asked again
    assert hsm.take() == ["/keys/ec1", "/keys?label=ec1", "/keys/aes1", "/keys/rsa1"]
    assert inv.label_query is False
    (o,) = inv.find([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_LABEL, b"rsa1")])
    assert o.key_id == "rsa1" and hsm.take() == []


def test_find_without_id_refreshes_and_filters(hsm):
    inv = Inventory(hsm, "slot0")
    found = inv.find([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY))])
    assert sorted(o.key_id for o in found) == ["ec1", "rsa1"]
    assert hsm.take() == ["/keys", "/keys/aes1", "/keys/ec1", "/keys/rsa1"]
    found = inv.find([(A.CKA_KEY_TYPE, U(A.CKK_RSA))])
    assert sorted(o.cls for o in found) == [A.CKO_PUBLIC_KEY, A.CKO_PRIVATE_KEY]
    assert hsm.take() == ["/keys", "/keys/aes1/cert", "/keys/ec1/cert", "/keys/rsa1/cert"]
    (c,) = inv.find([(A.CKA_CLASS, U(A.CKO_CERTIFICATE))])
    assert c.key_id == "rsa1" and hsm.take() == ["/keys"]
    # CKA_SUBJECT in the template needs the certificate
    subj = c.attrs[A.CKA_SUBJECT]
    (k,) = inv.find([(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY)), (A.CKA_SUBJECT, subj)])
    assert k.key_id == "rsa1"


def test_get_and_invalidate(hsm):
    clock = Clock()
    inv = Inventory(hsm, "slot0", clock=clock, max_age=5)
    objs = inv.get("rsa1")
    assert sorted(o.cls for o in objs) == [A.CKO_CERTIFICATE, A.CKO_PUBLIC_KEY,
                                          A.CKO_PRIVATE_KEY]
    assert hsm.take() == ["/keys/rsa1", "/keys/rsa1/cert"]
    assert len(inv.get("rsa1")) == 3 and hsm.take() == []
    clock.t += 6
    assert len(inv.get("rsa1", with_cert=False)) == 2
    assert hsm.take() == ["/keys/rsa1"]
    assert inv.get("gone") == [] and hsm.take() == ["/keys/gone"]
    assert inv.get("-bad id") == [] and hsm.take() == []
    inv.invalidate("rsa1")
    assert len(inv.get("rsa1")) == 3
    assert hsm.take() == ["/keys/rsa1", "/keys/rsa1/cert"]
    inv.get("ec1")
    hsm.take()
    inv.invalidate()
    assert inv.objects() == []
    del hsm.keys["ec1"]
    assert inv.get("ec1") == []


def test_set_value_len(hsm):
    inv = Inventory(hsm, "slot0")
    (o,) = inv.get("aes1")
    assert o.attrs[A.CKA_VALUE_LEN] == U(A.CK_UNAVAILABLE_INFORMATION)
    inv.set_value_len("aes1", 32)
    (o,) = inv.get("aes1")
    assert o.attrs[A.CKA_VALUE_LEN] == U(32) and o.bits == 256
    tpl = [(A.CKA_CLASS, U(A.CKO_SECRET_KEY)), (A.CKA_VALUE_LEN, U(32))]
    assert [x.key_id for x in inv.find(tpl)] == ["aes1"]
    # the key leaves the HSM: the length is forgotten
    del hsm.keys["aes1"]
    inv.refresh()
    hsm.keys["aes1"] = generic_json()
    (o,) = inv.get("aes1")
    assert o.attrs[A.CKA_VALUE_LEN] == U(A.CK_UNAVAILABLE_INFORMATION)


def test_errors(hsm):
    inv = Inventory(hsm, "slot0")
    hsm.fail["/keys"] = 401
    with pytest.raises(errors.UserNotLoggedIn) as e:
        inv.refresh()
    assert e.value.ckr == ckr.CKR_USER_NOT_LOGGED_IN
    assert "slot0" in str(e.value) and "GET /keys" in str(e.value)
    hsm.fail = {"/keys/ec1": 500}
    with pytest.raises(errors.DeviceError) as e:
        inv.get("ec1")
    assert e.value.ckr == ckr.CKR_DEVICE_ERROR
    hsm.fail = {"/keys/ec1/cert": 412}
    with pytest.raises(errors.TokenNotPresent):
        inv.get("ec1")
    hsm.fail = {}
    # an unusable key JSON yields no objects and a reason
    hsm.keys["weird"] = {"type": "RSA", "mechanisms": [], "restrictions": {}, "operations": 0}
    assert inv.get("weird") == []
    assert "RSA" in inv.errors["weird"]
    # an unusable certificate: key objects only
    hsm.certs["ec1"] = b"not a certificate"
    assert sorted(o.cls for o in inv.get("ec1")) == [A.CKO_PUBLIC_KEY, A.CKO_PRIVATE_KEY]
    assert "certificate" in inv.errors["ec1"]


def test_bad_listing(hsm):
    inv = Inventory(hsm, "slot0")
    for body in [b"{}", b"[{\"id\": \"-x\"}]", b"not json", b"[1]"]:
        inv._request = lambda m, p, b, a, body=body: (200, body)
        with pytest.raises(errors.DeviceError) as e:
            inv.refresh()
        assert e.value.ckr == ckr.CKR_DEVICE_ERROR


def test_der_certificate_stored_as_der(hsm, p256_key):
    cert = make_cert(p256_key)
    hsm.certs["ec1"] = cert.public_bytes(serialization.Encoding.DER)
    inv = Inventory(hsm, "slot0")
    (c,) = inv.find([(A.CKA_CLASS, U(A.CKO_CERTIFICATE)), (A.CKA_ID, b"ec1")])
    assert c.attrs[A.CKA_VALUE] == hsm.certs["ec1"]
    assert c.attrs[A.CKA_ISSUER] == cert.issuer.public_bytes()


def test_concurrent_finds_fetch_each_key_once(hsm):
    import threading
    import time

    def slow(method, path, body, admin):
        time.sleep(0.01)
        return hsm(method, path, body, admin)

    inv = Inventory(slow, "slot0")
    results = []
    tpl = [(A.CKA_CLASS, U(A.CKO_PRIVATE_KEY))]
    threads = [threading.Thread(target=lambda: results.append(inv.find(tpl))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [sorted(o.key_id for o in r) for r in results] == [["ec1", "rsa1"]] * 8
    log = hsm.take()
    assert sorted(p for p in log if p != "/keys") == ["/keys/aes1", "/keys/ec1", "/keys/rsa1"]
    assert log.count("/keys") == 8  # each C_FindObjectsInit lists once; keys fetched once
