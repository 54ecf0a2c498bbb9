"""Integrations: `/v1/integrations` (create, list, get, patch, lifecycle); write-only secrets."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from documents.integration import Integration
from routes.deps import (
    CurrentContext,
    IfMatch,
    SettingsDep,
    page_response,
    read_response,
    set_etag,
    set_location,
)
from routes.lifecycle import add_lifecycle_routes
from schemas.common import Page
from schemas.integrations import (
    INTEGRATION_VIEW,
    IntegrationCreate,
    IntegrationFilters,
    IntegrationRead,
    IntegrationUpdate,
    to_integration_read,
)
from service import integrations

router = APIRouter(prefix="/integrations", tags=["integrations"])


@router.post("", response_model=IntegrationRead, status_code=status.HTTP_201_CREATED)
async def create_integration(
    body: IntegrationCreate,
    ctx: CurrentContext,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> Any:
    """Add an integration; `credentials` are stored encrypted and never returned."""
    integration = await integrations.create_integration(ctx=ctx, settings=settings, data=body)
    set_etag(response, integration.version)
    set_location(request, response, "get_integration", id=integration.id)
    return to_integration_read(integration)


@router.get("", response_model=Page[IntegrationRead])
async def list_integrations(
    ctx: CurrentContext, filters: Annotated[IntegrationFilters, Query()]
) -> Any:
    """The tenant's integrations, newest first."""
    page = await integrations.list_integrations(ctx=ctx, filters=filters)
    return page_response(page, Page[IntegrationRead])


@router.get("/{id}", response_model=IntegrationRead)
async def get_integration(id: UUID, ctx: CurrentContext) -> Response:
    """One integration (`has_credentials`, never the credentials)."""
    integration = await integrations.get_integration(ctx=ctx, id=id)
    return read_response(INTEGRATION_VIEW, integration)


@router.patch("/{id}", response_model=IntegrationRead)
async def update_integration(
    id: UUID,
    body: IntegrationUpdate,
    ctx: CurrentContext,
    settings: SettingsDep,
    if_match: IfMatch,
    response: Response,
) -> Any:
    """Change status, name or credentials (`credentials: null` removes them)."""
    integration = await integrations.update_integration(
        ctx=ctx, settings=settings, id=id, patch=body, expected_version=if_match
    )
    set_etag(response, integration.version)
    return to_integration_read(integration)


add_lifecycle_routes(
    router, model=Integration, read_model=IntegrationRead, to_read=to_integration_read
)
