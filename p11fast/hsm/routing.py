"""Route declarations with each endpoint's NetHSM annotations (state, roles, namespace),
enforced in one place before a handler runs, and the request/response helpers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from p11fast.hsm.core import Caller, State
from p11fast.hsm.errors import BadRequest, PayloadTooLarge
from p11fast.hsm.validate import Body, parse_json

API_PREFIX = "/api/v1"
MAX_JSON_BODY = 1 << 20

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
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    data = await request.read()
    if len(data) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    return data


async def json_body(request: web.Request) -> Body:
    return Body(parse_json(await read_body(request)))


async def read_form(request: web.Request, names: tuple[str, ...], limit: int) -> dict[str, bytes]:
    """The named parts of a multipart/form-data body; all of them must be present."""
    parts: dict[str, bytes] = {}
    total = 0
    try:
        async for part in await request.multipart():
            if part.name not in names:
                raise BadRequest(f"unexpected form part {str(part.name)[:64]!r}")
            parts[part.name] = data = await part.read()
            total += len(data)
            if total > limit:
                raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    except (HttpProcessingError, ValueError, AssertionError) as exc:
        # aiohttp's multipart reader signals malformed input with these
        raise BadRequest("malformed multipart/form-data body") from exc
    missing = [name for name in names if name not in parts]
    if missing:
        raise BadRequest(f"missing form parts: {', '.join(missing)}")
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
