"""HTTP Basic authentication with a per-process credential cache and NetHSM's login delay.

A PKCS#11 module sends Basic auth on every request, so a verified Authorization header is
remembered as an HMAC under a random per-process key (never the header itself); any user
change invalidates the cache.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from collections.abc import Callable

from aiohttp import web

from p11fast.hsm import vault
from p11fast.hsm.core import Caller, Hsm
from p11fast.hsm.errors import Forbidden, Unauthorized
from p11fast.hsm.routing import in_thread
from p11fast.hsm.throttle import Attempt, Throttle

CACHE_LIMIT = 10000


class Authenticator:
    def __init__(
        self, hsm: Hsm, on_verified: Callable[[web.Request], None] = lambda request: None
    ) -> None:
        self._hsm = hsm
        self._on_verified = on_verified
        self._hmac_key = os.urandom(32)
        self._verified: dict[bytes, tuple[str, int]] = {}
        self._throttle = Throttle()
        # A user that does not exist is checked against this random digest: the answer costs
        # the same check as a wrong passphrase, so timing does not tell which it was.
        self._decoy_hash = os.urandom(vault.SALT_SIZE + vault.KEY_SIZE)

    async def authenticate(self, request: web.Request) -> Caller:
        header = request.headers.get("Authorization")
        if not header or not header.startswith("Basic "):
            raise Unauthorized("authentication required")
        token = hmac.digest(self._hmac_key, header.encode(), hashlib.sha256)
        user_id = self._cached(token)
        if user_id is None:
            user_id, passphrase = _decode(header)
            async with self._throttle.attempt(request.remote or "", user_id) as attempt:
                # The check this one queued behind may have verified this very header.
                if self._cached(token) is None:
                    await self._check(token, user_id, passphrase, attempt)
        caller = self._caller(user_id)
        self._on_verified(request)
        return caller

    def _cached(self, token: bytes) -> str | None:
        cached = self._verified.get(token)
        if cached is not None and cached[1] == self._hsm.users_generation:
            return cached[0]
        return None

    async def _check(self, token: bytes, user_id: str, passphrase: str, attempt: Attempt) -> None:
        generation = self._hsm.users_generation
        user = self._hsm.users.get(user_id)
        stored = self._decoy_hash if user is None else user.passphrase_hash
        ok = await in_thread(vault.check_passphrase, passphrase, stored)
        # The user may have been deleted, re-created or given a new passphrase meanwhile.
        current = self._hsm.users.get(user_id)
        if not ok or user is None or current is None or current.passphrase_hash != stored:
            attempt.failed()
            raise Unauthorized("invalid username or passphrase")
        if len(self._verified) >= CACHE_LIMIT:
            self._verified.clear()
        self._verified[token] = (user_id, generation)

    def _caller(self, user_id: str) -> Caller:
        user = self._hsm.users.get(user_id)
        if user is None:
            raise Unauthorized("invalid username or passphrase")
        if user.namespace and user.namespace not in self._hsm.namespaces:
            raise Forbidden(f"namespace {user.namespace} does not exist")
        return Caller(user.user_id, user.namespace, user.role, tuple(user.tags))


def _decode(header: str) -> tuple[str, str]:
    try:
        decoded = base64.b64decode(header[6:], validate=True).decode()
        user_id, sep, passphrase = decoded.partition(":")
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise Unauthorized("malformed Basic authorization") from exc
    if not sep:
        raise Unauthorized("malformed Basic authorization")
    return user_id, passphrase
