"""NetHSM's delay after a failed passphrase check, held across concurrent requests.

keyfender (`src/keyfender/rate_limit.ml`, used by `access.ml` for logins and by
`handler_unlock.ml` for unlocking) remembers failures per (client address, user name): an
attempt within a second of a failure of the same pair is answered 429 without checking the
passphrase. Concurrent attempts of one pair would all pass that test before the first of them
failed (an unlock's check alone is a 0.6 s scrypt); here they queue behind the check in
progress and see its outcome, so one pair gets at most one check per second however many
requests it sends at once.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from p11fast.hsm.errors import TooManyRequests

DELAY = 1.0
# Pairs with no attempt in progress and no failure within DELAY are forgotten once there
# are this many (keyfender's `discard_old_entries`).
PURGE_ABOVE = 1024


@dataclass
class _Pair:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    holders: int = 0  # attempts checking or queued
    failed_at: float = -math.inf


class Attempt:
    """The one check a pair may run now; `failed()` starts the pair's delay."""

    def __init__(self, pair: _Pair, clock: Callable[[], float]) -> None:
        self._pair = pair
        self._clock = clock

    def failed(self) -> None:
        self._pair.failed_at = self._clock()


class Throttle:
    def __init__(self, delay: float = DELAY, clock: Callable[[], float] = time.monotonic) -> None:
        self._delay = delay
        self._clock = clock
        self._pairs: dict[tuple[str, str], _Pair] = {}

    @asynccontextmanager
    async def attempt(self, client: str, name: str) -> AsyncIterator[Attempt]:
        """Wait for the pair's check in progress, then 429 if the pair failed within the
        delay; otherwise the caller checks, and reports a failure on the Attempt."""
        pair = self._pair((client, name))
        pair.holders += 1
        try:
            async with pair.lock:
                if self._clock() - pair.failed_at < self._delay:
                    raise TooManyRequests("too many failed attempts: retry in a second")
                yield Attempt(pair, self._clock)
        finally:
            pair.holders -= 1

    def _pair(self, key: tuple[str, str]) -> _Pair:
        pair = self._pairs.get(key)
        if pair is None:
            if len(self._pairs) >= PURGE_ABOVE:
                self._purge()
            pair = self._pairs[key] = _Pair()
        return pair

    def _purge(self) -> None:
        now = self._clock()
        self._pairs = {
            key: pair
            for key, pair in self._pairs.items()
            if pair.holders or now - pair.failed_at < self._delay
        }
