"""Route declarations with each endpoint's NetHSM annotations (state, roles, namespace),
enforced in one place before a handler runs, and the request/response helpers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from p11fast.hsm.core import Caller, State
from p11fast.hsm.errors import BadRequest, PayloadTooLarge, RequestTimeout
from p11fast.hsm.validate import Body, parse_json

API_PREFIX = "/api/v1"
MAX_JSON_BODY = 1 << 20
READ_CHUNK = 64 << 10
# Seconds a handler waits for a request body; None: no bound (set by the server's Limits).
BODY_TIMEOUT = web.AppKey("body_timeout", float)
T = TypeVar("T")

ANY_STATE = (State.UNPROVISIONED, State.LOCKED, State.OPERATIONAL)
OPERATIONAL = (State.OPERATIONAL,)
ADMIN = ("Administrator",)
OPERATOR = ("Operator",)
ADMIN_OR_OPERATOR = ("Administrator", "Operator")
JSON = "application/json"
PEM = "application/x-pem-file"
OCTETS = "application/octet-stream"

Handler = Callable[[web.Request, Caller | None], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Rule:
    states: tuple[State, ...]
    roles: tuple[str, ...] = ()  # empty: public
    root_only: bool = False  # x-annotation-caller-namespace: Root
    provides: tuple[str, ...] = (JSON,)  # media types an Accept header may ask for
    public_in: tuple[State, ...] = ()  # states in which no authentication is asked


ROOT_ADMIN = Rule(OPERATIONAL, ADMIN, root_only=True)


def endpoint(method: str, path: str, rule: Rule) -> Callable[[Handler], Handler]:
    """Mark an Api method as the handler of METHOD /api/v1PATH."""

    def mark(handler: Handler) -> Handler:
        handler.__dict__.setdefault("routes", []).append((method, path, rule))
        return handler

    return mark


async def read_body(request: web.Request, limit: int = MAX_JSON_BODY) -> bytes:
    _check_length(request, limit)
    return await in_time(request, _read_at_most(request.content.read, limit, 0))


async def _read_at_most(read: Callable[[int], Awaitable[bytes]], limit: int, before: int) -> bytes:
    """The rest of a body or multipart part (`read(n)`: up to n bytes, b"" at its end); 413
    as soon as it and the `before` bytes already read exceed `limit`: nothing larger is ever
    buffered."""
    chunks = []
    size = before
    while chunk := await read(READ_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _check_length(request: web.Request, limit: int) -> None:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")


async def in_time(request: web.Request, reading: Awaitable[T]) -> T:
    """`reading` (of the request body), 408 if it takes longer than the server allows."""
    try:
        return await asyncio.wait_for(reading, request.config_dict.get(BODY_TIMEOUT))
    except asyncio.TimeoutError as exc:
        raise RequestTimeout("the request body did not arrive in time") from exc


async def json_body(request: web.Request) -> Body:
    return Body(parse_json(await read_body(request)))


async def read_form(request: web.Request, names: tuple[str, ...], limit: int) -> dict[str, bytes]:
    """The named parts of a multipart/form-data body; all of them must be present."""
    _check_length(request, limit)
    parts = await in_time(request, _read_parts(request, names, limit))
    missing = [name for name in names if name not in parts]
    if missing:
        raise BadRequest(f"missing form parts: {', '.join(missing)}")
    return parts


async def _read_parts(request: web.Request, names: tuple[str, ...], limit: int) -> dict[str, bytes]:
    parts: dict[str, bytes] = {}
    try:
        async for part in await request.multipart():
            if not isinstance(part, BodyPartReader) or part.name not in names:
                raise BadRequest(f"unexpected form part {str(part.name)[:64]!r}")
            total = sum(map(len, parts.values()))
            parts[part.name] = await _read_at_most(part.read_chunk, limit, total)
    except (HttpProcessingError, ValueError, AssertionError) as exc:
        # aiohttp's multipart reader signals malformed input with these
        raise BadRequest("malformed multipart/form-data body") from exc
    return parts


def json_response(data: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(data).encode(),
        status=status,
        content_type=JSON,
        headers=headers,
    )


def no_content(status: int = 204) -> web.Response:
    return web.Response(status=status)


def created(kind: str, resource_id: str) -> web.Response:
    return json_response(
        {"id": resource_id}, 201, {"Location": f"{API_PREFIX}/{kind}/{resource_id}"}
    )


def pem_response(data: bytes) -> web.Response:
    return web.Response(body=data, content_type=PEM)


async def in_thread(func: Callable[..., Any], *args: Any) -> Any:
    """Run CPU-heavy work (RSA, key generation, scrypt) off the event loop."""
    return await asyncio.get_running_loop().run_in_executor(None, func, *args)
