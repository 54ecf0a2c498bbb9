"""Throttle counters: small, short-lived documents shared by every process of the service."""

from __future__ import annotations

from beanie import Document
from pydantic import Field
from pymongo import IndexModel

from documents.base import UTCDateTime


class ThrottleCounter(Document):
    """Failures counted for one key (an account, a client address) and its lock, if any.

    Not an aggregate root: counters are operational state, not business data, so they are not
    tenant-scoped, versioned or journaled. MongoDB's TTL monitor removes a counter once
    `expires_at` has passed; code never trusts that it already has (the monitor runs about
    once a minute), it compares `expires_at` itself.
    """

    id: str = Field(max_length=300)  # type: ignore[assignment]  # "<scope>:<key>"
    failures: int = Field(default=0, ge=0)
    locked_until: UTCDateTime | None = None
    expires_at: UTCDateTime

    class Settings:
        name = "throttle_counters"
        indexes = [IndexModel([("expires_at", 1)], expireAfterSeconds=0, name="expires_ttl")]


__all__ = ["ThrottleCounter"]
