"""The change journal: one immutable domain event per aggregate version."""

from __future__ import annotations

from typing import Any, Literal
from uuid import UUID

import pymongo
from beanie import Document
from pydantic import BaseModel, Field
from pymongo import IndexModel
from uuid6 import uuid7

from documents.base import UTCDateTime, utcnow


class FieldChange(BaseModel):
    """One field's value before and after a change (secrets show as "***")."""

    field: str
    old: Any = None
    new: Any = None


class DomainEvent(Document):
    """A change to an aggregate root, appended to `domain_events` (never updated or removed)."""

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
            IndexModel([("occurred_at", pymongo.ASCENDING), ("_id", 1)], name="projector_feed"),
        ]
