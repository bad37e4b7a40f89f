"""One resource per path, answering in keyfender's order.

keyfender runs every request through webmachine's decision flow (keyfender
`src/keyfender/endpoint.ml`; ocaml-webmachine `lib/webmachine.ml`, states v3b13 … v3c4):
the HSM state (412), a known method (501), a method the resource serves (405 with `Allow`),
authentication (401), role and namespace (403), then the `Accept` header (406). Only then
does the handler run: a missing resource (404), the body (413, 415, 400) and the operation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from p11fast.hsm.core import Caller, State
from p11fast.hsm.errors import (
    Forbidden,
    MethodNotAllowed,
    NotAcceptable,
    NotImplementedYet,
    PreconditionFailed,
)
from p11fast.hsm.routing import Handler, Rule

# webmachine's default known_methods; anything else (PATCH, QUERY, …) is 501
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "CONNECT", "OPTIONS"})


@dataclass(frozen=True)
class Operation:
    rule: Rule
    handler: Handler


class Resource:
    """Every method of one path: aiohttp routes all methods of the path here."""

    def __init__(self, hsm_state: Callable[[], State], authenticate: Any) -> None:
        self._hsm_state = hsm_state
        self._authenticate = authenticate
        self._operations: dict[str, Operation] = {}

    def add(self, method: str, rule: Rule, handler: Handler) -> None:
        self._operations[method] = Operation(rule, handler)

    def allowed_methods(self) -> list[str]:
        methods = list(self._operations)
        if "GET" in methods:
            methods.insert(methods.index("GET") + 1, "HEAD")
        return methods

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        method = "GET" if request.method == "HEAD" else request.method
        operation = self._operations.get(method)
        self._check_state(operation)
        if request.method not in KNOWN_METHODS:
            raise NotImplementedYet(f"method {request.method[:16]} is not implemented")
        if operation is None:
            raise MethodNotAllowed(self.allowed_methods())
        caller = await self._authorize(request, operation.rule)
        if not accepts(",".join(request.headers.getall("Accept", [])), operation.rule.provides):
            raise NotAcceptable(f"this resource provides {', '.join(operation.rule.provides)}")
        return await operation.handler(request, caller)

    def _check_state(self, operation: Operation | None) -> None:
        """A method the path does not serve is checked against the path's states, as
        keyfender's service_available runs before the method is looked at."""
        operations = [operation] if operation else self._operations.values()
        states = {state for op in operations for state in op.rule.states}
        if self._hsm_state() not in states:
            # Only Failed-only endpoints have no states: a software HSM never fails.
            wanted = " or ".join(sorted(s.value for s in states)) or "Failed"
            raise PreconditionFailed(f"NetHSM is not {wanted}")

    async def _authorize(self, request: web.Request, rule: Rule) -> Caller | None:
        if not rule.roles or self._hsm_state() in rule.public_in:
            return None
        caller = await self._authenticate(request)
        if caller.role not in rule.roles:
            raise Forbidden(f"this needs the role {' or '.join(rule.roles)}")
        if rule.root_only and caller.namespace:
            raise Forbidden("not allowed for users in a namespace")
        return caller


def accepts(header: str, provided: tuple[str, ...]) -> bool:
    """Whether an `Accept` header admits one of the media types a resource provides.
    No header admits anything; a header with no acceptable range is 406."""
    if not header:
        return True
    for media_range in header.split(","):
        media, *params = (part.strip().lower() for part in media_range.split(";"))
        if _quality(params) <= 0:
            continue
        if media in ("*/*", "*") or media in provided:
            return True
        if media.endswith("/*") and any(p.startswith(media[:-1]) for p in provided):
            return True
    return False


def _quality(params: list[str]) -> float:
    for param in params:
        name, _, value = param.partition("=")
        if name.strip() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def build_resources(
    routes: list[tuple[str, str, Rule, Handler]],
    hsm_state: Callable[[], State],
    authenticate: Any,
) -> dict[str, Resource]:
    """(method, path, rule, handler) declarations grouped into one resource per path, in
    declaration order (aiohttp matches paths in the order they are added)."""
    resources: dict[str, Resource] = {}
    for method, path, rule, handler in routes:
        resource = resources.setdefault(path, Resource(hsm_state, authenticate))
        resource.add(method, rule, handler)
    return resources
