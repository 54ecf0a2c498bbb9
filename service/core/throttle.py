"""Guess throttling and request caps shared across processes, counted in MongoDB.

A `Throttle` limits guesses of one kind of secret (a password, a 2FA code, an invitation
token) per key (an account, a caller, a client address). An attempt takes a ticket BEFORE the
secret is checked: one conditional update (`find_one_and_update` on `{failures: {$lt: limit}}`
with `$inc`) decides whether it may go ahead, so N parallel guesses can never all be checked —
exactly `max_failures` get through, whatever the latency between check and count. The attempt
that takes the last ticket locks the key for `lockout_seconds`; while locked every attempt,
even with the right secret, answers 429 with `Retry-After`. When the secret was right the
caller `reset`s the key (a proven secret forgives earlier failures) or, for secrets that prove
nothing about the key's owner (invitation tokens), `refund`s the one attempt. Unrefunded
tickets are the failures; they are forgotten `window_seconds` after the last attempt, and a
finished lock starts the count from zero. The lock is short on purpose: an attacker can slow
the real owner down but never lock them out for long.

Counters are keyed documents (`throttle_counters`, removed by a TTL index), so every process
sees the same count; an in-process dict would let an attacker spread attempts over workers.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.base import as_utc, utcnow
from documents.throttle import ThrottleCounter
from service.core.errors import TooManyRequests
from service.core.settings import Settings

# Attempts racing a counter's creation retry this often before answering 429.
_RACE_RETRIES = 3

Secret = Literal["password", "totp", "invitation"]

_LOCKED_DETAIL: dict[str, str] = {
    "password": "Too many wrong passwords for this account; try again later.",
    "totp": "Too many wrong one-time codes for this account; try again later.",
    "invitation": "Too many unknown invitation tokens; try again later.",
}


class Throttle:
    """A named family of guess counters (`scope`), e.g. "password" or "invitation"."""

    def __init__(
        self,
        scope: str,
        *,
        max_failures: int,
        lockout_seconds: int,
        window_seconds: int,
        detail: str = "Too many failed attempts; try again later.",
    ) -> None:
        self.scope = scope
        self.max_failures = max_failures
        self.lockout = timedelta(seconds=lockout_seconds)
        self.window = timedelta(seconds=window_seconds)
        self.detail = detail

    def _id(self, key: str) -> str:
        return f"{self.scope}:{key}"[:300]

    @staticmethod
    def _collection() -> Any:
        return ThrottleCounter.get_pymongo_collection()

    async def attempt(self, key: str) -> None:
        """Take one ticket for a guess about to be checked; 429 (Retry-After) when `key` is locked.

        Each decision is one conditional update: a live counter below the limit is
        incremented; otherwise a missing or finished counter is (re)started by an upsert whose
        filter only matches a finished one, so a live counter at the limit makes the upsert
        collide (duplicate `_id`) and the attempt is refused.
        """
        coll = self._collection()
        _id = self._id(key)
        for _ in range(_RACE_RETRIES):
            now = utcnow()
            raw = await coll.find_one_and_update(
                {"_id": _id, "failures": {"$lt": self.max_failures}, "expires_at": {"$gt": now}},
                {"$inc": {"failures": 1}, "$set": {"expires_at": now + self.window}},
                return_document=ReturnDocument.AFTER,
            )
            if raw is None:
                try:
                    raw = await coll.find_one_and_update(
                        {
                            "_id": _id,
                            "$or": [
                                {"expires_at": {"$lte": now}},
                                {"locked_until": {"$lte": now}},
                            ],
                        },
                        {
                            "$set": {
                                "failures": 1,
                                "locked_until": None,
                                "expires_at": now + self.window,
                            }
                        },
                        upsert=True,
                        return_document=ReturnDocument.AFTER,
                    )
                except DuplicateKeyError:
                    # A live counter exists: at the limit (locked), or created by a racing
                    # first attempt a moment ago (then the increment above matches next time).
                    wait = await self.retry_after(key)
                    if wait > 0:
                        raise TooManyRequests(self.detail, retry_after=wait) from None
                    continue
            assert raw is not None  # an upsert returning the document after always finds one
            if int(raw["failures"]) >= self.max_failures:
                await self._lock(_id, now)
            return
        raise TooManyRequests(self.detail, retry_after=1)

    async def _lock(self, _id: str, now: datetime) -> None:
        # The attempt that took the last ticket starts the lock. It may still succeed (and
        # reset), and a refund of a racing attempt clears the lock again (see `refund`).
        until = now + self.lockout
        await self._collection().update_one(
            {"_id": _id, "failures": {"$gte": self.max_failures}, "locked_until": None},
            {"$set": {"locked_until": until, "expires_at": until}},
        )

    async def retry_after(self, key: str) -> int:
        """Seconds until `key` may try again (0 when it is not locked)."""
        raw = await self._collection().find_one(
            {"_id": self._id(key)}, {"locked_until": 1, "expires_at": 1, "failures": 1}
        )
        if raw is None or int(raw.get("failures", 0)) < self.max_failures:
            return 0
        until = raw.get("locked_until") or raw.get("expires_at")
        if until is None:
            return 0
        remaining = (as_utc(until) - utcnow()).total_seconds()
        return max(0, math.ceil(remaining))

    async def reset(self, key: str) -> None:
        """Forget every failure of `key`, lock included (the secret was proven)."""
        await self._collection().delete_one({"_id": self._id(key)})

    async def refund(self, key: str) -> None:
        """Give back one ticket: the attempt was not a wrong guess (e.g. a real token)."""
        coll = self._collection()
        _id = self._id(key)
        # The ticket that locked the key was this one or an attempt racing it: below the
        # limit again means no lock.
        unlocked = await coll.update_one(
            {"_id": _id, "failures": self.max_failures, "locked_until": {"$ne": None}},
            {"$set": {"failures": self.max_failures - 1, "locked_until": None}},
        )
        if unlocked.matched_count == 0:
            await coll.update_one(
                {"_id": _id, "failures": {"$gt": 0}, "locked_until": None},
                {"$inc": {"failures": -1}},
            )


def guess_throttle(settings: Settings, secret: Secret) -> Throttle:
    """The throttle of one kind of guessable secret, configured by the LOGIN_* settings.

    The scope names the secret, not the route: login and the password change count the same
    password, the 2FA confirm, disable and login count the same codes.
    """
    return Throttle(
        secret,
        max_failures=settings.login_max_failures,
        lockout_seconds=settings.login_lockout_seconds,
        window_seconds=settings.login_failure_window_seconds,
        detail=_LOCKED_DETAIL[secret],
    )


def login_throttle(settings: Settings) -> Throttle:
    """The per-account password throttle (login and password change)."""
    return guess_throttle(settings, "password")


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
