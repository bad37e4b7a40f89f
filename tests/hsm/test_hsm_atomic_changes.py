"""A change that was in flight when its user or key was deleted, moved or changed by another
request never undoes that: it applies to the record as it is when written, or answers 404
(403 for a namespace that is gone). The held request makes the interleaving deterministic:
the server has looked the target up and waits for the rest of the body while the test acts."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hsm_client import ADMIN, OPERATOR, Client, HeldRequest

from p11fast.hsm.testing import HsmProcess, running_hsm

PASSPHRASE = "racer-passphrase"
NEW_PASSPHRASE = "racer-passphrase-new"
EC_KEY = {"mechanisms": ["ECDSA_Signature"], "type": "EC_P256"}


@pytest.fixture
def hsm(tmp_path) -> Iterator[HsmProcess]:
    with running_hsm(tmp_path / "hsm") as hsm:
        yield hsm


def restarted(hsm: HsmProcess) -> Client:
    """SIGKILL and start: what the store holds, not what the old process remembered."""
    hsm.kill()
    hsm.start()
    return Client(hsm)


def as_json(data: dict) -> bytes:
    return json.dumps(data).encode()


def test_a_passphrase_change_racing_a_delete_does_not_bring_the_user_back(hsm) -> None:
    client = Client(hsm)
    user = {"realName": "racer", "role": "Operator", "passphrase": PASSPHRASE}
    assert client.put("/users/racer", json=user, auth=ADMIN).status_code == 201
    change = as_json({"passphrase": NEW_PASSPHRASE})
    held = HeldRequest(hsm, "POST", "/users/racer/passphrase", change, ADMIN)
    assert client.delete("/users/racer", auth=ADMIN).status_code == 204
    assert held.finish() == 404
    assert client.get("/users/racer", auth=ADMIN).status_code == 404
    assert client.get("/keys", auth=("racer", NEW_PASSPHRASE)).status_code == 401
    client = restarted(hsm)
    assert {"user": "racer"} not in client.get("/users", auth=ADMIN).json()


def test_a_label_change_racing_a_delete_or_a_move_leaves_no_stale_key(hsm) -> None:
    client = Client(hsm)
    for key_id in ("doomed", "moving"):
        response = client.post("/keys/generate", json={**EC_KEY, "id": key_id}, auth=ADMIN)
        assert response.status_code == 201
    label = as_json({"label": "late"})
    held = HeldRequest(hsm, "PUT", "/keys/doomed/label", label, ADMIN)
    assert client.delete("/keys/doomed", auth=ADMIN).status_code == 204
    assert held.finish() == 404
    held = HeldRequest(hsm, "PUT", "/keys/moving/label", label, ADMIN)
    assert client.post("/keys/moving/move", json={"newId": "moved"}, auth=ADMIN).ok
    assert held.finish() == 404
    client = restarted(hsm)
    assert client.get("/keys", auth=ADMIN).json() == [{"id": "moved"}]
    assert client.get("/keys/moved", auth=ADMIN).json()["label"] == ""


def test_of_two_racing_certificate_uploads_one_is_stored_and_the_other_gets_409(hsm) -> None:
    client = Client(hsm)
    assert client.post("/keys/generate", json={**EC_KEY, "id": "cert"}, auth=ADMIN).ok
    pem = "application/x-pem-file"
    held = HeldRequest(hsm, "PUT", "/keys/cert/cert", b"first upload", ADMIN, pem)
    response = client.put(
        "/keys/cert/cert", data=b"second upload", headers={"Content-Type": pem}, auth=ADMIN
    )
    assert response.status_code == 201
    assert held.finish() == 409
    client = restarted(hsm)
    assert client.get("/keys/cert/cert", auth=ADMIN).content == b"second upload"


def test_a_key_generated_while_its_namespace_is_deleted_is_not_created(hsm) -> None:
    client = Client(hsm)
    boss = {"realName": "boss", "role": "Administrator", "passphrase": PASSPHRASE}
    assert client.put("/users/team~boss", json=boss, auth=ADMIN).status_code == 201
    assert client.put("/namespaces/team", auth=ADMIN).status_code == 204
    team = ("team~boss", PASSPHRASE)
    assert client.get("/keys", auth=team).json() == []
    generate = as_json({**EC_KEY, "id": "orphan"})
    held = HeldRequest(hsm, "POST", "/keys/generate", generate, team)
    assert client.delete("/namespaces/team", auth=ADMIN).status_code == 204
    assert held.finish() == 403
    assert client.put("/namespaces/team", auth=ADMIN).status_code == 204
    assert client.get("/keys", auth=team).json() == []
    client = restarted(hsm)
    assert client.get("/keys", auth=team).json() == []


def test_a_signature_whose_body_arrives_after_a_lock_is_412_not_an_unknown_key(hsm) -> None:
    client = Client(hsm)
    assert client.post("/keys/generate", json={**EC_KEY, "id": "signer"}, auth=ADMIN).ok
    sign = as_json({"mode": "ECDSA", "message": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="})
    held = HeldRequest(hsm, "POST", "/keys/signer/sign", sign, OPERATOR)
    assert client.post("/lock", auth=ADMIN).status_code == 204
    # A cluster client fails a 412 over to another member; a 404 would end the call.
    assert held.finish() == 412
