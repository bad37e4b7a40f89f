"""What keyfender hands to its platform (keyfender `src/keyfender/hsm.ml`, the `cb`
messages): network and logging configuration, reboot, shutdown, factory reset, software
update. A process does what it can: the configuration is validated and kept (this server
listens where it was told to on the command line and logs to stderr), reboot re-runs the
boot sequence, shutdown ends the process, factory reset erases the state directory's HSM.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from p11fast.hsm import tls
from p11fast.hsm.core import Caller, Hsm, State
from p11fast.hsm.devsetup import CONFIG_FILE
from p11fast.hsm.errors import BadRequest, PreconditionFailed
from p11fast.hsm.routing import (
    ADMIN,
    ANY_STATE,
    ROOT_ADMIN,
    Rule,
    endpoint,
    in_thread,
    in_time,
    json_body,
    json_response,
    no_content,
)
from p11fast.hsm.validate import Body

# Shutdown needs an Administrator only while Operational (keyfender handler_system.ml).
SHUTDOWN = Rule(ANY_STATE, ADMIN, root_only=True, public_in=(State.LOCKED, State.UNPROVISIONED))
DIAGNOSE = Rule(ANY_STATE, ADMIN, public_in=(State.LOCKED, State.UNPROVISIONED))
# What NetHSM reports without a cluster process (the spec's example is keyfender's own
# answer when it runs without etcd): this server has none.
NO_CLUSTER = {
    "clusterLogs": [{"level": "error", "msg": "no etcd: p11fast runs no cluster process"}],
    "clusterState": {"running": False},
}
DEFAULT_NETWORK = {"ipAddress": "192.168.1.1", "netmask": "255.255.255.0", "gateway": "0.0.0.0"}
DEFAULT_LOGGING = {"ipAddress": "0.0.0.0", "port": 514, "logLevel": "info"}
LOG_LEVELS = ("debug", "info", "warning", "error")
# An update image (keyfender hsm.ml, System.update): this header, then signature, release
# notes and version, each with a 3-byte big-endian length, then a 4-byte count of
# 512-byte blocks and the image.
UPDATE_HEADER = b"_NETHSM_UPDATE_\x00"
UPDATE_VERSION = re.compile(rb"\d+\.\d+(\.\d+)?\Z")
UPDATE_CHUNK = 1 << 16


@dataclass(frozen=True)
class Platform:
    """The server's hooks: end the process, and serve a new TLS certificate."""

    stop: Callable[[], None]
    reload_tls: Callable[[], None]


class PlatformApi:
    def __init__(self, hsm: Hsm, platform: Platform, lifecycle: asyncio.Lock) -> None:
        self.hsm = hsm
        self.platform = platform
        self._lifecycle = lifecycle  # shared with SystemApi: one whole-HSM change at a time

    @endpoint("GET", "/health/diagnose", DIAGNOSE)
    async def diagnose(self, request: web.Request, caller: Caller | None) -> web.Response:
        return json_response(NO_CLUSTER)

    # --- network and logging ------------------------------------------------------------
    @endpoint("GET", "/config/network", ROOT_ADMIN)
    async def network(self, request: web.Request, caller: Caller) -> web.Response:
        return json_response(self.hsm.setting("network", DEFAULT_NETWORK))

    @endpoint("PUT", "/config/network", ROOT_ADMIN)
    async def set_network(self, request: web.Request, caller: Caller) -> web.Response:
        self.hsm.set_setting("network", _network(await json_body(request)))
        return no_content()

    @endpoint("GET", "/config/logging", ROOT_ADMIN)
    async def logging(self, request: web.Request, caller: Caller) -> web.Response:
        return json_response(self.hsm.setting("logging", DEFAULT_LOGGING))

    @endpoint("PUT", "/config/logging", ROOT_ADMIN)
    async def set_logging(self, request: web.Request, caller: Caller) -> web.Response:
        body = await json_body(request)
        address = _ip(body, "ipAddress", ipaddress.ip_address)
        port = body.integer("port")
        level = body.enum("logLevel", LOG_LEVELS)
        body.done()
        self.hsm.set_setting("logging", {"ipAddress": address, "port": port, "logLevel": level})
        return no_content()

    # --- power ----------------------------------------------------------------------------
    @endpoint("POST", "/system/reboot", ROOT_ADMIN)
    async def reboot(self, request: web.Request, caller: Caller) -> web.Response:
        async with self._lifecycle:
            self.hsm.reboot()
        return no_content()

    @endpoint("POST", "/system/shutdown", SHUTDOWN)
    async def shutdown(self, request: web.Request, caller: Caller | None) -> web.Response:
        # The server stops gracefully: this response is still delivered.
        self.platform.stop()
        return no_content()

    @endpoint("POST", "/system/factory-reset", ROOT_ADMIN)
    async def factory_reset(self, request: web.Request, caller: Caller) -> web.Response:
        async with self._lifecycle:
            # On the event loop: no request's write can fall between the wipe and the state
            # change and survive the reset.
            self.hsm.factory_reset()
            await in_thread(self._new_identity)
        self.platform.reload_tls()
        return no_content()

    def _new_identity(self) -> None:
        # A new TLS key, as NetHSM makes at its first boot. The p11fast.conf written by
        # `init` describes users that no longer exist.
        tls.create(self.hsm.state_dir)
        with contextlib.suppress(FileNotFoundError):
            os.remove(os.path.join(self.hsm.state_dir, CONFIG_FILE))

    # --- software update ----------------------------------------------------------------
    @endpoint("POST", "/system/update", ROOT_ADMIN)
    async def update(self, request: web.Request, caller: Caller) -> web.Response:
        await in_time(request, _read_update(request.content))
        # A well-formed image still needs Nitrokey's signature; this server holds no update
        # key it could check it with, so no image is ever accepted.
        raise BadRequest("Signature check of update image failed.")

    @endpoint("POST", "/system/commit-update", ROOT_ADMIN)
    async def commit_update(self, request: web.Request, caller: Caller) -> web.Response:
        raise PreconditionFailed(NO_UPDATE)

    @endpoint("POST", "/system/cancel-update", ROOT_ADMIN)
    async def cancel_update(self, request: web.Request, caller: Caller) -> web.Response:
        raise PreconditionFailed(NO_UPDATE)


NO_UPDATE = "No update available. Please upload a system image to /system/update."


def _network(body: Body) -> dict:
    address = _ip(body, "ipAddress", ipaddress.IPv4Address)
    netmask = _ip(body, "netmask", ipaddress.IPv4Address)
    gateway = _ip(body, "gateway", ipaddress.IPv4Address, required=False) or "0.0.0.0"
    ipv6 = body.obj("ipv6", required=False, nullable=True)  # null: IPv6 off
    body.done()
    try:
        ipaddress.IPv4Network(f"0.0.0.0/{netmask}")
    except ValueError as exc:
        raise BadRequest(f"error parsing network configuration: bad netmask {netmask}") from exc
    network = {"ipAddress": address, "netmask": netmask, "gateway": gateway}
    if ipv6 is not None:
        network["ipv6"] = _ipv6(ipv6)
    return network


def _ipv6(body: Body) -> dict:
    cidr = body.string("cidr")
    gateway = body.string("gateway", nullable=True)
    body.done()
    try:
        interface = ipaddress.IPv6Interface(cidr)
        if gateway is not None:
            gateway = str(ipaddress.IPv6Address(gateway))
    except ValueError as exc:
        raise BadRequest(f"error parsing IPv6 configuration: {exc}") from exc
    return {"cidr": str(interface), "gateway": gateway}


def _ip(body: Body, name: str, parse: Callable, required: bool = True) -> str | None:
    value = body.string(name, required)
    if value is None:
        return None
    try:
        return str(parse(value))
    except ValueError as exc:
        raise BadRequest(f"{name} is not a valid IP address") from exc


async def _read_update(stream: asyncio.StreamReader) -> None:
    """Read an update image through to its end, checking its framing (keyfender answers
    400 for a malformed or truncated image)."""
    try:
        if await stream.readexactly(len(UPDATE_HEADER)) != UPDATE_HEADER:
            raise BadRequest("Invalid update file")
        for _ in ("signature", "release notes"):
            await _field(stream)
        if not UPDATE_VERSION.match(await _field(stream)):
            raise BadRequest("Invalid update file: bad version")
        left = 512 * int.from_bytes(await stream.readexactly(4), "big")
    except asyncio.IncompleteReadError as exc:
        raise BadRequest("Unexpected end of data") from exc
    while chunk := await stream.read(UPDATE_CHUNK):
        left -= len(chunk)
    if left != 0:
        raise BadRequest("unexpected end of data")


async def _field(stream: asyncio.StreamReader) -> bytes:
    return await stream.readexactly(int.from_bytes(await stream.readexactly(3), "big"))
