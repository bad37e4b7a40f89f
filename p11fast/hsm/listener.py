"""Accepting connections with the bounds a server open to unauthenticated clients needs.

aiohttp waits for a request head as long as a client likes, and asyncio gives a TLS handshake
a minute: clients that connect and stall hold a descriptor each for that long, and a thousand of
them make the server unreachable. Until one of its requests has authenticated, a connection
here is untrusted:

- its TLS handshake and each request head must arrive within `header_timeout` of the
  connection being accepted or of its previous response, or it is aborted;
- at most `max_unauthenticated` exist: a new connection beyond that aborts the oldest untrusted one
  that is not serving a request (a flood then costs the flooder its own connections, and a
  client that sends its request promptly still gets through).

A connection that authenticated is left to aiohttp's keep-alive timeout. Request bodies are
bounded by `body_timeout` where they are read (`routing.read_body`, `routing.read_form`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import web

log = logging.getLogger("p11fast.hsm")

ACCEPT_RETRY = 1.0  # after accept() fails for want of descriptors, as asyncio's own server


@dataclass(frozen=True)
class Limits:
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    max_unauthenticated: int = 256


class _Connection:
    """An untrusted connection: in its TLS handshake (`handshake` running) or served by
    aiohttp (`transport` set)."""

    __slots__ = ("deadline", "transport", "handshake", "busy")

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline
        self.transport: asyncio.Transport | None = None
        self.handshake: asyncio.Task | None = None
        self.busy = False  # a request is being handled

    @property
    def closed(self) -> bool:
        if self.transport is not None:
            return self.transport.is_closing()
        return self.handshake is not None and self.handshake.done()

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()  # no TLS close_notify wait: the peer is not cooperating
        elif self.handshake is not None:
            self.handshake.cancel()


class Listener:
    def __init__(self, limits: Limits, ssl_context: ssl.SSLContext | None) -> None:
        self.limits = limits
        self._ssl = ssl_context
        self._untrusted: dict[_Connection, None] = {}  # oldest first
        self._by_transport: dict[asyncio.BaseTransport, _Connection] = {}
        self._socket: socket.socket | None = None
        self._tasks: list[asyncio.Task] = []

    async def start(
        self, protocol_factory: Callable[[], asyncio.Protocol], host: str, port: int
    ) -> int:
        """Listen on host:port (0: any free port); the port listened on."""
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._socket = socket.create_server((host, port), family=family, backlog=1024)
        self._socket.setblocking(False)
        self._tasks = [
            asyncio.create_task(self._accept_forever(protocol_factory)),
            asyncio.create_task(self._sweep_forever()),
        ]
        return self._socket.getsockname()[1]

    async def close(self) -> None:
        """Stop accepting and drop connections still in their handshake; aiohttp's runner
        closes the ones it serves."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._socket is not None:
            self._socket.close()
        for connection in list(self._untrusted):
            if connection.transport is None:
                connection.abort()

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Marks an untrusted connection busy while a request is handled; its next request
        head is due `header_timeout` after this one."""
        connection = self._by_transport.get(request.transport)
        if connection is None:
            return await handler(request)
        connection.busy = True
        try:
            return await handler(request)
        finally:
            connection.busy = False
            connection.deadline = asyncio.get_running_loop().time() + self.limits.header_timeout

    def trust(self, request: web.Request) -> None:
        """The request authenticated: its connection is no longer bounded here."""
        connection = self._by_transport.get(request.transport)
        if connection is not None:
            self._forget(connection)

    async def _accept_forever(self, protocol_factory: Callable[[], asyncio.Protocol]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                sock, _ = await loop.sock_accept(self._socket)
            except OSError as exc:  # EMFILE and kin: wait for descriptors to be freed
                log.warning("cannot accept connections: %s", exc)
                await asyncio.sleep(ACCEPT_RETRY)
                continue
            if not self._make_room():
                sock.close()
                continue
            connection = _Connection(loop.time() + self.limits.header_timeout)
            self._untrusted[connection] = None
            connection.handshake = asyncio.create_task(
                self._attach(connection, sock, protocol_factory)
            )
            connection.handshake.add_done_callback(lambda _, c=connection, s=sock: self._end(c, s))

    def _make_room(self) -> bool:
        """Room for one more untrusted connection, by aborting the oldest idle one if need be;
        False if every untrusted connection is serving a request."""
        for connection in [c for c in self._untrusted if c.closed]:
            self._forget(connection)
        if len(self._untrusted) < self.limits.max_unauthenticated:
            return True
        oldest_idle = next((c for c in self._untrusted if not c.busy), None)
        if oldest_idle is None:
            return False
        self._forget(oldest_idle)
        oldest_idle.abort()
        return True

    async def _attach(
        self,
        connection: _Connection,
        sock: socket.socket,
        protocol_factory: Callable[[], asyncio.Protocol],
    ) -> None:
        """The TLS handshake, then hand the connection to aiohttp."""
        with contextlib.suppress(Exception):  # a failed handshake: `_end` cleans up
            transport, _ = await asyncio.get_running_loop().connect_accepted_socket(
                protocol_factory, sock, ssl=self._ssl
            )
            if connection not in self._untrusted:  # aborted for room meanwhile
                transport.abort()
                return
            connection.transport = transport
            self._by_transport[transport] = connection

    def _end(self, connection: _Connection, sock: socket.socket) -> None:
        """After the handshake task: without a transport the handshake failed or was cut
        short, perhaps before it began, and the socket is ours to close (a transport asyncio
        made for it has already let go of it)."""
        if connection.transport is None:
            sock.close()
            self._forget(connection)

    async def _sweep_forever(self) -> None:
        loop = asyncio.get_running_loop()
        interval = min(1.0, max(0.05, self.limits.header_timeout / 4))
        while True:
            await asyncio.sleep(interval)
            now = loop.time()
            for connection in list(self._untrusted):
                if connection.closed:
                    self._forget(connection)
                elif not connection.busy and now >= connection.deadline:
                    self._forget(connection)
                    connection.abort()

    def _forget(self, connection: _Connection) -> None:
        self._untrusted.pop(connection, None)
        if connection.transport is not None:
            self._by_transport.pop(connection.transport, None)
