"""`p11fast check`: load the configuration as the module would, then ask every instance.

Per slot and instance: reachable, TLS certificate (pin or CA), HSM state, credentials of the
operator and the administrator, keys visible — and for each failure, what to do. Exit status 0
only when everything passes. Not on the module's path, so heavy imports are fine here.
"""

from __future__ import annotations

import sys
from http import HTTPStatus
from urllib.parse import quote

from p11fast import config as config_module
from p11fast import uri
from p11fast._abi import ERR_TLS, Pool, basic_auth
from p11fast.config import RetryConfig
from p11fast.errors import ConfigError, TransportError
from p11fast.lean import parse_json

DEFAULT_TIMEOUT = 10.0


class Report:
    """Collects pass/fail lines; `failed` decides the exit status."""

    def __init__(self, out) -> None:
        self.out = out
        self.failed = False

    def line(self, text: str) -> None:
        self.out.write(text + "\n")

    def ok(self, text: str) -> None:
        self.line(f"    ok    {text}")

    def fail(self, text: str, fix: str) -> None:
        self.failed = True
        self.line(f"    FAIL  {text}")
        self.line(f"          → {fix}")

    def note(self, text: str) -> None:
        self.line(f"    --    {text}")


def run_check(config_path: str | None, out=None, uris: bool = False) -> int:
    report = Report(out or sys.stdout)
    try:
        cfg = config_module.load(config_path)
    except ConfigError as exc:
        report.line(f"config: FAIL {exc}")
        report.line(
            "        → docs/configuration.md has the search path and every key; "
            "`p11fast hsm init` writes a file for the software HSM"
        )
        return 1
    report.line(f"config: ok ({', '.join(cfg.source_files)})")
    for warning in cfg.warnings:
        report.line(f"config: warning: {warning}")
    failed = False
    for index, slot in enumerate(cfg.slots):
        report.failed = False
        report.line(f"slot {slot.label}")
        token = uri.token_uri(slot.label, index)
        report.line(f"  token {token}")
        for instance in slot.instances:
            check_instance(report, slot, instance)
        if uris and not report.failed:
            print_object_uris(report, slot, token)
        report.line(f"slot {slot.label}: {'FAILED' if report.failed else 'ok'}")
        failed = failed or report.failed
    return 1 if failed else 0


def check_instance(report: Report, slot, instance) -> None:
    report.line(f"  instance {instance.url}")
    pool = _instance_pool(slot, instance)  # closed when it goes out of scope
    status, body = request(report, instance, pool, "/health/state")
    if status is None:
        return
    report.ok("reachable")
    state = _json_field(body, "state") if status == 200 else f"HTTP {status}"
    if state != "Operational":
        report.fail(
            f"HSM state: {state}",
            "unlock or provision the HSM (nitropy nethsm unlock, or `p11fast hsm unlock`)",
        )
        return
    report.ok("HSM state: Operational")
    keys = None
    for role, user, path in (
        ("operator", slot.operator, "/keys"),
        ("administrator", slot.administrator, None),
    ):
        listing = check_user(report, instance, pool, role, user, path)
        keys = listing if keys is None else keys
    if keys is not None:
        report.ok(f"keys visible: {len(keys)}")


def _instance_pool(slot, instance) -> Pool:
    """The module's own transport for this one instance: the same pinning, CA, hostname and
    proxy rules as the module, on every connection (credentials included); no retries, so each
    finding is this instance's."""
    single = slot.replace(instances=(instance,), retries=RetryConfig(),
                          timeout_seconds=slot.timeout_seconds or DEFAULT_TIMEOUT)
    return Pool(single, False)


def request(report: Report, instance, pool: Pool, path: str, auth: bytes | None = None):
    """(status, body) of GET path; (None, b"") after reporting why no HTTP answer came. The
    first request reports the certificate too."""
    https = instance.url.lower().startswith("https://")
    try:
        status, body, _ = pool.call("GET", path, None, auth)
    except TransportError as exc:
        if exc.error_code != ERR_TLS:
            report.fail(f"not reachable: {exc.message}",
                        "check the url, that the HSM runs, and firewalls")
        elif instance.sha256_fingerprints:
            report.fail(f"TLS {exc.message}",
                        "if this is your HSM's certificate, add this fingerprint to "
                        "sha256_fingerprints")
        else:
            report.fail(f"TLS certificate not verified: {exc.message}",
                        "for a self-signed certificate set sha256_fingerprints "
                        "(`p11fast hsm` prints the fingerprint) or cacert")
        return None, b""
    if auth is None:
        if not https:
            report.note("plain http: no TLS (use https in production)")
        elif instance.danger_insecure_cert:
            report.note("TLS certificate not verified (danger_insecure_cert: true)")
        elif instance.sha256_fingerprints:
            report.ok("TLS certificate matches a pinned SHA-256 fingerprint")
    return status, body


def check_user(report: Report, instance, pool: Pool, role: str, user, path):
    """Check `user`'s credentials; the key list when `path` is /keys and they work."""
    if user is None:
        return None
    if user.password is None:
        report.note(f'{role} "{user.username}": no password configured, the PIN is used')
        return None
    path = path or f"/users/{quote(user.username, safe='')}"
    status, body = request(report, instance, pool, path, basic_auth(user.username, user.password))
    if status is None:
        return None
    if status == 200:
        report.ok(f'{role} "{user.username}": credentials valid')
        return parse_json(body) if path == "/keys" else None
    if status in (401, 403):
        report.fail(
            f'{role} "{user.username}": credentials refused (HTTP {status})',
            f"check username and password of the {role}, and that the user has the "
            f"{role.capitalize()} role",
        )
    else:
        report.fail(f'{role} "{user.username}": {http_problem(status, body)}', http_fix(status))
    return None


def _json_field(body: bytes, name: str) -> str:
    try:
        return str(parse_json(body)[name])
    except (ValueError, KeyError, TypeError):
        return "an answer that is not the NetHSM API's (the url should end in /api/v1)"


def http_problem(status: int, body: bytes) -> str:
    """`HTTP 429 Too Many Requests: <the HSM's message>`: NetHSM error bodies are
    `{"message": …}`; anything else is summarised, never shown as bytes."""
    try:
        phrase = f" {HTTPStatus(status).phrase}"
    except ValueError:
        phrase = ""
    try:
        message = parse_json(body)["message"]
    except (ValueError, KeyError, TypeError):
        message = None
    if isinstance(message, str) and message:
        return f"HTTP {status}{phrase}: {message}"
    return f"HTTP {status}{phrase} ({len(body)}-byte answer without a NetHSM message)"


def http_fix(status: int) -> str:
    if status == 429:
        return "the HSM slows logins down after a failed one: wait a second and check again"
    if status == 412:
        return "the HSM is not Operational: unlock it (nitropy nethsm unlock)"
    if status >= 500:
        return "the HSM failed: see its own log (NetHSM: nitropy nethsm logs)"
    return "the HSM refused the request for the reason above"


def print_object_uris(report: Report, slot, token: str) -> None:
    """Every object the module shows for this slot's keys, as a PKCS#11 URI (the operator's
    view, through the module's own object model, so IDs and labels are the module's)."""
    from p11fast import attrs
    from p11fast.errors import P11Error
    from p11fast.model.inventory import Inventory

    operator = slot.operator
    if operator is None or operator.password is None:
        report.note("object URIs need the operator's password in the configuration")
        return
    auth = basic_auth(operator.username, operator.password)
    pool = _instance_pool(slot, slot.instances[0])

    def get(method: str, path: str, body: bytes | None, admin: bool) -> tuple[int, bytes]:
        status, answer, _ = pool.call(method, path, body, auth)
        return status, answer

    inventory = Inventory(get, slot.label)
    try:
        inventory.refresh()
    except (P11Error, TransportError) as exc:
        report.note(f"object URIs: cannot list the keys: {exc}")
        return
    report.line("  objects")
    for obj in inventory.objects():
        cka_id, label = obj.attrs[attrs.CKA_ID], obj.attrs.get(attrs.CKA_LABEL, b"")
        report.line(f"    {uri.object_uri(token, cka_id, label, obj.cls)}")
