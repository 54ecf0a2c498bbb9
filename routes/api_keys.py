"""API keys for internal services (owner/admin)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from routes.deps import (
    CurrentContext,
    IfMatch,
    page_response,
    read_response,
    set_etag,
    set_location,
)
from schemas.api_keys import (
    API_KEY_VIEW,
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyFilters,
    ApiKeyRead,
    to_api_key_created,
)
from schemas.common import Page
from service import api_keys

router = APIRouter(prefix="/api-keys", tags=["api-keys"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=ApiKeyCreated,
    summary="Create a key (owner/admin); the key is in this response only",
)
async def create_api_key(
    body: ApiKeyCreate, ctx: CurrentContext, request: Request, response: Response
) -> Any:
    doc, key = await api_keys.create_api_key(ctx=ctx, name=body.name, role=body.role)
    set_etag(response, doc.version)
    set_location(request, response, "get_api_key", id=doc.id)
    return to_api_key_created(doc, key)


@router.get("", response_model=Page[ApiKeyRead], summary="The tenant's keys (never the key)")
async def list_api_keys(ctx: CurrentContext, filters: Annotated[ApiKeyFilters, Query()]) -> Any:
    page = await api_keys.list_api_keys(ctx=ctx, filters=filters)
    return page_response(page, Page[ApiKeyRead])


@router.get("/{id}", response_model=ApiKeyRead, summary="One key (never the key)")
async def get_api_key(id: UUID, ctx: CurrentContext) -> Response:
    doc = await api_keys.get_api_key(ctx=ctx, id=id)
    return read_response(API_KEY_VIEW, doc)


@router.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke a key: it answers 401 from then on",
)
async def revoke_api_key(id: UUID, ctx: CurrentContext, if_match: IfMatch) -> Response:
    await api_keys.revoke_api_key(ctx=ctx, id=id, expected_version=if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
