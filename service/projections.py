"""Projectors: keep the read models (documents/read_models.py) in step with their sources.

A projector consumes one or more **feeds** — the change journal `domain_events`, the touchpoint
`events`, the `campaign_leads` links — in `_id` order (UUIDv7, i.e. write order) from its
checkpoint, turns each batch into the set of read-model **keys** it affects, and **recomputes
those keys from the sources** with the pipelines in service/pipelines.py, replacing their rows
(and deleting rows whose key no longer exists). Recomputing instead of `$inc`-ing makes a
re-run harmless: applying a batch twice gives the same rows, so the checkpoint only needs to be
at-least-once.

The checkpoint never moves past "now minus `SETTLE`": rows written in the last few seconds may
still be joined by rows with smaller ids (concurrent writers, clock skew between app servers,
an outbox flushed late), so they are read again on the next run. `rebuild(name)` drops a read
model and recomputes it from scratch with the very same pipelines (so a rebuilt collection equals
the incrementally maintained one), then sets the checkpoints to where the rebuild started.

When projectors run: **on read** ("catch up before answering", see `catch_up`) plus the CLI
(`python -m service.cli project|rebuild`). Commands are not slowed at all and need no hooks in
other domains' services (soft delete, restore and archive go through the shared lifecycle
service), and a reader sees every write that finished before its request. A request catches up
at most `max_batches` batches, so a large backlog (after an outage or an import) cannot make a
read slow; `rebuild` is the authoritative way to repair a read model.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, ClassVar
from uuid import UUID

from beanie import Document
from beanie.odm.utils.encoder import Encoder
from bson import Binary
from pymongo import ReplaceOne

from documents.base import _as_utc, utcnow
from documents.campaign import CampaignBase
from documents.journal import DomainEvent
from documents.read_models import (
    MAX_RECENT,
    CampaignStats,
    GlobalAnalytics,
    GlobalCampaign,
    GlobalTeam,
    GlobalTeamMember,
    ProjectionCheckpoint,
    analytics_key,
)
from documents.team import Team
from service import pipelines

log = logging.getLogger(__name__)

SETTLE = timedelta(seconds=5)
BATCH_SIZE = 500


@dataclass(frozen=True, slots=True)
class Feed:
    """A source collection read in `_id` order, with the fields projectors need from it."""

    name: str
    collection: str
    fields: tuple[str, ...]


FEEDS: dict[str, Feed] = {
    "domain_events": Feed(
        "domain_events",
        DomainEvent.Settings.name,
        ("tenant_id", "aggregate_type", "aggregate_id", "changes"),
    ),
    "events": Feed(
        "events", pipelines.EVENTS, ("tenant_id", "campaign_id", "user_id", "occurred_at")
    ),
    "campaign_leads": Feed(
        "campaign_leads", pipelines.CAMPAIGN_LEADS, ("tenant_id", "campaign_id")
    ),
}


def floor_id(moment: datetime) -> UUID:
    """The smallest UUIDv7 of a millisecond: every id generated at or after it compares greater."""
    ms = int(_as_utc(moment).timestamp() * 1000)
    return UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62))


def _collection(name: str) -> Any:
    return DomainEvent.get_pymongo_collection().database.get_collection(name)


async def _aggregate(spec: tuple[str, pipelines.Pipeline]) -> list[dict[str, Any]]:
    collection, stages = spec
    return [row async for row in await _collection(collection).aggregate(stages)]


def _required_uuid(value: Any) -> UUID:
    """A UUID that a pipeline's `_id` always carries (a ValueError would be a pipeline bug)."""
    result = _uuid(value)
    if result is None:
        raise ValueError(f"expected a UUID, got {value!r}")
    return result


def _uuid(value: Any) -> UUID | None:
    if isinstance(value, UUID):
        return value
    if isinstance(value, Binary):
        return value.as_uuid()
    try:
        return UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def _pairs(items: Iterable[tuple[Any, Any]]) -> set[tuple[UUID, UUID]]:
    # Read-model keys as (tenant_id, id); rows without either are skipped.
    out: set[tuple[UUID, UUID]] = set()
    for tenant, key in items:
        t, k = _uuid(tenant), _uuid(key)
        if t and k:
            out.add((t, k))
    return out


def _changed_values(row: dict[str, Any], field: str) -> set[UUID]:
    # Journal changes are JSON-mode: ids are strings. Old and new both name affected keys.
    found: set[UUID] = set()
    for change in row.get("changes") or ():
        if change.get("field") == field:
            found |= {u for u in (_uuid(change.get("old")), _uuid(change.get("new"))) if u}
    return found


class Projector(ABC):
    """One read model: which feeds affect it, how a batch maps to keys, how keys are computed."""

    name: ClassVar[str]
    model: ClassVar[type[Document]]
    feeds: ClassVar[tuple[str, ...]]
    # Extra filters on a feed (e.g. only the aggregate types this projector cares about).
    feed_filters: ClassVar[dict[str, dict[str, Any]]] = {}

    @abstractmethod
    async def keys_from(self, feed: str, rows: list[dict[str, Any]]) -> set[Any]:
        """The read-model keys a batch of feed rows affects."""

    @abstractmethod
    async def compute(self, keys: set[Any] | None) -> list[Document]:
        """The rows of these keys (all rows when None), recomputed from the sources."""

    @abstractmethod
    def rows_of(self, keys: set[Any]) -> dict[str, Any]:
        """A filter selecting the stored rows that belong to these keys."""


class CampaignStatsProjector(Projector):
    """`CampaignStats`: per campaign leads, touchpoints by type, leads contacted, contact rate."""

    name = "campaign_stats"
    model = CampaignStats
    feeds = ("domain_events", "events", "campaign_leads")
    feed_filters = {"domain_events": {"aggregate_type": CampaignBase.aggregate_type}}

    async def keys_from(self, feed: str, rows: list[dict[str, Any]]) -> set[Any]:
        """(tenant, campaign): changed campaigns, campaigns of new touchpoints and new links."""
        field = "aggregate_id" if feed == "domain_events" else "campaign_id"
        return _pairs((r.get("tenant_id"), r.get(field)) for r in rows)

    async def compute(self, keys: set[Any] | None) -> list[Document]:
        """Live campaigns merged with their event and link statistics (three aggregations)."""
        campaigns, events, links = await asyncio.gather(
            _aggregate(pipelines.campaign_stats_campaigns(keys)),
            _aggregate(pipelines.campaign_stats_events(keys)),
            _aggregate(pipelines.campaign_stats_links(keys)),
        )
        by_events = {_uuid(r["_id"]): r for r in events}
        by_links = {_uuid(r["_id"]): r["leads_total"] for r in links}
        out: list[Document] = []
        for c in campaigns:
            key = _uuid(c["_id"])
            ev = by_events.get(key, {})
            leads_total = by_links.get(key, 0)
            contacted = ev.get("leads_contacted", 0)
            out.append(
                CampaignStats(
                    id=c["_id"],
                    tenant_id=c["tenant_id"],
                    campaign_id=c["_id"],
                    user_id=c.get("user_id"),
                    type=c["type"],
                    status=c["status"],
                    name=c["name"],
                    leads_total=leads_total,
                    events_total=ev.get("events_total", 0),
                    events_by_type={ch: ev.get(ch, 0) for ch in pipelines.CHANNELS},
                    leads_contacted=contacted,
                    contact_rate=contacted / leads_total if leads_total else 0.0,
                    last_event_at=ev.get("last_event_at"),
                )
            )
        return out

    def rows_of(self, keys: set[Any]) -> dict[str, Any]:
        """Rows keyed by campaign id."""
        return {"_id": {"$in": [Binary.from_uuid(k) for _, k in keys]}}


class GlobalCampaignProjector(Projector):
    """`GlobalCampaign`: per user, campaigns by type and status, touchpoints, last activity."""

    name = "global_campaign"
    model = GlobalCampaign
    feeds = ("domain_events", "events")
    feed_filters = {"domain_events": {"aggregate_type": CampaignBase.aggregate_type}}

    async def keys_from(self, feed: str, rows: list[dict[str, Any]]) -> set[Any]:
        """(tenant, user): owners of changed campaigns (before and after a hand-over), agents."""
        if feed == "events":
            return _pairs((r.get("tenant_id"), r.get("user_id")) for r in rows)
        keys = _pairs(
            (row.get("tenant_id"), user) for row in rows for user in _changed_values(row, "user_id")
        )
        ids = [r["aggregate_id"] for r in rows]
        cursor = _collection(pipelines.CAMPAIGNS).find(
            {"_id": {"$in": ids}}, {"tenant_id": 1, "user_id": 1}
        )
        keys |= _pairs([(c.get("tenant_id"), c.get("user_id")) async for c in cursor])
        return keys

    async def compute(self, keys: set[Any] | None) -> list[Document]:
        """Campaign counts and touchpoint totals per user (two aggregations), merged by user."""
        groups, events = await asyncio.gather(
            _aggregate(pipelines.global_campaign_campaigns(keys)),
            _aggregate(pipelines.global_campaign_events(keys)),
        )
        rows: dict[UUID, GlobalCampaign] = {}

        def row(user_id: UUID, tenant_id: UUID) -> GlobalCampaign:
            if user_id not in rows:
                rows[user_id] = GlobalCampaign(id=user_id, tenant_id=tenant_id, user_id=user_id)
            return rows[user_id]

        for g in groups:
            r = row(_required_uuid(g["_id"]["u"]), g["tenant_id"])
            kind, status, n = g["_id"]["t"], g["_id"]["s"], g["n"]
            r.campaigns_total += n
            r.by_type[kind] = r.by_type.get(kind, 0) + n
            r.by_status[status] = r.by_status.get(status, 0) + n
            r.by_type_and_status.setdefault(kind, {})[status] = n
            r.last_campaign_change_at = _latest(r.last_campaign_change_at, g["last"])
        for e in events:
            r = row(_required_uuid(e["_id"]), e["tenant_id"])
            r.events_total, r.last_event_at = e["n"], e["last"]
        for r in rows.values():
            r.last_activity_at = _latest(r.last_campaign_change_at, r.last_event_at)
        return list(rows.values())

    def rows_of(self, keys: set[Any]) -> dict[str, Any]:
        """Rows keyed by user id."""
        return {"_id": {"$in": [Binary.from_uuid(k) for _, k in keys]}}


class GlobalAnalyticsProjector(Projector):
    """`GlobalAnalytics`: per tenant, UTC day and channel, touchpoints and leads touched."""

    name = "global_analytics"
    model = GlobalAnalytics
    feeds = ("events",)

    async def keys_from(self, feed: str, rows: list[dict[str, Any]]) -> set[Any]:
        """(tenant, day) pairs of the new touchpoints; a day is recomputed for all channels."""
        return {
            (_uuid(r["tenant_id"]), _as_utc(r["occurred_at"]).strftime("%Y-%m-%d")) for r in rows
        }

    async def compute(self, keys: set[Any] | None) -> list[Document]:
        """Daily per-channel rows of these tenant-days (one aggregation)."""
        spec = pipelines.analytics_daily(sorted(keys, key=str) if keys is not None else None)
        return [
            GlobalAnalytics(
                id=analytics_key(_required_uuid(g["_id"]["t"]), g["_id"]["d"], g["_id"]["c"]),
                tenant_id=g["_id"]["t"],
                day=g["_id"]["d"],
                channel=g["_id"]["c"],
                events=g["events"],
                leads_touched=g["leads_touched"],
            )
            for g in await _aggregate(spec)
        ]

    def rows_of(self, keys: set[Any]) -> dict[str, Any]:
        """Rows of these (tenant, day) pairs, every channel."""
        return {"$or": [{"tenant_id": Binary.from_uuid(t), "day": d} for t, d in keys]}


class GlobalTeamProjector(Projector):
    """`GlobalTeam`: teams with their members' usernames and names."""

    name = "global_team"
    model = GlobalTeam
    feeds = ("domain_events",)
    feed_filters = {"domain_events": {"aggregate_type": {"$in": ["team", "user"]}}}

    async def keys_from(self, feed: str, rows: list[dict[str, Any]]) -> set[Any]:
        """Changed teams, and the teams of users whose name or username may have changed."""
        keys = _pairs(
            (r["tenant_id"], r["aggregate_id"]) for r in rows if r["aggregate_type"] == "team"
        )
        users = [r for r in rows if r["aggregate_type"] == "user"]
        if users:
            query = {
                "tenant_id": {"$in": list({r["tenant_id"] for r in users})},
                "members.user_id": {"$in": [r["aggregate_id"] for r in users]},
            }
            cursor = _collection(Team.Settings.name).find(query, {"tenant_id": 1})
            keys |= _pairs([(t["tenant_id"], t["_id"]) async for t in cursor])
        return keys

    async def compute(self, keys: set[Any] | None) -> list[Document]:
        """Live teams joined to their members' users (one aggregation)."""
        out: list[Document] = []
        for t in await _aggregate(pipelines.global_team(keys)):
            members = [GlobalTeamMember.model_validate(m) for m in t["members"] if m.get("user_id")]
            out.append(
                GlobalTeam(
                    id=t["_id"],
                    tenant_id=t["tenant_id"],
                    team_id=t["_id"],
                    name=t["name"],
                    description=t.get("description"),
                    member_count=len(members),
                    members=members,
                )
            )
        return out

    def rows_of(self, keys: set[Any]) -> dict[str, Any]:
        """Rows keyed by team id."""
        return {"_id": {"$in": [Binary.from_uuid(k) for _, k in keys]}}


PROJECTORS: dict[str, Projector] = {
    p.name: p
    for p in (
        GlobalCampaignProjector(),
        CampaignStatsProjector(),
        GlobalAnalyticsProjector(),
        GlobalTeamProjector(),
    )
}

# One projector run at a time per process; across processes a duplicate run is only wasted work.
_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return max((x for x in (a, b) if x is not None), default=None)


async def _replace_all(model: type[Document], docs: Sequence[Document]) -> None:
    if not docs:
        return
    encoder = Encoder()
    raw = [encoder.encode(d) for d in docs]
    for r in raw:
        r.pop("revision_id", None)
    requests = [ReplaceOne({"_id": r["_id"]}, r, upsert=True) for r in raw]
    await model.get_pymongo_collection().bulk_write(requests, ordered=False)


async def apply(projector: Projector, keys: set[Any]) -> int:
    """Recompute `keys` and store them (idempotent); returns how many rows were written."""
    if not keys:
        return 0
    docs = await projector.compute(keys)
    keep = [d.id for d in docs]
    await projector.model.get_pymongo_collection().delete_many(
        {"$and": [projector.rows_of(keys), {"_id": {"$nin": Encoder().encode(keep)}}]}
    )
    await _replace_all(projector.model, docs)
    return len(docs)


def _checkpoint_id(projector: Projector, feed: str) -> str:
    return f"{projector.name}:{feed}"


async def _checkpoint(projector: Projector, feed: str) -> ProjectionCheckpoint:
    cp_id = _checkpoint_id(projector, feed)
    found = await ProjectionCheckpoint.get(cp_id)
    return found or ProjectionCheckpoint(id=cp_id, projector=projector.name, feed=feed)


async def _save(
    cp: ProjectionCheckpoint, position: UUID | None, horizon: UUID, applied: Iterable[UUID]
) -> None:
    # Never persist past the settle horizon: later rows are read again next time, and those
    # already applied are remembered in `recent` so they are not applied again.
    cp.position = min(position, horizon) if position is not None else None
    after = sorted(i for i in applied if cp.position is None or i > cp.position)
    cp.recent = after[-MAX_RECENT:]
    cp.updated_at = utcnow()
    await cp.save()


async def _catch_up_feed(
    projector: Projector, feed_name: str, *, batch_size: int, max_batches: int | None
) -> int:
    feed = FEEDS[feed_name]
    cp = await _checkpoint(projector, feed_name)
    horizon = floor_id(utcnow() - SETTLE)
    applied = set(cp.recent)
    position, fresh_total, batches = cp.position, 0, 0
    fields = dict.fromkeys(feed.fields, 1)
    while max_batches is None or batches < max_batches:
        query: dict[str, Any] = dict(projector.feed_filters.get(feed_name, {}))
        if position is not None:
            query["_id"] = {"$gt": Binary.from_uuid(position)}
        cursor = _collection(feed.collection).find(query, fields).sort("_id", 1).limit(batch_size)
        rows = await cursor.to_list(batch_size)
        if not rows:
            break
        fresh = [r for r in rows if _uuid(r["_id"]) not in applied]
        if fresh:
            await apply(projector, await projector.keys_from(feed_name, fresh))
            applied |= {i for i in (_uuid(r["_id"]) for r in fresh) if i}
            fresh_total += len(fresh)
        position, batches = _uuid(rows[-1]["_id"]), batches + 1
        if len(rows) < batch_size:
            break
    settled = min(position, horizon) if position is not None else None
    if fresh_total or settled != cp.position:
        cp.rows_seen += fresh_total
        await _save(cp, position, horizon, applied)
    return fresh_total


async def catch_up(
    names: Iterable[str] | None = None,
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int | None = None,
) -> dict[str, int]:
    """Apply every new feed row after each projector's checkpoint; returns rows applied."""
    done: dict[str, int] = {}
    for name in names or PROJECTORS:
        projector = PROJECTORS[name]
        async with _locks[name]:
            done[name] = 0
            for feed in projector.feeds:
                done[name] += await _catch_up_feed(
                    projector, feed, batch_size=batch_size, max_batches=max_batches
                )
    return done


async def rebuild(name: str) -> int:
    """Drop a read model and recompute it from the sources; returns how many rows it has."""
    projector = PROJECTORS[name]
    async with _locks[name]:
        horizon = floor_id(utcnow() - SETTLE)
        heads: dict[str, tuple[UUID | None, list[UUID]]] = {}
        for feed in projector.feeds:
            heads[feed] = await _feed_head(projector, feed, horizon)
        # Compute before dropping, so readers see an empty read model only for the swap.
        docs = await projector.compute(None)
        await projector.model.get_pymongo_collection().delete_many({})
        await _replace_all(projector.model, docs)
        for feed, (head, covered) in heads.items():
            await _save(await _checkpoint(projector, feed), head, horizon, covered)
    log.info("rebuilt read model %s: %d rows", name, len(docs))
    return len(docs)


async def _feed_head(
    projector: Projector, feed: str, horizon: UUID
) -> tuple[UUID | None, list[UUID]]:
    # The newest row of a feed, and the rows after the settle horizon that already exist: the
    # rebuild that follows covers them, so the next catch-up need not apply them again.
    collection = _collection(FEEDS[feed].collection)
    query = projector.feed_filters.get(feed, {})
    last = await collection.find_one(query, {"_id": 1}, sort=[("_id", -1)])
    if last is None:
        return None, []
    window = {**query, "_id": {"$gt": Binary.from_uuid(horizon)}}
    cursor = collection.find(window, {"_id": 1}).sort("_id", -1).limit(MAX_RECENT)
    covered = [i for i in [_uuid(r["_id"]) async for r in cursor] if i]
    return _uuid(last["_id"]), covered


async def oldest_pending_event(models: Iterable[type[Document]]) -> UUID | None:
    """The smallest id of the journal events still waiting in outboxes (look before a repair)."""
    oldest: UUID | None = None
    for model in models:
        found = await model.get_pymongo_collection().find_one(
            {"pending_event.version": {"$exists": True}},
            {"pending_event.id": 1},
            sort=[("pending_event.id", 1)],
        )
        event_id = _uuid(found["pending_event"].get("id")) if found else None
        if event_id is not None and (oldest is None or event_id < oldest):
            oldest = event_id
    return oldest


async def rewind(feed: str, *, before: UUID) -> int:
    """Move every checkpoint of `feed` back to just before `before`; returns how many moved.

    For rows that entered a feed with an old id (an outbox flushed by a late repair): the
    projectors read them on their next run, and re-applying the rows in between is harmless.
    """
    target = UUID(int=before.int - 1)
    moved = 0
    for cp in await ProjectionCheckpoint.find({"feed": feed}).to_list():
        if cp.position is not None and cp.position >= before:
            cp.position, cp.updated_at = target, utcnow()
            await cp.save()
            moved += 1
    return moved


__all__ = [
    "BATCH_SIZE",
    "FEEDS",
    "PROJECTORS",
    "SETTLE",
    "Projector",
    "apply",
    "catch_up",
    "floor_id",
    "oldest_pending_event",
    "rebuild",
    "rewind",
]


async def repair(models: Iterable[type[Document]]) -> int:
    """Flush crashed journal outboxes, then rewind the journal projectors so they see them.

    Run at start-up and by `python -m service.cli repair`; returns the events flushed.
    """
    from service.journal import repair_journal

    oldest = await oldest_pending_event(models)
    repaired = await repair_journal(models)  # type: ignore[arg-type]
    if oldest is not None:
        await rewind("domain_events", before=oldest)
    return repaired
