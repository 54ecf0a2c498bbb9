"""API shapes of the change feed (`GET /v1/changes`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StringConstraints

from schemas.common import Cursor, HistoryChange

AggregateName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]*$")
]
EventTypeName = Annotated[
    str, StringConstraints(min_length=3, max_length=130, pattern=r"^[a-z][a-z0-9_]*\.[a-z0-9_]+$")
]


class ChangesParams(BaseModel):
    """Query of `GET /v1/changes` (oldest first)."""

    model_config = ConfigDict(extra="forbid")

    after: Cursor | None = Field(
        default=None,
        description="`next_cursor` of the previous page; absent: from the start of the journal.",
    )
    aggregate_type: AggregateName | None = Field(
        default=None, description="Only changes of this kind of resource (e.g. `lead`)."
    )
    event_type: EventTypeName | None = Field(
        default=None, description="Only changes of this type (e.g. `lead.created`)."
    )
    limit: int = Field(default=50, ge=1, le=200, description="Page size (max 200).")


class ChangeRead(BaseModel):
    """One journaled change (secrets redacted; the same visibility as the resource's history)."""

    id: UUID = Field(
        validation_alias=AliasChoices("id", "_id"),  # `_id` when read from storage
        description="The change's id (also the `webhook-id` of its deliveries).",
    )
    aggregate_type: str
    aggregate_id: UUID
    version: int
    event_type: str
    actor_id: UUID | None
    occurred_at: datetime
    changes: list[HistoryChange]


class ChangesPage(BaseModel):
    """A page of the change feed. `next_cursor` is never null: store it and ask again later."""

    items: list[ChangeRead]
    next_cursor: str = Field(
        description="Where to resume: everything up to here was returned (or did not match)."
    )
