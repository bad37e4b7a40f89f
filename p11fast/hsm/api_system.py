"""Lifecycle, health, configuration, random, metrics, backup and restore endpoints."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime, timezone

from aiohttp import web

from p11fast.hsm import backup, tls
from p11fast.hsm.auth import Authenticator
from p11fast.hsm.core import Caller, Hsm, State
from p11fast.hsm.errors import BadRequest, Forbidden, NotImplementedYet, PreconditionFailed
from p11fast.hsm.keys import b64encode
from p11fast.hsm.routing import (
    ANY_STATE,
    OCTETS,
    OPERATIONAL,
    OPERATOR,
    ROOT_ADMIN,
    Rule,
    endpoint,
    in_thread,
    json_body,
    json_response,
    no_content,
    read_body,
    read_form,
)
from p11fast.hsm.throttle import Throttle
from p11fast.hsm.validate import Body, parse_json

SOFTWARE_VERSION = "0.1.0"
MAX_BACKUP = 256 << 20
PUBLIC = Rule(ANY_STATE)
BACKUP = Rule(OPERATIONAL, ("Backup",), root_only=True, provides=(OCTETS,))

# Clustering (etcd) is not implemented: these answer 501, after the state, authentication
# and role checks the real device makes for them (annotations of the NetHSM spec).
UNIMPLEMENTED = (
    ("POST", "/cluster/force-new", Rule(())),  # only in the Failed state, never reached here
    ("POST", "/cluster/join", ROOT_ADMIN),
    ("GET", "/cluster/members", ROOT_ADMIN),
    ("POST", "/cluster/members", ROOT_ADMIN),
    ("POST", "/cluster/members/{MemberID}/promote", ROOT_ADMIN),
    ("PUT", "/cluster/members/{MemberID}", ROOT_ADMIN),
    ("DELETE", "/cluster/members/{MemberID}", ROOT_ADMIN),
)  # fmt: skip


async def not_implemented(request: web.Request, caller: Caller | None) -> web.Response:
    raise NotImplementedYet(f"{request.method} {request.path} is not implemented by p11fast")


class SystemApi:
    def __init__(self, hsm: Hsm, authenticator: Authenticator, lifecycle: asyncio.Lock) -> None:
        self.hsm = hsm
        self.auth = authenticator
        self.started = time.monotonic()
        # Provision, unlock, restore and factory reset change the whole HSM, and a passphrase
        # change writes the unlock or backup configuration after seconds of scrypt in a
        # thread: one at a time.
        self._lifecycle = lifecycle
        self._unlock_throttle = Throttle()  # NetHSM's delay after a wrong unlock passphrase

    # --- health and information ---------------------------------------------------------
    @endpoint("GET", "/health/alive", Rule((State.LOCKED, State.UNPROVISIONED)))
    async def alive(self, request: web.Request, caller: None) -> web.Response:
        return no_content(200)

    @endpoint("GET", "/health/ready", Rule(OPERATIONAL))
    async def ready(self, request: web.Request, caller: None) -> web.Response:
        return no_content(200)

    @endpoint("GET", "/health/state", PUBLIC)
    async def health_state(self, request: web.Request, caller: None) -> web.Response:
        return json_response({"state": self.hsm.state.value})

    @endpoint("GET", "/info", PUBLIC)
    async def info(self, request: web.Request, caller: None) -> web.Response:
        return json_response({"vendor": "p11fast", "product": "p11fast software NetHSM"})

    @endpoint("GET", "/system/info", ROOT_ADMIN)
    async def system_info(self, request: web.Request, caller: Caller) -> web.Response:
        return json_response(
            {
                "softwareVersion": SOFTWARE_VERSION,
                "softwareBuild": "p11fast",
                "firmwareVersion": "software",
                "hardwareVersion": "software",
                "deviceId": self.hsm.device_id(),
                "akPub": {},
                "pcr": {},
            }
        )

    @endpoint("GET", "/metrics", Rule(OPERATIONAL, ("Metrics",)))
    async def metrics(self, request: web.Request, caller: Caller) -> web.Response:
        return json_response(
            {
                "keyOperations": self.hsm.total_operations(),
                "keys": len(self.hsm.keys),
                "users": len(self.hsm.users),
                "uptimeSeconds": int(time.monotonic() - self.started),
            }
        )

    # --- lifecycle ----------------------------------------------------------------------
    @endpoint("POST", "/provision", Rule((State.UNPROVISIONED,)))
    async def provision(self, request: web.Request, caller: None) -> web.Response:
        body = await json_body(request)
        unlock = body.passphrase("unlockPassphrase")
        admin = body.passphrase("adminPassphrase")
        body.time("systemTime")
        body.done()
        async with self._lifecycle:
            if self.hsm.state is not State.UNPROVISIONED:
                raise PreconditionFailed("NetHSM is not Unprovisioned")
            await in_thread(self.hsm.provision, unlock, admin)
        return no_content()

    @endpoint("POST", "/unlock", Rule((State.LOCKED,)))
    async def unlock(self, request: web.Request, caller: None) -> web.Response:
        body = await json_body(request)
        passphrase = body.passphrase("passphrase")
        body.done()
        async with self._unlock_throttle.attempt(request.remote or "", "") as attempt:
            async with self._lifecycle:
                try:
                    await in_thread(self.hsm.unlock, passphrase)
                except Forbidden:
                    attempt.failed()
                    raise
        return no_content()

    @endpoint("POST", "/lock", ROOT_ADMIN)
    async def lock(self, request: web.Request, caller: Caller) -> web.Response:
        self.hsm.lock()
        return no_content()

    @endpoint("POST", "/random", Rule(OPERATIONAL, OPERATOR))
    async def random(self, request: web.Request, caller: Caller) -> web.Response:
        body = await json_body(request)
        length = body.integer("length")
        body.done()
        if not 1 <= length <= 1024:
            raise BadRequest("length must be between 1 and 1024")
        return json_response({"random": b64encode(os.urandom(length))})

    # --- configuration ------------------------------------------------------------------
    @endpoint("PUT", "/config/unlock-passphrase", ROOT_ADMIN)
    async def unlock_passphrase(self, request: web.Request, caller: Caller) -> web.Response:
        body = await json_body(request)
        new = body.passphrase("newPassphrase")
        current = body.string("currentPassphrase")
        body.done()
        async with self._lifecycle:
            await in_thread(self.hsm.set_unlock_passphrase, current, new)
        return no_content()

    @endpoint("GET", "/config/unattended-boot", ROOT_ADMIN)
    async def get_unattended(self, request: web.Request, caller: Caller) -> web.Response:
        return json_response({"status": "on" if self.hsm.unattended_boot else "off"})

    @endpoint("PUT", "/config/unattended-boot", ROOT_ADMIN)
    async def set_unattended(self, request: web.Request, caller: Caller) -> web.Response:
        body = await json_body(request)
        status = body.enum("status", ("on", "off"))
        body.done()
        self.hsm.set_unattended_boot(status == "on")
        return no_content()

    @endpoint("PUT", "/config/backup-passphrase", ROOT_ADMIN)
    async def backup_passphrase(self, request: web.Request, caller: Caller) -> web.Response:
        body = await json_body(request)
        new = body.passphrase("newPassphrase")
        current = body.string("currentPassphrase")
        body.done()
        async with self._lifecycle:
            await in_thread(self.hsm.set_backup_passphrase, current, new)
        return no_content()

    @endpoint("GET", "/config/time", ROOT_ADMIN)
    async def get_time(self, request: web.Request, caller: Caller) -> web.Response:
        now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        return json_response({"time": now})

    @endpoint("PUT", "/config/time", ROOT_ADMIN)
    async def set_time(self, request: web.Request, caller: Caller) -> web.Response:
        # The host's clock is authoritative; the request is validated and acknowledged.
        body = await json_body(request)
        body.time("time")
        body.done()
        return no_content()

    # --- backup and restore -------------------------------------------------------------
    @endpoint("POST", "/system/backup", BACKUP)
    async def backup(self, request: web.Request, caller: Caller) -> web.Response:
        state_dir = self.hsm.state_dir
        tls_cert, tls_key = tls.certificate_pem(state_dir), tls.private_key_pem(state_dir)
        backup_file, key = self.hsm.backup_file(tls_cert, tls_key)
        data = await in_thread(backup.encode, backup_file, key)
        return web.Response(body=data, content_type="application/octet-stream")

    @endpoint("POST", "/system/restore", Rule((State.UNPROVISIONED, State.OPERATIONAL)))
    async def restore(self, request: web.Request, caller: None) -> web.Response:
        operational = self.hsm.state is State.OPERATIONAL
        if operational:
            admin = await self.auth.authenticate(request)
            if admin.role != "Administrator" or admin.namespace:
                raise Forbidden("a restore while Operational needs a root Administrator")
        data, passphrase = await _read_restore(request)
        restore = backup.restore_of(await in_thread(backup.decode, data, passphrase))
        async with self._lifecycle:
            self._install(restore, operational)
        return no_content()

    def _install(self, restore: backup.Restore, operational: bool) -> None:
        if self.hsm.state is not (State.OPERATIONAL if operational else State.UNPROVISIONED):
            raise PreconditionFailed("the HSM changed state during the restore")
        self.hsm.restore(restore, operational)


async def _read_restore(request: web.Request) -> tuple[bytes, str]:
    """The spec's multipart form (`arguments` JSON + `backup_file`), or NetHSM 2's raw body
    with `backupPassphrase` and `systemTime` as query parameters."""
    if request.content_type != "multipart/form-data":
        query = Body(dict(request.query), "query")
        passphrase = query.string("backupPassphrase")
        query.time("systemTime", False)
        query.done()
        return await read_body(request, MAX_BACKUP), passphrase
    parts = await read_form(request, ("arguments", "backup_file"), MAX_BACKUP)
    arguments = Body(parse_json(parts["arguments"]), "arguments")
    passphrase = arguments.string("backupPassphrase")
    arguments.time("systemTime", False)
    arguments.done()
    return parts["backup_file"], passphrase
