"""API shapes of touchpoint events: polymorphic create/read on `type` and list filters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints, model_validator

from documents.base import Url, UTCDateTime
from documents.campaign import SocialPlatform
from documents.event import (
    STATUS_HISTORY_MAX,
    CallOutcome,
    DeliveryStatus,
    Direction,
    EmailStatus,
    EventType,
    ExternalId,
    ProviderName,
    SocialAction,
)
from schemas.common import (
    Counted,
    CountedPage,
    IgnoreTenantId,
    Page,
    PageParams,
    ReadView,
    ResourceRead,
)
from schemas.consent import ComplianceRead

Notes = Annotated[str, StringConstraints(max_length=5000)]


class _CallFields(BaseModel):
    direction: Direction = Direction.outbound
    duration_seconds: int = Field(default=0, ge=0, le=24 * 3600)
    outcome: CallOutcome
    recording_url: Url | None = None


class _TextFields(BaseModel):
    direction: Direction = Direction.outbound
    body: Annotated[str, StringConstraints(max_length=1600)]
    delivery_status: DeliveryStatus = DeliveryStatus.sent


class _SocialFields(BaseModel):
    platform: SocialPlatform
    action: SocialAction
    url: Url | None = None


class _EmailFields(BaseModel):
    subject: Annotated[str, StringConstraints(max_length=998)] | None = None
    status: EmailStatus = EmailStatus.sent


class _EventCreateBase(IgnoreTenantId):
    campaign_id: UUID = Field(description="A campaign of the caller's tenant (else 422).")
    lead_id: UUID = Field(
        description="A live lead of the caller's tenant attached to the campaign (else 422)."
    )
    occurred_at: UTCDateTime | None = Field(
        default=None, description="When it happened (defaults to now; not in the future)."
    )
    notes: Notes | None = None
    provider: ProviderName | None = Field(
        default=None, description="The SMS/e-mail/telephony provider.", examples=["twilio"]
    )
    external_id: ExternalId | None = Field(
        default=None,
        description="The provider's message or call id, unique per tenant and provider: the "
        "same pair and body again answers the original event, another body → 409.",
        examples=["SM1f0e8a2c"],
    )

    @model_validator(mode="after")
    def _pair(self) -> Any:
        if (self.provider is None) != (self.external_id is None):
            raise ValueError("provider and external_id go together")
        return self


class CallEventCreate(_EventCreateBase, _CallFields):
    type: Literal[EventType.call]


class TextEventCreate(_EventCreateBase, _TextFields):
    type: Literal[EventType.text]


class SocialEventCreate(_EventCreateBase, _SocialFields):
    type: Literal[EventType.social]


class EmailEventCreate(_EventCreateBase, _EmailFields):
    type: Literal[EventType.email]


EventCreate = Annotated[
    CallEventCreate | TextEventCreate | SocialEventCreate | EmailEventCreate,
    Field(discriminator="type"),
]
"""`POST /v1/events`: the subtype is chosen by `type` (an unknown one → 422)."""


class StatusChangeRead(BaseModel):
    status: str
    occurred_at: datetime
    received_at: datetime


class _EventReadBase(ResourceRead):
    campaign_id: UUID
    lead_id: UUID
    user_id: UUID | None = None
    occurred_at: datetime
    notes: str | None = None
    compliance: ComplianceRead | None = Field(
        default=None, description="Set when the lead was not contactable (a violation)."
    )
    provider: str | None = None
    external_id: str | None = None
    status_history: list[StatusChangeRead] = Field(
        default_factory=list,
        description=f"Provider callbacks, oldest first (the newest {STATUS_HISTORY_MAX}).",
    )


class CallEventRead(_EventReadBase, _CallFields):
    type: Literal[EventType.call]


class TextEventRead(_EventReadBase, _TextFields):
    type: Literal[EventType.text]


class SocialEventRead(_EventReadBase, _SocialFields):
    type: Literal[EventType.social]


class EmailEventRead(_EventReadBase, _EmailFields):
    type: Literal[EventType.email]


AnyEventRead = CallEventRead | TextEventRead | SocialEventRead | EmailEventRead
EventRead = Annotated[AnyEventRead, Field(discriminator="type")]
EVENT_VIEW: ReadView[AnyEventRead] = ReadView(EventRead)
"""Stored events (raw or documents) → `EventRead`, one validation each."""
to_event_read = EVENT_VIEW.document
"""The API view of a stored event document."""


EVENT_SORT_FIELDS: dict[str, str] = {
    "occurred_at": "occurred_at",
    "created_at": "created_at",
    "updated_at": "updated_at",
}
"""`sort` names of `GET /v1/events` → stored fields (each has its index on `events`)."""

EventSort = Literal[
    "occurred_at", "-occurred_at", "created_at", "-created_at", "updated_at", "-updated_at"
]


class EventFilters(PageParams, Counted):
    """`GET /v1/events` query parameters (also the `filters` of a saved event search).

    `since` is inclusive and `until` exclusive, on `occurred_at`; a date alone is midnight UTC.
    """

    campaign_id: UUID | None = Field(default=None, description="Only this campaign's events.")
    lead_id: UUID | None = Field(default=None, description="Only this lead's events.")
    type: EventType | None = Field(default=None, description="Only events of this type.")
    user_id: UUID | None = Field(default=None, description="Only this user's touchpoints.")
    since: UTCDateTime | None = Field(default=None, description="`occurred_at` ≥ this (inclusive).")
    until: UTCDateTime | None = Field(default=None, description="`occurred_at` < this (exclusive).")
    sort: EventSort | None = Field(
        default=None,
        description=(
            "Order by this field, ascending, or descending with a leading `-`; ties are "
            "broken by `id` in the same direction. Default: `-occurred_at` (newest first)."
        ),
    )

    @model_validator(mode="after")
    def _range(self) -> Any:
        if self.since and self.until and self.until < self.since:
            raise ValueError("until must not be before since")
        return self


class TimelineParams(PageParams):
    """`GET /v1/leads/{id}/events` query parameters: newest `occurred_at` first."""


class EventPage(CountedPage[EventRead]):  # type: ignore[valid-type]
    """A page of events; `total` only with `count=true`."""


class TimelinePage(Page[EventRead]):  # type: ignore[valid-type]
    """A page of a lead's touchpoints, newest `occurred_at` first."""


class EventStatusUpdate(IgnoreTenantId):
    """`POST /v1/events/status`: a provider callback about the event it names."""

    provider: ProviderName = Field(examples=["twilio"])
    external_id: ExternalId = Field(examples=["SM1f0e8a2c"])
    status: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=32)
    ] = Field(
        description="A status of the event's channel: text `delivery_status` "
        "(queued, sent, delivered, undelivered, failed), e-mail `status` (sent, "
        "delivered, bounced, opened, clicked, replied, unsubscribed, spam), call `outcome`.",
        examples=["delivered"],
    )
    occurred_at: UTCDateTime | None = Field(
        default=None, description="When the provider saw it (defaults to now)."
    )
