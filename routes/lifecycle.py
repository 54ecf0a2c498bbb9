"""Routes every aggregate root shares, added to a domain router by `add_lifecycle_routes`."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Query, Response, status
from pydantic import BaseModel

from documents.base import RootDocument
from routes.deps import CurrentContext, IfMatch, page_response, set_etag
from schemas.common import HistoryEntry, Page, PageParams
from service import lifecycle
from service.core.policy import ResourcePolicy, policy_for

VersionNumber = Annotated[int, Path(ge=0, le=2**31 - 1, description="A version (1 = created).")]

_VISIBILITY = (
    "Shows what `GET` shows the caller: fields the caller may not see of this resource (such "
    "as another user's private parts) are left out, and so are the changes to them."
)


def add_lifecycle_routes(
    router: APIRouter,
    *,
    model: type[RootDocument],
    read_model: type[BaseModel],
    to_read: Callable[[Any], BaseModel],
    policy: ResourcePolicy[Any] | None = None,
    delete: bool = True,
    archive: bool = True,
    notes: Mapping[str, str] | None = None,
) -> None:
    """Add DELETE, restore, archive/unarchive, history and versions routes for `model`.

    Who may do what comes from the resource's `ResourcePolicy` (`policy`, else the one its
    domain registered, else the default: members write), checked by the lifecycle commands;
    reads follow the resource's visibility (service/core/visibility.py). `notes` adds a resource's
    own rules to a route's OpenAPI description (keys: delete, restore, archive, unarchive).
    """
    name = model.aggregate_type
    notes = notes or {}

    def rules() -> ResourcePolicy[Any]:
        # Looked up per request, so a policy registered after the routes are built still holds.
        return policy or policy_for(model)

    if delete:

        @router.delete(
            "/{id}",
            status_code=status.HTTP_204_NO_CONTENT,
            summary=f"Soft-delete a {name}",
            description=notes.get("delete", ""),
        )
        async def delete_resource(id: UUID, ctx: CurrentContext, if_match: IfMatch) -> Response:
            await lifecycle.delete(ctx=ctx, policy=rules(), id=id, expected_version=if_match)
            return Response(status_code=status.HTTP_204_NO_CONTENT)

        @router.post(
            "/{id}/restore",
            response_model=read_model,
            summary=f"Restore a soft-deleted {name}",
            description=notes.get("restore", ""),
            responses={409: {"description": "It would duplicate a live resource"}},
        )
        async def restore_resource(id: UUID, ctx: CurrentContext, response: Response) -> Any:
            doc = await lifecycle.restore(ctx=ctx, policy=rules(), id=id)
            set_etag(response, doc.version)
            return to_read(doc)

    if archive:

        @router.post(
            "/{id}/archive",
            response_model=read_model,
            summary=f"Archive a {name}",
            description=notes.get("archive", ""),
        )
        async def archive_resource(id: UUID, ctx: CurrentContext, response: Response) -> Any:
            doc = await lifecycle.archive(ctx=ctx, policy=rules(), id=id)
            set_etag(response, doc.version)
            return to_read(doc)

        @router.post(
            "/{id}/unarchive",
            response_model=read_model,
            summary=f"Unarchive a {name}",
            description=notes.get("unarchive", ""),
        )
        async def unarchive_resource(id: UUID, ctx: CurrentContext, response: Response) -> Any:
            doc = await lifecycle.unarchive(ctx=ctx, policy=rules(), id=id)
            set_etag(response, doc.version)
            return to_read(doc)

    @router.get(
        "/{id}/history",
        response_model=Page[HistoryEntry],
        summary=f"Change history of a {name}, oldest first",
        description=_VISIBILITY + ' A changed secret shows as `"***"`, never its value.',
    )
    async def resource_history(
        id: UUID, ctx: CurrentContext, params: Annotated[PageParams, Query()]
    ) -> Any:
        page = await lifecycle.history(
            ctx=ctx, model=model, id=id, limit=params.limit, cursor=params.cursor
        )
        return page_response(page, Page[HistoryEntry])

    @router.get(
        "/{id}/versions/{n}",
        response_model=read_model,
        summary=f"A {name} as it was at version n, rebuilt from its journal",
        description=(
            "Equal to what `GET` answered at that version (soft-deleted versions included); "
            "404 for a version that never existed. The `ETag` is that version. " + _VISIBILITY
        ),
    )
    async def resource_version(
        id: UUID, n: VersionNumber, ctx: CurrentContext, response: Response
    ) -> Any:
        doc = await lifecycle.version(ctx=ctx, model=model, id=id, n=n)
        set_etag(response, doc.version)
        return to_read(doc)
