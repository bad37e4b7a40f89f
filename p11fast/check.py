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
from io import BytesIO
from urllib.parse import quote, urlsplit

import pycurl

from p11fast import config as config_module
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


def run_check(config_path: str | None, out=None) -> int:
    report = Report(out or sys.stdout)
    try:
        cfg = config_module.load(config_path)
    except ConfigError as exc:
        report.line(f"config: FAIL {exc}")
        report.line("        → fix the file (docs/configuration.md lists every key)")
        return 1
    report.line(f"config: ok ({', '.join(cfg.source_files)})")
    for warning in cfg.warnings:
        report.line(f"config: warning: {warning}")
    failed = False
    for slot in cfg.slots:
        report.failed = False
        report.line(f"slot {slot.label}")
        for instance in slot.instances:
            check_instance(report, slot, instance)
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
        report.fail(f"not reachable: {exc}", "check the url, that the HSM runs, and firewalls")
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
        report.fail(f'{role} "{user.username}": HTTP {status}: {body[:200]!r}', "see the HSM log")
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
        return f"unreadable answer {body[:100]!r}"


def _colon_hex(value: bytes) -> str:
    return ":".join(f"{b:02X}" for b in value)
