"""AI: the caller's own config and context (on the User aggregate) and usage logs with totals.

`GET /v1/ai/usage` answers a page of logs plus per-model `totals` over the whole filtered
range. The totals are computed once per walk through the pages, not once per page: the first
page (no cursor) runs the `$group` pipeline over the range and, when there is a next page,
keeps the result in `ai_usage_totals` for `TOTALS_TTL`; its `next_cursor` carries that row's id,
so every later page of the walk answers the same totals with one `_id` lookup. A client paging
through therefore sees identical totals on every page: those of the range when the walk began.
A cursor whose totals have expired, or that is sent with other filters, gets them recomputed.
"""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any
from uuid import UUID

from documents.ai import MAX_CACHED_MODELS, AIUsageLog, AIUsageTotals, ModelUsageTotals
from documents.base import utcnow
from documents.user import User
from schemas.ai import (
    AI_USAGE_VIEW,
    MODEL_TOTALS_VIEW,
    AIConfigBody,
    AIContextBody,
    AIUsageCreate,
    AIUsageFilters,
    AIUsagePage,
    AIUsageRead,
)
from schemas.common import money_to_cents
from service import pipelines
from service.core.context import RequestContext, Role
from service.core.errors import Forbidden, NotFound, Unprocessable
from service.core.pagination import Sort, pack_cursor, unpack_cursor
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository, tenant_filter, uuid_filter
from service.users import replace_own

# Every role logs usage (whose it may be billed to is `_billed_user`'s data rule).
POLICY: ResourcePolicy[AIUsageLog] = register_policy(
    ResourcePolicy(model=AIUsageLog, roles=dict.fromkeys(Action, Role.viewer))
)
# Clocks differ a little between services; a usage time slightly ahead of ours is accepted.
CLOCK_SKEW = timedelta(minutes=5)
NEWEST_OCCURRED_FIRST = Sort("occurred_at", -1)
# How long a walk's totals are reused by its later pages.
TOTALS_TTL = timedelta(hours=1)


async def put_ai_config(
    *, ctx: RequestContext, data: AIConfigBody, expected_version: int | None
) -> User:
    """Replace the caller's AI config; any role may change their own."""
    return await replace_own(
        ctx=ctx,
        fields={"ai_config": data.to_model().model_dump()},
        expected_version=expected_version,
        event_type="ai_config_changed",
    )


async def put_ai_context(
    *, ctx: RequestContext, data: AIContextBody, expected_version: int | None
) -> User:
    """Replace the caller's AI context; any role may change their own."""
    return await replace_own(
        ctx=ctx,
        fields={"ai_context": data.to_model().model_dump()},
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
    POLICY.require(ctx, Action.create)
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


async def get_usage(*, ctx: RequestContext, id: UUID) -> AIUsageRead:
    """One usage record of the tenant (404 for another tenant's)."""
    return await Repository(AIUsageLog, ctx).read(id, AI_USAGE_VIEW)


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


def _filters_key(filters: AIUsageFilters) -> str:
    # What the totals depend on: the filters, not the page size or position.
    chosen = filters.model_dump(mode="json", exclude={"limit", "cursor"})
    return hashlib.sha256(json.dumps(chosen, sort_keys=True).encode()).hexdigest()


def _walk_cursor(page_cursor: str, totals_id: UUID | None) -> str:
    return pack_cursor({"p": page_cursor, "t": totals_id.hex if totals_id else None})


def _read_walk_cursor(cursor: str) -> tuple[str, UUID | None]:
    try:
        data = unpack_cursor(cursor)
        page_cursor, totals_id = data["p"], data["t"]
        if not isinstance(page_cursor, str):
            raise TypeError("page cursor")
        return page_cursor, UUID(hex=totals_id) if totals_id is not None else None
    except (ValueError, KeyError, TypeError):
        raise Unprocessable(
            "The cursor is not valid for this list.", loc=["query", "cursor"]
        ) from None


async def _compute_totals(
    repo: Repository[AIUsageLog], query: dict[str, Any]
) -> list[ModelUsageTotals]:
    rows = await repo.aggregate(pipelines.ai_usage_totals(), match=query)
    return [ModelUsageTotals(model=row.pop("_id"), **row) for row in rows]


async def _cached_totals(
    ctx: RequestContext, totals_id: UUID, key: str
) -> list[ModelUsageTotals] | None:
    found = await AIUsageTotals.get_pymongo_collection().find_one(
        tenant_filter(ctx, {"_id": uuid_filter(totals_id), "filters_key": key})
    )
    if found is None:
        return None
    cached = AIUsageTotals.model_validate(found)
    return cached.totals if cached.expires_at > utcnow() else None


async def _keep_totals(
    ctx: RequestContext, key: str, totals: list[ModelUsageTotals]
) -> UUID | None:
    if len(totals) > MAX_CACHED_MODELS:  # too many to keep: later pages recompute
        return None
    now = utcnow()
    row = AIUsageTotals(
        tenant_id=ctx.tenant_id,
        filters_key=key,
        totals=totals,
        computed_at=now,
        expires_at=now + TOTALS_TTL,
    )
    await row.insert()
    return row.id


async def list_usage(*, ctx: RequestContext, filters: AIUsageFilters) -> AIUsagePage:
    """A page of the tenant's usage (newest first) and per-model totals over the whole range.

    The totals are one `$group` pipeline over every matching log, run once per walk through
    the pages (see the module docstring).
    """
    repo = Repository(AIUsageLog, ctx)
    query = _usage_filter(filters)
    key = _filters_key(filters)
    page_cursor, totals_id = _read_walk_cursor(filters.cursor) if filters.cursor else (None, None)
    page = await repo.page(
        query,
        limit=filters.limit,
        cursor=page_cursor,
        sort=NEWEST_OCCURRED_FIRST,
        view=AI_USAGE_VIEW,
    )
    totals = await _cached_totals(ctx, totals_id, key) if totals_id else None
    if totals is None:
        totals = await _compute_totals(repo, query)
        totals_id = await _keep_totals(ctx, key, totals) if page.next_cursor else None
    next_cursor = _walk_cursor(page.next_cursor, totals_id) if page.next_cursor else None
    by_model = {row.model: MODEL_TOTALS_VIEW.document(row) for row in totals}
    return AIUsagePage(items=page.items, next_cursor=next_cursor, totals=by_model)
