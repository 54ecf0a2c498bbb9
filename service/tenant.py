"""The tenant's settings: read by every member, changed by admins (journaled on the tenant).

A changed `default_phone_region` reaches requests whose credentials are cached within
AUTH_CACHE_SECONDS (the context carries the region, see service/auth.py).
"""

from __future__ import annotations

from documents.tenant import Tenant
from schemas.tenant import TenantUpdate
from service.core.context import RequestContext, Role
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository

# Every member reads the tenant's settings; only admins change them.
POLICY: ResourcePolicy[Tenant] = register_policy(
    ResourcePolicy(
        model=Tenant, roles=dict.fromkeys(Action, Role.admin) | {Action.read: Role.viewer}
    )
)


async def load_tenant(ctx: RequestContext) -> Tenant:
    """The caller's tenant document (its id is the tenant id)."""
    return await Repository(Tenant, ctx).get(ctx.tenant_id)


async def get_tenant(*, ctx: RequestContext) -> Tenant:
    """The caller's tenant and its settings."""
    return await load_tenant(ctx)


async def update_tenant(
    *, ctx: RequestContext, data: TenantUpdate, expected_version: int | None = None
) -> Tenant:
    """Change the tenant's settings (admin); no change → no new version."""
    POLICY.require(ctx, Action.update)
    tenant = await load_tenant(ctx)
    return await Repository(Tenant, ctx).update(
        tenant, data.stored_changes(), expected_version=expected_version
    )


__all__ = ["get_tenant", "load_tenant", "update_tenant"]
