"""API shapes shared by every resource: list parameters, pages and the stored-resource envelope."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

T = TypeVar("T")

Cursor = Annotated[
    str, StringConstraints(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_=-]+$")
]


class ListParams(BaseModel):
    """Query parameters every list endpoint takes; resources extend it with typed filters.

    Unknown parameters are refused (422), so nothing but these typed values reaches a query.
    """

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200, description="Page size (max 200).")
    cursor: Cursor | None = Field(default=None, description="`next_cursor` of the previous page.")
    include_deleted: bool = Field(default=False, description="Include soft-deleted items.")
    include_archived: bool = Field(default=False, description="Include archived items.")


class PageParams(BaseModel):
    """Parameters of lists that have no soft delete (history, timelines, events)."""

    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=50, ge=1, le=200, description="Page size (max 200).")
    cursor: Cursor | None = Field(default=None, description="`next_cursor` of the previous page.")


class Page(BaseModel, Generic[T]):
    """One page of a list: `next_cursor` is null on the last page."""

    items: list[T]
    next_cursor: str | None = None


class ResourceRead(BaseModel):
    """Fields every stored resource carries in responses."""

    id: UUID
    tenant_id: UUID
    created_at: datetime
    updated_at: datetime
    created_by: UUID | None = None
    updated_by: UUID | None = None
    is_deleted: bool
    deleted_at: datetime | None = None
    archived_at: datetime | None = None
    version: int


class HistoryChange(BaseModel):
    """One field's change inside a history entry."""

    field: str
    old: object | None = None
    new: object | None = None


class HistoryEntry(BaseModel):
    """One change event of a resource, as `GET /v1/<coll>/{id}/history` lists them."""

    version: int
    event_type: str
    actor_id: UUID | None
    actor_type: str
    occurred_at: datetime
    changes: list[HistoryChange]


class Problem(BaseModel):
    """An RFC 9457 problem document (`application/problem+json`)."""

    model_config = ConfigDict(extra="allow")

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, object]] | None = None


class TimeRange(BaseModel):
    """`since` inclusive, `until` exclusive; a date alone means midnight UTC."""

    model_config = ConfigDict(extra="forbid")

    since: datetime | None = None
    until: datetime | None = None
