"""CQRS read models: denormalised projections of the write models, and the projectors' checkpoints.

Every read model is derived data. It is maintained incrementally by the projectors in
service/projections/ from the change journal (`domain_events`), the touchpoint `events` and
the `campaign_leads` links, and can be rebuilt from those sources at any time
(`python -m service.cli rebuild <name>`). None of them is written by a command; none is
journaled. Each row carries `tenant_id`; every read and every projector write filters on it
(writes stay targeted on a cluster sharded by tenant).

Keys are deterministic (the user, campaign or team id; a UUIDv5 of tenant/day/channel for the
daily analytics), so recomputing a key replaces its row and a re-run never double counts.
"""

from __future__ import annotations

from uuid import UUID, uuid5

from beanie import Document
from pydantic import BaseModel, Field
from pymongo import IndexModel

from documents.base import UTCDateTime, utcnow
from documents.team import MAX_TEAM_MEMBERS

# Namespace of the UUIDv5 keys of `GlobalAnalytics` rows (fixed forever: it names stored rows).
ANALYTICS_KEY_NAMESPACE = UUID("6f6b1c1e-4f53-4b7e-9d0e-6a1f3c2b9a10")


class GlobalCampaign(Document):
    """Per user: their campaigns counted by type and by status, their touchpoints, last activity."""

    id: UUID  # type: ignore[assignment]  # the user's id: one row per user
    tenant_id: UUID
    user_id: UUID
    campaigns_total: int = 0
    by_type: dict[str, int] = Field(default_factory=dict, max_length=16)
    by_status: dict[str, int] = Field(default_factory=dict, max_length=16)
    by_type_and_status: dict[str, dict[str, int]] = Field(default_factory=dict, max_length=16)
    events_total: int = 0
    last_campaign_change_at: UTCDateTime | None = None
    last_event_at: UTCDateTime | None = None
    last_activity_at: UTCDateTime | None = None
    computed_at: UTCDateTime = Field(default_factory=utcnow)

    class Settings:
        name = "read_global_campaigns"
        indexes = [IndexModel([("tenant_id", 1), ("_id", 1)], name="tenant_user")]


class CampaignStats(Document):
    """Per campaign: its leads, touchpoints by type, leads contacted and the contact rate."""

    id: UUID  # type: ignore[assignment]  # the campaign's id: one row per campaign
    tenant_id: UUID
    campaign_id: UUID
    user_id: UUID | None = None
    type: str
    status: str
    name: str
    leads_total: int = 0
    events_total: int = 0
    events_by_type: dict[str, int] = Field(default_factory=dict, max_length=16)
    leads_contacted: int = 0
    contact_rate: float = 0.0
    last_event_at: UTCDateTime | None = None
    computed_at: UTCDateTime = Field(default_factory=utcnow)

    class Settings:
        name = "read_campaign_stats"
        indexes = [
            IndexModel([("tenant_id", 1), ("_id", 1)], name="tenant_campaign"),
            IndexModel([("tenant_id", 1), ("user_id", 1), ("_id", 1)], name="tenant_user"),
        ]


class CampaignTally(Document):
    """Per campaign: touchpoint counters kept by `$inc` as events are recorded (issue 23).

    Written by commands (service/campaign_tallies.py), not by a projector: the campaign
    analytics endpoint reads this one row instead of grouping every event of the campaign.
    `leads_contacted` counts the links that are both `counted` (live lead) and `contacted`.
    """

    id: UUID  # type: ignore[assignment]  # the campaign's id: one row per campaign
    tenant_id: UUID
    events_total: int = 0
    by_type: dict[str, int] = Field(default_factory=dict, max_length=16)
    violations: int = 0
    leads_contacted: int = 0

    class Settings:
        name = "campaign_tallies"
        indexes = [IndexModel([("tenant_id", 1), ("_id", 1)], name="tenant_campaign")]


class EventSlot(Document):
    """Per tenant and quarter hour (UTC): touchpoints by type, kept by `$inc` (issue 23).

    The overview sums the slots of its range in the asked zone's local buckets (every zone's
    offset is a multiple of 15 minutes) instead of grouping every event of the range.
    """

    id: UUID  # type: ignore[assignment]  # `slot_key(tenant, start)`
    tenant_id: UUID
    start: UTCDateTime  # the slot's first instant; the slot is [start, start + 15 min)
    by_type: dict[str, int] = Field(default_factory=dict, max_length=16)

    class Settings:
        name = "event_slots"
        indexes = [IndexModel([("tenant_id", 1), ("start", 1)], name="tenant_start")]


def slot_key(tenant_id: UUID, start: str) -> UUID:
    """The deterministic id of the `EventSlot` of a tenant and slot start (ISO text)."""
    return uuid5(ANALYTICS_KEY_NAMESPACE, f"slot|{tenant_id}|{start}")


def analytics_key(tenant_id: UUID, day: str, channel: str) -> UUID:
    """The deterministic id of the `GlobalAnalytics` row of a tenant, day and channel."""
    return uuid5(ANALYTICS_KEY_NAMESPACE, f"{tenant_id}|{day}|{channel}")


class GlobalAnalytics(Document):
    """Per tenant, per UTC day, per channel: touchpoints and distinct leads touched."""

    id: UUID  # type: ignore[assignment]  # analytics_key(tenant_id, day, channel)
    tenant_id: UUID
    # Midnight UTC of the day, a BSON date (rows written as "YYYY-MM-DD" text still read).
    day: UTCDateTime
    channel: str  # the touchpoint type: call, text, social, email
    events: int = 0
    leads_touched: int = 0
    computed_at: UTCDateTime = Field(default_factory=utcnow)

    class Settings:
        name = "read_analytics_daily"
        indexes = [
            IndexModel(
                [("tenant_id", 1), ("day", 1), ("channel", 1)], unique=True, name="tenant_day"
            ),
        ]


class GlobalTeamMember(BaseModel):
    """A member with the user's names copied in, so a team reads in one query."""

    user_id: UUID
    role: str
    status: str
    joined_at: UTCDateTime | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    display_name: str | None = None


class GlobalTeam(Document):
    """A team with its members' usernames and names denormalised from `users`."""

    id: UUID  # type: ignore[assignment]  # the team's id
    tenant_id: UUID
    team_id: UUID
    name: str
    description: str | None = None
    member_count: int = 0
    members: list[GlobalTeamMember] = Field(default_factory=list, max_length=MAX_TEAM_MEMBERS)
    computed_at: UTCDateTime = Field(default_factory=utcnow)

    class Settings:
        name = "read_global_teams"
        indexes = [
            IndexModel([("tenant_id", 1), ("_id", 1)], name="tenant_team"),
            IndexModel([("tenant_id", 1), ("members.user_id", 1)], name="tenant_member"),
        ]


class ProjectionCheckpoint(Document):
    """Where a projector stopped in one feed: every entry with `seq <= position` is applied.

    `_id` is `"<projector>:<feed>"`. `position` is a feed `seq` (service/feeds/sequencer.py):
    entries at or below the feed's head never change and no new one appears there, so the projector
    resumes strictly after it and needs no settle window. It moves to the head after a scan
    that found nothing more, so an idle feed is never rescanned.
    """

    id: str  # type: ignore[assignment]
    projector: str
    feed: str
    position: int = 0
    rows_seen: int = 0
    updated_at: UTCDateTime = Field(default_factory=utcnow)

    class Settings:
        name = "projection_checkpoints"
        indexes: list[object] = []  # read and written by `_id` only


__all__ = [
    "CampaignStats",
    "GlobalAnalytics",
    "GlobalCampaign",
    "GlobalTeam",
    "GlobalTeamMember",
    "ProjectionCheckpoint",
    "analytics_key",
]
