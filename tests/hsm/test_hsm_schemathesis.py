"""Schemathesis against the NetHSM spec: `schemathesis run` with every check (`--checks all`)
and every phase (examples, coverage, fuzzing, stateful) over every operation of the spec,
against a software HSM running as a process. Passing means: no server error, every status,
content type, header and body as the spec says, valid data accepted, invalid data
rejected, authentication never ignored — except where the real NetHSM (keyfender) answers
otherwise than the spec. Those failures, and only those, are accepted: ALLOWED below names
the operation, the check, the status and the keyfender file for each (also in
p11fast/hsm/README.md, "Divergences").

Hooks (schemathesis_hooks.py) put the HSM back in shape after operations that lock it,
reset it, shut it down or change its users; the test restarts the server after a shutdown.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest
import requests
import yaml

from p11fast.hsm.testing import (
    ADMIN_PASSPHRASE,
    ADMIN_USER,
    OPERATOR_PASSPHRASE,
    OPERATOR_USER,
    UNLOCK_PASSPHRASE,
    HsmProcess,
    running_hsm,
)

schemathesis_checks = pytest.importorskip("schemathesis.checks")

REPO = Path(__file__).resolve().parents[2]
HOOKS = Path(__file__).with_name("schemathesis_hooks.py")
# The NetHSM API description is Nitrokey's (their `nethsm` repository, docs/nethsm-api.yaml) and
# not part of this repository: docs/testing.md says where to get it. Without the variable, the
# copy the project's machines keep beside the checkout.
SPEC = Path(os.environ.get("P11FAST_NETHSM_SPEC", REPO.parent / "shared/reference/nethsm-api.yaml"))
MAX_EXAMPLES = int(os.environ.get("P11FAST_SCHEMATHESIS_EXAMPLES", "5"))
RUN_TIMEOUT = 900  # a hang, not a slow run: the run takes about two minutes
USERS = {
    "Administrator": (ADMIN_USER, ADMIN_PASSPHRASE),
    "Operator": (OPERATOR_USER, OPERATOR_PASSPHRASE),
    "Metrics": ("metrics", "metricsmetrics"),
    "Backup": ("backup", "backupbackup"),
}
# Methods the coverage phase sends to paths that do not serve them. keyfender runs on
# ocaml-webmachine, which answers 501 to a method outside its known_methods (PATCH, QUERY)
# before it looks at the path (lib/webmachine.ml, v3b12); the others get 405 and Allow.
UNEXPECTED_METHODS = ["get", "put", "post", "delete", "options", "trace"]


@dataclass(frozen=True)
class Allowed:
    """A failure of `check` on `operation` ("*": any) with one of `statuses` (empty: any)
    whose message or response contains `contains`: the firmware answers so."""

    operation: str
    check: str
    statuses: tuple[int, ...]
    reason: str
    contains: str = ""


STATE_FIRST = (
    "keyfender checks the HSM state before the method and the body (endpoint.ml "
    "input_state_validated, webmachine's service_available): 412 in the Operational HSM "
    "under test"
)
NO_UPDATE = "412 until an update image was accepted (hsm.ml, System.commit_update and "
NO_UPDATE += "cancel_update); none is, as p11fast holds no update key to check one with"
CLUSTER = (
    "not the firmware: clustering (etcd) is not implemented by p11fast. 501 comes after the "
    "state, authentication and role checks the device makes (tests/hsm/test_hsm_dispatch.py)"
)


def refused(what: str) -> str:
    return f"keyfender refuses data the schema cannot rule out: {what}"


ALLOWED = [
    Allowed("*", "ignored_auth", (), "keyfender throttles failed logins per user and "
            "address (rate_limit.ml, access.ml): a probe with a wrong password within a second "
            "of the last one is 429; the spec lists no 429", contains="429 Too Many Requests"),
    *(Allowed("*", check, (400,), "an ID in the path (key, user, namespace, tag) that is no "
              "valid ID is 400 (endpoint.ml lookup_path_info, lookup_path_nid; json.ml "
              "valid_id); the spec gives Tag no pattern and lists no 400 for most such "
              "operations", contains="invalid ")
      for check in ("status_code_conformance", "positive_data_acceptance")),
    Allowed("*", "status_code_conformance", (400,), "a body keyfender cannot decode into the "
            "request's type is 400 (endpoint.ml put_json, post_json; json.ml decode); the spec "
            "lists no 400 for some operations taking JSON", contains="body"),
    Allowed("*", "ensure_resource_availability", (404,), "a new key has no certificate: 404 "
            "until one is stored (handler_keys.ml get_cert); the link inferred from POST /keys "
            "to it is wrong", contains="`GET /keys/{KeyID}/cert`"),
    Allowed("PUT /keys/{KeyID}/cert", "status_code_conformance", (415,), "no Content-Type "
            "is 415 (handler_keys.ml known_content_type); the spec lists no 415"),
    *(Allowed(op, check, (412,), STATE_FIRST)
      for op in ("POST /provision", "POST /unlock", "GET /health/alive", "POST /cluster/force-new")
      for check in ("positive_data_acceptance", "negative_data_rejection", "unsupported_method")),
    Allowed("POST /system/commit-update", "positive_data_acceptance", (412,), NO_UPDATE),
    Allowed("POST /system/cancel-update", "positive_data_acceptance", (412,), NO_UPDATE),
    Allowed("POST /system/backup", "positive_data_acceptance", (412,), "412 until a backup "
            "passphrase is set (hsm.ml System.backup)"),
    Allowed("POST /system/update", "positive_data_acceptance", (400,),
            refused("an image framed and signed by Nitrokey (hsm.ml System.update)")),
    Allowed("POST /system/restore", "positive_data_acceptance", (400,),
            refused("a real backup with its passphrase (hsm.ml System.restore)")),
    Allowed("POST /system/restore", "status_code_conformance", (401,), "restoring into an "
            "Operational HSM needs a root Administrator (handler_system.ml restore, "
            "is_authorized); the spec lists no 401"),
    Allowed("POST /keys/generate", "positive_data_acceptance", (400,),
            refused("mechanisms fitting the type, RSA of 1024-8192 bits (json.ml "
                    "decode_generate_key_req, hsm.ml Key.generate_key)")),
    Allowed("POST /keys/generate", "negative_data_rejection", (201,), "an empty id means "
            "'generate one' (json.ml decode_generate_key_req, handler_keys.ml); the spec's "
            "KeyId has minLength 1"),
    Allowed("POST /keys/generate", "status_code_conformance", (409,), "an id in use is 409 "
            "(hsm.ml Key.add); the spec lists no 409"),
    *(Allowed(op, "positive_data_acceptance", (400,),
              refused("key material forming a key of the type (hsm.ml Key.add_json, add_pem)"))
      for op in ("POST /keys", "PUT /keys/{KeyID}")),
    *(Allowed(op, "negative_data_rejection", (201, 204), "an RSA key is read from primeP, "
              "primeQ and publicExponent; `data` is not looked at (hsm.ml Key.add_json)")
      for op in ("POST /keys", "PUT /keys/{KeyID}")),
    *(Allowed(f"POST /keys/{{KeyID}}/{op}", "positive_data_acceptance", (400,),
              refused(f"a mode the key's mechanisms allow (hsm.ml Key.{op})"))
      for op in ("sign", "decrypt", "encrypt")),
    *(Allowed(op, "status_code_conformance", (404,), "a key that does not exist is 404 "
              "(handler_keys.ml resource_exists); the spec lists no 404")
      for op in ("PUT /keys/{KeyID}/label", "PUT /keys/{KeyID}/cert")),
    *(Allowed(op, "positive_data_acceptance", (400,),
              refused("a commonName that is not empty (json.ml decode_subject)"))
      for op in ("POST /config/tls/csr.pem", "POST /keys/{KeyID}/csr.pem")),
    Allowed("POST /config/tls/csr.pem", "status_code_conformance", (400,), "a body that is "
            "no DistinguishedName is 400 (endpoint.ml post_json, json.ml decode_subject); "
            "the spec lists no 400"),
    Allowed("POST /config/tls/generate", "positive_data_acceptance", (400,),
            refused("RSA of 1024-8192 bits where the spec allows 128, and only RSA, "
                    "Curve25519 and EC P-256/384/521 (hsm.ml Key.generate_x509, "
                    "handler_config.ml tls_generate)")),
    *(Allowed(op, "positive_data_acceptance", (400, 412),
              refused("a certificate for the TLS key, a CA that signed it (hsm.ml "
                      "set_tls_cert_pem, set_tls_cluster_ca)"))
      for op in ("PUT /config/tls/cert.pem", "PUT /config/tls/cluster-ca.pem")),
    *(Allowed(op, "status_code_conformance", (415,), "a body that is not "
              "application/x-pem-file is 415 (handler_config.ml, content_types_accepted); the "
              "spec lists no 415")
      for op in ("PUT /config/tls/cert.pem", "PUT /config/tls/cluster-ca.pem")),
    Allowed("PUT /config/network", "positive_data_acceptance", (400,),
            refused("IPv4 addresses and a netmask (hsm.ml Config.set_network)")),
    Allowed("PUT /config/network", "negative_data_rejection", (204,), "not the firmware: "
            "the spec's own description says `ipv6: null` disables IPv6, its schema is not "
            "nullable"),
    Allowed("POST /users/{UserID}", "positive_data_acceptance", (400,),
            refused("a UserID of the form 'namespace~' (handler_users.ml create_path)")),
    Allowed("PUT /users/{UserID}/tags/{Tag}", "positive_data_acceptance", (400,),
            refused("a user who is an operator: tags exist only on operators (hsm.ml "
                    "User.add_tag)")),
    *(Allowed(op, check, (501,), CLUSTER)
      for op in ("POST /cluster/join", "GET /cluster/members", "POST /cluster/members",
                 "POST /cluster/members/{MemberID}/promote", "PUT /cluster/members/{MemberID}",
                 "DELETE /cluster/members/{MemberID}")
      for check in ("not_a_server_error", "status_code_conformance")),
]  # fmt: skip

if not SPEC.exists():
    pytest.skip(
        f"NetHSM spec not found at {SPEC}: set P11FAST_NETHSM_SPEC to a nethsm-api.yaml "
        "(docs/testing.md)",
        allow_module_level=True,
    )


def operations() -> Iterator[tuple[str, dict]]:
    spec = yaml.safe_load(SPEC.read_text())
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch"):
                yield f"{method.upper()} {path}", operation


def credentials(name: str, operation: dict) -> dict | None:
    """Basic auth as the operation's first role. A public operation that also takes Basic
    auth (restore) needs an Administrator in the Operational HSM under test."""
    roles = [r for r in operation.get("x-annotation-role", []) if r in USERS]
    if not roles and {"basic": []} in operation.get("security", []):
        roles = ["Administrator"]
    if not roles:
        return None
    user, passphrase = USERS[roles[0]]
    return {"include-name": name, "auth": {"basic": {"username": user, "password": passphrase}}}


def all_checks() -> list[str]:
    """What `--checks all` selects."""
    schemathesis_checks.load_all_checks()
    return sorted(schemathesis_checks.CHECKS.get_all_names())


def schemathesis_config(url: str) -> dict:
    return {
        "base-url": url,
        "tls-verify": False,
        "seed": 20261206,
        "workers": 1,
        "continue-on-failure": True,
        "hooks": str(HOOKS),
        "request-timeout": 60,
        "generation": {"max-examples": MAX_EXAMPLES},
        "checks": {name: {"enabled": True} for name in all_checks()},
        "phases": {"coverage": {"unexpected-methods": UNEXPECTED_METHODS}},
        "operations": [c for name, op in operations() if (c := credentials(name, op))],
    }


def to_toml(config: dict) -> str:
    """The little TOML the configuration needs: scalars and lists of scalars (JSON-encoded,
    which TOML reads alike), tables, arrays of tables."""
    lines: list[str] = []
    _toml_table(config, [], lines)
    return "\n".join(lines) + "\n"


def _toml_table(table: dict, prefix: list[str], lines: list[str]) -> None:
    nested = {k: v for k, v in table.items() if isinstance(v, dict) or _is_table_array(v)}
    lines += [f"{json.dumps(k)} = {json.dumps(v)}" for k, v in table.items() if k not in nested]
    for key, value in nested.items():
        name = ".".join([*prefix, json.dumps(key)])
        for item in value if isinstance(value, list) else [value]:
            lines.append(f"[[{name}]]" if isinstance(value, list) else f"[{name}]")
            _toml_table(item, [*prefix, json.dumps(key)], lines)


def _is_table_array(value) -> bool:
    return isinstance(value, list) and bool(value) and isinstance(value[0], dict)


@pytest.fixture(scope="module")
def fuzz_hsm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HsmProcess, Path]]:
    """A dedicated HSM with a user per role; started again whenever an operation shuts it
    down (the restarts are counted in a file the hooks watch)."""
    restarts = tmp_path_factory.mktemp("schemathesis") / "restarts"
    restarts.write_text("0")
    with running_hsm(tmp_path_factory.mktemp("schemathesis-hsm")) as hsm:
        for role in ("Metrics", "Backup"):
            user, passphrase = USERS[role]
            body = {"realName": role, "role": role, "passphrase": passphrase}
            response = requests.put(
                f"{hsm.url}/users/{user}", json=body, auth=USERS["Administrator"], verify=False
            )
            assert response.status_code == 201
        done = threading.Event()
        watcher = threading.Thread(target=restart_after_shutdown, args=(hsm, restarts, done))
        watcher.start()
        try:
            yield hsm, restarts
        finally:
            done.set()
            watcher.join()


def restart_after_shutdown(hsm: HsmProcess, restarts: Path, done: threading.Event) -> None:
    count = 0
    while not done.wait(0.05):
        if hsm.process.poll() == 0:  # a clean exit is a shutdown request
            hsm.start()
            count += 1
            restarts.write_text(str(count))


def test_the_spec_holds_except_where_the_firmware_differs(fuzz_hsm, tmp_path: Path) -> None:
    hsm, restarts = fuzz_hsm
    config = tmp_path / "schemathesis.toml"
    config.write_text(to_toml(schemathesis_config(hsm.url)))
    schemathesis = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    env = {
        **os.environ,
        "P11FAST_FUZZ_URL": hsm.url,
        "P11FAST_FUZZ_USERS": json.dumps(USERS),
        "P11FAST_FUZZ_UNLOCK": UNLOCK_PASSPHRASE,
        "P11FAST_FUZZ_RESTARTS": str(restarts),
        "P11FAST_FUZZ_ALLOWED": json.dumps([asdict(a) for a in ALLOWED]),
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    command = [schemathesis, "--config-file", str(config), "--no-color", "run", str(SPEC)]
    result = subprocess.run(
        command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=RUN_TIMEOUT
    )
    log = tmp_path / "schemathesis.log"
    log.write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"full output in {log}\n" + result.stdout[-20000:]
