"""HTTP Basic authentication with a per-process credential cache.

scrypt makes a passphrase check cost ~50 ms. A PKCS#11 module sends Basic auth on every
request, so a verified Authorization header is remembered as an HMAC under a random
per-process key (never the header itself); any user change invalidates the cache.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import os
import time

from p11fast.hsm import vault
from p11fast.hsm.core import Caller, Hsm
from p11fast.hsm.errors import Forbidden, TooManyRequests, Unauthorized

# A user whose login failed must wait this long before the next attempt (NetHSM: 1 s).
FAILURE_DELAY = 1.0
CACHE_LIMIT = 10000


class Authenticator:
    def __init__(self, hsm: Hsm) -> None:
        self._hsm = hsm
        self._hmac_key = os.urandom(32)
        self._verified: dict[bytes, tuple[str, int]] = {}
        self._last_failure: dict[str, float] = {}

    async def authenticate(self, header: str | None) -> Caller:
        if not header or not header.startswith("Basic "):
            raise Unauthorized("authentication required")
        token = hmac.digest(self._hmac_key, header.encode(), hashlib.sha256)
        cached = self._verified.get(token)
        if cached is not None and cached[1] == self._hsm.users_generation:
            return self._caller(cached[0])
        user_id, passphrase = _decode(header)
        self._check_rate(user_id)
        generation = self._hsm.users_generation
        user = self._hsm.users.get(user_id)
        loop = asyncio.get_running_loop()
        ok = user is not None and await loop.run_in_executor(
            None, vault.check_passphrase, passphrase, user.passphrase_hash
        )
        if not ok:
            self._last_failure[user_id] = time.monotonic()
            raise Unauthorized("invalid username or passphrase")
        if len(self._verified) >= CACHE_LIMIT:
            self._verified.clear()
        self._verified[token] = (user_id, generation)
        return self._caller(user_id)

    def _check_rate(self, user_id: str) -> None:
        failed_at = self._last_failure.get(user_id)
        if failed_at is not None and time.monotonic() - failed_at < FAILURE_DELAY:
            raise TooManyRequests("too many failed logins: retry in a second")

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
