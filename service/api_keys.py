"""API keys for internal services: created and revoked by owners/admins, stored only hashed."""

from __future__ import annotations

from uuid import UUID

from documents.api_key import ApiKey
from documents.base import utcnow
from schemas.api_keys import API_KEY_VIEW, ApiKeyFilters, ApiKeyRead
from service.auth import forget_actor
from service.core import security
from service.core.context import RequestContext, Role
from service.core.errors import Forbidden
from service.core.pagination import PageResult
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository

PREFIX_LENGTH = 12  # "lik_" and 8 random characters: enough to tell keys apart in a listing

# Owners and admins mint, revoke and see keys (their journal changes too: `read` decides both).
POLICY: ResourcePolicy[ApiKey] = register_policy(
    ResourcePolicy(model=ApiKey, roles=dict.fromkeys(Action, Role.admin))
)


async def create_api_key(
    *, ctx: RequestContext, name: str, role: Role = Role.member
) -> tuple[ApiKey, str]:
    """Mint a key carrying `role` (at most the caller's); returns the key once, with its record."""
    POLICY.require(ctx, Action.create)
    if not ctx.role >= role:
        raise Forbidden("A key cannot carry a higher role than its creator's.")
    key = security.generate_api_key()
    doc = ApiKey(
        tenant_id=ctx.tenant_id,
        name=name,
        role=role.value,
        prefix=key[:PREFIX_LENGTH],
        key_hash=security.hash_api_key(key),
    )
    return await Repository(ApiKey, ctx).create(doc), key


async def list_api_keys(*, ctx: RequestContext, filters: ApiKeyFilters) -> PageResult[ApiKeyRead]:
    """A page of the tenant's keys, newest first (revoked ones only with include_deleted)."""
    POLICY.require(ctx, Action.read)
    return await Repository(ApiKey, ctx).page_for(None, filters, view=API_KEY_VIEW)


async def get_api_key(*, ctx: RequestContext, id: UUID) -> ApiKeyRead:
    """One live key of the tenant."""
    POLICY.require(ctx, Action.read)
    return await Repository(ApiKey, ctx).read(id, API_KEY_VIEW)


async def revoke_api_key(
    *, ctx: RequestContext, id: UUID, expected_version: int | None = None
) -> ApiKey:
    """Revoke a key: it answers 401 from now on (here at once, elsewhere within the cache TTL)."""
    POLICY.require(ctx, Action.delete)
    repo = Repository(ApiKey, ctx)
    key = await repo.get(id)
    if not ctx.role >= Role(key.role):
        raise Forbidden("Only an owner can revoke an owner's key.")
    revoked = await repo.update(
        key,
        {"is_deleted": True, "deleted_at": utcnow()},
        expected_version=expected_version,
        event_type="revoked",
    )
    forget_actor(key.id)
    return revoked
