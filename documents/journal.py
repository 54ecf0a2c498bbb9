"""The change journal: one immutable domain event per aggregate version, and the feeds' heads.

Every journal entry carries `seq`, its position in the journal's total order, assigned by the
sequencer (service/feeds/sequencer.py) after the entry became visible: `null` (or missing) until
then. Consumers (projectors, `GET /v1/changes`, webhook delivery) read by `seq`, never by `_id`.
"""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

from beanie import Document
from bson import Binary
from pydantic import BaseModel, Field, field_validator
from pydantic_core import to_jsonable_python
from pymongo import IndexModel
from uuid6 import uuid7

from documents.base import UTCDateTime, utcnow


class FieldChange(BaseModel):
    """One field's value before and after a change (secrets show as "***")."""

    field: str
    old: Any = None
    new: Any = None

    @field_validator("old", "new", mode="before")
    @classmethod
    def _json_mode(cls, value: Any) -> Any:
        # Stored with their BSON types (dates, UUIDs: service/core/journal.py `typed_changes`);
        # read back in the JSON mode the journal compares and replays in.
        if isinstance(value, Binary) and value.subtype == 4:
            return str(value.as_uuid())
        if isinstance(value, str | int | float | bool) or value is None:
            return value
        return to_jsonable_python(value)


class DomainEvent(Document):
    """A change to an aggregate root, appended to `domain_events` (never updated or removed).

    The one field ever set after the insert is `seq` (by the sequencer, once).
    """

    id: UUID = Field(default_factory=uuid7)  # type: ignore[assignment]
    tenant_id: UUID
    aggregate_type: str
    aggregate_id: UUID
    version: int = Field(ge=1)
    event_type: str
    actor_id: UUID | None = None
    actor_type: Literal["user", "api_key", "system"] = "user"
    occurred_at: UTCDateTime = Field(default_factory=utcnow)
    changes: list[FieldChange] = Field(default_factory=list)
    # The X-Request-ID of the request that made the change, when there was one (webhook
    # delivery logs it next to each attempt).
    request_id: str | None = None
    seq: int | None = None

    class Settings:
        name = "domain_events"
        indexes = [
            # One event per version: concurrent writers of the same version cannot both land.
            IndexModel(
                [("aggregate_id", 1), ("version", 1)], unique=True, name="aggregate_version"
            ),
            IndexModel(
                [("tenant_id", 1), ("aggregate_type", 1), ("occurred_at", 1), ("_id", 1)],
                name="tenant_type_time",
            ),
            # The audit log pages newest first by (occurred_at, _id): `_id` ends the keys so
            # the keyset sort needs no in-memory stage.
            IndexModel(
                [("tenant_id", 1), ("actor_id", 1), ("occurred_at", -1), ("_id", -1)],
                name="tenant_actor_time",
            ),
            IndexModel([("tenant_id", 1), ("occurred_at", -1), ("_id", -1)], name="tenant_time"),
            # Projectors read one or a few aggregate types across tenants in `seq` order.
            IndexModel([("aggregate_type", 1), ("seq", 1)], name="type_seq"),
            # `GET /v1/changes` and webhook delivery: the tenant's journal in `seq` order,
            # optionally of one aggregate type or one event type.
            IndexModel([("tenant_id", 1), ("seq", 1)], name="tenant_seq"),
            IndexModel(
                [("tenant_id", 1), ("aggregate_type", 1), ("seq", 1)], name="tenant_type_seq"
            ),
            IndexModel([("tenant_id", 1), ("event_type", 1), ("seq", 1)], name="tenant_event_seq"),
            # (`seq_pending` and the unique `seq_unique` are created by the sequencer on every
            # feed, this one included: service/feeds/sequencer.py FEEDS.)
        ]


class FeedHead(Document):
    """How far a feed is sequenced: every entry with `seq <= head` exists and never changes.

    `_id` is the feed (collection) name. Only the sequencer moves it, forward, after checking
    that the whole range below it is assigned (service/feeds/sequencer.py).
    """

    id: str  # type: ignore[assignment]
    head: int = 0
    updated_at: UTCDateTime = Field(default_factory=utcnow)

    class Settings:
        name = "feed_heads"
        indexes: list[object] = []  # read and written by `_id` only


__all__ = ["DomainEvent", "FeedHead", "FieldChange"]
