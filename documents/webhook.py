"""Webhook subscriptions, their delivery state and the log of delivery attempts.

* `WebhookEndpoint` (`webhooks`, an aggregate root: versioned, journaled, soft-deleted): where
  to send which changes. The signing secret is Fernet-encrypted and never journaled.
* `WebhookState` (`webhook_states`, one per endpoint, operational, not journaled): the
  endpoint's durable position in the journal (`seq`, service/feeds/sequencer.py) and its retry
  state. Kept apart from the endpoint so delivery bookkeeping neither bumps its version nor
  floods the journal (a journaled position would itself be a change to deliver).
* `WebhookDelivery` (`webhook_deliveries`, append-only, expires after 30 days): one row per
  attempt, for `GET /v1/webhooks/{id}/deliveries`; a growing list, so its own collection.
"""

from __future__ import annotations

from typing import Annotated, ClassVar
from uuid import UUID

from beanie import Document
from pydantic import Field, StringConstraints
from pymongo import IndexModel
from uuid6 import uuid7

from documents.base import RootDocument, UTCDateTime, utcnow

MAX_EVENT_TYPES = 20
DELIVERY_LOG_DAYS = 30

EventPattern = Annotated[
    str,
    StringConstraints(
        min_length=1, max_length=130, pattern=r"^(\*|[a-z][a-z0-9_]*\.(\*|[a-z0-9_]+))$"
    ),
]
"""`lead.created`, `lead.*` or `*`."""


class WebhookEndpoint(RootDocument):
    """A subscription: POST the matching changes of the tenant to `url`, signed."""

    aggregate_type: ClassVar[str] = "webhook"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"secret_encrypted"})

    url: Annotated[str, StringConstraints(max_length=2048)]
    event_types: list[EventPattern] = Field(min_length=1, max_length=MAX_EVENT_TYPES)
    description: Annotated[str, StringConstraints(max_length=500)] | None = None
    enabled: bool = True
    disabled_reason: Annotated[str, StringConstraints(max_length=500)] | None = None
    secret_encrypted: str

    class Settings:
        name = "webhooks"
        indexes = [
            IndexModel([("tenant_id", 1), ("is_deleted", 1), ("_id", -1)], name="tenant_list"),
            # The dispatcher: live, enabled endpoints of every tenant.
            IndexModel([("enabled", 1), ("is_deleted", 1), ("_id", 1)], name="deliverable"),
        ]


class WebhookState(Document):
    """Where an endpoint's delivery stands: everything up to `position` is delivered."""

    id: UUID  # type: ignore[assignment]  # the endpoint's id
    tenant_id: UUID
    position: int = 0  # journal `seq` of the last change delivered (or skipped as unmatched)
    attempt: int = 0  # failed attempts at the change after `position`
    next_attempt_at: UTCDateTime | None = None
    failing_since: UTCDateTime | None = None
    last_status: int | None = None
    last_error: str | None = None
    last_success_at: UTCDateTime | None = None
    delivered: int = 0

    class Settings:
        name = "webhook_states"
        indexes: list[object] = []  # by `_id` only


class WebhookDelivery(Document):
    """One delivery attempt of one change to one endpoint."""

    id: UUID = Field(default_factory=uuid7)  # type: ignore[assignment]
    tenant_id: UUID
    endpoint_id: UUID
    change_id: UUID
    event_type: str
    seq: int
    attempt: int
    status_code: int | None = None
    error: str | None = None
    succeeded: bool
    duration_ms: float
    request_id: str | None = None  # the X-Request-ID of the request that made the change
    created_at: UTCDateTime = Field(default_factory=utcnow)

    class Settings:
        name = "webhook_deliveries"
        indexes = [
            IndexModel([("tenant_id", 1), ("endpoint_id", 1), ("_id", -1)], name="tenant_endpoint"),
            IndexModel(
                [("created_at", 1)], expireAfterSeconds=DELIVERY_LOG_DAYS * 86400, name="ttl"
            ),
        ]


__all__ = ["EventPattern", "WebhookDelivery", "WebhookEndpoint", "WebhookState"]
