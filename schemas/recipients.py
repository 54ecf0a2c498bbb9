"""API shapes of a campaign's recipient queue: `/v1/campaigns/{id}/recipients` and `/claim`."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from documents.campaign import RecipientState
from schemas.common import IgnoreTenantId, Page, PageParams
from schemas.leads import LeadRead

MAX_CLAIM = 100
DEFAULT_LEASE_SECONDS = 300
MAX_LEASE_SECONDS = 3600


class RecipientRead(BaseModel):
    """One attached lead's place in the campaign's queue."""

    lead_id: UUID
    state: RecipientState = RecipientState.queued
    attempts: int = 0
    last_attempt_at: datetime | None = None
    next_attempt_at: datetime | None = Field(
        default=None, description="When it is due again (null: now)."
    )


class RecipientFilters(PageParams):
    """`GET /v1/campaigns/{id}/recipients`: newest lead first, optionally in one `state`."""

    model_config = ConfigDict(extra="forbid")

    state: RecipientState | None = Field(default=None, description="Only recipients in it.")


class RecipientPage(Page[RecipientRead]):
    """A page of recipients, newest lead first."""


class ClaimRequest(IgnoreTenantId):
    """`POST /v1/campaigns/{id}/recipients/claim`: how many recipients, for how long."""

    limit: int = Field(ge=1, le=MAX_CLAIM, examples=[10])
    lease_seconds: int = Field(
        default=DEFAULT_LEASE_SECONDS,
        ge=10,
        le=MAX_LEASE_SECONDS,
        description="A claim not followed by an event returns to the queue after this.",
    )


class ClaimedRecipient(BaseModel):
    lead_id: UUID
    attempts: int
    claimed_until: datetime
    lead: LeadRead  # type: ignore[valid-type]


class ClaimResult(BaseModel):
    """The recipients claimed for the caller (fewer than `limit` when fewer are due)."""

    items: list[ClaimedRecipient]
