"""Hooks for the schemathesis run of test_hsm_schemathesis.py, loaded by the schemathesis
process: whatever an operation did to the HSM under test (lock, factory reset, shutdown, a
user's passphrase changed or the user deleted), the next request finds it Operational with
its users; RSA key generation stays affordable; the failures the test allows are dropped."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone

import requests
import schemathesis
import urllib3

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

URL = os.environ["P11FAST_FUZZ_URL"]
# {"Administrator": ["admin", "passphrase"], ...}: the users every operation relies on
USERS: dict[str, list[str]] = json.loads(os.environ["P11FAST_FUZZ_USERS"])
UNLOCK_PASSPHRASE = os.environ["P11FAST_FUZZ_UNLOCK"]
# A file holding how often the test restarted the server after a shutdown.
RESTARTS = os.environ["P11FAST_FUZZ_RESTARTS"]
# The failures the firmware explains (test_hsm_schemathesis.py, ALLOWED)
ALLOWED: list[dict] = json.loads(os.environ["P11FAST_FUZZ_ALLOWED"])
MAX_RSA_BITS = 2048  # larger RSA keys take seconds to generate
RESTART_TIMEOUT = 60.0

ADMIN = tuple(USERS["Administrator"])
session = requests.Session()


def call(method: str, path: str, **kwargs) -> requests.Response:
    kwargs.setdefault("timeout", 30)
    return session.request(method, URL + path, verify=False, **kwargs)


# PEM bodies are text on the wire
schemathesis.serializer.alias("application/x-pem-file", "text/plain")
restarts_before_call = 0


@schemathesis.hook
def before_load_schema(context, raw_schema: dict) -> None:
    """The spec's preamble says every endpoint expects exactly the specified JSON and that
    additional properties are a 400; its schemas do not say so. Say it in the schemas, so
    that extra properties count as invalid data rather than as valid data refused."""
    for schema in raw_schema.get("components", {}).get("schemas", {}).values():
        if schema.get("type") == "object" and "properties" in schema:
            schema.setdefault("additionalProperties", False)


@schemathesis.hook
def before_call(context, case, kwargs) -> None:
    global restarts_before_call
    restarts_before_call = restarts()
    body = case.body
    if case.path in ("/keys/generate", "/config/tls/generate") and isinstance(body, dict):
        length = body.get("length")
        if body.get("type") == "RSA" and type(length) is int and length > MAX_RSA_BITS:
            body["length"] = MAX_RSA_BITS


@schemathesis.hook
def filter_failure(context, failure, case, response) -> bool:
    """Keep every failure but those the test allows because the firmware answers so."""
    return not any(allows(allowed, failure, response) for allowed in ALLOWED)


def allows(allowed: dict, failure, response) -> bool:
    status = getattr(failure, "status_code", response.status_code)
    return (
        allowed["operation"] in ("*", failure.operation)
        and allowed["check"] in failure.checks
        and (not allowed["statuses"] or status in allowed["statuses"])
        and allowed["contains"] in failure.message + response.text_lossy()
    )


@schemathesis.hook
def after_call(context, case, response) -> None:
    if response.status_code >= 300:
        return
    path, user_id = case.path, (case.path_parameters or {}).get("UserID")
    if path == "/system/shutdown":
        wait_for_restart(restarts_before_call)
    if path in ("/users/{UserID}/passphrase", "/users/{UserID}") and user_id:
        restore_user(user_id, case)
    if path == "/config/unlock-passphrase" and isinstance(case.body, dict):
        body = {"currentPassphrase": case.body["newPassphrase"], "newPassphrase": UNLOCK_PASSPHRASE}
        call("PUT", "/config/unlock-passphrase", json=body, auth=ADMIN)
    make_operational()


def restarts() -> int:
    with open(RESTARTS) as f:
        return int(f.read() or 0)


def wait_for_restart(before: int) -> None:
    """The server ended; the test restarts it and counts the restarts in a file."""
    deadline = time.monotonic() + RESTART_TIMEOUT
    while restarts() == before:
        if time.monotonic() > deadline:
            raise RuntimeError("the HSM did not come back after a shutdown")
        time.sleep(0.05)


def restore_user(user_id: str, case) -> None:
    """Give back a user of ours its passphrase, or recreate it after a delete."""
    for role, (user, passphrase) in USERS.items():
        if user != user_id:
            continue
        if case.method.upper() == "DELETE":
            put_user(role, user, passphrase)
        elif case.method.upper() == "POST" and isinstance(case.body, dict):
            auth = (user, case.body["passphrase"]) if user == ADMIN[0] else ADMIN
            call("POST", f"/users/{user}/passphrase", json={"passphrase": passphrase}, auth=auth)


def put_user(role: str, user: str, passphrase: str) -> None:
    body = {"realName": role, "role": role, "passphrase": passphrase}
    call("PUT", f"/users/{user}", json=body, auth=ADMIN)


def make_operational() -> None:
    state = call("GET", "/health/state").json()["state"]
    if state == "Locked":
        call("POST", "/unlock", json={"passphrase": UNLOCK_PASSPHRASE})
    elif state == "Unprovisioned":  # after a factory reset
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {"unlockPassphrase": UNLOCK_PASSPHRASE, "adminPassphrase": ADMIN[1]}
        call("POST", "/provision", json={**body, "systemTime": now})
        for role, (user, passphrase) in USERS.items():
            if role != "Administrator":
                put_user(role, user, passphrase)
        call("PUT", "/config/unattended-boot", json={"status": "on"}, auth=ADMIN)
