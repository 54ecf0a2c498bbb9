"""The audit log: the tenant's change journal, for admins."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from routes.deps import CurrentContext, page_response
from schemas.analytics import AuditEntry, AuditParams
from schemas.common import Page
from service import audit

router = APIRouter(prefix="/audit", tags=["audit"])


@router.get(
    "",
    response_model=Page[AuditEntry],
    summary="Every journaled change in the tenant, newest first (admin)",
)
async def audit_log(ctx: CurrentContext, params: Annotated[AuditParams, Query()]) -> Any:
    """Filter by actor, resource kind or id, and `[since, until)`."""
    page = await audit.audit_log(
        ctx=ctx,
        limit=params.limit,
        cursor=params.cursor,
        actor_id=params.actor_id,
        aggregate_type=params.aggregate_type,
        aggregate_id=params.aggregate_id,
        since=params.since,
        until=params.until,
    )
    return page_response(page, Page[AuditEntry])
