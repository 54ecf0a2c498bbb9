"""Touchpoint events: immutable facts in `events` (call, text, social, email) and idempotency keys.

Events carry the envelope every stored resource has (`id`, `tenant_id`, `created_at`,
`updated_at`, `is_deleted`, `archived_at`, `version`) so they read like every other resource,
but they are never changed: `version` stays 1 and no journal entry is written for them, since
the event IS the record of what happened (journaling it would copy every event into
`domain_events`). They are not in AGGREGATE_ROOTS for that reason.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from beanie import Document
from pydantic import Field, StringConstraints
from pymongo import IndexModel
from uuid6 import uuid7

from documents.base import RootDocument, SubDocument, Url, UTCDateTime, utcnow
from documents.campaign import SocialPlatform
from documents.consent import Compliance
from documents.indexes import sorted_by

IdempotencyKey = Annotated[str, StringConstraints(min_length=1, max_length=255)]
ProviderName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_.-]+$",
    ),
]
"""The SMS/e-mail/telephony provider (`twilio`, `sendgrid`), stored lower-cased."""
ExternalId = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
"""The provider's message or call id."""
STATUS_HISTORY_MAX = 20  # provider callbacks kept per event (the newest; the status is current)


class EventType(StrEnum):
    """The readable discriminator stored in `type`."""

    call = "call"
    text = "text"
    social = "social"
    email = "email"


class CallOutcome(StrEnum):
    answered = "answered"
    no_answer = "no_answer"
    voicemail = "voicemail"
    busy = "busy"
    wrong_number = "wrong_number"
    failed = "failed"


class Direction(StrEnum):
    inbound = "inbound"
    outbound = "outbound"


class DeliveryStatus(StrEnum):
    queued = "queued"
    sent = "sent"
    delivered = "delivered"
    undelivered = "undelivered"
    failed = "failed"
    received = "received"


class SocialAction(StrEnum):
    view = "view"
    like = "like"
    comment = "comment"
    share = "share"
    message = "message"
    follow = "follow"
    mention = "mention"
    click = "click"


class EmailStatus(StrEnum):
    sent = "sent"
    delivered = "delivered"
    opened = "opened"
    clicked = "clicked"
    replied = "replied"
    bounced = "bounced"
    unsubscribed = "unsubscribed"
    spam = "spam"


class StatusChange(SubDocument):
    """One provider callback: the status it reported, when it happened and when it came."""

    status: str
    occurred_at: UTCDateTime
    received_at: UTCDateTime = Field(default_factory=utcnow)


class TouchpointEvent(RootDocument):
    """A touchpoint between the tenant and a lead within a campaign.

    Outreach (issue 25): `compliance` is set on outbound events recorded for a lead that was
    not contactable; `provider` + `external_id` name the provider's message or call (unique
    per tenant and provider; `provider_hash` is the creating body's hash, to tell a replay
    from a clash); `status_history` keeps the newest provider callbacks.
    """

    aggregate_type: ClassVar[str] = "event"

    type: EventType
    campaign_id: UUID
    lead_id: UUID
    user_id: UUID | None = None  # the agent who made the touchpoint, if a person did
    occurred_at: UTCDateTime = Field(default_factory=utcnow)
    notes: Annotated[str, StringConstraints(max_length=5000)] | None = None
    compliance: Compliance | None = None
    provider: ProviderName | None = None
    external_id: ExternalId | None = None
    provider_hash: str | None = None
    status_history: list[StatusChange] = Field(default_factory=list, max_length=STATUS_HISTORY_MAX)

    class Settings:
        name = "events"
        is_root = True
        indexes = [
            IndexModel([("tenant_id", 1), ("is_deleted", 1), ("_id", -1)], name="tenant_list"),
            # The lead timeline (and the list by lead): newest first by occurred_at, ties by _id.
            IndexModel(
                [("tenant_id", 1), ("lead_id", 1), ("occurred_at", -1), ("_id", -1)],
                name="tenant_lead_timeline",
            ),
            # `GET /v1/events` (newest `occurred_at` first) by campaign or by type, with an
            # optional time range on the sort field itself (equality → sort → range).
            IndexModel(
                [
                    ("tenant_id", 1),
                    ("is_deleted", 1),
                    ("campaign_id", 1),
                    ("occurred_at", 1),
                    ("_id", 1),
                ],
                name="tenant_campaign_time",
            ),
            IndexModel(
                [("tenant_id", 1), ("is_deleted", 1), ("type", 1), ("occurred_at", 1), ("_id", 1)],
                name="tenant_type_time",
            ),
            # Sort paths of `GET /v1/events?sort=` (`occurred_at` also serves a time range).
            sorted_by("occurred_at"),
            sorted_by("created_at"),
            sorted_by("updated_at"),
            # The GlobalCampaign projector: a user's touchpoints and last activity.
            IndexModel(
                [("tenant_id", 1), ("user_id", 1), ("occurred_at", -1)], name="tenant_user_time"
            ),
            # -- outreach (issue 25) --
            # Provider callbacks find their event by (provider, external_id). Not unique: a
            # sharded `events` cannot enforce a key without `_id`; creates are serialised per
            # pair through an idempotency claim instead (service/events.py).
            IndexModel(
                [("tenant_id", 1), ("provider", 1), ("external_id", 1)],
                partialFilterExpression={"external_id": {"$type": "string"}},
                name="outreach_provider_external",
            ),
            # `GET /v1/events?user_id=`, newest `occurred_at` first.
            IndexModel(
                [
                    ("tenant_id", 1),
                    ("is_deleted", 1),
                    ("user_id", 1),
                    ("occurred_at", 1),
                    ("_id", 1),
                ],
                name="outreach_user_time",
            ),
        ]


class CallEvent(TouchpointEvent):
    type: Literal[EventType.call] = EventType.call  # type: ignore[assignment]
    direction: Direction = Direction.outbound
    duration_seconds: int = Field(default=0, ge=0, le=24 * 3600)
    outcome: CallOutcome
    recording_url: Url | None = None


class TextEvent(TouchpointEvent):
    type: Literal[EventType.text] = EventType.text  # type: ignore[assignment]
    direction: Direction = Direction.outbound
    body: Annotated[str, StringConstraints(max_length=1600)]
    delivery_status: DeliveryStatus = DeliveryStatus.sent


class SocialEvent(TouchpointEvent):
    type: Literal[EventType.social] = EventType.social  # type: ignore[assignment]
    platform: SocialPlatform
    action: SocialAction
    url: Url | None = None


class EmailEvent(TouchpointEvent):
    type: Literal[EventType.email] = EventType.email  # type: ignore[assignment]
    subject: Annotated[str, StringConstraints(max_length=998)] | None = None
    status: EmailStatus = EmailStatus.sent


EVENT_CLASSES: dict[EventType, type[TouchpointEvent]] = {
    EventType.call: CallEvent,
    EventType.text: TextEvent,
    EventType.social: SocialEvent,
    EventType.email: EmailEvent,
}


class IdempotencyRecord(Document):
    """A used `Idempotency-Key`: the request's body hash and, once done, the answer it got.

    Inserted BEFORE the work (the unique index on (tenant_id, key) picks one winner among
    concurrent retries); `event_id` is chosen up front so a takeover after a crash can never
    create a second event. MongoDB's TTL monitor removes records after `expires_at`.
    """

    id: UUID = Field(default_factory=uuid7)  # type: ignore[assignment]
    tenant_id: UUID
    key: IdempotencyKey
    request_hash: str  # SHA-256 of the body as canonical JSON
    event_id: UUID
    status_code: int | None = None  # None while the winner is still working
    response: dict[str, Any] | None = None
    created_at: UTCDateTime = Field(default_factory=utcnow)
    expires_at: UTCDateTime

    class Settings:
        name = "idempotency_keys"
        indexes = [
            IndexModel([("tenant_id", 1), ("key", 1)], unique=True, name="tenant_key_unique"),
            # expireAfterSeconds=0: each record expires at its own `expires_at`, which the
            # service sets from IDEMPOTENCY_TTL_HOURS (≥ 24 h) at write time.
            IndexModel([("expires_at", 1)], expireAfterSeconds=0, name="ttl"),
        ]


__all__ = [
    "EVENT_CLASSES",
    "CallEvent",
    "CallOutcome",
    "DeliveryStatus",
    "Direction",
    "EmailEvent",
    "EmailStatus",
    "EventType",
    "IdempotencyRecord",
    "SocialAction",
    "SocialEvent",
    "StatusChange",
    "TextEvent",
    "TouchpointEvent",
]
