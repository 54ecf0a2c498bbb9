"""The tenant's settings: `/v1/tenant` (read by everyone, changed by admins)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from routes.deps import CurrentContext, IfMatch, set_etag
from schemas.tenant import TenantRead, TenantUpdate, to_tenant_read
from service import tenant

router = APIRouter(prefix="/tenant", tags=["tenant"])


@router.get("", response_model=TenantRead)
async def get_tenant(ctx: CurrentContext, response: Response) -> Any:
    """The caller's tenant: name, phone region, time zone, quiet hours and retention."""
    doc = await tenant.get_tenant(ctx=ctx)
    set_etag(response, doc.version)
    return to_tenant_read(doc)


@router.patch("", response_model=TenantRead)
async def update_tenant(
    body: TenantUpdate, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    """Change the tenant's settings (admin; journaled). `time_zone` is an IANA name (else 422);
    `quiet_hours` is the local window calls and texts are allowed in (default 08:00 to 21:00);
    `retention.erase_deleted_after_days` erases soft-deleted leads after that many days."""
    doc = await tenant.update_tenant(ctx=ctx, data=body, expected_version=if_match)
    set_etag(response, doc.version)
    return to_tenant_read(doc)
