"""API shapes of saved searches: a `resource` plus exactly that list endpoint's filters.

`filters` are validated on save with the list endpoint's own filter model (`CampaignFilters`,
`LeadFilters`, `EventFilters`), without the paging parameters (`limit`, `cursor`), which are
given to `/run`. `run` answers that list endpoint's page shape plus `resource`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field

from documents.base import Name
from documents.saved_search import MAX_FILTERS, SavedSearchResource
from schemas.campaigns import CampaignFilters, CampaignPage
from schemas.common import (
    IgnoreTenantId,
    ListParams,
    PageParams,
    PatchBody,
    ReadView,
    ResourceRead,
)
from schemas.events import EventFilters, EventPage
from schemas.leads import LeadFilters, LeadPage

FILTER_MODELS: dict[SavedSearchResource, type[BaseModel]] = {
    SavedSearchResource.campaigns: CampaignFilters,
    SavedSearchResource.leads: LeadFilters,
    SavedSearchResource.events: EventFilters,
}
# Paging belongs to each run, not to the search.
PAGING = frozenset({"limit", "cursor"})

Filters = Annotated[dict[str, Any], Field(max_length=MAX_FILTERS)]


class SavedSearchCreate(IgnoreTenantId):
    """`POST /v1/saved-searches`."""

    name: Name
    resource: SavedSearchResource
    filters: Filters = Field(
        default_factory=dict,
        description="The list endpoint's query parameters (without `limit`/`cursor`).",
    )


class SavedSearchUpdate(PatchBody):
    """`PATCH /v1/saved-searches/{id}`: rename or replace the filters (of the same resource)."""

    name: Name | None = None
    filters: Filters | None = None


class SavedSearchRead(ResourceRead):
    """A saved search; `filters` as normalised by the resource's filter model."""

    user_id: UUID | None
    name: str
    resource: SavedSearchResource
    filters: dict[str, Any]


SAVED_SEARCH_VIEW: ReadView[SavedSearchRead] = ReadView(SavedSearchRead)
"""Stored saved searches → `SavedSearchRead`, one validation each."""
to_saved_search_read = SAVED_SEARCH_VIEW.document
"""The response shape of a saved search document in hand."""


class SavedSearchFilters(ListParams):
    """`GET /v1/saved-searches` filters."""

    resource: SavedSearchResource | None = None
    user_id: UUID | None = None


class RunParams(PageParams):
    """`GET /v1/saved-searches/{id}/run`: paging of the run."""


class CampaignSearchPage(CampaignPage):
    """A page of campaigns, as `GET /v1/campaigns` answers it."""

    resource: Literal[SavedSearchResource.campaigns] = SavedSearchResource.campaigns


class LeadSearchPage(LeadPage):
    """A page of leads, as `GET /v1/leads` answers it."""

    resource: Literal[SavedSearchResource.leads] = SavedSearchResource.leads


class EventSearchPage(EventPage):
    """A page of events, as `GET /v1/events` answers it."""

    resource: Literal[SavedSearchResource.events] = SavedSearchResource.events


SavedSearchPage = Annotated[
    CampaignSearchPage | LeadSearchPage | EventSearchPage, Field(discriminator="resource")
]
