"""Leases: which process currently owns a piece of background work (a projector, a sequencer…).

One document per lease in `leases`, keyed by the work's name. It is taken and renewed only by
conditional updates (service/leases.py), so two processes can never both believe they hold it
for longer than the clock skew between them. Operational data: not journaled, not tenant data.
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
    acquired_at: UTCDateTime = Field(default_factory=utcnow)
    renewed_at: UTCDateTime = Field(default_factory=utcnow)

    class Settings:
        name = "leases"
        # Every access is by `_id` (take, renew, release, read): the primary key serves it.
        indexes: list[object] = []


__all__ = ["Lease"]
