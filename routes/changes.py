"""The change feed: what changed in the tenant, oldest first, resumable."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from routes.deps import CurrentContext, page_response
from schemas.changes import ChangesPage, ChangesParams
from service import changes

router = APIRouter(prefix="/changes", tags=["changes"])


@router.get(
    "",
    response_model=ChangesPage,
    summary="The tenant's change journal, oldest first, from a stored cursor",
)
async def list_changes(ctx: CurrentContext, params: Annotated[ChangesParams, Query()]) -> Any:
    """Store `next_cursor` (never null) and pass it as `after` to get only newer changes.

    No change is skipped or repeated, also while writes go on. Secrets are redacted, and
    another user's private fields are left out, as in history.
    """
    page = await changes.list_changes(
        ctx=ctx,
        after=params.after,
        limit=params.limit,
        aggregate_type=params.aggregate_type,
        event_type=params.event_type,
    )
    return page_response(page, ChangesPage)
