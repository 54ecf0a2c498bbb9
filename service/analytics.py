"""Analytics queries: each answered by ONE aggregation pipeline (service/pipelines.py).

Both run live over the tenant's touchpoint `events` through `Repository.aggregate`, which puts
the tenant and soft-delete scope first, so the figures are always current and never another
tenant's. The only Python work after the pipeline is over its few result rows (one per bucket
or one in all): filling empty buckets and missing types with zeros.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from documents.base import _as_utc, utcnow
from documents.event import TouchpointEvent
from service import pipelines
from service.context import RequestContext
from service.errors import NotFound, Unprocessable
from service.pipelines import CHANNELS, Interval
from service.repository import Repository, uuid_filter

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
    """The contract's figures of one campaign; 404 if it is missing, deleted or another tenant's."""
    pipeline = pipelines.campaign_analytics(tenant_id=ctx.tenant_id, campaign_id=campaign_id)
    rows = await Repository(TouchpointEvent, ctx).aggregate(
        pipeline, match={"campaign_id": uuid_filter(campaign_id)}
    )
    row = rows[0] if rows else {}
    if not row.get("found"):
        raise NotFound(f"campaign {campaign_id} not found")
    by_type = {channel: 0 for channel in CHANNELS}
    by_type.update({g["_id"]: g["n"] for g in row["by_type"] if g["_id"] in by_type})
    leads_total, contacted = row["leads_total"], row["leads_contacted"]
    return {
        "campaign_id": campaign_id,
        "leads_total": leads_total,
        "events_total": row["events_total"],
        "events_by_type": by_type,
        "leads_contacted": contacted,
        "contact_rate": contacted / leads_total if leads_total else 0.0,
    }


def utc_midnight(moment: datetime) -> datetime:
    """Midnight UTC of the day `moment` falls on."""
    return _as_utc(moment).replace(hour=0, minute=0, second=0, microsecond=0)


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
        end = _as_utc(until) if until else utc_midnight(now or utcnow()) + timedelta(days=1)
        start = _as_utc(since) if since else end - DEFAULT_SPAN[interval]
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
) -> dict[str, Any]:
    """Touchpoints per UTC bucket and channel in `[since, until)`, empty buckets with zeros."""
    start, end, names = resolve_range(since, until, interval)
    rows = await Repository(TouchpointEvent, ctx).aggregate(
        pipelines.overview(interval=interval),
        match={"occurred_at": {"$gte": start, "$lt": end}},
    )
    counted = {row["_id"]: row for row in rows}
    zero = dict.fromkeys(CHANNELS, 0)
    series = [
        {"bucket": name, **zero, **{c: counted[name][c] for c in CHANNELS if name in counted}}
        for name in names
    ]
    return {"series": series}


__all__ = [
    "MAX_BUCKETS",
    "bucket_start",
    "campaign_analytics",
    "next_bucket",
    "overview",
    "resolve_range",
    "utc_midnight",
]
