"""Saved searches: `/v1/saved-searches` (CRUD, lifecycle) and `/{id}/run`."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from documents.saved_search import SavedSearch
from routes.deps import (
    CurrentContext,
    IfMatch,
    page_response,
    read_response,
    set_etag,
    set_location,
)
from routes.lifecycle import add_lifecycle_routes
from schemas.common import Page
from schemas.saved_searches import (
    SAVED_SEARCH_VIEW,
    RunParams,
    SavedSearchCreate,
    SavedSearchFilters,
    SavedSearchPage,
    SavedSearchRead,
    SavedSearchUpdate,
    to_saved_search_read,
)
from service import saved_searches

router = APIRouter(prefix="/saved-searches", tags=["saved searches"])


@router.post("", response_model=SavedSearchRead, status_code=status.HTTP_201_CREATED)
async def create_saved_search(
    body: SavedSearchCreate, ctx: CurrentContext, request: Request, response: Response
) -> Any:
    """Save a search: `filters` must be valid query parameters of the `resource` list (else 422)."""
    search = await saved_searches.create_saved_search(ctx=ctx, data=body)
    set_etag(response, search.version)
    set_location(request, response, "get_saved_search", id=search.id)
    return to_saved_search_read(search)


@router.get("", response_model=Page[SavedSearchRead])
async def list_saved_searches(
    ctx: CurrentContext, filters: Annotated[SavedSearchFilters, Query()]
) -> Any:
    """The tenant's saved searches, newest first."""
    page = await saved_searches.list_saved_searches(ctx=ctx, filters=filters)
    return page_response(page, Page[SavedSearchRead])


@router.get("/{id}", response_model=SavedSearchRead)
async def get_saved_search(id: UUID, ctx: CurrentContext) -> Response:
    """One saved search."""
    search = await saved_searches.get_saved_search(ctx=ctx, id=id)
    return read_response(SAVED_SEARCH_VIEW, search)


@router.patch("/{id}", response_model=SavedSearchRead)
async def update_saved_search(
    id: UUID, body: SavedSearchUpdate, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    """Rename a saved search or replace its filters."""
    search = await saved_searches.update_saved_search(
        ctx=ctx, id=id, patch=body, expected_version=if_match
    )
    set_etag(response, search.version)
    return to_saved_search_read(search)


@router.get("/{id}/run", response_model=SavedSearchPage)
async def run_saved_search(
    id: UUID, ctx: CurrentContext, params: Annotated[RunParams, Query()]
) -> Any:
    """Run it: one page of the list endpoint's answer (`items`, `next_cursor`, `total` when
    the search counts) plus `resource`."""
    search, page = await saved_searches.run_saved_search(ctx=ctx, id=id, params=params)
    return {"resource": search.resource, **page.body()}


add_lifecycle_routes(
    router, model=SavedSearch, read_model=SavedSearchRead, to_read=to_saved_search_read
)
