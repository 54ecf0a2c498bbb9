"""Webhook subscriptions (admin) and their delivery log."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from routes.deps import CurrentContext, IfMatch, SettingsDep, page_response, set_etag, set_location
from schemas.common import Page, PageParams
from schemas.webhooks import (
    DeliveryParams,
    DeliveryRead,
    WebhookCreate,
    WebhookCreated,
    WebhookRead,
    WebhookUpdate,
)
from service.webhooks import endpoints

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=WebhookCreated,
    summary="Subscribe an endpoint to the tenant's changes (the secret is shown once)",
)
async def create_webhook(
    body: WebhookCreate,
    ctx: CurrentContext,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> Any:
    """Deliveries follow the Standard Webhooks specification, signed with `secret`."""
    endpoint, secret = await endpoints.create_webhook(ctx=ctx, settings=settings, data=body)
    set_etag(response, endpoint.version)
    set_location(request, response, "get_webhook", id=endpoint.id)
    states = await endpoints.states_of(ctx, [endpoint.id])
    return {**endpoints.to_read(endpoint, states.get(endpoint.id)), "secret": secret}


@router.get("", response_model=Page[WebhookRead], summary="The tenant's subscriptions")
async def list_webhooks(ctx: CurrentContext, params: Annotated[PageParams, Query()]) -> Any:
    """Newest first, with each one's delivery status."""
    page = await endpoints.list_webhooks(ctx=ctx, params=params)
    return page_response(page, Page[WebhookRead])


@router.get("/{id}", response_model=WebhookRead, summary="One subscription")
async def get_webhook(id: UUID, ctx: CurrentContext, response: Response) -> Any:
    """With its delivery status (and why it was disabled, if it was)."""
    endpoint = await endpoints.get_webhook(ctx=ctx, id=id)
    set_etag(response, endpoint.version)
    states = await endpoints.states_of(ctx, [endpoint.id])
    return endpoints.to_read(endpoint, states.get(endpoint.id))


@router.patch("/{id}", response_model=WebhookRead, summary="Change a subscription")
async def update_webhook(
    id: UUID,
    body: WebhookUpdate,
    ctx: CurrentContext,
    settings: SettingsDep,
    if_match: IfMatch,
    response: Response,
) -> Any:
    """`url`, `event_types`, `description`, `enabled` (re-enabling retries at once)."""
    endpoint = await endpoints.update_webhook(
        ctx=ctx, settings=settings, id=id, data=body, expected_version=if_match
    )
    set_etag(response, endpoint.version)
    states = await endpoints.states_of(ctx, [endpoint.id])
    return endpoints.to_read(endpoint, states.get(endpoint.id))


@router.delete(
    "/{id}", status_code=status.HTTP_204_NO_CONTENT, summary="Delete a subscription (soft)"
)
async def delete_webhook(id: UUID, ctx: CurrentContext, if_match: IfMatch) -> Response:
    """Nothing more is delivered to it."""
    await endpoints.delete_webhook(ctx=ctx, id=id, expected_version=if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/{id}/deliveries",
    response_model=Page[DeliveryRead],
    summary="Delivery attempts of a subscription, newest first",
)
async def list_deliveries(
    id: UUID, ctx: CurrentContext, params: Annotated[DeliveryParams, Query()]
) -> Any:
    """Each attempt with its status code, time and error (kept 30 days)."""
    page = await endpoints.list_deliveries(ctx=ctx, id=id, params=params)
    return page_response(page, Page[DeliveryRead])
