"""The suppression (do-not-contact) list: `/v1/suppressions` (admin)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from routes.deps import CurrentContext, page_response, read_response, set_etag, set_location
from schemas.suppressions import (
    SUPPRESSION_VIEW,
    SuppressionCreate,
    SuppressionFilters,
    SuppressionPage,
    SuppressionRead,
    to_suppression_read,
)
from service import suppressions

router = APIRouter(prefix="/suppressions", tags=["suppressions"])


@router.post("", response_model=SuppressionRead, status_code=status.HTTP_201_CREATED)
async def create_suppression(
    body: SuppressionCreate, ctx: CurrentContext, request: Request, response: Response
) -> Any:
    """Add a phone or e-mail to the do-not-contact list of a channel (admin).

    The value is normalised (E.164 in the tenant's region, lower-case e-mail); a value already
    on the channel's list → 409 with `existing_id`. It blocks every lead holding it.
    """
    doc = await suppressions.create_suppression(ctx=ctx, data=body)
    set_etag(response, doc.version)
    set_location(request, response, "get_suppression", id=doc.id)
    return to_suppression_read(doc)


@router.get("", response_model=SuppressionPage)
async def list_suppressions(
    ctx: CurrentContext, filters: Annotated[SuppressionFilters, Query()]
) -> Any:
    """The tenant's suppressions, newest first; `channel` and `value` (normalised) filter."""
    page = await suppressions.list_suppressions(ctx=ctx, filters=filters)
    return page_response(page, SuppressionPage)


@router.get("/{id}", response_model=SuppressionRead)
async def get_suppression(id: UUID, ctx: CurrentContext) -> Response:
    """One entry of the list (admin)."""
    doc = await suppressions.get_suppression(ctx=ctx, id=id)
    return read_response(SUPPRESSION_VIEW, doc)


@router.delete("/{id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_suppression(id: UUID, ctx: CurrentContext) -> Response:
    """Remove an entry (admin; journaled): the value may be contacted again."""
    await suppressions.delete_suppression(ctx=ctx, id=id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
