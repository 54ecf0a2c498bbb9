"""API shapes of webhook subscriptions and their delivery log."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AliasChoices, BaseModel, Field, StringConstraints

from documents.webhook import MAX_EVENT_TYPES, EventPattern
from schemas.common import IgnoreTenantId, PageParams, PatchBody, ReadView, ResourceRead

_PORT = r"(6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[0-9]{1,4})"
_HOST = r"[A-Za-z0-9._~-]+"  # a name or IPv4 address (IPv6 literals: use a name)
WebhookUrl = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        max_length=2048,
        pattern=rf"^[Hh][Tt][Tt][Pp][Ss]?://{_HOST}(:{_PORT})?([/?#][^\s]*)?$",
    ),
]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=500)]
EVENT_TYPES_DOC = "Changes to send: `lead.created`, `lead.*` (every lead change) or `*`."


class WebhookCreate(IgnoreTenantId):
    """`POST /v1/webhooks` (admin)."""

    url: WebhookUrl = Field(
        description="Where to POST. Outside development: https, public addresses only."
    )
    event_types: list[EventPattern] = Field(
        min_length=1, max_length=MAX_EVENT_TYPES, description=EVENT_TYPES_DOC
    )
    description: Description | None = None


class WebhookUpdate(PatchBody):
    """`PATCH /v1/webhooks/{id}` (admin): re-enabling clears the reason and retries at once."""

    nullable = frozenset({"description"})

    url: WebhookUrl | None = None
    event_types: list[EventPattern] | None = Field(
        default=None, min_length=1, max_length=MAX_EVENT_TYPES, description=EVENT_TYPES_DOC
    )
    description: Description | None = None
    enabled: bool | None = None


class DeliveryStatus(BaseModel):
    """How delivery to an endpoint stands."""

    delivered: int = Field(description="Changes delivered so far.")
    last_success_at: datetime | None
    failing_since: datetime | None = Field(description="Set while the next change keeps failing.")
    attempts: int = Field(description="Failed attempts at the next change.")
    next_attempt_at: datetime | None
    last_status: int | None
    last_error: str | None


class WebhookRead(ResourceRead):
    """A subscription (the secret is never shown again)."""

    url: str
    event_types: list[str]
    description: str | None
    enabled: bool
    disabled_reason: str | None = Field(description="Why delivery was turned off, if it was.")
    delivery: DeliveryStatus


class WebhookCreated(WebhookRead):
    """The new subscription with its signing secret, shown this once."""

    secret: str = Field(description="`whsec_…`: verify deliveries with it (Standard Webhooks).")


class DeliveryRead(BaseModel):
    """One delivery attempt."""

    id: UUID = Field(validation_alias=AliasChoices("id", "_id"))
    change_id: UUID = Field(description="The change delivered (the `webhook-id` header).")
    event_type: str
    attempt: int
    status_code: int | None
    error: str | None
    succeeded: bool
    duration_ms: float
    request_id: str | None = Field(description="X-Request-ID of the request that made the change.")
    created_at: datetime


DELIVERY_VIEW: ReadView[DeliveryRead] = ReadView(DeliveryRead)
"""Stored delivery attempts → `DeliveryRead`, one validation each."""


class DeliveryParams(PageParams):
    """Paging of `GET /v1/webhooks/{id}/deliveries` (newest first)."""
