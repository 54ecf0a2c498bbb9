"""AI: the caller's config and context (`/v1/ai/config`, `/v1/ai/context`) and `/v1/ai/usage`.

Config and context live on the caller's own User aggregate: any role may read and change its
own; API keys (no user) get 403. Their `ETag` is the user aggregate's version.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from routes.deps import CurrentContext, IfMatch, read_response, set_etag, set_location
from schemas.ai import (
    AI_CONFIG_VIEW,
    AI_CONTEXT_VIEW,
    AI_USAGE_VIEW,
    AIConfigBody,
    AIConfigRead,
    AIContextBody,
    AIContextRead,
    AIUsageCreate,
    AIUsageFilters,
    AIUsagePage,
    AIUsageRead,
    to_ai_usage_read,
)
from service import ai, users

router = APIRouter(prefix="/ai", tags=["ai"])


@router.get("/config", response_model=AIConfigRead)
async def get_config(ctx: CurrentContext, response: Response) -> Any:
    """The caller's AI config."""
    user = await users.get_me(ctx=ctx)
    set_etag(response, user.version)
    return AI_CONFIG_VIEW.document(user.ai_config)


@router.put("/config", response_model=AIConfigRead)
async def put_config(
    body: AIConfigBody, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    """Replace the caller's AI config (omitted fields take their defaults)."""
    user = await ai.put_ai_config(ctx=ctx, data=body, expected_version=if_match)
    set_etag(response, user.version)
    return AI_CONFIG_VIEW.document(user.ai_config)


@router.get("/context", response_model=AIContextRead)
async def get_context(ctx: CurrentContext, response: Response) -> Any:
    """The caller's AI context."""
    user = await users.get_me(ctx=ctx)
    set_etag(response, user.version)
    return AI_CONTEXT_VIEW.document(user.ai_context)


@router.put("/context", response_model=AIContextRead)
async def put_context(
    body: AIContextBody, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    """Replace the caller's AI context."""
    user = await ai.put_ai_context(ctx=ctx, data=body, expected_version=if_match)
    set_etag(response, user.version)
    return AI_CONTEXT_VIEW.document(user.ai_context)


@router.post("/usage", response_model=AIUsageRead, status_code=status.HTTP_201_CREATED)
async def record_usage(
    body: AIUsageCreate, ctx: CurrentContext, request: Request, response: Response
) -> Any:
    """Log one model call (any role; a user logs their own usage)."""
    log = await ai.record_usage(ctx=ctx, data=body)
    set_etag(response, log.version)
    set_location(request, response, "get_usage", id=log.id)
    return to_ai_usage_read(log)


@router.get("/usage", response_model=AIUsagePage)
async def list_usage(ctx: CurrentContext, filters: Annotated[AIUsageFilters, Query()]) -> Any:
    """The tenant's usage, newest first, with per-model `totals` over the whole range.

    The totals are computed once per walk (the first page) and repeated on its later pages.
    """
    return await ai.list_usage(ctx=ctx, filters=filters)


@router.get("/usage/{id}", response_model=AIUsageRead)
async def get_usage(id: UUID, ctx: CurrentContext) -> Response:
    """One usage record of the tenant (where `POST /v1/ai/usage` points with `Location`)."""
    log = await ai.get_usage(ctx=ctx, id=id)
    return read_response(AI_USAGE_VIEW, log)
