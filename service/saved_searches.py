"""Saved searches: store a list endpoint's filters (validated by its own model) and run them.

A run goes through that resource's own list service (`list_campaigns`, `list_leads`,
`list_events`), so it answers exactly what the list endpoint would, with the same paging.
Running is a read: it changes nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ValidationError

from documents.saved_search import SavedSearch, SavedSearchResource
from schemas.saved_searches import (
    FILTER_MODELS,
    PAGING,
    SAVED_SEARCH_VIEW,
    RunParams,
    SavedSearchCreate,
    SavedSearchFilters,
    SavedSearchRead,
    SavedSearchUpdate,
)
from service import campaigns, events
from service.core.context import RequestContext
from service.core.errors import Conflict, Unprocessable, validation_errors
from service.core.pagination import PageResult
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository, equal_to
from service.leads import queries as lead_queries

Runner = Callable[..., Awaitable[PageResult[Any]]]
RUNNERS: dict[SavedSearchResource, Runner] = {
    SavedSearchResource.campaigns: campaigns.list_campaigns,
    SavedSearchResource.leads: lead_queries.list_leads,
    SavedSearchResource.events: events.list_events,
}


POLICY: ResourcePolicy[SavedSearch] = register_policy(ResourcePolicy(model=SavedSearch))
"""Members and above write SavedSearch documents (the default roles)."""


def validated_filters(resource: SavedSearchResource, filters: dict[str, Any]) -> dict[str, Any]:
    """`filters` checked by the resource's filter model and normalised (422 with every error)."""
    paging = sorted(PAGING & filters.keys())
    if paging:
        raise Unprocessable(
            "limit and cursor are not saved; pass them to /run.", loc=["body", "filters", paging[0]]
        )
    model = FILTER_MODELS[resource]
    try:
        parsed = model.model_validate(filters)
    except ValidationError as exc:
        problem = Unprocessable(f"The filters are not valid for {resource.value}.")
        problem.extra["errors"] = [
            {**e, "loc": ["body", "filters", *e["loc"]]}
            for e in validation_errors(list(exc.errors()))
        ]
        raise problem from None
    # Only what the client set, in JSON form: re-validated by the same model on every run.
    return parsed.model_dump(mode="json", exclude_unset=True, exclude=set(PAGING))


async def create_saved_search(*, ctx: RequestContext, data: SavedSearchCreate) -> SavedSearch:
    """Save a search for the caller (member or higher)."""
    POLICY.require(ctx, Action.create)
    search = SavedSearch(
        tenant_id=ctx.tenant_id,
        user_id=ctx.user_id,
        name=data.name,
        resource=data.resource,
        filters=validated_filters(data.resource, data.filters),
    )
    return await Repository(SavedSearch, ctx).create(search)


async def get_saved_search(*, ctx: RequestContext, id: UUID) -> SavedSearchRead:
    """One saved search of the tenant."""
    return await Repository(SavedSearch, ctx).read(id, SAVED_SEARCH_VIEW)


async def list_saved_searches(
    *, ctx: RequestContext, filters: SavedSearchFilters
) -> PageResult[SavedSearchRead]:
    """A page of the tenant's saved searches, newest first."""
    query = equal_to(filters, {"resource": "resource", "user_id": "user_id"})
    return await Repository(SavedSearch, ctx).page_for(query, filters, view=SAVED_SEARCH_VIEW)


async def update_saved_search(
    *, ctx: RequestContext, id: UUID, patch: SavedSearchUpdate, expected_version: int | None
) -> SavedSearch:
    """Rename it or replace its filters (validated against its resource)."""
    POLICY.require(ctx, Action.update)
    repo = Repository(SavedSearch, ctx)
    search = await repo.get(id)
    changes = patch.changes()
    if "filters" in changes:
        changes["filters"] = validated_filters(search.resource, changes["filters"])
    return await repo.update(search, changes, expected_version=expected_version)


async def run_saved_search(
    *, ctx: RequestContext, id: UUID, params: RunParams
) -> tuple[SavedSearch, PageResult[Any]]:
    """One page of the saved search's results, through the resource's own list service."""
    search = await Repository(SavedSearch, ctx).get(id)
    model: type[BaseModel] = FILTER_MODELS[search.resource]
    try:
        filters = model.model_validate(
            {**search.filters, "limit": params.limit, "cursor": params.cursor}
        )
    except ValidationError:
        # Stored filters were valid when saved; only a change of the list's contract gets here.
        raise Conflict(
            "The saved filters are no longer valid for this list; update the search."
        ) from None
    page = await RUNNERS[search.resource](ctx=ctx, filters=filters)
    return search, page
