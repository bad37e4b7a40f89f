"""p11fast.admin.client: the administrator's requests, against a fake transport answering like a
NetHSM, and what each answer becomes."""

import json

import pytest

from p11fast import ckr, der, errors
from p11fast.admin.client import Admin
from p11fast.admin.templates import KeySpec
from p11fast.keyid import SESSION_PREFIX

CERT_DER = bytes.fromhex("3003020101")  # the client passes certificates on unparsed


class FakeHSM:
    """Answers (method, path) from `answers` (a list: one answer per call, in turn), 404 for
    anything else; records every call with the body as JSON when it is."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.calls = []

    def __call__(self, method, path, body, admin, content_type=None):
        assert admin is True  # every request as the administrator
        self.calls.append((method, path, body, content_type))
        answer = self.answers.get((method, path), (404, b'{"message": "not found"}'))
        return answer.pop(0) if isinstance(answer, list) else answer

    def sent(self, method, path):
        return [json.loads(body) for m, p, body, _ in self.calls if (m, p) == (method, path)]


class Log:
    def __init__(self):
        self.lines = []

    def info(self, text):
        self.lines.append(("info", text))

    def warn(self, text):
        self.lines.append(("warn", text))


def admin(answers=None, certificate_format="PEM"):
    hsm = FakeHSM(answers)
    return Admin(hsm, "slot0", Log(), certificate_format), hsm


def spec(key_id="k1", chosen=False):
    s = KeySpec("EC_P256", ["ECDSA_Signature"], label="web")
    s.key_id, s.chosen = key_id, chosen
    return s


def test_a_key_is_generated_after_checking_its_id_is_free():
    a, hsm = admin({("POST", "/keys/generate"): (201, b"")})
    a.create(spec())
    assert [c[:2] for c in hsm.calls] == [("GET", "/keys/k1"), ("POST", "/keys/generate")]
    assert hsm.sent("POST", "/keys/generate") == [
        {"type": "EC_P256", "mechanisms": ["ECDSA_Signature"], "id": "k1", "label": "web"}]
    assert a.log.lines == [("info", "created EC_P256 key k1 with ECDSA_Signature")]


def test_an_id_taken_before_the_request_is_attribute_value_invalid_and_nothing_is_sent():
    a, hsm = admin({("GET", "/keys/k1"): (200, b'{"type": "RSA"}')})
    with pytest.raises(errors.AttributeValueInvalid, match="k1 is taken"):
        a.create(spec())
    assert [c[0] for c in hsm.calls] == ["GET"]


def test_a_conflict_on_an_id_the_module_chose_is_its_own_earlier_attempt():
    # the transport retried a request whose answer was lost: the key is there, of its type
    a, hsm = admin({("POST", "/keys/generate"): (409, b""),
                    ("GET", "/keys/k1"): (200, b'{"type": "EC_P256"}')})
    a.create(spec(chosen=True))
    assert a.log.lines == [("info", "k1: created by an earlier attempt of this request")]


def test_a_conflict_with_a_key_of_another_type_is_refused():
    a, _ = admin({("POST", "/keys/generate"): (409, b""),
                  ("GET", "/keys/k1"): (200, b'{"type": "RSA"}')})
    with pytest.raises(errors.AttributeValueInvalid) as info:
        a.create(spec(chosen=True))
    assert "HTTP 409" in str(info.value) and info.value.ckr == ckr.CKR_ATTRIBUTE_VALUE_INVALID


def test_an_import_is_a_put_of_the_private_part():
    a, hsm = admin({("PUT", "/keys/k1"): (204, b"")})
    a.create(spec(), {"data": "AAAA"})
    assert hsm.sent("PUT", "/keys/k1")[0]["private"] == {"data": "AAAA"}


def test_without_administrator_credentials_the_error_says_how_to_get_them():
    def no_credentials(*_):
        raise errors.UserNotLoggedIn("no credentials")

    a = Admin(no_credentials, "slot0", Log())
    with pytest.raises(errors.UserNotLoggedIn, match="log in as SO"):
        a.delete_key("k1", archive=False)


@pytest.mark.parametrize("fmt, body, content_type", [
    ("PEM", der.der_to_pem(CERT_DER), "application/x-pem-file"),
    ("DER", CERT_DER, "application/octet-stream"),
])
def test_a_certificate_is_stored_in_the_slots_format_and_its_label_becomes_the_keys(
    fmt, body, content_type
):
    a, hsm = admin({("PUT", "/keys/k1/cert"): (201, b""), ("PUT", "/keys/k1/label"): (204, b"")},
                   certificate_format=fmt)
    a.store_certificate("k1", CERT_DER, "Web")
    assert hsm.calls[0] == ("PUT", "/keys/k1/cert", body, content_type)
    assert hsm.sent("PUT", "/keys/k1/label") == [{"label": "Web"}]


def test_a_certificate_without_its_key_is_template_inconsistent():
    a, _ = admin()
    with pytest.raises(errors.TemplateInconsistent, match="only with its key"):
        a.store_certificate("k1", CERT_DER)


def test_a_hsm_without_key_labels_keeps_the_certificate_and_says_so():
    a, _ = admin({("PUT", "/keys/k1/cert"): (201, b""), ("PUT", "/keys/k1/label"): (405, b"")})
    a.store_certificate("k1", CERT_DER, "Web")
    assert a.log.lines[0][0] == "warn" and "without its label 'Web'" in a.log.lines[0][1]


def test_a_key_already_gone_counts_as_deleted():
    a, _ = admin()
    a.delete_key("k1", archive=False)
    assert a.log.lines == [("info", "key k1 was already deleted")]


def test_other_refusals_go_through_the_http_mapping():
    a, _ = admin({("DELETE", "/keys/k1"): (403, b""), ("POST", "/users/op/passphrase"): (400, b"")})
    with pytest.raises(errors.UserNotLoggedIn, match="HTTP 403"):
        a.delete_key("k1", archive=False)
    with pytest.raises(errors.PinInvalid):
        a.set_passphrase("op", "short")


def test_archiving_moves_the_key_to_a_hidden_id_of_at_most_128_characters():
    a, hsm = admin({("POST", "/keys/" + "k" * 128 + "/move"): (200, b"")})
    a.delete_key("k" * 128, archive=True)
    (moved,) = hsm.sent("POST", "/keys/" + "k" * 128 + "/move")
    assert moved["newId"].startswith("zzarchive") and len(moved["newId"]) == 128


def test_a_rename_to_a_taken_id_is_attribute_value_invalid():
    a, _ = admin({("POST", "/keys/k1/move"): (409, b"")})
    with pytest.raises(errors.AttributeValueInvalid, match="k2 is taken"):
        a.move("k1", "k2")


def test_the_sweep_deletes_only_the_stale_session_keys():
    stale, live = f"{SESSION_PREFIX}-a", f"{SESSION_PREFIX}-b"
    listing = json.dumps([{"id": stale}, {"id": live}]).encode()
    a, hsm = admin({("GET", f"/keys/{SESSION_PREFIX}*"): (200, listing),
                    ("DELETE", "/keys/" + stale): (204, b"")})
    a.sweep(lambda key_id: key_id == stale)
    assert a.swept and [c[:2] for c in hsm.calls if c[0] == "DELETE"] == [
        ("DELETE", "/keys/" + stale)]
