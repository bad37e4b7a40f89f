"""Malformed and unauthorised requests get the spec's status and a JSON `message` body, and
the server keeps serving."""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from hsm_client import ADMIN, OPERATOR, Client, error_message

GENERATE_EC = {"mechanisms": ["ECDSA_Signature"], "type": "EC_P256"}


@pytest.fixture(scope="module")
def ec_key(client: Client) -> str:
    response = client.post("/keys/generate", json={**GENERATE_EC, "id": "badinput-ec"}, auth=ADMIN)
    assert response.status_code == 201, response.text
    assert response.headers["Location"].endswith("/keys/badinput-ec")
    return "badinput-ec"


def sign_body(message: bytes = b"\0" * 32, mode: str = "ECDSA") -> dict:
    return {"mode": mode, "message": base64.b64encode(message).decode()}


@pytest.mark.parametrize(
    "body",
    [
        b"{not json",
        b"[]",
        b'"a string"',
        b'{"mode": "ECDSA"}',
        b'{"mode": 7, "message": "AAAA"}',
        b'{"mode": "NOPE", "message": "AAAA"}',
        b'{"mode": "ECDSA", "message": "***"}',
        b'{"mode": "ECDSA", "message": "AAAA", "extra": 1}',
        b"\xff\xfe",
    ],
)
def test_malformed_sign_requests(client: Client, ec_key: str, body: bytes) -> None:
    response = client.post(f"/keys/{ec_key}/sign", data=body, auth=OPERATOR)
    assert response.status_code == 400
    error_message(response)


@pytest.mark.parametrize(
    "body",
    [
        {"mechanisms": "ECDSA_Signature", "type": "EC_P256"},
        {"mechanisms": ["ECDSA_Signature"], "type": "EC_P999"},
        {"mechanisms": ["RSA_Signature_PKCS1"], "type": "EC_P256"},
        {"mechanisms": ["NoSuchMechanism"], "type": "EC_P256"},
        {"mechanisms": [], "type": "EC_P256"},
        {"mechanisms": ["RSA_Signature_PKCS1"], "type": "RSA", "length": 512},
        {"mechanisms": ["RSA_Signature_PKCS1"], "type": "RSA"},
        {"mechanisms": ["AES_Encryption_CBC"], "type": "Generic", "length": 100},
        {"mechanisms": ["ECDSA_Signature"], "type": "EC_P256", "length": True},
        {"mechanisms": ["ECDSA_Signature"], "type": "EC_P256", "id": "bad id"},
        {"mechanisms": ["ECDSA_Signature"], "type": "EC_P256", "label": "x" * 33},
        {"mechanisms": ["ECDSA_Signature"], "type": "EC_P256", "restrictions": {"tags": ["a b"]}},
        {"mechanisms": ["ECDSA_Signature"], "type": "EC_P256", "unknown": 1},
    ],
)
def test_invalid_generate(client: Client, body: dict) -> None:
    response = client.post("/keys/generate", json=body, auth=ADMIN)
    assert response.status_code == 400, response.text
    error_message(response)


@pytest.mark.parametrize("key_id", ["-starts-with-dash", "has space", "x" * 129, "a~b", "ü"])
def test_invalid_key_ids(client: Client, key_id: str) -> None:
    response = client.get(f"/keys/{key_id}", auth=OPERATOR)
    assert response.status_code == 400
    error_message(response)


def test_wrong_mode_and_sizes(client: Client, ec_key: str) -> None:
    cases = [
        sign_body(mode="PKCS1"),  # mechanism not allowed on this key
        sign_body(mode="EdDSA"),
        sign_body(b"\0" * 20),  # digest shorter than the curve
        sign_body(b"\0" * 48),
    ]
    for body in cases:
        response = client.post(f"/keys/{ec_key}/sign", json=body, auth=OPERATOR)
        assert response.status_code == 400, body
        error_message(response)
    decrypt = {"mode": "RAW", "encrypted": "AAAA"}
    response = client.post(f"/keys/{ec_key}/decrypt", json=decrypt, auth=OPERATOR)
    assert response.status_code == 400
    response = client.post("/random", json={"length": 1025}, auth=OPERATOR)
    assert response.status_code == 400


def test_missing_things_are_404(client: Client) -> None:
    for path in ["/keys/nokey", "/keys/nokey/public.pem", "/keys/nokey/cert", "/users/nobody"]:
        response = client.get(path, auth=ADMIN)
        assert response.status_code == 404, path
        error_message(response)
    response = client.get("/no/such/endpoint")
    assert response.status_code == 404
    error_message(response)


def test_authentication_and_roles(client: Client, ec_key: str) -> None:
    response = client.get("/keys")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Basic realm="NetHSM"'
    error_message(response)
    response = client.get("/keys", headers={"Authorization": "Basic !!!"})
    assert response.status_code == 401
    # Operators cannot administer; administrators cannot use keys.
    response = client.post("/keys/generate", json=GENERATE_EC, auth=OPERATOR)
    assert response.status_code == 403
    error_message(response)
    response = client.post(f"/keys/{ec_key}/sign", json=sign_body(), auth=ADMIN)
    assert response.status_code == 403
    response = client.get("/users", auth=OPERATOR)
    assert response.status_code == 403
    response = client.post("/system/backup", auth=ADMIN)
    assert response.status_code == 403


def test_failed_login_is_rate_limited(client: Client) -> None:
    response = client.get("/keys", auth=("admin", "wrong-passphrase"))
    assert response.status_code == 401
    response = client.get("/keys", auth=("admin", "wrong-again"))
    assert response.status_code == 429
    error_message(response)
    time.sleep(1.1)
    assert client.get("/keys", auth=ADMIN).status_code == 200


def test_wrong_state(client: Client) -> None:
    for path, body in [("/provision", {"unlockPassphrase": "x" * 10}), ("/unlock", {})]:
        response = client.post(path, json=body)
        assert response.status_code == 412, path
        error_message(response)
    assert client.get("/health/alive").status_code == 412
    assert client.get("/health/ready").status_code == 200


def test_oversize_bodies(client: Client, ec_key: str) -> None:
    huge = b'{"mode": "ECDSA", "message": "' + b"A" * (2 << 20) + b'"}'
    response = client.post(f"/keys/{ec_key}/sign", data=huge, auth=OPERATOR)
    assert response.status_code == 413
    error_message(response)
    response = client.put(
        f"/keys/{ec_key}/cert",
        data=b"x" * ((1 << 20) + 1),
        headers={"Content-Type": "application/x-pem-file"},
        auth=ADMIN,
    )
    assert response.status_code == 413
    response = client.put(
        f"/keys/{ec_key}/cert", data=b"x", headers={"Content-Type": "text/plain"}, auth=ADMIN
    )
    assert response.status_code == 415
    error_message(response)


def test_tag_already_present_is_304(client: Client, ec_key: str) -> None:
    assert client.put(f"/keys/{ec_key}/restrictions/tags/t1", auth=ADMIN).status_code == 204
    assert client.put(f"/keys/{ec_key}/restrictions/tags/t1", auth=ADMIN).status_code == 304
    assert client.delete(f"/keys/{ec_key}/restrictions/tags/t1", auth=ADMIN).status_code == 204
    assert client.delete(f"/keys/{ec_key}/restrictions/tags/t1", auth=ADMIN).status_code == 404


def test_unimplemented_endpoints_say_so(client: Client) -> None:
    response = client.get("/cluster/members", auth=ADMIN)
    assert response.status_code == 501
    error_message(response)


def test_server_still_serves(client: Client, ec_key: str) -> None:
    response = client.post(f"/keys/{ec_key}/sign", json=sign_body(), auth=OPERATOR)
    assert response.status_code == 200
    assert client.get(f"/keys/{ec_key}", auth=OPERATOR).json()["operations"] >= 1


def test_generate_with_an_empty_id_gets_a_generated_id(client: Client) -> None:
    # keyfender reads "" as "no id given" (src/keyfender/json.ml, decode_generate_key_req),
    # although the spec's KeyId has minLength 1
    response = client.post("/keys/generate", json={**GENERATE_EC, "id": ""}, auth=ADMIN)
    assert response.status_code == 201
    assert len(response.json()["id"]) == 20


def test_rsa_import_with_a_wrongly_typed_private_field_is_400(client: Client) -> None:
    private = rsa.generate_private_key(65537, 1024).private_numbers()
    fields = {
        "primeP": b64_int(private.p),
        "primeQ": b64_int(private.q),
        "publicExponent": b64_int(private.public_numbers.e),
    }
    body = {"mechanisms": ["RSA_Signature_PKCS1"], "type": "RSA"}
    for bad in ({"data": 5}, {"data": None}, {"extra": "AQAB"}, {"primeP": ["AQ=="]}):
        request = {**body, "private": {**fields, **bad}}
        response = client.put("/keys/badrsa", json=request, auth=ADMIN)
        assert response.status_code == 400, bad
        error_message(response)
    response = client.put("/keys/goodrsa", json={**body, "private": fields}, auth=ADMIN)
    assert response.status_code == 204


def b64_int(value: int) -> str:
    return base64.b64encode(value.to_bytes((value.bit_length() + 7) // 8, "big")).decode()


def test_root_administrator_deletes_users_of_a_deleted_namespace(client: Client) -> None:
    user = {"realName": "Boss", "role": "Administrator", "passphrase": "boss-passphrase"}
    assert client.put("/users/gone~boss", json=user, auth=ADMIN).status_code == 201
    assert client.put("/namespaces/gone", auth=ADMIN).status_code == 204
    # while the namespace exists, its users are its own administrators' business
    assert client.delete("/users/gone~boss", auth=ADMIN).status_code == 403
    assert client.delete("/namespaces/gone", auth=ADMIN).status_code == 204
    assert client.delete("/users/gone~boss", auth=ADMIN).status_code == 204
    assert client.get("/users/gone~boss", auth=ADMIN).status_code == 404


def test_a_wrong_current_passphrase_is_403(client: Client) -> None:
    # keyfender answers Forbidden (src/keyfender/hsm.ml, check_unlock_passphrase and
    # check_backup_passphrase); with no backup passphrase set, the current one must be empty
    body = {"currentPassphrase": "not-the-unlock-passphrase", "newPassphrase": "x" * 12}
    response = client.put("/config/unlock-passphrase", json=body, auth=ADMIN)
    assert response.status_code == 403
    error_message(response)
    body = {"currentPassphrase": "there-is-none-yet", "newPassphrase": "x" * 12}
    response = client.put("/config/backup-passphrase", json=body, auth=ADMIN)
    assert response.status_code == 403


def test_an_operator_reads_only_its_own_user(client: Client) -> None:
    # keyfender's role_operator_get_self (src/keyfender/endpoint.ml)
    assert client.get("/users/operator", auth=OPERATOR).status_code == 200
    assert client.get("/users/operator/tags", auth=OPERATOR).status_code == 200
    for path in ("/users/admin", "/users/admin/tags", "/users/nobody"):
        response = client.get(path, auth=OPERATOR)
        assert response.status_code == 403, path
        error_message(response)


def test_key_certificate_content_type_comes_first_and_any_bytes_are_stored(client: Client) -> None:
    # keyfender: known_content_type before resource_exists (no header is 415), and
    # Key.set_cert stores the bytes as they are (src/keyfender/handler_keys.ml, hsm.ml)
    response = client.put("/keys/no-such-key/cert", data=b"x", auth=ADMIN)
    assert response.status_code == 415
    key = client.post("/keys/generate", json=GENERATE_EC, auth=ADMIN).json()["id"]
    octets = {"Content-Type": "application/octet-stream"}
    assert client.put(f"/keys/{key}/cert", data=b"", headers=octets, auth=ADMIN).status_code == 201
    response = client.get(f"/keys/{key}/cert", auth=ADMIN)
    assert (response.status_code, response.content) == (200, b"")


def test_a_tag_of_a_user_who_is_no_operator_does_not_exist(client: Client) -> None:
    # keyfender: only operators carry tags (hsm.ml User.add_tag: 400); deleting one from
    # anyone else finds no such tag (handler_users.ml resource_exists: 404)
    assert client.put("/users/admin/tags/blue", auth=ADMIN).status_code == 400
    response = client.delete("/users/admin/tags/blue", auth=ADMIN)
    assert response.status_code == 404
    error_message(response)
