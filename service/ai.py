"""AI: the caller's own config and context (on the User aggregate) and usage logs with totals."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from documents.ai import AIUsageLog
from documents.base import utcnow
from documents.user import User
from schemas.ai import AIConfigBody, AIContextBody, AIUsageCreate, AIUsageFilters
from schemas.common import money_to_cents
from service.context import RequestContext
from service.errors import Forbidden, NotFound, Unprocessable
from service.pagination import PageResult, Sort
from service.repository import Repository, uuid_filter

# Clocks differ a little between services; a usage time slightly ahead of ours is accepted.
CLOCK_SKEW = timedelta(minutes=5)
NEWEST_OCCURRED_FIRST = Sort("occurred_at", -1)


async def own_user(*, ctx: RequestContext) -> User:
    """The calling user's aggregate (403 for API keys, which have none)."""
    return await Repository(User, ctx).get(ctx.require_user())


async def put_ai_config(
    *, ctx: RequestContext, data: AIConfigBody, expected_version: int | None
) -> User:
    """Replace the caller's AI config; any role may change their own."""
    repo = Repository(User, ctx)
    user = await repo.get(ctx.require_user())
    return await repo.update(
        user,
        {"ai_config": data.to_model().model_dump()},
        expected_version=expected_version,
        event_type="ai_config_changed",
    )


async def put_ai_context(
    *, ctx: RequestContext, data: AIContextBody, expected_version: int | None
) -> User:
    """Replace the caller's AI context; any role may change their own."""
    repo = Repository(User, ctx)
    user = await repo.get(ctx.require_user())
    return await repo.update(
        user,
        {"ai_context": data.to_model().model_dump()},
        expected_version=expected_version,
        event_type="ai_context_changed",
    )


async def _billed_user(ctx: RequestContext, requested: UUID | None) -> UUID | None:
    if ctx.user_id is not None:
        if requested is not None and requested != ctx.user_id:
            raise Forbidden("A user may only log their own AI usage.")
        return ctx.user_id
    if requested is not None:
        try:
            await Repository(User, ctx).get(requested)
        except NotFound:
            raise Unprocessable("No such user in this tenant.", loc=["body", "user_id"]) from None
    return requested


async def record_usage(*, ctx: RequestContext, data: AIUsageCreate) -> AIUsageLog:
    """Log one model call (append-only; journaled like every write)."""
    now = utcnow()
    if data.occurred_at is not None and data.occurred_at > now + CLOCK_SKEW:
        raise Unprocessable("occurred_at cannot lie in the future.", loc=["body", "occurred_at"])
    log = AIUsageLog(
        tenant_id=ctx.tenant_id,
        user_id=await _billed_user(ctx, data.user_id),
        model=data.model,
        feature=data.feature,
        prompt_tokens=data.prompt_tokens,
        completion_tokens=data.completion_tokens,
        cost_cents=money_to_cents(data.cost) if data.cost is not None else 0,
        occurred_at=data.occurred_at or now,
    )
    return await Repository(AIUsageLog, ctx).create(log)


async def get_usage(*, ctx: RequestContext, id: UUID) -> AIUsageLog:
    """One usage record of the tenant (404 for another tenant's)."""
    return await Repository(AIUsageLog, ctx).get(id)


def _usage_filter(filters: AIUsageFilters) -> dict[str, Any]:
    query: dict[str, Any] = {}
    window: dict[str, Any] = {}
    if filters.since is not None:
        window["$gte"] = filters.since
    if filters.until is not None:
        window["$lt"] = filters.until
    if window:
        query["occurred_at"] = window
    if filters.model is not None:
        query["model"] = filters.model
    if filters.feature is not None:
        query["feature"] = filters.feature
    if filters.user_id is not None:
        query["user_id"] = uuid_filter(filters.user_id)
    return query


async def list_usage(
    *, ctx: RequestContext, filters: AIUsageFilters
) -> tuple[PageResult[AIUsageLog], list[dict[str, Any]]]:
    """A page of the tenant's usage (newest first) and per-model totals over the whole range.

    The totals are one `$group` pipeline over every matching log, not just this page.
    """
    repo = Repository(AIUsageLog, ctx)
    query = _usage_filter(filters)
    page = await repo.page(
        query, limit=filters.limit, cursor=filters.cursor, sort=NEWEST_OCCURRED_FIRST
    )
    totals = await repo.aggregate(
        [
            {
                "$group": {
                    "_id": "$model",
                    "calls": {"$sum": 1},
                    "prompt_tokens": {"$sum": "$prompt_tokens"},
                    "completion_tokens": {"$sum": "$completion_tokens"},
                    "cost_cents": {"$sum": "$cost_cents"},
                }
            },
            {"$sort": {"_id": 1}},
        ],
        match=query,
    )
    return page, totals
