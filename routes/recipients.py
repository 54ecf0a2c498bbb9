"""A campaign's recipient queue: `/v1/campaigns/{id}/recipients` and its atomic `claim`."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from routes.deps import CurrentContext, page_response
from schemas.recipients import ClaimRequest, ClaimResult, RecipientFilters, RecipientPage
from service import recipients

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


@router.get("/{id}/recipients", response_model=RecipientPage)
async def list_recipients(
    id: UUID, ctx: CurrentContext, filters: Annotated[RecipientFilters, Query()]
) -> Any:
    """One row per attached lead, newest lead first: `state` (queued, claimed, attempted,
    reached, exhausted, opted_out), `attempts`, `last_attempt_at`, `next_attempt_at`."""
    page = await recipients.list_recipients(ctx=ctx, id=id, filters=filters)
    return page_response(page, RecipientPage)


@router.post("/{id}/recipients/claim", response_model=ClaimResult)
async def claim_recipients(id: UUID, body: ClaimRequest, ctx: CurrentContext) -> Any:
    """Claim the next contactable recipients on the campaign's channel, atomically.

    Only recipients due now (`next_attempt_at` passed) with attempts below `max_attempts`;
    concurrent claimers never get the same lead; a claim not followed by an event returns to
    the queue after `lease_seconds`. Opted-out and suppressed recipients move to `opted_out`;
    others not contactable now (quiet hours) are skipped. A social campaign → 409.
    """
    items = await recipients.claim(ctx=ctx, id=id, data=body)
    return ClaimResult(items=items)
