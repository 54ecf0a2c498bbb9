"""Failure throttling shared across processes: counters live in MongoDB (`throttle_counters`).

A `Throttle` counts failures per key (an account today; a client address for the hardening
pass). After `max_failures` failures within `window_seconds` of each other the key is locked for
`lockout_seconds`: `check` then answers 429 with `Retry-After`. The lock is short on purpose, so
an attacker can slow the real owner down but never lock them out for long. When the lock ends
the count starts again from zero.

Counters are keyed documents, updated with single atomic operations, so every process sees the
same count (an in-process dict would let an attacker spread attempts over the workers).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.base import _as_utc, utcnow
from documents.throttle import ThrottleCounter
from service.errors import TooManyRequests
from service.settings import Settings


class Throttle:
    """A named family of failure counters (`scope`), e.g. "login" or "register-ip"."""

    def __init__(
        self, scope: str, *, max_failures: int, lockout_seconds: int, window_seconds: int
    ) -> None:
        self.scope = scope
        self.max_failures = max_failures
        self.lockout = timedelta(seconds=lockout_seconds)
        self.window = timedelta(seconds=window_seconds)

    def _id(self, key: str) -> str:
        return f"{self.scope}:{key}"[:300]

    @staticmethod
    def _collection() -> Any:
        return ThrottleCounter.get_pymongo_collection()

    async def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again (0 when it is not locked)."""
        raw = await self._collection().find_one({"_id": self._id(key)}, {"locked_until": 1})
        until = raw.get("locked_until") if raw else None
        if until is None:
            return 0
        remaining = (_as_utc(until) - utcnow()).total_seconds()
        return max(0, math.ceil(remaining))

    async def check(self, key: str) -> None:
        """Raise 429 (with Retry-After) while `key` is locked."""
        wait = await self.retry_after(key)
        if wait > 0:
            raise TooManyRequests("Too many failed attempts; try again later.", retry_after=wait)

    async def hit(self, key: str) -> int:
        """Record one failure for `key`; returns the failures counted in the current window."""
        now = utcnow()
        coll = self._collection()
        _id = self._id(key)
        # Atomic increment of a live counter (one still inside its window and not locked).
        raw = await coll.find_one_and_update(
            {"_id": _id, "expires_at": {"$gt": now}, "locked_until": None},
            {"$inc": {"failures": 1}, "$set": {"expires_at": now + self.window}},
            return_document=ReturnDocument.AFTER,
        )
        if raw is None:
            # No counter, a stale one or a finished lock: start a new window. A concurrent
            # first failure may overwrite this one; losing one count at the start is harmless.
            raw = {"_id": _id, "failures": 1, "locked_until": None, "expires_at": now + self.window}
            unlocked = {"$or": [{"locked_until": None}, {"locked_until": {"$lte": now}}]}
            try:
                await coll.replace_one({"_id": _id, **unlocked}, raw, upsert=True)
            except DuplicateKeyError:
                return self.max_failures  # locked right now: a failure cannot lift the lock
        failures = int(raw["failures"])
        if failures >= self.max_failures:
            until = now + self.lockout
            await coll.update_one(
                {"_id": _id},
                {"$set": {"failures": 0, "locked_until": until, "expires_at": until}},
            )
        return failures

    async def reset(self, key: str) -> None:
        """Forget the failures of `key` (after a success)."""
        await self._collection().delete_one({"_id": self._id(key), "locked_until": None})


def login_throttle(settings: Settings) -> Throttle:
    """The per-account login throttle configured by LOGIN_* settings."""
    return Throttle(
        "login",
        max_failures=settings.login_max_failures,
        lockout_seconds=settings.login_lockout_seconds,
        window_seconds=settings.login_failure_window_seconds,
    )


class RateLimit:
    """A fixed-window request cap per key (e.g. per client address), shared across processes.

    Each window is one counter document (`<scope>:<key>:<window>`) incremented atomically
    with an upsert — one round trip per request; the TTL index removes old windows.
    """

    def __init__(self, scope: str, *, limit: int, window_seconds: int = 60) -> None:
        self.scope = scope
        self.limit = limit
        self.window_seconds = window_seconds

    async def consume(self, key: str) -> None:
        """Count one request for `key`; 429 with Retry-After once the window's cap is passed."""
        now = utcnow()
        window = int(now.timestamp()) // self.window_seconds
        ends = datetime.fromtimestamp((window + 1) * self.window_seconds, tz=UTC)
        raw = await ThrottleCounter.get_pymongo_collection().find_one_and_update(
            {"_id": f"{self.scope}:{key}:{window}"[:300]},
            {"$inc": {"failures": 1}, "$setOnInsert": {"locked_until": None, "expires_at": ends}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        assert raw is not None  # an upsert returning the document after always finds one
        if int(raw["failures"]) > self.limit:
            wait = math.ceil((ends - now).total_seconds())
            raise TooManyRequests(
                "Too many requests from this address; slow down.", retry_after=wait
            )


def address_limit(settings: Settings) -> RateLimit:
    """The per-client-address cap on registration and login (REGISTER_MAX_PER_MINUTE)."""
    return RateLimit("auth-ip", limit=settings.register_max_per_minute, window_seconds=60)
