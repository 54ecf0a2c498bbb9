"""Every analytics aggregation pipeline, in one place, as plain lists of stages.

Two kinds live here:

* **Endpoint pipelines** (`campaign_analytics`, `overview`) answer an API request in ONE
  `aggregate()` round trip. They are the stages that run *after* the repository's tenant scope
  (`Repository.aggregate` prepends `{"$match": {tenant_id, is_deleted: false, ...}}`), so they
  can never see another tenant's rows and start on the tenant-prefixed indexes of `events`.
* **Projector pipelines** (`campaign_stats_*`, `global_campaign_*`, `analytics_daily`,
  `global_team`) recompute read-model rows for a set of keys (or for everything, on rebuild).
  They run across tenants (projectors are system processes), so they carry their own `$match`.

Portability: the embedded backend (mongomock) lacks `$merge`, `$dateTrunc`, `$setWindowFields`,
`$unionWith`, `$setIntersection`, `$isoDayOfWeek` and `$lookup` with `let`/pipeline or an
array `localField`. Everything below uses operators both it and MongoDB ≥ 5 implement:
`$dateToString`, `$dayOfWeek`, `$mod`, date `$subtract`, `$facet`, `$filter`/`$in`,
`$lookup` with localField/foreignField (after an `$unwind` where the local side is an array).

`python -m service.cli pipelines [name]` prints each one as mongosh-ready Extended JSON.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from bson import Binary

from documents.campaign import CampaignBase, CampaignLead
from documents.event import EventType, TouchpointEvent
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

DAY_MS = 24 * 3600 * 1000


def _b(value: UUID) -> Binary:
    return Binary.from_uuid(value)


def _in(field: str, keys: Keys) -> dict[str, Any]:
    # None means "every key" (a rebuild). Otherwise restrict to the keys' tenants AND ids, so
    # the tenant-prefixed indexes serve the match (the `$in` bounds combine on both fields).
    if keys is None:
        return {}
    pairs = list(keys)
    return {
        "tenant_id": {"$in": [_b(t) for t in {t for t, _ in pairs}]},
        field: {"$in": [_b(i) for i in {i for _, i in pairs}]},
    }


def _count_if_type(channel: str, amount: Any = 1) -> dict[str, Any]:
    return {"$sum": {"$cond": [{"$eq": ["$type", channel]}, amount, 0]}}


# -- bucketing ---------------------------------------------------------------------------------


def bucket_expression(interval: Interval, date: str = "$occurred_at") -> dict[str, Any]:
    """The UTC bucket name ("YYYY-MM-DD" of its first day) of a date field.

    Days and months are formatted directly. A week starts on Monday (ISO): the date minus
    `(dayOfWeek + 5) mod 7` days is that Monday (`$dayOfWeek` is 1 = Sunday … 7 = Saturday),
    which avoids `$dateTrunc`/`$isoDayOfWeek` the embedded backend lacks.
    """
    if interval == "day":
        return {"$dateToString": {"format": "%Y-%m-%d", "date": date}}
    if interval == "month":
        return {"$dateToString": {"format": "%Y-%m-01", "date": date}}
    days_since_monday = {"$mod": [{"$add": [{"$dayOfWeek": date}, 5]}, 7]}
    monday = {"$subtract": [date, {"$multiply": [days_since_monday, DAY_MS]}]}
    return {"$dateToString": {"format": "%Y-%m-%d", "date": monday}}


# -- endpoint pipelines ------------------------------------------------------------------------


def campaign_analytics(*, tenant_id: UUID, campaign_id: UUID) -> Pipeline:
    """`GET /v1/analytics/campaigns/{id}` over the tenant's events of one campaign (one trip).

    Runs after `$match {tenant_id, is_deleted: false, campaign_id}` on `events`:

    1. `$facet` always yields exactly one document (even with no events): the events counted
       by type, and the distinct leads that have an event in the campaign.
    2. Two `$lookup`s by the campaign id fetch the campaign itself (so a missing, deleted or
       other tenant's campaign is detected in the same round trip: `found` is 0) and its
       `campaign_leads` links (the campaign's leads; a bounded row per lead).
    3. `leads_contacted` = links whose lead is among the leads with events.

    Output: `{found, by_type: [{_id: type, n}], events_total, leads_total, leads_contacted}`;
    the service fills missing types with 0 and computes the rate.

    Indexes: the `$match` uses `events.tenant_campaign`; the campaign lookup uses `_id`. A
    `$lookup` cannot use a tenant-prefixed index, so the link lookup wants an index on
    `campaign_leads` whose first key is `campaign_id` (the tenant is re-checked in `$project`).
    """
    tenant, campaign = _b(tenant_id), _b(campaign_id)
    return [
        {
            "$facet": {
                "by_type": [{"$group": {"_id": "$type", "n": {"$sum": 1}}}],
                "leads": [{"$group": {"_id": "$lead_id"}}],
            }
        },
        {"$addFields": {"campaign_id": {"$literal": campaign}}},
        {
            "$lookup": {
                "from": CAMPAIGNS,
                "localField": "campaign_id",
                "foreignField": "_id",
                "as": "campaign",
            }
        },
        {
            "$lookup": {
                "from": CAMPAIGN_LEADS,
                "localField": "campaign_id",
                "foreignField": "campaign_id",
                "as": "links",
            }
        },
        {
            "$project": {
                "_id": 0,
                "by_type": 1,
                "events_total": {"$sum": "$by_type.n"},
                "lead_ids": "$leads._id",
                "found": {
                    "$size": {
                        "$filter": {
                            "input": "$campaign",
                            "as": "c",
                            "cond": {
                                "$and": [
                                    {"$eq": ["$$c.tenant_id", tenant]},
                                    {"$eq": ["$$c.is_deleted", False]},
                                ]
                            },
                        }
                    }
                },
                "member_ids": {
                    "$map": {
                        "input": {
                            "$filter": {
                                "input": "$links",
                                "as": "l",
                                "cond": {"$eq": ["$$l.tenant_id", tenant]},
                            }
                        },
                        "as": "l",
                        "in": "$$l.lead_id",
                    }
                },
            }
        },
        {
            "$project": {
                "found": 1,
                "by_type": 1,
                "events_total": 1,
                "leads_total": {"$size": "$member_ids"},
                "leads_contacted": {
                    "$size": {
                        "$filter": {
                            "input": "$member_ids",
                            "as": "m",
                            "cond": {"$in": ["$$m", "$lead_ids"]},
                        }
                    }
                },
            }
        },
    ]


def overview(*, interval: Interval) -> Pipeline:
    """`GET /v1/analytics/overview` over the tenant's events in `[since, until)` (one trip).

    Runs after `$match {tenant_id, is_deleted: false, occurred_at: {$gte, $lt}}` on `events`
    (index `tenant_time`). One `$group` per bucket counts each channel with `$cond`; empty
    buckets are absent and the service fills them with zeros from the known bucket list.
    Output: `[{_id: "YYYY-MM-DD", call: n, text: n, social: n, email: n}]` sorted by bucket.
    """
    group: dict[str, Any] = {"_id": bucket_expression(interval)}
    for channel in CHANNELS:
        group[channel] = _count_if_type(channel)
    return [{"$group": group}, {"$sort": {"_id": 1}}]


# -- projector pipelines -----------------------------------------------------------------------


def campaign_stats_events(campaign_ids: Keys) -> tuple[str, Pipeline]:
    """Per campaign (on `events`): touchpoints by type, last touchpoint, leads contacted.

    Groups per (campaign, lead) first so each lead is looked up once in `campaign_leads`
    (a lead's links are bounded by the campaigns it is in); a lead counts as contacted when it
    is linked to that campaign. The lookup wants an index on `campaign_leads` whose first key
    is `lead_id` (the tenant-prefixed `tenant_lead` cannot serve a `$lookup`).
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
        "leads_contacted": {"$sum": {"$cond": ["$linked", 1, 0]}},
    }
    for channel in CHANNELS:
        per_lead[channel] = _count_if_type(channel)
        per_campaign[channel] = {"$sum": f"${channel}"}
    return EVENTS, [
        {"$match": {"is_deleted": False, **_in("campaign_id", campaign_ids)}},
        {"$group": per_lead},
        {
            "$lookup": {
                "from": CAMPAIGN_LEADS,
                "localField": "_id.l",
                "foreignField": "lead_id",
                "as": "links",
            }
        },
        {
            "$addFields": {
                "linked": {
                    "$gt": [
                        {
                            "$size": {
                                "$filter": {
                                    "input": "$links",
                                    "as": "k",
                                    "cond": {"$eq": ["$$k.campaign_id", "$_id.c"]},
                                }
                            }
                        },
                        0,
                    ]
                }
            }
        },
        {"$group": per_campaign},
    ]


def campaign_stats_links(campaign_ids: Keys) -> tuple[str, Pipeline]:
    """Per campaign (on `campaign_leads`): how many leads it has."""
    return CAMPAIGN_LEADS, [
        {"$match": _in("campaign_id", campaign_ids)},
        {"$group": {"_id": "$campaign_id", "leads_total": {"$sum": 1}}},
    ]


def campaign_stats_campaigns(campaign_ids: Keys) -> tuple[str, Pipeline]:
    """The live campaigns themselves (on `campaigns`): the rows a stats projection exists for."""
    return CAMPAIGNS, [
        {"$match": {"is_deleted": False, **_in("_id", campaign_ids)}},
        {"$project": {"tenant_id": 1, "user_id": 1, "type": 1, "status": 1, "name": 1}},
    ]


def global_campaign_campaigns(user_ids: Keys) -> tuple[str, Pipeline]:
    """Per user (on `campaigns`): live campaigns counted by (type, status), last change."""
    match = {"is_deleted": False, "user_id": {"$ne": None}, **_in("user_id", user_ids)}
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


def global_campaign_events(user_ids: Keys) -> tuple[str, Pipeline]:
    """Per user (on `events`): touchpoints they made and the last one."""
    match = {"is_deleted": False, "user_id": {"$ne": None}, **_in("user_id", user_ids)}
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


def analytics_daily(tenant_days: Sequence[tuple[UUID, str]] | None) -> tuple[str, Pipeline]:
    """Per tenant, UTC day and channel (on `events`): touchpoints and distinct leads touched.

    `tenant_days` restricts to those (tenant, "YYYY-MM-DD") pairs; each becomes a range on
    `occurred_at` so the `tenant_time` index applies. Distinct leads are counted by grouping
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


def global_team(team_ids: Keys) -> tuple[str, Pipeline]:
    """Teams with each member's username and names (on `teams`, `$lookup` into `users`).

    Members are unwound (keeping their position and teams without members), joined to their
    user one by one, sorted back into their original order and regrouped per team.
    """
    return TEAMS, [
        {"$match": {"is_deleted": False, **_in("_id", team_ids)}},
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


__all__ = [
    "CHANNELS",
    "Interval",
    "Pipeline",
    "analytics_daily",
    "bucket_expression",
    "campaign_analytics",
    "campaign_stats_campaigns",
    "campaign_stats_events",
    "campaign_stats_links",
    "global_campaign_campaigns",
    "global_campaign_events",
    "global_team",
    "overview",
]
