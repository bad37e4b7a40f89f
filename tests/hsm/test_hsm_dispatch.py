"""Each request is checked in keyfender's order (webmachine's decision flow): HSM state,
known method, method served by the path, authentication, role, Accept header; only then
the resource and the body."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hsm_client import ADMIN, OPERATOR, Client, error_message

from p11fast.hsm.testing import running_hsm

GENERATE_EC = {"mechanisms": ["ECDSA_Signature"], "type": "EC_P256"}


@pytest.fixture
def locked(tmp_path) -> Iterator[Client]:
    """An HSM that has just been locked."""
    with running_hsm(tmp_path / "hsm") as hsm:
        client = Client(hsm)
        assert client.post("/lock", auth=ADMIN).status_code == 204
        yield client


def test_a_method_the_path_does_not_serve_is_405_with_allow(client: Client) -> None:
    for auth in (ADMIN, None):  # the method is looked at before the credentials
        response = client.delete("/keys", auth=auth)
        assert response.status_code == 405
        assert response.headers["Allow"] == "POST,GET,HEAD"
        error_message(response)
    response = client.get("/keys/generate", auth=ADMIN)
    assert (response.status_code, response.headers["Allow"]) == (405, "POST")


def test_a_method_webmachine_does_not_know_is_501(client: Client) -> None:
    response = client.request("PATCH", "/keys", auth=ADMIN)
    assert response.status_code == 501
    error_message(response)


def test_the_state_is_checked_before_the_method(locked: Client) -> None:
    for method in ("DELETE", "PATCH", "GET"):
        response = locked.request(method, "/keys", auth=ADMIN)
        assert response.status_code == 412, method
        error_message(response)


def test_authentication_and_role_come_before_the_accept_header(client: Client) -> None:
    text = {"Accept": "text/plain"}
    assert client.get("/keys", headers=text).status_code == 401
    response = client.post("/keys/generate", json=GENERATE_EC, headers=text, auth=OPERATOR)
    assert response.status_code == 403


def test_an_accept_header_ruling_out_what_the_path_provides_is_406(client: Client) -> None:
    response = client.get("/keys", headers={"Accept": "text/plain"}, auth=ADMIN)
    assert response.status_code == 406
    error_message(response)
    response = client.get("/keys", headers={"Accept": "application/*;q=0.5"}, auth=ADMIN)
    assert response.status_code == 200
    response = client.get("/keys", headers={"Accept": "application/json;q=0"}, auth=ADMIN)
    assert response.status_code == 406
    for accept, status in (("application/json", 406), ("application/x-pem-file", 200)):
        response = client.get("/config/tls/public.pem", headers={"Accept": accept}, auth=ADMIN)
        assert response.status_code == status, accept


def test_the_accept_header_is_checked_before_the_body(client: Client) -> None:
    response = client.post(
        "/keys/generate", data=b"{not json", headers={"Accept": "text/plain"}, auth=ADMIN
    )
    assert response.status_code == 406


def test_the_state_is_checked_before_the_body(client: Client) -> None:
    # keyfender's service_available runs first: a provision or unlock of an Operational
    # HSM is 412 whatever the body holds (src/keyfender/endpoint.ml, input_state_validated)
    for path in ("/provision", "/unlock"):
        response = client.post(path, data=b"{not json")
        assert response.status_code == 412, path
        error_message(response)


def unimplemented_statuses(client: Client) -> dict[str, int]:
    return {
        "anonymous": client.get("/cluster/members").status_code,
        "operator": client.get("/cluster/members", auth=OPERATOR).status_code,
        "admin": client.get("/cluster/members", auth=ADMIN).status_code,
    }


def test_unimplemented_endpoints_check_authentication_and_role_first(client: Client) -> None:
    assert unimplemented_statuses(client) == {
        "anonymous": 401, "operator": 403, "admin": 501,
    }  # fmt: skip
    response = client.post("/cluster/force-new")  # only ever served in the Failed state
    assert response.status_code == 412


def test_unimplemented_endpoints_check_the_state_first(locked: Client) -> None:
    assert unimplemented_statuses(locked) == {
        "anonymous": 412, "operator": 412, "admin": 412,
    }  # fmt: skip


def test_diagnose_needs_an_administrator_only_while_operational(client: Client, locked) -> None:
    assert client.get("/health/diagnose").status_code == 401
    for response in (client.get("/health/diagnose", auth=ADMIN), locked.get("/health/diagnose")):
        assert response.status_code == 200
        assert response.json()["clusterState"] == {"running": False}  # there is no etcd
