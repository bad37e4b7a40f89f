"""`p11fast check`: load the configuration as the module would, then ask every instance.

Per slot and instance: reachable, TLS certificate (pin or CA), HSM state, credentials of the
operator and the administrator, keys visible — and for each failure, what to do. Exit status 0
only when everything passes. Not on the module's path, so heavy imports are fine here.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import sys
from http import HTTPStatus
from io import BytesIO
from urllib.parse import quote, urlsplit

import pycurl

from p11fast import config as config_module
from p11fast import uri
from p11fast.errors import ConfigError

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
    timeout = slot.timeout_seconds or DEFAULT_TIMEOUT
    if not check_certificate(report, instance, timeout):
        return
    status, body = request(instance, "/health/state", None, timeout)
    if status is None:
        report.fail(
            f"no HTTPS answer: {body}",
            "check the url; for a self-signed certificate set sha256_fingerprints "
            "(`p11fast hsm` prints the fingerprint) or cacert",
        )
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
        listing = check_user(report, instance, role, user, path, timeout)
        keys = listing if keys is None else keys
    if keys is not None:
        report.ok(f"keys visible: {len(keys)}")


def check_certificate(report: Report, instance, timeout: float) -> bool:
    """The TLS leaf certificate against the pins; CA verification happens in `request`."""
    parts = urlsplit(instance.url)
    if parts.scheme != "https":
        report.note("plain http: no TLS (use https in production)")
        return True
    try:
        pem = ssl.get_server_certificate((parts.hostname, parts.port or 443), timeout=timeout)
    except OSError as exc:
        report.fail(
            f"not reachable: {exc.strerror or exc}",
            "check the url, that the HSM runs, and firewalls",
        )
        return False
    actual = hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem)).digest()
    if instance.danger_insecure_cert:
        report.note("TLS certificate not verified (danger_insecure_cert: true)")
    elif instance.sha256_fingerprints:
        if actual not in instance.sha256_fingerprints:
            report.fail(
                f"TLS certificate {_colon_hex(actual)} matches no sha256_fingerprints entry",
                "if this is your HSM's certificate, add this fingerprint to sha256_fingerprints",
            )
            return False
        report.ok("TLS certificate matches a pinned SHA-256 fingerprint")
    return True


def check_user(report: Report, instance, role: str, user, path, timeout: float):
    """Check `user`'s credentials; the key list when `path` is /keys and they work."""
    if user is None:
        return None
    if user.password is None:
        report.note(f'{role} "{user.username}": no password configured, the PIN is used')
        return None
    path = path or f"/users/{quote(user.username, safe='')}"
    status, body = request(instance, path, (user.username, user.password), timeout)
    if status == 200:
        report.ok(f'{role} "{user.username}": credentials valid')
        return json.loads(body) if path == "/keys" else None
    if status in (401, 403):
        report.fail(
            f'{role} "{user.username}": credentials refused (HTTP {status})',
            f"check username and password of the {role}, and that the user has the "
            f"{role.capitalize()} role",
        )
    else:
        report.fail(f'{role} "{user.username}": {http_problem(status, body)}', http_fix(status))
    return None


def request(instance, path: str, auth: tuple[str, str] | None, timeout: float):
    """(status, body) of GET url+path; (None, reason) when no HTTP answer came."""
    curl = pycurl.Curl()
    buffer = BytesIO()
    try:
        curl.setopt(pycurl.URL, instance.url + path)
        curl.setopt(pycurl.WRITEDATA, buffer)
        curl.setopt(pycurl.TIMEOUT_MS, int(timeout * 1000))
        if instance.danger_insecure_cert or instance.sha256_fingerprints:
            # the pin was checked on the leaf certificate in check_certificate
            curl.setopt(pycurl.SSL_VERIFYPEER, 0)
            curl.setopt(pycurl.SSL_VERIFYHOST, 0)
        elif instance.cacert:
            curl.setopt(pycurl.CAINFO, instance.cacert)
        if auth:
            curl.setopt(pycurl.HTTPAUTH, pycurl.HTTPAUTH_BASIC)
            curl.setopt(pycurl.USERPWD, f"{auth[0]}:{auth[1]}")
        curl.perform()
        return curl.getinfo(pycurl.RESPONSE_CODE), buffer.getvalue()
    except pycurl.error as exc:
        return None, exc.args[1] if len(exc.args) > 1 else str(exc)
    finally:
        curl.close()


def _json_field(body: bytes, name: str) -> str:
    try:
        return str(json.loads(body)[name])
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
        message = json.loads(body)["message"]
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
    from p11fast.objects import Inventory

    operator = slot.operator
    if operator is None or operator.password is None:
        report.note("object URIs need the operator's password in the configuration")
        return
    auth = (operator.username, operator.password)
    timeout = slot.timeout_seconds or DEFAULT_TIMEOUT
    instance = slot.instances[0]

    def get(method: str, path: str, body: bytes | None, admin: bool) -> tuple[int, bytes]:
        status, answer = request(instance, path, auth, timeout)
        if status is None:
            raise OSError(answer)
        return status, answer

    inventory = Inventory(get, slot.label)
    try:
        inventory.refresh()
    except (P11Error, OSError) as exc:
        report.note(f"object URIs: cannot list the keys: {exc}")
        return
    report.line("  objects")
    for obj in inventory.objects():
        cka_id, label = obj.attrs[attrs.CKA_ID], obj.attrs.get(attrs.CKA_LABEL, b"")
        report.line(f"    {uri.object_uri(token, cka_id, label, obj.cls)}")


def _colon_hex(value: bytes) -> str:
    return ":".join(f"{b:02X}" for b in value)
