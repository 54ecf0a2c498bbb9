"""Commands and queries every aggregate root shares: soft delete, restore, archive, history."""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from pymongo.errors import DuplicateKeyError

from documents.base import RootDocument
from documents.journal import DomainEvent
from service.context import RequestContext
from service.errors import Conflict
from service.pagination import OLDEST_FIRST, PageResult, Sort, paginate
from service.repository import Repository, tenant_filter, uuid_filter

D = TypeVar("D", bound=RootDocument)


async def delete(
    *, ctx: RequestContext, model: type[D], id: UUID, expected_version: int | None = None
) -> D:
    """Soft-delete a live resource (404 if missing or already deleted, 412 if stale)."""
    repo = Repository(model, ctx)
    return await repo.soft_delete(await repo.get(id), expected_version=expected_version)


async def restore(*, ctx: RequestContext, model: type[D], id: UUID) -> D:
    """Bring back a soft-deleted resource; 409 when it now clashes with a live duplicate."""
    repo = Repository(model, ctx)
    doc = await repo.get(id, include_deleted=True)
    try:
        return await repo.restore(doc)
    except DuplicateKeyError:
        raise Conflict("Restoring it would duplicate a live resource.") from None


async def archive(*, ctx: RequestContext, model: type[D], id: UUID) -> D:
    """Set `archived_at`."""
    repo = Repository(model, ctx)
    return await repo.archive(await repo.get(id))


async def unarchive(*, ctx: RequestContext, model: type[D], id: UUID) -> D:
    """Clear `archived_at`."""
    repo = Repository(model, ctx)
    return await repo.unarchive(await repo.get(id))


async def history(
    *,
    ctx: RequestContext,
    model: type[D],
    id: UUID,
    limit: int,
    cursor: str | None = None,
) -> PageResult[DomainEvent]:
    """A resource's change events, oldest first (also for soft-deleted resources)."""
    await Repository(model, ctx).get(id, include_deleted=True)  # 404 unless it is the tenant's
    query = tenant_filter(
        ctx, {"aggregate_type": model.aggregate_type, "aggregate_id": uuid_filter(id)}
    )
    return await paginate(
        DomainEvent, query, limit=limit, cursor=cursor, sort=Sort("version", OLDEST_FIRST.direction)
    )
