"""Campaigns: one polymorphic root in `campaigns` (call, social, text, email) and its lead links.

A campaign's leads are NOT an array in the campaign: membership grows without bound, so each
link is a `CampaignLead` row in `campaign_leads` (unique per tenant, campaign and lead). The
campaign keeps only `lead_count`, its live leads, adjusted whenever links change or one of its
leads is deleted, restored or merged (each link's `counted` says whether it is included).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from beanie import Document
from pydantic import Field, StringConstraints
from pymongo import IndexModel
from uuid6 import uuid7

from documents.base import (
    Email,
    Name,
    Phone,
    RootDocument,
    Segmented,
    ShortText,
    SubDocument,
    Url,
    UTCDateTime,
    utcnow,
)
from documents.indexes import list_indexes
from documents.migrations import Upcaster, Versioned

Script = Annotated[str, StringConstraints(max_length=20_000)]
MAX_INTEGRATIONS = 20
MAX_SENDERS = 20
DEFAULT_RETRY_MINUTES = 60


class CampaignType(StrEnum):
    """The readable discriminator stored in `type`."""

    call = "call"
    social = "social"
    text = "text"
    email = "email"


class CampaignStatus(StrEnum):
    """Lifecycle of a campaign; see `STATUS_TRANSITIONS`."""

    draft = "draft"
    active = "active"
    paused = "paused"
    completed = "completed"


# Allowed moves (staying in the same status is always a no-op). `completed` is final.
STATUS_TRANSITIONS: dict[CampaignStatus, frozenset[CampaignStatus]] = {
    CampaignStatus.draft: frozenset({CampaignStatus.active, CampaignStatus.completed}),
    CampaignStatus.active: frozenset({CampaignStatus.paused, CampaignStatus.completed}),
    CampaignStatus.paused: frozenset({CampaignStatus.active, CampaignStatus.completed}),
    CampaignStatus.completed: frozenset(),
}


class SocialPlatform(StrEnum):
    facebook = "facebook"
    instagram = "instagram"
    linkedin = "linkedin"
    twitter = "twitter"
    tiktok = "tiktok"
    youtube = "youtube"


class IntegrationRef(SubDocument):
    """A bounded reference to an integration (its own document in `integrations`)."""

    integration_id: UUID
    provider: ShortText | None = None
    external_id: ShortText | None = None


class CampaignBase(RootDocument, Segmented):
    """Fields every campaign has; the subtypes add their channel's fields."""

    aggregate_type: ClassVar[str] = "campaign"

    type: CampaignType
    name: Name
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    status: CampaignStatus = CampaignStatus.draft
    user_id: UUID | None = None  # the owning user (None when an API key created it)
    starts_at: UTCDateTime | None = None
    ends_at: UTCDateTime | None = None
    integrations: list[IntegrationRef] = Field(default_factory=list, max_length=MAX_INTEGRATIONS)
    # Live leads linked in campaign_leads; adjusted (never recounted) whenever links or a
    # lead's liveness change (service/campaigns.py).
    lead_count: int = Field(default=0, ge=0)
    # Outreach (issue 25): how long after an unanswered attempt a recipient is due again.
    retry_after_minutes: int = Field(default=DEFAULT_RETRY_MINUTES, ge=1, le=30 * 24 * 60)
    # When a lead was last detached: journals a detach that leaves `lead_count` unchanged.
    leads_changed_at: UTCDateTime | None = None

    class Settings:
        name = "campaigns"
        is_root = True
        indexes = [
            # `GET /v1/campaigns`: its filters and its `sort` fields.
            *list_indexes(
                filters=("type", "status", "tags"),
                sorts=("status", "created_at", "updated_at", "name", "starts_at"),
            ),
            IndexModel([("tenant_id", 1), ("user_id", 1), ("_id", -1)], name="tenant_owner"),
        ]


class CallCampaign(CampaignBase):
    """Outbound calling: scripts and the caller ids to dial from."""

    type: Literal[CampaignType.call] = CampaignType.call  # type: ignore[assignment]
    script: Script | None = None
    voicemail_script: Script | None = None
    caller_ids: list[Phone] = Field(default_factory=list, max_length=MAX_SENDERS)
    max_attempts: int = Field(default=3, ge=1, le=20)


class SocialCampaign(CampaignBase):
    """Social posting: where to post and what."""

    type: Literal[CampaignType.social] = CampaignType.social  # type: ignore[assignment]
    platforms: list[SocialPlatform] = Field(default_factory=list, max_length=len(SocialPlatform))
    post_content: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    media_urls: list[Url] = Field(default_factory=list, max_length=10)
    hashtags: list[ShortText] = Field(default_factory=list, max_length=30)


class TextCampaign(CampaignBase):
    """SMS: the message template and the numbers it is sent from."""

    type: Literal[CampaignType.text] = CampaignType.text  # type: ignore[assignment]
    message_template: Annotated[str, StringConstraints(max_length=1600)] | None = None
    sender_numbers: list[Phone] = Field(default_factory=list, max_length=MAX_SENDERS)


class EmailCampaign(CampaignBase):
    """Email: subject, template and sender."""

    type: Literal[CampaignType.email] = CampaignType.email  # type: ignore[assignment]
    subject: Annotated[str, StringConstraints(max_length=998)] | None = None
    template: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    from_name: ShortText | None = None
    from_email: Email | None = None
    reply_to: Email | None = None


CAMPAIGN_CLASSES: dict[CampaignType, type[CampaignBase]] = {
    CampaignType.call: CallCampaign,
    CampaignType.social: SocialCampaign,
    CampaignType.text: TextCampaign,
    CampaignType.email: EmailCampaign,
}


class RecipientState(StrEnum):
    """Where a campaign's lead stands in the recipient queue (service/recipients.py)."""

    queued = "queued"
    claimed = "claimed"
    attempted = "attempted"
    reached = "reached"
    exhausted = "exhausted"
    opted_out = "opted_out"


def with_recipient_state(stored: dict[str, Any]) -> dict[str, Any]:
    """Upcaster 1 → 2 of a link: a queued recipient without attempts."""
    return {"state": "queued", "attempts": 0, **stored}


class CampaignLead(Document, Versioned):
    """One lead attached to one campaign: the campaign ⟶ [n] lead link, one row per pair.

    Not an aggregate root: rows are only written after the campaign and leads were resolved in
    the caller's tenant through the repository, and the change is journaled on the campaign.
    The link is also the lead's row in the campaign's recipient queue (`state`, `attempts`,
    `last_attempt_at`, `next_attempt_at` and a claim's lease `claimed_until`).
    """

    id: UUID = Field(default_factory=uuid7)  # type: ignore[assignment]
    tenant_id: UUID
    campaign_id: UUID
    lead_id: UUID
    added_at: UTCDateTime = Field(default_factory=utcnow)
    added_by: UUID | None = None
    # -- recipient queue (issue 25) --
    state: RecipientState = RecipientState.queued
    attempts: int = Field(default=0, ge=0)
    last_attempt_at: UTCDateTime | None = None
    next_attempt_at: UTCDateTime | None = None  # None: due now
    claimed_until: UTCDateTime | None = None
    claimed_by: UUID | None = None
    schema_version: int = 2
    upcasters: ClassVar[dict[int, Upcaster]] = {1: with_recipient_state}
    # Whether the campaign's `lead_count` includes this link (its lead is live); flipped once
    # per liveness change, so a retried change is not counted twice. Absent on links written
    # before it existed: they count when their lead is live.
    counted: bool = True
    # Whether the lead has a touchpoint in this campaign; with `counted` it makes the link one
    # of the campaign's `leads_contacted` (service/campaign_tallies.py). Set once, never unset.
    contacted: bool = False
    # The lead's `is_archived` and the lead `version` it was copied at (issue 23): with
    # `counted` it makes the members' `count=true` a count of index keys. Every copy is
    # conditional on a newer version, so the newest lead state wins whatever the order of
    # concurrent writers (service/campaigns.py `sync_link_states`). Absent (null) on links
    # written before it existed, until `migrate` backfills them.
    archived: bool | None = None
    lead_version: int | None = None

    class Settings:
        name = "campaign_leads"
        projection = None  # whole documents: the upcaster sees what it fills in
        indexes = [
            # The pair is unique; the same index serves "this campaign's leads, newest lead first"
            # (lead ids are UUIDv7, so lead_id order is lead creation order).
            IndexModel(
                [("tenant_id", 1), ("campaign_id", 1), ("lead_id", -1)],
                unique=True,
                name="campaign_lead_unique",
            ),
            IndexModel([("tenant_id", 1), ("lead_id", 1)], name="tenant_lead"),
            # The members' `count=true`: live and unarchived links counted from the keys alone.
            IndexModel(
                [("tenant_id", 1), ("campaign_id", 1), ("archived", 1), ("counted", 1)],
                name="campaign_member_state",
            ),
            # `$lookup` joins on one foreign field (no tenant prefix): the analytics pipeline
            # joins on campaign_id, the CampaignStats projector on lead_id.
            IndexModel([("campaign_id", 1)], name="lookup_campaign"),
            IndexModel([("lead_id", 1)], name="lookup_lead"),
            # -- recipient queue (issue 25) --
            # `GET .../recipients?state=` (newest lead first) and the claim's due recipients.
            IndexModel(
                [("tenant_id", 1), ("campaign_id", 1), ("state", 1), ("lead_id", -1)],
                name="recipient_state",
            ),
        ]


__all__ = [
    "CAMPAIGN_CLASSES",
    "STATUS_TRANSITIONS",
    "CallCampaign",
    "CampaignBase",
    "CampaignLead",
    "CampaignStatus",
    "CampaignType",
    "EmailCampaign",
    "IntegrationRef",
    "RecipientState",
    "SocialCampaign",
    "SocialPlatform",
    "TextCampaign",
]
