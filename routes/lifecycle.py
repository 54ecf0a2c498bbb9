"""Routes every aggregate root shares, added to a domain router by `add_lifecycle_routes`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response, status
from pydantic import BaseModel

from documents.base import RootDocument
from routes.deps import CurrentContext, IfMatch, Member, set_etag
from schemas.common import HistoryEntry, Page, PageParams
from service import lifecycle


def add_lifecycle_routes(
    router: APIRouter,
    *,
    model: type[RootDocument],
    read_model: type[BaseModel],
    to_read: Callable[[Any], BaseModel],
    delete: bool = True,
    archive: bool = True,
) -> None:
    """Add DELETE, restore, archive/unarchive and history routes for `model` to `router`."""
    name = model.aggregate_type

    if delete:

        @router.delete(
            "/{id}",
            status_code=status.HTTP_204_NO_CONTENT,
            summary=f"Soft-delete a {name}",
        )
        async def delete_resource(id: UUID, ctx: Member, if_match: IfMatch) -> Response:
            await lifecycle.delete(ctx=ctx, model=model, id=id, expected_version=if_match)
            return Response(status_code=status.HTTP_204_NO_CONTENT)

        @router.post(
            "/{id}/restore",
            response_model=read_model,
            summary=f"Restore a soft-deleted {name}",
        )
        async def restore_resource(id: UUID, ctx: Member, response: Response) -> Any:
            doc = await lifecycle.restore(ctx=ctx, model=model, id=id)
            set_etag(response, doc.version)
            return to_read(doc)

    if archive:

        @router.post(
            "/{id}/archive",
            response_model=read_model,
            summary=f"Archive a {name}",
        )
        async def archive_resource(id: UUID, ctx: Member, response: Response) -> Any:
            doc = await lifecycle.archive(ctx=ctx, model=model, id=id)
            set_etag(response, doc.version)
            return to_read(doc)

        @router.post(
            "/{id}/unarchive",
            response_model=read_model,
            summary=f"Unarchive a {name}",
        )
        async def unarchive_resource(id: UUID, ctx: Member, response: Response) -> Any:
            doc = await lifecycle.unarchive(ctx=ctx, model=model, id=id)
            set_etag(response, doc.version)
            return to_read(doc)

    @router.get(
        "/{id}/history",
        response_model=Page[HistoryEntry],
        summary=f"Change history of a {name}, oldest first",
    )
    async def resource_history(
        id: UUID, ctx: CurrentContext, params: Annotated[PageParams, Query()]
    ) -> Any:
        page = await lifecycle.history(
            ctx=ctx, model=model, id=id, limit=params.limit, cursor=params.cursor
        )
        return {"items": [e.model_dump() for e in page.items], "next_cursor": page.next_cursor}
