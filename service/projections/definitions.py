"""The projector definitions: for each read model, which feed entries touch which of its rows,
and how those rows are computed from the sources (service/pipelines.py).

A definition is pure mapping — no checkpoints, leases or writes (service/projections/runner.py
does those). `keys_from` turns a batch of feed entries into the read-model keys it affects;
`compute` recomputes those keys from the source collections (every key of one tenant when
`keys` is None, `compute_tenant`: a rebuild walks the tenants of `sources` one at a time).
Recomputing instead of `$inc`-ing makes a repeated batch harmless: applying it twice gives the
same rows. Keys are `(tenant_id, id)` pairs, so every pipeline `$match` and
every row write carries the tenant (targeted on a cluster sharded by tenant).

Read models and what they follow:

| projector | read model | feeds (all: journal, touchpoints, links) |
|---|---|---|
| `global_campaign` | GlobalCampaign (per user) | journal (campaigns), touchpoints |
| `campaign_stats` | CampaignStats (per campaign) | journal (campaigns, lead liveness), all |
| `global_analytics` | GlobalAnalytics (tenant, day, channel) | touchpoints |
| `global_team` | GlobalTeam (per team) | journal (teams, users) |
| `blog_stats` | GlobalBlog (per user) | journal (blogs) |
| `research_stats` | GlobalResearchStats (per user) | journal (research topics) |
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, ClassVar
from uuid import UUID

from beanie import Document
from bson import Binary
from uuid6 import uuid7

from documents.base import as_utc
from documents.blog import Blog, BlogStatus
from documents.campaign import CampaignBase
from documents.lead import LeadBase
from documents.read_models import (
    CampaignStats,
    GlobalAnalytics,
    GlobalCampaign,
    GlobalTeam,
    GlobalTeamMember,
    analytics_key,
)
from documents.research import ResearchTopic
from documents.team import Team
from documents.workspace_read_models import BlogCounts, GlobalBlog, GlobalResearchStats
from service import pipelines
from service.feeds.sequencer import CAMPAIGN_LEADS, EVENTS, JOURNAL, collection

Key = tuple[Any, Any]

# A lead's journal events that change which leads of its campaigns are live (soft delete,
# restore, and a merge that soft-deletes the sources and moves their links to the target).
LEAD_LIVENESS = frozenset({"lead.deleted", "lead.restored", "lead.merged"})


def uuid_of(value: Any) -> UUID | None:
    """A UUID from a stored, JSON-mode or driver value; None when it is not one."""
    if isinstance(value, UUID):
        return value
    if isinstance(value, Binary):
        return value.as_uuid()
    try:
        return UUID(str(value)) if value is not None else None
    except ValueError:
        return None


def day_start(day: str) -> datetime:
    """Midnight UTC of a "YYYY-MM-DD" day: how daily read models store `day` (a BSON date)."""
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def required_uuid(value: Any) -> UUID:
    """A UUID that a pipeline's `_id` always carries (a ValueError would be a pipeline bug)."""
    result = uuid_of(value)
    if result is None:
        raise ValueError(f"expected a UUID, got {value!r}")
    return result


def pairs(items: Iterable[tuple[Any, Any]]) -> set[Key]:
    """Read-model keys as (tenant_id, id); rows without either are skipped."""
    out: set[Key] = set()
    for tenant, key in items:
        t, k = uuid_of(tenant), uuid_of(key)
        if t and k:
            out.add((t, k))
    return out


def changed_values(row: dict[str, Any], field: str) -> set[UUID]:
    """Old and new values of `field` in a journal entry's changes (both name affected keys)."""
    found: set[UUID] = set()
    for change in row.get("changes") or ():
        if change.get("field") == field:
            found |= {u for u in (uuid_of(change.get("old")), uuid_of(change.get("new"))) if u}
    return found


def _binary(value: Any) -> Any:
    # A key part as stored: a UUID as `Binary` subtype 4, anything else (a day) as it is.
    return Binary.from_uuid(value) if isinstance(value, UUID) else value


def by_tenant(keys: Iterable[Key], field: str = "_id") -> dict[str, Any]:
    """A filter of the rows of these keys, one `$or` branch per tenant (tenant-targeted)."""
    grouped: dict[Any, list[Any]] = defaultdict(list)
    for tenant, key in keys:
        grouped[tenant].append(key)
    branches = [
        {
            "tenant_id": Binary.from_uuid(tenant),
            field: {"$in": [_binary(k) for k in ks]},
        }
        for tenant, ks in grouped.items()
    ]
    return {"$or": branches} if branches else {"_id": {"$in": []}}


async def run(spec: tuple[str, pipelines.Pipeline]) -> list[dict[str, Any]]:
    """Run a projector pipeline on its collection."""
    name, stages = spec
    return [row async for row in await collection(name).aggregate(stages)]


async def owners_of(name: str, rows: Sequence[Mapping[str, Any]]) -> set[Key]:
    """(tenant, user_id) of the documents these journal rows are about, in collection `name`."""
    by_tenant: dict[Any, list[Any]] = {}
    for row in rows:  # per tenant: on a sharded collection each branch is targeted
        by_tenant.setdefault(row.get("tenant_id"), []).append(row["aggregate_id"])
    branches = [{"tenant_id": t, "_id": {"$in": ids}} for t, ids in by_tenant.items()]
    if not branches:
        return set()
    query = branches[0] if len(branches) == 1 else {"$or": branches}
    cursor = collection(name).find(query, {"tenant_id": 1, "user_id": 1})
    return pairs([(d.get("tenant_id"), d.get("user_id")) async for d in cursor])


def latest(a: datetime | None, b: datetime | None) -> datetime | None:
    """The later of two optional times."""
    return max((x for x in (a, b) if x is not None), default=None)


def _utc(value: Any) -> datetime | None:
    return as_utc(value) if value is not None else None


class Projector(ABC):
    """One read model: which feeds affect it, how entries map to keys, how keys are computed."""

    name: ClassVar[str]
    model: ClassVar[type[Document]]
    feeds: ClassVar[tuple[str, ...]]
    # The source collections whose tenants a rebuild walks (each has a tenant-prefixed index).
    sources: ClassVar[tuple[str, ...]]
    # Extra filters on a feed (the aggregate types a projector follows in the journal).
    feed_filters: ClassVar[dict[str, dict[str, Any]]] = {}
    # The fields of a feed entry `keys_from` reads (besides `_id` and `seq`).
    feed_fields: ClassVar[dict[str, tuple[str, ...]]] = {}

    @abstractmethod
    async def keys_from(self, feed: str, rows: list[dict[str, Any]]) -> set[Key]:
        """The read-model keys a batch of feed entries affects."""

    @abstractmethod
    async def compute(self, keys: set[Key] | None, tenant: UUID | None = None) -> list[Document]:
        """The rows of these keys (all rows when None: of `tenant` when given), recomputed."""

    async def compute_tenant(self, tenant: UUID) -> list[Document]:
        """Every row of one tenant, recomputed (a rebuild's step: memory bounded by a tenant)."""
        return await self.compute(None, tenant)

    def key_of(self, doc: Any) -> Key:
        """The key a computed row belongs to."""
        return (doc.tenant_id, doc.id)

    def rows_of(self, keys: set[Key]) -> dict[str, Any]:
        """A filter selecting the stored rows of these keys (tenant first)."""
        return by_tenant(keys)

    def write_filter(self, doc: Any) -> dict[str, Any]:
        """Which stored row a computed one replaces: its `_id` within its tenant."""
        return {"_id": Binary.from_uuid(doc.id), "tenant_id": Binary.from_uuid(doc.tenant_id)}

    def tombstone(self, key: Key) -> dict[str, Any] | None:
        """The identity of `key`'s row, to mark it gone where no row was stored yet (None when
        a key has no single row: then only stored rows are marked)."""
        tenant, ident = key
        return {"_id": _binary(ident), "tenant_id": _binary(tenant)}


class CampaignStatsProjector(Projector):
    """`CampaignStats`: per campaign, live leads, touchpoints by type, leads contacted, rate."""

    name = "campaign_stats"
    model = CampaignStats
    sources = (pipelines.CAMPAIGNS,)  # a row per live campaign
    feeds = (JOURNAL, EVENTS, CAMPAIGN_LEADS)
    feed_filters = {
        JOURNAL: {"aggregate_type": {"$in": [CampaignBase.aggregate_type, LeadBase.aggregate_type]}}
    }
    feed_fields = {
        JOURNAL: ("tenant_id", "aggregate_type", "aggregate_id", "event_type"),
        EVENTS: ("tenant_id", "campaign_id"),
        CAMPAIGN_LEADS: ("tenant_id", "campaign_id"),
    }

    async def keys_from(self, feed: str, rows: list[dict[str, Any]]) -> set[Key]:
        """Changed campaigns, campaigns of new touchpoints and links, and of leads whose
        liveness changed (their links, found by the tenant-prefixed `tenant_lead` index)."""
        if feed != JOURNAL:
            return pairs((r.get("tenant_id"), r.get("campaign_id")) for r in rows)
        keys = pairs(
            (r.get("tenant_id"), r.get("aggregate_id"))
            for r in rows
            if r.get("aggregate_type") == CampaignBase.aggregate_type
        )
        leads: dict[Any, list[Any]] = defaultdict(list)
        for r in rows:
            if r.get("event_type") in LEAD_LIVENESS:
                leads[r["tenant_id"]].append(r["aggregate_id"])
        for tenant, lead_ids in leads.items():
            cursor = collection(CAMPAIGN_LEADS).find(
                {"tenant_id": tenant, "lead_id": {"$in": lead_ids}}, {"campaign_id": 1}
            )
            keys |= pairs([(tenant, link.get("campaign_id")) async for link in cursor])
        return keys

    async def compute(self, keys: set[Key] | None, tenant: UUID | None = None) -> list[Document]:
        """Live campaigns merged with their touchpoint and membership figures (three pipelines)."""
        campaigns, events, links = await asyncio.gather(
            run(pipelines.campaign_stats_campaigns(keys, tenant)),
            run(pipelines.campaign_stats_events(keys, tenant)),
            run(pipelines.campaign_stats_links(keys, tenant)),
        )
        by_events = {uuid_of(r["_id"]): r for r in events}
        by_links = {uuid_of(r["_id"]): r["leads_total"] for r in links}
        out: list[Document] = []
        for c in campaigns:
            key = uuid_of(c["_id"])
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


class GlobalCampaignProjector(Projector):
    """`GlobalCampaign`: per user, campaigns by type and status, touchpoints, last activity."""

    name = "global_campaign"
    model = GlobalCampaign
    sources = (pipelines.CAMPAIGNS, pipelines.EVENTS)
    feeds = (JOURNAL, EVENTS)
    feed_filters = {JOURNAL: {"aggregate_type": CampaignBase.aggregate_type}}
    feed_fields = {
        JOURNAL: ("tenant_id", "aggregate_id", "changes"),
        EVENTS: ("tenant_id", "user_id"),
    }

    async def keys_from(self, feed: str, rows: list[dict[str, Any]]) -> set[Key]:
        """(tenant, user): owners of changed campaigns (before and after a hand-over), agents."""
        if feed == EVENTS:
            return pairs((r.get("tenant_id"), r.get("user_id")) for r in rows)
        keys = pairs(
            (row.get("tenant_id"), user) for row in rows for user in changed_values(row, "user_id")
        )
        return keys | await owners_of(pipelines.CAMPAIGNS, rows)

    async def compute(self, keys: set[Key] | None, tenant: UUID | None = None) -> list[Document]:
        """Campaign counts and touchpoint totals per user (two pipelines), merged by user."""
        groups, events = await asyncio.gather(
            run(pipelines.global_campaign_campaigns(keys, tenant)),
            run(pipelines.global_campaign_events(keys, tenant)),
        )
        rows: dict[UUID, GlobalCampaign] = {}

        def row(user_id: UUID, tenant_id: Any) -> GlobalCampaign:
            if user_id not in rows:
                rows[user_id] = GlobalCampaign(id=user_id, tenant_id=tenant_id, user_id=user_id)
            return rows[user_id]

        for g in groups:
            r = row(required_uuid(g["_id"]["u"]), g["tenant_id"])
            kind, status, n = g["_id"]["t"], g["_id"]["s"], g["n"]
            r.campaigns_total += n
            r.by_type[kind] = r.by_type.get(kind, 0) + n
            r.by_status[status] = r.by_status.get(status, 0) + n
            r.by_type_and_status.setdefault(kind, {})[status] = n
            r.last_campaign_change_at = latest(r.last_campaign_change_at, g["last"])
        for e in events:
            r = row(required_uuid(e["_id"]), e["tenant_id"])
            r.events_total, r.last_event_at = e["n"], e["last"]
        for r in rows.values():
            r.last_activity_at = latest(r.last_campaign_change_at, r.last_event_at)
        return list(rows.values())


class GlobalAnalyticsProjector(Projector):
    """`GlobalAnalytics`: per tenant, UTC day and channel, touchpoints and leads touched."""

    name = "global_analytics"
    model = GlobalAnalytics
    sources = (pipelines.EVENTS,)
    feeds = (EVENTS,)
    feed_fields = {EVENTS: ("tenant_id", "occurred_at")}

    async def keys_from(self, feed: str, rows: list[dict[str, Any]]) -> set[Key]:  # noqa: ARG002  (one feed)
        """(tenant, day) pairs of the new touchpoints; a day is recomputed for all channels."""
        return {
            (uuid_of(r["tenant_id"]), as_utc(r["occurred_at"]).strftime("%Y-%m-%d")) for r in rows
        }

    async def compute(self, keys: set[Key] | None, tenant: UUID | None = None) -> list[Document]:
        """Daily per-channel rows of these tenant-days (one pipeline)."""
        spec = pipelines.analytics_daily(
            sorted(keys, key=str) if keys is not None else None, tenant
        )
        return [
            GlobalAnalytics(
                id=analytics_key(required_uuid(g["_id"]["t"]), g["_id"]["d"], g["_id"]["c"]),
                tenant_id=g["_id"]["t"],
                day=day_start(g["_id"]["d"]),
                channel=g["_id"]["c"],
                events=g["events"],
                leads_touched=g["leads_touched"],
            )
            for g in await run(spec)
        ]

    def key_of(self, doc: Any) -> Key:
        """A row belongs to its (tenant, day)."""
        return (doc.tenant_id, as_utc(doc.day).strftime("%Y-%m-%d"))

    def rows_of(self, keys: set[Key]) -> dict[str, Any]:
        """Rows of these (tenant, day) pairs, every channel (index `tenant_day`)."""
        return by_tenant({(tenant, day_start(day)) for tenant, day in keys}, "day")

    def write_filter(self, doc: Any) -> dict[str, Any]:
        """Its `_id` with the whole shard key {tenant_id, day}: an upsert then stays targeted."""
        return {**super().write_filter(doc), "day": doc.day}

    def tombstone(self, key: Key) -> dict[str, Any] | None:  # noqa: ARG002  (a day's channels)
        """None: a day has a row per channel, so only stored rows of a gone day are marked."""
        return None


class GlobalTeamProjector(Projector):
    """`GlobalTeam`: teams with their members' usernames and names."""

    name = "global_team"
    model = GlobalTeam
    sources = (pipelines.TEAMS,)
    feeds = (JOURNAL,)
    feed_filters = {JOURNAL: {"aggregate_type": {"$in": ["team", "user"]}}}
    feed_fields = {JOURNAL: ("tenant_id", "aggregate_type", "aggregate_id")}

    async def keys_from(self, feed: str, rows: list[dict[str, Any]]) -> set[Key]:  # noqa: ARG002  (one feed)
        """Changed teams, and the teams of users whose name or username may have changed."""
        keys = pairs(
            (r["tenant_id"], r["aggregate_id"]) for r in rows if r["aggregate_type"] == "team"
        )
        users: dict[Any, list[Any]] = defaultdict(list)
        for r in rows:
            if r["aggregate_type"] == "user":
                users[r["tenant_id"]].append(r["aggregate_id"])
        for tenant, ids in users.items():
            query = {"tenant_id": tenant, "members.user_id": {"$in": ids}}
            cursor = collection(Team.Settings.name).find(query, {"tenant_id": 1})
            keys |= pairs([(t["tenant_id"], t["_id"]) async for t in cursor])
        return keys

    async def compute(self, keys: set[Key] | None, tenant: UUID | None = None) -> list[Document]:
        """Live teams joined to their members' users (one pipeline)."""
        out: list[Document] = []
        for t in await run(pipelines.global_team(keys, tenant)):
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


class UserRollupProjector(Projector):
    """Base of per-user rollups stored once per (tenant_id, user_id) (unique index)."""

    aggregate: ClassVar[type[Document]]

    async def keys_from(self, feed: str, rows: list[dict[str, Any]]) -> set[Key]:  # noqa: ARG002  (one feed)
        """(tenant, user): authors of changed documents, before and after a hand-over."""
        keys = pairs(
            (row.get("tenant_id"), user) for row in rows for user in changed_values(row, "user_id")
        )
        name = self.aggregate.get_settings().name or ""
        return keys | await owners_of(name, rows)

    def key_of(self, doc: Any) -> Key:
        """A rollup belongs to its user."""
        return (doc.tenant_id, doc.user_id)

    def rows_of(self, keys: set[Key]) -> dict[str, Any]:
        """Rollups of these users (index `tenant_user`)."""
        return by_tenant(keys, "user_id")

    def tombstone(self, key: Key) -> dict[str, Any] | None:
        """A new rollup's identity: a fresh `_id` and the unique (tenant_id, user_id)."""
        tenant, user = key
        return {
            "_id": Binary.from_uuid(uuid7()),
            "tenant_id": _binary(tenant),
            "user_id": _binary(user),
        }

    def write_filter(self, doc: Any) -> dict[str, Any]:
        """The stored rollup of the same user (its `_id` is kept: it was chosen on insert)."""
        return {
            "tenant_id": Binary.from_uuid(doc.tenant_id),
            "user_id": Binary.from_uuid(doc.user_id),
        }


class BlogStatsProjector(UserRollupProjector):
    """`GlobalBlog`: a user's blogs counted by status, the last post, the next scheduled one."""

    name = "blog_stats"
    model = GlobalBlog
    sources = (pipelines.BLOGS,)
    aggregate = Blog
    feeds = (JOURNAL,)
    feed_filters = {JOURNAL: {"aggregate_type": Blog.aggregate_type}}
    feed_fields = {JOURNAL: ("tenant_id", "aggregate_id", "changes")}

    async def compute(self, keys: set[Key] | None, tenant: UUID | None = None) -> list[Document]:
        """Per user, the statuses folded into one row (one pipeline)."""
        grouped: dict[UUID, list[dict[str, Any]]] = defaultdict(list)
        tenants: dict[UUID, Any] = {}
        for g in await run(pipelines.blog_stats(keys, tenant)):
            user = required_uuid(g["_id"]["u"])
            grouped[user].append(g)
            tenants[user] = g["tenant_id"]
        out: list[Document] = []
        for user, groups in grouped.items():
            by_status = {g["_id"]["s"]: g for g in groups}
            posted = by_status.get(BlogStatus.posted.value, {})
            scheduled = by_status.get(BlogStatus.scheduled.value, {})
            out.append(
                GlobalBlog(
                    id=uuid7(),
                    tenant_id=tenants[user],
                    user_id=user,
                    total=sum(g["n"] for g in groups),
                    by_status=BlogCounts(
                        **{s: by_status.get(s, {}).get("n", 0) for s in BlogStatus}
                    ),
                    last_posted_at=_utc(posted.get("last_posted_at")),
                    next_scheduled_for=_utc(scheduled.get("first_scheduled_for")),
                )
            )
        return out


class ResearchStatsProjector(UserRollupProjector):
    """`GlobalResearchStats`: a user's topics, results, distinct keywords and search volume."""

    name = "research_stats"
    model = GlobalResearchStats
    sources = (pipelines.RESEARCH,)
    aggregate = ResearchTopic
    feeds = (JOURNAL,)
    feed_filters = {JOURNAL: {"aggregate_type": ResearchTopic.aggregate_type}}
    feed_fields = {JOURNAL: ("tenant_id", "aggregate_id", "changes")}

    async def compute(self, keys: set[Key] | None, tenant: UUID | None = None) -> list[Document]:
        """Totals and distinct keywords per user (two pipelines), merged by user."""
        totals, keywords = await asyncio.gather(
            run(pipelines.research_stats_totals(keys, tenant)),
            run(pipelines.research_stats_keywords(keys, tenant)),
        )
        distinct = {uuid_of(k["_id"]): k["keywords"] for k in keywords}
        return [
            GlobalResearchStats(
                id=uuid7(),
                tenant_id=t["tenant_id"],
                user_id=t["_id"],
                topics_total=t["topics"],
                results_total=t["results"],
                keywords_total=distinct.get(uuid_of(t["_id"]), 0),
                search_volume_total=t["volume"] or 0,
                last_researched_at=_utc(t.get("last")),
            )
            for t in totals
        ]


PROJECTORS: dict[str, Projector] = {
    p.name: p
    for p in (
        GlobalCampaignProjector(),
        CampaignStatsProjector(),
        GlobalAnalyticsProjector(),
        GlobalTeamProjector(),
        BlogStatsProjector(),
        ResearchStatsProjector(),
    )
}
"""Every read model's projector, by name (`python -m service.cli rebuild all` runs each)."""


__all__ = [
    "LEAD_LIVENESS",
    "PROJECTORS",
    "BlogStatsProjector",
    "CampaignStatsProjector",
    "GlobalAnalyticsProjector",
    "GlobalCampaignProjector",
    "GlobalTeamProjector",
    "Projector",
    "ResearchStatsProjector",
    "UserRollupProjector",
    "by_tenant",
    "pairs",
    "uuid_of",
]
