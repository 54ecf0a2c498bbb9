"""Every analytics aggregation pipeline, in one place, as plain lists of stages.

Two kinds live here:

* **Endpoint pipelines** (`campaign_analytics`, `campaign_analytics_leads`, `overview`)
  answer an API request. They are the stages that run *after* the tenant scope
  (`Repository.aggregate` prepends `{"$match": {tenant_id, is_deleted: false, ...}}`), so they
  can never see another tenant's rows and start on the tenant-prefixed indexes. Each streams
  its input and ends in a few small documents: no stage gathers a list that grows with a
  campaign, a tenant or a user into one document (MongoDB's 16 MiB limit).
* **Projector pipelines** (`campaign_stats_*`, `global_campaign_*`, `analytics_daily`,
  `global_team`, `blog_stats`, `research_stats_*`) recompute read-model rows for a set of keys
  (or, on rebuild, every key of one `tenant`: a rebuild is streamed tenant by tenant). They
  run across tenants (projectors are system processes), so they carry their own `$match`.

Portability: the embedded backend (mongomock) lacks `$merge`, `$dateTrunc`, `$setWindowFields`,
`$unionWith`, `$setIntersection`, `$isoDayOfWeek` and `$lookup` with `let`/pipeline or an
array `localField`. Everything below uses operators both it and MongoDB ≥ 5 implement:
`$dateToString`, `$dayOfWeek`, `$mod`, date `$subtract`, `$facet`, `$filter`/`$in`,
`$lookup` with localField/foreignField (after an `$unwind` where the local side is an array).

`python -m service.cli pipelines [name]` prints each one as mongosh-ready Extended JSON.

Not here: a list's keyset read that joins (a campaign's members, service/leads/queries.py) is
built per page from its cursor and sort beside the list it serves; it uses `join_leads`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from bson import Binary

from documents.blog import Blog
from documents.campaign import CampaignBase, CampaignLead
from documents.event import EventType, TouchpointEvent
from documents.lead import LeadBase
from documents.research import ResearchTopic
from documents.team import Team
from documents.user import User

Stage = dict[str, Any]
Pipeline = list[Stage]
Interval = Literal["day", "week", "month"]
Keys = Iterable[tuple[UUID, UUID]] | None
"""Read-model keys as (tenant_id, id) pairs; None selects every key (a rebuild)."""

CHANNELS: tuple[str, ...] = tuple(t.value for t in EventType)

EVENTS = TouchpointEvent.Settings.name
CAMPAIGNS = CampaignBase.Settings.name
CAMPAIGN_LEADS = CampaignLead.Settings.name
TEAMS = Team.Settings.name
USERS = User.Settings.name
LEADS = LeadBase.Settings.name
BLOGS = Blog.Settings.name
RESEARCH = ResearchTopic.Settings.name

DAY_MS = 24 * 3600 * 1000


def _b(value: UUID) -> Binary:
    return Binary.from_uuid(value)


def _in(field: str, keys: Keys, tenant: UUID | None = None) -> dict[str, Any]:
    # None means "every key" (a rebuild): of one `tenant` when given (a per-tenant rebuild,
    # an equality on the tenant-prefixed indexes), of every tenant otherwise. Else restrict to
    # the keys' tenants AND ids, so the tenant-prefixed indexes serve the match (the `$in`
    # bounds combine on both fields).
    if keys is None:
        return {} if tenant is None else {"tenant_id": _b(tenant)}
    pairs = list(keys)
    return {
        "tenant_id": {"$in": [_b(t) for t in {t for t, _ in pairs}]},
        field: {"$in": [_b(i) for i in {i for _, i in pairs}]},
    }


VIOLATIONS: dict[str, Any] = {"$sum": {"$cond": [{"$eq": ["$compliance.allowed", False]}, 1, 0]}}
"""Counts touchpoints recorded for a lead that was not contactable (issue 25's `violations`)."""


def _count_if_type(channel: str, amount: Any = 1) -> dict[str, Any]:
    return {"$sum": {"$cond": [{"$eq": ["$type", channel]}, amount, 0]}}


# -- bucketing ---------------------------------------------------------------------------------


def bucket_expression(
    interval: Interval, date: str = "$occurred_at", tz: str | None = None
) -> dict[str, Any]:
    """The UTC bucket name ("YYYY-MM-DD" of its first day) of a date field.

    Days and months are formatted directly. A week starts on Monday (ISO): the date minus
    `(dayOfWeek + 5) mod 7` days is that Monday (`$dayOfWeek` is 1 = Sunday … 7 = Saturday),
    which avoids `$dateTrunc`/`$isoDayOfWeek` the embedded backend lacks.
    With `tz` (an IANA zone), the bucket of the local day (see `_local_bucket`).
    """
    if tz is not None and tz != "UTC":
        return _local_bucket(interval, date, tz)
    if interval == "day":
        return {"$dateToString": {"format": "%Y-%m-%d", "date": date}}
    if interval == "month":
        return {"$dateToString": {"format": "%Y-%m-01", "date": date}}
    days_since_monday = {"$mod": [{"$add": [{"$dayOfWeek": date}, 5]}, 7]}
    monday = {"$subtract": [date, {"$multiply": [days_since_monday, DAY_MS]}]}
    return {"$dateToString": {"format": "%Y-%m-%d", "date": monday}}


def _local_bucket(interval: Interval, date: str, tz: str) -> dict[str, Any]:
    # The local calendar day as a date at UTC midnight, from the zone-aware `$year`, `$month`
    # and `$dayOfMonth` (`$dateToString` with `timezone` is missing on the embedded backend);
    # weeks step back to Monday with the zone-aware `$dayOfWeek`.
    def part(op: str) -> dict[str, Any]:
        return {op: {"date": date, "timezone": tz}}

    local_day = {
        "$dateFromParts": {
            "year": part("$year"),
            "month": part("$month"),
            "day": part("$dayOfMonth"),
        }
    }
    if interval == "day":
        return {"$dateToString": {"format": "%Y-%m-%d", "date": local_day}}
    if interval == "month":
        return {"$dateToString": {"format": "%Y-%m-01", "date": local_day}}
    days_since_monday = {"$mod": [{"$add": [part("$dayOfWeek"), 5]}, 7]}
    monday = {"$subtract": [local_day, {"$multiply": [days_since_monday, DAY_MS]}]}
    return {"$dateToString": {"format": "%Y-%m-%d", "date": monday}}


# -- endpoint pipelines ------------------------------------------------------------------------


def join_leads(local_field: str, *, into: str = "lead") -> Stage:
    """The leads join: `$lookup` by `_id` from `local_field` (at most one lead a row) into `into`.

    It matches on the foreign `_id` alone: the caller re-checks the tenant and liveness after it.
    """
    return {
        "$lookup": {"from": LEADS, "localField": local_field, "foreignField": "_id", "as": into}
    }


def ai_usage_totals() -> Pipeline:
    """`GET /v1/ai/usage` totals per model (on `ai_usage_logs`, after the scope and filters)."""
    return [
        {
            "$group": {
                "_id": "$model",
                "calls": {"$sum": 1},
                "prompt_tokens": {"$sum": "$prompt_tokens"},
                "completion_tokens": {"$sum": "$completion_tokens"},
                "cost_cents": {"$sum": "$cost_cents"},
            }
        },
        {"$sort": {"_id": 1}},
    ]


def touched_leads() -> Pipeline:
    """The distinct leads of the touchpoints in scope (`_id`: the lead id), for a tally rebuild."""
    return [{"$group": {"_id": "$lead_id"}}]


def _live_lead(lead_id: str, tenant: Any) -> list[Stage]:
    """Join one lead (by `_id`: at most one document) and keep its row only if it is live.

    `$lookup` matches on the foreign `_id` alone; the tenant is re-checked after the join.
    """
    return [
        join_leads(lead_id),
        {"$match": {"lead": {"$elemMatch": {"tenant_id": tenant, "is_deleted": False}}}},
    ]


def campaign_analytics(*, tenant_id: UUID, campaign_id: UUID) -> Pipeline:
    """`GET /v1/analytics/campaigns/{id}`, touchpoint side (on `events`, one small document).

    Runs after `$match {tenant_id, is_deleted: false, campaign_id}` (index
    `events.tenant_campaign_time`). Per lead first (one document per contacted lead, streamed), then
    each lead's liveness (`$lookup` by `_id`, one lead) and its membership of THIS campaign
    (`$lookup` of the lead's own links by `lead_id`: one row per campaign the lead is in, so
    bounded by the lead, never by the campaign), then one `$group` of counters. No array ever
    grows with the campaign, so a campaign of any size answers with documents of a few kB.

    Output: one document `{events_total, <type>: n…, leads_contacted, violations}` (none
    without events).
    """
    tenant, campaign = _b(tenant_id), _b(campaign_id)
    per_lead: dict[str, Any] = {"_id": "$lead_id", "n": {"$sum": 1}}
    total: dict[str, Any] = {"_id": None, "events_total": {"$sum": "$n"}}
    for channel in CHANNELS:
        per_lead[channel] = _count_if_type(channel)
        total[channel] = {"$sum": f"${channel}"}
    total["leads_contacted"] = {"$sum": {"$cond": ["$member", 1, 0]}}
    # Outreach (issue 25): outbound touchpoints stamped not contactable (`compliance`).
    per_lead["violations"] = VIOLATIONS
    total["violations"] = {"$sum": "$violations"}
    return [
        {"$group": per_lead},
        join_leads("_id"),
        {
            "$lookup": {
                "from": CAMPAIGN_LEADS,
                "localField": "_id",
                "foreignField": "lead_id",
                "as": "links",
            }
        },
        {
            "$project": {
                "n": 1,
                "violations": 1,
                **dict.fromkeys(CHANNELS, 1),
                "member": {
                    "$and": [
                        _any(
                            "$lead",
                            {
                                "$and": [
                                    {"$eq": ["$$x.tenant_id", tenant]},
                                    {"$eq": ["$$x.is_deleted", False]},
                                ]
                            },
                        ),
                        _any(
                            "$links",
                            {
                                "$and": [
                                    {"$eq": ["$$x.tenant_id", tenant]},
                                    {"$eq": ["$$x.campaign_id", campaign]},
                                ]
                            },
                        ),
                    ]
                },
            }
        },
        {"$group": total},
    ]


def _any(array: str, cond: dict[str, Any]) -> dict[str, Any]:
    # True when some element `$$x` of `array` satisfies `cond`.
    return {"$gt": [{"$size": {"$filter": {"input": array, "as": "x", "cond": cond}}}, 0]}


def campaign_analytics_leads(*, tenant_id: UUID) -> Pipeline:
    """`GET /v1/analytics/campaigns/{id}`, membership side (on `campaign_leads`).

    Runs after `$match {tenant_id, campaign_id}` (index `campaign_lead_unique`): each link joins
    its lead (one document) and counts only when the lead is live. Output: one `{leads_total}`
    document (none for a campaign without live leads).
    """
    return [
        *_live_lead("lead_id", _b(tenant_id)),
        {"$group": {"_id": None, "leads_total": {"$sum": 1}}},
    ]


def overview(*, interval: Interval, tz: str | None = None) -> Pipeline:
    """`GET /v1/analytics/overview` over the tenant's events in `[since, until)` (one trip).

    Runs after `$match {tenant_id, is_deleted: false, occurred_at: {$gte, $lt}}` on `events`
    (index `tenant_by_occurred_at`). One `$group` per bucket counts each channel with `$cond`; empty
    buckets are absent and the service fills them with zeros from the known bucket list.
    Output: `[{_id: "YYYY-MM-DD", call: n, text: n, social: n, email: n}]` sorted by bucket.
    """
    group: dict[str, Any] = {"_id": bucket_expression(interval, tz=tz)}
    for channel in CHANNELS:
        group[channel] = _count_if_type(channel)
    return [{"$group": group}, {"$sort": {"_id": 1}}]


# -- projector pipelines -----------------------------------------------------------------------


def campaign_stats_events(campaign_ids: Keys, tenant: UUID | None = None) -> tuple[str, Pipeline]:
    """Per campaign (on `events`): touchpoints by type, last touchpoint, leads contacted.

    Groups per (campaign, lead) first so each lead is looked up once in `campaign_leads`
    (a lead's links are bounded by the campaigns it is in) and in `leads` (one document); a
    lead counts as contacted when it is live and linked to that campaign — the same rule as
    `campaign_analytics`. The lookups want indexes whose first key is the joined field
    (`campaign_leads.lookup_lead`, `leads._id`): a tenant-prefixed index cannot serve them.
    """
    per_lead: dict[str, Any] = {
        "_id": {"c": "$campaign_id", "l": "$lead_id"},
        "tenant_id": {"$first": "$tenant_id"},
        "n": {"$sum": 1},
        "last": {"$max": "$occurred_at"},
    }
    per_campaign: dict[str, Any] = {
        "_id": "$_id.c",
        "tenant_id": {"$first": "$tenant_id"},
        "events_total": {"$sum": "$n"},
        "last_event_at": {"$max": "$last"},
        "leads_contacted": {"$sum": {"$cond": [{"$and": ["$linked", "$live"]}, 1, 0]}},
    }
    for channel in CHANNELS:
        per_lead[channel] = _count_if_type(channel)
        per_campaign[channel] = {"$sum": f"${channel}"}
    return EVENTS, [
        {"$match": {"is_deleted": False, **_in("campaign_id", campaign_ids, tenant)}},
        {"$group": per_lead},
        {
            "$lookup": {
                "from": CAMPAIGN_LEADS,
                "localField": "_id.l",
                "foreignField": "lead_id",
                "as": "links",
            }
        },
        join_leads("_id.l"),
        {
            "$addFields": {
                "linked": _any("$links", {"$eq": ["$$x.campaign_id", "$_id.c"]}),
                "live": _any("$lead", {"$eq": ["$$x.is_deleted", False]}),
            }
        },
        {"$group": per_campaign},
    ]


def campaign_stats_links(campaign_ids: Keys, tenant: UUID | None = None) -> tuple[str, Pipeline]:
    """Per campaign (on `campaign_leads`): how many live leads it has (each link joins its lead)."""
    return CAMPAIGN_LEADS, [
        {"$match": _in("campaign_id", campaign_ids, tenant)},
        join_leads("lead_id"),
        {"$match": {"lead.is_deleted": False}},
        {"$group": {"_id": "$campaign_id", "leads_total": {"$sum": 1}}},
    ]


def campaign_stats_campaigns(
    campaign_ids: Keys, tenant: UUID | None = None
) -> tuple[str, Pipeline]:
    """The live campaigns themselves (on `campaigns`): the rows a stats projection exists for."""
    return CAMPAIGNS, [
        {"$match": {"is_deleted": False, **_in("_id", campaign_ids, tenant)}},
        {"$project": {"tenant_id": 1, "user_id": 1, "type": 1, "status": 1, "name": 1}},
    ]


def global_campaign_campaigns(user_ids: Keys, tenant: UUID | None = None) -> tuple[str, Pipeline]:
    """Per user (on `campaigns`): live campaigns counted by (type, status), last change."""
    match = {"is_deleted": False, "user_id": {"$ne": None}, **_in("user_id", user_ids, tenant)}
    return CAMPAIGNS, [
        {"$match": match},
        {
            "$group": {
                "_id": {"u": "$user_id", "t": "$type", "s": "$status"},
                "tenant_id": {"$first": "$tenant_id"},
                "n": {"$sum": 1},
                "last": {"$max": "$updated_at"},
            }
        },
    ]


def global_campaign_events(user_ids: Keys, tenant: UUID | None = None) -> tuple[str, Pipeline]:
    """Per user (on `events`): touchpoints they made and the last one."""
    match = {"is_deleted": False, "user_id": {"$ne": None}, **_in("user_id", user_ids, tenant)}
    return EVENTS, [
        {"$match": match},
        {
            "$group": {
                "_id": "$user_id",
                "tenant_id": {"$first": "$tenant_id"},
                "n": {"$sum": 1},
                "last": {"$max": "$occurred_at"},
            }
        },
    ]


def analytics_daily(
    tenant_days: Sequence[tuple[UUID, str]] | None, tenant: UUID | None = None
) -> tuple[str, Pipeline]:
    """Per tenant, UTC day and channel (on `events`): touchpoints and distinct leads touched.

    `tenant_days` restricts to those (tenant, "YYYY-MM-DD") pairs; each becomes a range on
    `occurred_at` (index `tenant_by_occurred_at`). Distinct leads are counted by grouping
    on the lead first (no unbounded `$addToSet`).
    """
    match: dict[str, Any] = {"is_deleted": False}
    if tenant_days is not None:
        ranges = []
        for tenant_id, day in tenant_days:
            start = datetime.fromisoformat(day).replace(tzinfo=UTC)
            ranges.append(
                {
                    "tenant_id": _b(tenant_id),
                    "occurred_at": {"$gte": start, "$lt": start + timedelta(days=1)},
                }
            )
        match["$or"] = ranges or [{"_id": None}]
    elif tenant is not None:
        match["tenant_id"] = _b(tenant)
    day_key = bucket_expression("day")
    return EVENTS, [
        {"$match": match},
        {
            "$group": {
                "_id": {"t": "$tenant_id", "d": day_key, "c": "$type", "l": "$lead_id"},
                "n": {"$sum": 1},
            }
        },
        {
            "$group": {
                "_id": {"t": "$_id.t", "d": "$_id.d", "c": "$_id.c"},
                "events": {"$sum": "$n"},
                "leads_touched": {"$sum": 1},
            }
        },
    ]


def global_team(team_ids: Keys, tenant: UUID | None = None) -> tuple[str, Pipeline]:
    """Teams with each member's username and names (on `teams`, `$lookup` into `users`).

    Members are unwound (keeping their position and teams without members), joined to their
    user one by one, sorted back into their original order and regrouped per team.
    """
    return TEAMS, [
        {"$match": {"is_deleted": False, **_in("_id", team_ids, tenant)}},
        {
            "$unwind": {
                "path": "$members",
                "includeArrayIndex": "position",
                "preserveNullAndEmptyArrays": True,
            }
        },
        {
            "$lookup": {
                "from": USERS,
                "localField": "members.user_id",
                "foreignField": "_id",
                "as": "user",
            }
        },
        {"$sort": {"_id": 1, "position": 1}},
        {
            "$group": {
                "_id": "$_id",
                "tenant_id": {"$first": "$tenant_id"},
                "name": {"$first": "$name"},
                "description": {"$first": "$description"},
                "members": {
                    "$push": {
                        "user_id": "$members.user_id",
                        "role": "$members.role",
                        "status": "$members.status",
                        "joined_at": "$members.joined_at",
                        "username": {"$arrayElemAt": ["$user.username", 0]},
                        "first_name": {"$arrayElemAt": ["$user.profile.first_name", 0]},
                        "last_name": {"$arrayElemAt": ["$user.profile.last_name", 0]},
                        "display_name": {"$arrayElemAt": ["$user.profile.display_name", 0]},
                    }
                },
            }
        },
    ]


def blog_stats(user_ids: Keys, tenant: UUID | None = None) -> tuple[str, Pipeline]:
    """Per user and status (on `blogs`, live and archived ones): count, last post, next slot.

    Output rows `{_id: {u: user, s: status}, tenant_id, n, last_posted_at,
    first_scheduled_for}`; the projector folds a user's statuses into one `GlobalBlog`.
    """
    match = {"is_deleted": False, "user_id": {"$ne": None}, **_in("user_id", user_ids, tenant)}
    return BLOGS, [
        {"$match": match},
        {
            "$group": {
                "_id": {"u": "$user_id", "s": "$status"},
                "tenant_id": {"$first": "$tenant_id"},
                "n": {"$sum": 1},
                "last_posted_at": {"$max": "$posted.posted_at"},
                # Shape-1 blogs (not yet migrated) kept it in `plan.scheduled_for`.
                "first_scheduled_for": {
                    "$min": {"$ifNull": ["$calendar.scheduled_for", "$plan.scheduled_for"]}
                },
            }
        },
    ]


def research_stats_totals(user_ids: Keys, tenant: UUID | None = None) -> tuple[str, Pipeline]:
    """Per user (on `research`): topics, results, summed search volume, last research time."""
    match = {"is_deleted": False, "user_id": {"$ne": None}, **_in("user_id", user_ids, tenant)}
    return RESEARCH, [
        {"$match": match},
        {
            "$group": {
                "_id": "$user_id",
                "tenant_id": {"$first": "$tenant_id"},
                "topics": {"$sum": 1},
                "results": {"$sum": {"$size": "$results"}},
                "volume": {"$sum": {"$sum": "$results.search_volume"}},
                "last": {"$max": {"$max": "$results.researched_at"}},
            }
        },
    ]


def research_stats_keywords(user_ids: Keys, tenant: UUID | None = None) -> tuple[str, Pipeline]:
    """Per user (on `research`): distinct keywords across all results.

    Grouped per (user, keyword) first and then counted per user: no `$addToSet` list that
    grows with a user's keywords.
    """
    match = {"is_deleted": False, "user_id": {"$ne": None}, **_in("user_id", user_ids, tenant)}
    return RESEARCH, [
        {"$match": match},
        {"$unwind": "$results"},
        {"$unwind": "$results.keywords"},
        {"$group": {"_id": {"u": "$user_id", "k": "$results.keywords"}}},
        {"$group": {"_id": "$_id.u", "keywords": {"$sum": 1}}},
    ]


__all__ = [
    "CHANNELS",
    "Interval",
    "Pipeline",
    "analytics_daily",
    "blog_stats",
    "bucket_expression",
    "campaign_analytics",
    "campaign_analytics_leads",
    "campaign_stats_campaigns",
    "campaign_stats_events",
    "campaign_stats_links",
    "global_campaign_campaigns",
    "global_campaign_events",
    "global_team",
    "overview",
    "research_stats_keywords",
    "research_stats_totals",
]
