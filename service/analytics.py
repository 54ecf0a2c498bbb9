"""Analytics queries, answered from counters kept incrementally (issue 23).

Grouping a campaign's every touchpoint, or a range's every event, on each request did work
that grew with the data. A campaign's figures are its `lead_count` (live members) and its
`CampaignTally` row (service/campaign_tallies.py); the overview sums the tenant's quarter-hour
`EventSlot` rows of the range into local buckets (service/event_slots.py), counting a partial
quarter hour at a range edge from its events with the `overview` pipeline (service/pipelines.py,
scoped by `Repository.aggregate`). Both are exactly what the pipelines over every event give
(tests/test_campaign_numbers.py, tests/test_analytics.py).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

from documents.base import as_utc, utcnow
from documents.campaign import CampaignBase
from documents.event import TouchpointEvent
from documents.tenant import tenant_zone
from service import campaign_tallies, event_slots, pipelines
from service.core.context import RequestContext
from service.core.errors import Unprocessable
from service.core.repository import Repository
from service.pipelines import CHANNELS, Interval
from service.tenant import load_tenant

# Bounds on the number of buckets a request may ask for (a year of days, 5 years of weeks,
# 10 years of months): the answer and the scanned range stay bounded.
MAX_BUCKETS: dict[str, int] = {"day": 366, "week": 260, "month": 120}
# Supported instants: bucket names are 4-digit years and bucket arithmetic must not overflow.
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)
DEFAULT_SPAN: dict[str, timedelta] = {
    "day": timedelta(days=30),
    "week": timedelta(weeks=12),
    "month": timedelta(days=365),
}


async def campaign_analytics(*, ctx: RequestContext, campaign_id: UUID) -> dict[str, Any]:
    """The contract's figures of one campaign; 404 if it is missing, deleted or another tenant's.

    Only live leads count in `leads_total` and `leads_contacted`; every touchpoint of the
    campaign counts in `events_total` and `events_by_type`, a deleted lead's included.
    """
    # The campaign first: 404 for a missing or foreign one before any pipeline runs. Its
    # `lead_count` is the live members, kept incrementally (service/campaigns.py): joining
    # every link to its lead here read the whole campaign per request (issue 23).
    campaign = await Repository(CampaignBase, ctx).get(campaign_id)
    # The touchpoint figures are counters kept by `$inc` as events are recorded and leads
    # change (service/campaign_tallies.py): one row, whatever the campaign's size.
    tally = await campaign_tallies.read(ctx, campaign_id)
    leads_total = campaign.lead_count
    contacted = tally["leads_contacted"]
    return {
        "campaign_id": campaign_id,
        "leads_total": leads_total,
        "events_total": tally["events_total"],
        "events_by_type": tally["events_by_type"],
        "leads_contacted": contacted,
        "contact_rate": contacted / leads_total if leads_total else 0.0,
        "violations": tally["violations"],
    }


def _wall(moment: datetime | None, zone: ZoneInfo) -> datetime | None:
    # The wall-clock time in `zone` (a naive value is read there), labelled UTC so that the
    # UTC bucket arithmetic below applies to local days.
    if moment is None:
        return None
    local = moment.replace(tzinfo=zone) if moment.tzinfo is None else moment.astimezone(zone)
    return local.replace(tzinfo=UTC)


def _instant(wall: datetime, zone: ZoneInfo) -> datetime:
    # A wall-clock time of `zone` (labelled UTC by `_wall`) as the UTC instant it is.
    return wall.replace(tzinfo=zone).astimezone(UTC)


def resolve_local_range(
    since: datetime | None, until: datetime | None, interval: Interval, tz: str
) -> tuple[datetime, datetime, list[str]]:
    """`resolve_range` in the zone `tz`: local bucket names, the range as UTC instants."""
    if tz == "UTC":
        return resolve_range(since, until, interval)
    zone = ZoneInfo(tz)  # the same range logic on local wall-clock times, then back to UTC
    start, end, names = resolve_range(
        _wall(since, zone), _wall(until, zone), interval, now=_wall(utcnow(), zone)
    )
    return _instant(start, zone), _instant(end, zone), names


def utc_midnight(moment: datetime) -> datetime:
    """Midnight UTC of the day `moment` falls on."""
    return as_utc(moment).replace(hour=0, minute=0, second=0, microsecond=0)


def bucket_start(moment: datetime, interval: Interval) -> datetime:
    """The first instant of the UTC bucket `moment` falls in (weeks start on Monday)."""
    day = utc_midnight(moment)
    if interval == "week":
        return day - timedelta(days=day.weekday())
    if interval == "month":
        return day.replace(day=1)
    return day


def next_bucket(start: datetime, interval: Interval) -> datetime:
    """The start of the bucket after the one starting at `start`."""
    if interval == "day":
        return start + timedelta(days=1)
    if interval == "week":
        return start + timedelta(weeks=1)
    return (start + timedelta(days=32)).replace(day=1)


def resolve_range(
    since: datetime | None,
    until: datetime | None,
    interval: Interval,
    *,
    now: datetime | None = None,
) -> tuple[datetime, datetime, list[str]]:
    """Normalise `[since, until)` to UTC (defaults filled) and list its bucket names; 422 if bad.

    A naive time (or a date alone, which arrives as midnight) is read as UTC.
    """
    try:
        end = as_utc(until) if until else utc_midnight(now or utcnow()) + timedelta(days=1)
        start = as_utc(since) if since else end - DEFAULT_SPAN[interval]
    except OverflowError:
        raise Unprocessable("The time range is out of bounds.", loc=["query", "since"]) from None
    if end <= start:
        raise Unprocessable("`until` must be after `since`.", loc=["query", "until"])
    if start < EARLIEST or end > LATEST:
        raise Unprocessable(
            f"The range must lie within {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}.",
            loc=["query", "since" if start < EARLIEST else "until"],
        )
    limit = MAX_BUCKETS[interval]
    names: list[str] = []
    cursor = bucket_start(start, interval)
    try:
        while cursor < end:
            if len(names) == limit:
                raise Unprocessable(
                    f"The range spans more than {limit} {interval} buckets; narrow it.",
                    loc=["query", "since"],
                )
            names.append(cursor.strftime("%Y-%m-%d"))
            cursor = next_bucket(cursor, interval)
    except OverflowError:  # the range runs into year 9999
        raise Unprocessable("The time range is out of bounds.", loc=["query", "until"]) from None
    return start, end, names


async def overview(
    *,
    ctx: RequestContext,
    since: datetime | None,
    until: datetime | None,
    interval: Interval,
    tz: str | None = None,
) -> dict[str, Any]:
    """Touchpoints per bucket and channel in `[since, until)`, empty buckets with zeros.

    Buckets are local days of `tz` (default: the tenant's `time_zone`, else UTC).
    """
    zone_name = tz or tenant_zone(await load_tenant(ctx))
    start, end, names = resolve_local_range(since, until, interval, zone_name)
    zero = dict.fromkeys(CHANNELS, 0)
    counted: dict[str, dict[str, int]] = {name: dict(zero) for name in names}
    # The whole quarter hours of the range from their counters (service/event_slots.py),
    # a partial one at either edge from its events: the work follows the range, not the events.
    first = event_slots.slot_start(start)
    first = first if first == start else first + event_slots.SLOT
    last = max(event_slots.slot_start(end), first)
    zone = ZoneInfo(zone_name)
    for row in await event_slots.slots(ctx, first, last):
        bucket = _bucket_name(as_utc(row["start"]), interval, zone)
        for channel, n in row.get("by_type", {}).items():
            if bucket in counted and channel in zero:
                counted[bucket][channel] += n
    edges = [(start, min(first, end)), (max(last, start), end)] if first < last else [(start, end)]
    for low, high in edges:
        if low >= high:
            continue
        for row in await Repository(TouchpointEvent, ctx).aggregate(
            pipelines.overview(interval=interval, tz=zone_name),
            match={"occurred_at": {"$gte": low, "$lt": high}},
        ):
            if row["_id"] in counted:
                for channel in CHANNELS:
                    counted[row["_id"]][channel] += row[channel]
    return {"series": [{"bucket": name, **counted[name]} for name in names]}


def _bucket_name(moment: datetime, interval: Interval, zone: ZoneInfo) -> str:
    # The name of the local bucket of `zone` that the instant `moment` falls in.
    wall = moment.astimezone(zone).replace(tzinfo=UTC)
    return bucket_start(wall, interval).strftime("%Y-%m-%d")


__all__ = [
    "MAX_BUCKETS",
    "bucket_start",
    "campaign_analytics",
    "next_bucket",
    "overview",
    "resolve_local_range",
    "resolve_range",
    "utc_midnight",
]
