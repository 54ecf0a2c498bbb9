"""Leases: which process currently owns a piece of background work (a projector, a sequencer…).

One document per lease in `leases`, keyed by the work's name. It is taken and renewed only by
conditional updates (service/feeds/leases.py), comparing no clocks across processes: a contender
takes a held lease only after a TTL of silence on its own monotonic clock. Operational data:
not journaled, not tenant data.
"""

from __future__ import annotations

from beanie import Document
from pydantic import Field

from documents.base import UTCDateTime, utcnow


class Lease(Document):
    """The current owner of the work named `_id`, and until when the ownership holds."""

    id: str  # type: ignore[assignment]  # e.g. "sequencer", "projector:campaign_stats"
    owner: str  # an opaque id of the holding process (or worker)
    expires_at: UTCDateTime
    # Bumped each time the lease changes hands: a fencing token that tells holders apart.
    fence: int = 0
    # Bumped by every renewal: a contender takes the lease only after seeing (fence, beat)
    # unchanged for a whole TTL on its own monotonic clock (service/feeds/leases.py).
    beat: int = 0
    released: bool = False
    ttl_seconds: float = 0
    acquired_at: UTCDateTime = Field(default_factory=utcnow)
    renewed_at: UTCDateTime = Field(default_factory=utcnow)

    class Settings:
        name = "leases"
        # Every access is by `_id` (take, renew, release, read): the primary key serves it.
        indexes: list[object] = []


__all__ = ["Lease"]
