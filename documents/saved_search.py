"""Saved searches: a named list query (`resource` + that list's filters) in `saved_searches`."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, ClassVar
from uuid import UUID

from pydantic import Field, StringConstraints
from pymongo import IndexModel

from documents.base import Name, RootDocument

MAX_FILTERS = 30

FilterName = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,63}$")]


class SavedSearchResource(StrEnum):
    """The list endpoints a search can target."""

    leads = "leads"
    campaigns = "campaigns"
    events = "events"


class SavedSearch(RootDocument):
    """A user's saved list query; `filters` are validated against the resource's filter model."""

    aggregate_type: ClassVar[str] = "saved_search"

    user_id: UUID | None = None
    name: Name
    resource: SavedSearchResource
    # JSON-mode values of the resource's filter model (without paging): re-validated on run.
    filters: dict[FilterName, Any] = Field(default_factory=dict, max_length=MAX_FILTERS)

    class Settings:
        name = "saved_searches"
        indexes = [
            IndexModel([("tenant_id", 1), ("is_deleted", 1), ("_id", -1)], name="tenant_list"),
            IndexModel([("tenant_id", 1), ("user_id", 1), ("_id", -1)], name="tenant_user"),
            IndexModel([("tenant_id", 1), ("resource", 1), ("_id", -1)], name="tenant_resource"),
        ]
