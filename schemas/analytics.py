"""API shapes of analytics, the audit log and the read-model endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from documents.base import ISODateTime
from documents.tenant import TimeZoneName
from schemas.common import HistoryEntry, PageParams

Interval = Literal["day", "week", "month"]


class CampaignAnalyticsRead(BaseModel):
    """`GET /v1/analytics/campaigns/{id}`: the contract's campaign figures."""

    campaign_id: UUID
    leads_total: int
    events_total: int
    events_by_type: dict[str, int] = Field(description="Touchpoints per type, every type present.")
    leads_contacted: int = Field(description="The campaign's leads with at least one event in it.")
    contact_rate: float = Field(description="leads_contacted / leads_total (0 with no leads).")
    violations: int = Field(
        default=0, description="Outbound touchpoints recorded when the lead was not contactable."
    )


class OverviewParams(BaseModel):
    """Query of `GET /v1/analytics/overview` (a date alone means midnight UTC)."""

    model_config = ConfigDict(extra="forbid")

    since: ISODateTime | None = Field(
        default=None, description="Inclusive start; default: 30 days/12 weeks/12 months back."
    )
    until: ISODateTime | None = Field(
        default=None, description="Exclusive end; default: the next midnight UTC."
    )
    interval: Interval = Field(default="day", description="Bucket size (weeks start on Monday).")
    tz: TimeZoneName | None = Field(
        default=None,
        description="IANA zone the buckets are local days of (and naive `since`/`until` are "
        "read in); default: the tenant's `time_zone`, else UTC.",
    )


class OverviewBucket(BaseModel):
    """Touchpoints of one UTC bucket, named by its first day."""

    bucket: str = Field(description="YYYY-MM-DD of the bucket's first day.")
    call: int
    text: int
    social: int
    email: int


class OverviewRead(BaseModel):
    """`GET /v1/analytics/overview`: every bucket of the range, empty ones with zeros."""

    series: list[OverviewBucket]


AggregateType = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
]


class AuditParams(PageParams):
    """Filters of `GET /v1/audit` (newest first)."""

    actor_id: UUID | None = Field(default=None, description="Only changes made by this actor.")
    aggregate_type: AggregateType | None = Field(
        default=None, description="Only this kind of resource (e.g. `campaign`, `user`)."
    )
    aggregate_id: UUID | None = Field(default=None, description="Only this resource.")
    since: ISODateTime | None = Field(default=None, description="Inclusive.")
    until: ISODateTime | None = Field(default=None, description="Exclusive.")


class AuditEntry(HistoryEntry):
    """One journaled change of any resource of the tenant."""

    id: UUID
    aggregate_type: str
    aggregate_id: UUID


class GlobalCampaignParams(BaseModel):
    """Whose campaign summary: the caller's by default; another user's needs admin."""

    model_config = ConfigDict(extra="forbid")

    user_id: UUID | None = None


class GlobalCampaignRead(BaseModel):
    """A user's campaigns by type and status, their touchpoints and last activity."""

    user_id: UUID
    campaigns_total: int
    by_type: dict[str, int]
    by_status: dict[str, int]
    by_type_and_status: dict[str, dict[str, int]]
    events_total: int
    last_campaign_change_at: datetime | None
    last_event_at: datetime | None
    last_activity_at: datetime | None
    computed_at: datetime | None


class CampaignStatsRead(BaseModel):
    """The `CampaignStats` read model of one campaign."""

    campaign_id: UUID
    user_id: UUID | None
    type: str
    status: str
    name: str
    leads_total: int
    events_total: int
    events_by_type: dict[str, int]
    leads_contacted: int
    contact_rate: float
    last_event_at: datetime | None
    computed_at: datetime


class DailyParams(BaseModel):
    """Range of `GET /v1/read-models/analytics` (at most 366 days)."""

    model_config = ConfigDict(extra="forbid")

    since: ISODateTime | None = Field(default=None, description="Inclusive; default 30 days back.")
    until: ISODateTime | None = Field(default=None, description="Exclusive; default next midnight.")


def _day_name(value: object) -> object:
    return value.strftime("%Y-%m-%d") if isinstance(value, datetime) else value


class DailyRow(BaseModel):
    """Touchpoints of one UTC day and channel."""

    # Stored as a BSON date (midnight UTC), answered as the day's "YYYY-MM-DD".
    day: Annotated[str, BeforeValidator(_day_name)]
    channel: str
    events: int
    leads_touched: int


class DailyRead(BaseModel):
    """The tenant's `GlobalAnalytics` rows in the range, by day then channel (days with data)."""

    items: list[DailyRow]


class GlobalTeamMemberRead(BaseModel):
    """A team member with the user's names."""

    user_id: UUID
    role: str
    status: str
    joined_at: datetime | None
    username: str | None
    first_name: str | None
    last_name: str | None
    display_name: str | None


class GlobalTeamRead(BaseModel):
    """The `GlobalTeam` read model: a team with its members' names, in one document."""

    team_id: UUID
    name: str
    description: str | None
    member_count: int
    members: list[GlobalTeamMemberRead]
    computed_at: datetime
