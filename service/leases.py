"""Leases: at most one owner of a piece of background work at a time, across processes.

A lease is a document (documents/lease.py) changed only by conditional single-document
updates, each atomic on every MongoDB deployment (no transactions needed):

* **take** — `update_one({_id, $or: [expired, mine]}, {$set: owner, expires_at}, upsert=True)`:
  the filter matches a free (expired) or already-held-by-me lease; when the lease is held by
  someone else the filter matches nothing, the upsert tries to insert a second document with
  the same `_id` and fails with a duplicate key error — so exactly one contender wins.
* **renew** — `update_one({_id, owner: me, expires_at > now}, {$set: expires_at})`: fails once
  the lease expired (someone else may hold it now), and the holder stops working.
* **release** — `update_one({_id, owner: me}, {$set: expires_at: epoch})`: a clean hand-over
  without waiting for the expiry.

Times are the app servers' clocks: a lease is safe while their skew stays well under the TTL
(NTP keeps it in milliseconds; the default TTLs are tens of seconds). A holder also stops by
itself when it has not renewed for half the TTL (`Held.valid`), so a process paused longer
than that (a GC pause, a frozen VM) finds out before it writes again. Work done under a lease
must still be safe to repeat (idempotent): a lease bounds how often two holders overlap, it
cannot make a paused process's in-flight write disappear — see service/sequencer.py for how
the sequencer is fenced against exactly that.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pymongo.errors import DuplicateKeyError

from documents.base import utcnow
from documents.lease import Lease

log = logging.getLogger(__name__)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass
class Held:
    """A lease this process holds: its name, owner id, fence and when it was last renewed."""

    name: str
    owner: str
    ttl: timedelta
    fence: int = 0
    renewed_at: datetime = field(default_factory=utcnow)

    @property
    def valid(self) -> bool:
        """True while the last renewal is younger than half the TTL (a safety margin)."""
        return utcnow() < self.renewed_at + self.ttl / 2


async def take(name: str, owner: str, ttl: timedelta) -> Held | None:
    """Take (or keep) the lease `name` for `owner`; None when another owner holds it."""
    now = utcnow()
    collection = Lease.get_pymongo_collection()
    try:
        await collection.update_one(
            {"_id": name, "$or": [{"expires_at": {"$lte": now}}, {"owner": owner}]},
            {
                "$set": {"owner": owner, "expires_at": now + ttl, "renewed_at": now},
                "$setOnInsert": {"acquired_at": now},
                "$inc": {"fence": 1},
            },
            upsert=True,
        )
    except DuplicateKeyError:
        return None  # held by another owner and not expired
    found = await collection.find_one({"_id": name}, {"fence": 1, "owner": 1})
    if found is None or found.get("owner") != owner:  # lost to a faster contender meanwhile
        return None
    return Held(name=name, owner=owner, ttl=ttl, fence=int(found.get("fence", 0)), renewed_at=now)


async def renew(held: Held) -> bool:
    """Extend a held lease; False when it was lost (expired and possibly taken by another)."""
    now = utcnow()
    result = await Lease.get_pymongo_collection().update_one(
        {"_id": held.name, "owner": held.owner, "fence": held.fence, "expires_at": {"$gt": now}},
        {"$set": {"expires_at": now + held.ttl, "renewed_at": now}},
    )
    if result.matched_count == 1:
        held.renewed_at = now
        return True
    log.warning("lease %s lost by %s", held.name, held.owner)
    return False


async def release(held: Held) -> None:
    """Give a held lease up at once (another owner may take it immediately)."""
    await Lease.get_pymongo_collection().update_one(
        {"_id": held.name, "owner": held.owner, "fence": held.fence},
        {"$set": {"expires_at": EPOCH}},
    )


async def holder(name: str) -> str | None:
    """The current owner of a lease, or None when it is free or expired."""
    found = await Lease.get_pymongo_collection().find_one({"_id": name})
    if found is None or found["expires_at"].replace(tzinfo=UTC) <= utcnow():
        return None
    return str(found["owner"])


__all__ = ["Held", "holder", "release", "renew", "take"]
