"""Touchpoints per tenant and quarter hour, kept by `$inc` as events are recorded (issue 23).

`GET /v1/analytics/overview` grouped every event of its range; now it sums the `EventSlot`
rows of the range (at most 96 a day, however many events), in the asked zone's local buckets:
every zone's UTC offset is a multiple of 15 minutes, so a slot lies in one local day. Only a
range edge that is not on a slot boundary (a `since`/`until` with minutes) is counted from
the events of that partial slot. Events are immutable and never deleted, and a merge keeps
their time and type, so an insert is the only change: it is counted once, by the attempt
whose insert happened (service/events.py). `rebuild` recomputes the rows offline.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from bson import Binary

from documents.base import as_utc
from documents.event import TouchpointEvent
from documents.read_models import EventSlot, slot_key
from service.core.context import RequestContext
from service.core.repository import Repository, tenant_filter

SLOT = timedelta(minutes=15)


def slot_start(moment: datetime) -> datetime:
    """The first instant of the quarter hour (UTC) `moment` falls in."""
    moment = as_utc(moment)
    return moment.replace(minute=moment.minute - moment.minute % 15, second=0, microsecond=0)


def _row_filter(ctx: RequestContext, start: datetime) -> dict[str, Any]:
    key = slot_key(ctx.tenant_id, start.isoformat())
    return tenant_filter(ctx, {"_id": Binary.from_uuid(key)})


async def event_recorded(ctx: RequestContext, event: TouchpointEvent) -> None:
    """Count a newly inserted touchpoint in its slot (call only when the insert happened)."""
    start = slot_start(event.occurred_at)
    await EventSlot.get_pymongo_collection().update_one(
        _row_filter(ctx, start),
        {"$inc": {f"by_type.{event.type}": 1}, "$setOnInsert": {"start": start}},
        upsert=True,
    )


async def slots(ctx: RequestContext, start: datetime, end: datetime) -> list[dict[str, Any]]:
    """The tenant's slot rows starting in `[start, end)` (index `tenant_start`)."""
    rows = EventSlot.get_pymongo_collection().find(
        tenant_filter(ctx, {"start": {"$gte": start, "$lt": end}}), {"start": 1, "by_type": 1}
    )
    return [row async for row in rows]


async def rebuild(ctx: RequestContext) -> int:
    """Recount every slot row of the tenant from its events (offline; reads them all)."""
    counted: Counter[tuple[datetime, str]] = Counter()
    async for raw in Repository(TouchpointEvent, ctx).stream(sort=None, include_archived=True):
        counted[slot_start(raw["occurred_at"]), str(raw["type"])] += 1
    collection = EventSlot.get_pymongo_collection()
    await collection.delete_many(tenant_filter(ctx))
    per_slot: dict[datetime, dict[str, int]] = {}
    for (start, kind), n in counted.items():
        per_slot.setdefault(start, {})[kind] = n
    for start, by_type in per_slot.items():
        await collection.update_one(
            _row_filter(ctx, start), {"$set": {"start": start, "by_type": by_type}}, upsert=True
        )
    return len(per_slot)


__all__ = ["SLOT", "event_recorded", "rebuild", "slot_start", "slots"]
