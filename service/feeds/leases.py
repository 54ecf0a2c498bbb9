"""Leases: at most one owner of a piece of background work at a time, across processes.

A lease is a document (documents/lease.py) changed only by conditional single-document
updates, each atomic on every MongoDB deployment (no transactions needed). No decision
compares one process's clock with another's:

* **take** — a free lease (none yet, or `released`) is taken by a compare-and-set on the
  token it was read with (`fence`, `beat`); a held one only once its holder stopped renewing:
  the contender sees the same token unchanged for a whole TTL on its own **monotonic** clock
  (renewals bump `beat`), then takes it with the same compare-and-set. Exactly one contender
  wins each hand-over, and every take bumps `fence`, the fencing token writers carry.
* **renew** — `update_one({_id, owner: me, fence: mine}, {$inc: beat})`: fails once another
  owner took the lease (the fence moved on), and the holder stops working.
* **release** — `{_id, owner: me, fence: mine} → released`: a clean hand-over without waiting.

Locally a holder trusts its lease for half the TTL after its last renewal, measured on the
monotonic clock (`Held.valid`), so a process paused longer than that (a GC pause, a frozen VM)
finds out before it writes again; a contender waits a whole TTL of silence, so the two never
overlap while the holder runs. A pause *between* that check and a write is what no lease can
prevent: writes under a lease therefore carry its `fence` and are conditional on it
(service/projections/runner.py, service/webhooks/delivery.py, and the sequencer's unique `seq`
index, service/feeds/sequencer.py). `expires_at` and `renewed_at` are kept for people reading the
document (`holder`), in the database's time where it matters to nobody's decision.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

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
    renewed_at: datetime = field(default_factory=utcnow)  # for people: the wall clock
    renewed_mono: float = field(default_factory=time.monotonic)  # for decisions

    @property
    def valid(self) -> bool:
        """True while the last renewal is younger than half the TTL (monotonic clock)."""
        return time.monotonic() < self.renewed_mono + self.ttl.total_seconds() / 2

    def fresh(self, part: float = 1 / 3) -> bool:
        """True while the last renewal is younger than `part` of the TTL (no renewal needed)."""
        return time.monotonic() < self.renewed_mono + self.ttl.total_seconds() * part


# What this process last saw of each lease it does not hold: its token and since when. The
# token carries `acquired_at` too, so a token seen in another database never matches.
_SEEN: dict[str, tuple[tuple[Any, ...], float]] = {}


def _silent_for(name: str, found: dict[str, Any], ttl: timedelta) -> bool:
    """Whether the holder's token stayed unchanged for a whole TTL, seen from here."""
    token = (found.get("fence", 0), found.get("beat", 0), found.get("acquired_at"))
    seen = _SEEN.get(name)
    now = time.monotonic()
    if seen is None or seen[0] != token:
        _SEEN[name] = (token, now)
        return False
    wait = max(ttl.total_seconds(), float(found.get("ttl_seconds") or 0))
    return now - seen[1] >= wait


async def take(name: str, owner: str, ttl: timedelta) -> Held | None:
    """Take (or keep) the lease `name` for `owner`; None when another owner holds it."""
    collection = Lease.get_pymongo_collection()
    started, now = time.monotonic(), utcnow()
    found = await collection.find_one({"_id": name})
    fields: dict[str, Any] = {
        "owner": owner,
        "released": False,
        "expires_at": now + ttl,
        "renewed_at": now,
        "ttl_seconds": ttl.total_seconds(),
    }
    if found is None:
        try:
            await collection.insert_one(
                {"_id": name, **fields, "fence": 1, "beat": 1, "acquired_at": now}
            )
        except DuplicateKeyError:
            return None  # another contender inserted it first
        _SEEN.pop(name, None)
        return Held(name=name, owner=owner, ttl=ttl, fence=1, renewed_at=now, renewed_mono=started)
    mine = found.get("owner") == owner
    if not (mine or found.get("released") or _silent_for(name, found, ttl)):
        return None  # held by another owner who still renews it
    # The token exactly as read: `None` also matches a missing field (a lease written by an
    # older release has no `beat`), which `$inc` then starts at 1.
    fence, beat = found.get("fence"), found.get("beat")
    result = await collection.update_one(
        {"_id": name, "fence": fence, "beat": beat},
        {"$set": {**fields, "acquired_at": now}, "$inc": {"fence": 1, "beat": 1}},
    )
    if result.modified_count != 1:  # someone renewed or took it since we read it
        return None
    _SEEN.pop(name, None)
    return Held(
        name=name,
        owner=owner,
        ttl=ttl,
        fence=int(fence or 0) + 1,
        renewed_at=now,
        renewed_mono=started,
    )


async def renew(held: Held) -> bool:
    """Extend a held lease; False when it was lost (another owner took it)."""
    started, now = time.monotonic(), utcnow()
    result = await Lease.get_pymongo_collection().update_one(
        {"_id": held.name, "owner": held.owner, "fence": held.fence, "released": {"$ne": True}},
        {"$set": {"expires_at": now + held.ttl, "renewed_at": now}, "$inc": {"beat": 1}},
    )
    if result.matched_count == 1:
        held.renewed_at, held.renewed_mono = now, started
        return True
    log.warning("lease %s lost by %s", held.name, held.owner)
    return False


async def release(held: Held) -> None:
    """Give a held lease up at once (another owner may take it immediately)."""
    await Lease.get_pymongo_collection().update_one(
        {"_id": held.name, "owner": held.owner, "fence": held.fence},
        {"$set": {"expires_at": EPOCH, "released": True}},
    )


async def holder(name: str) -> str | None:
    """The current owner of a lease as people read it (None when released or overdue)."""
    found = await Lease.get_pymongo_collection().find_one({"_id": name})
    if found is None or found.get("released"):
        return None
    if found["expires_at"].replace(tzinfo=UTC) <= utcnow():  # for display only
        return None
    return str(found["owner"])


__all__ = ["Held", "holder", "release", "renew", "take"]
