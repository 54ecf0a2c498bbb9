"""Touchpoint events: `/v1/events` (idempotent create, read, list; events are immutable)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, Query, Request, Response, status

from routes.deps import (
    CurrentContext,
    SettingsDep,
    page_response,
    read_response,
    set_etag,
    set_location,
    set_replayed,
)
from schemas.events import (
    EVENT_VIEW,
    EventCreate,
    EventFilters,
    EventPage,
    EventRead,
    EventStatusUpdate,
)
from service import callbacks, events

router = APIRouter(prefix="/events", tags=["events"])

IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=255,
        description="Replays with the same key and body answer the first response; "
        "the same key with another body → 409. Kept per tenant for IDEMPOTENCY_TTL_HOURS.",
    ),
]


@router.post("", response_model=EventRead, status_code=status.HTTP_201_CREATED)
async def create_event(
    body: EventCreate,
    ctx: CurrentContext,
    settings: SettingsDep,
    request: Request,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Record a touchpoint: `campaign_id` and `lead_id` must be the tenant's, and the lead one
    of the campaign's leads (else 422).

    A replay of an `Idempotency-Key` answers the first answer with `Idempotent-Replayed: true`.
    """
    view, replayed = await events.create_event(
        ctx=ctx,
        data=body,
        idempotency_key=idempotency_key,
        ttl_hours=settings.idempotency_ttl_hours,
    )
    set_etag(response, view["version"])
    set_location(request, response, "get_event", id=view["id"])
    set_replayed(response, replayed)
    return view


@router.post("/status", response_model=EventRead)
async def update_event_status(
    body: EventStatusUpdate, ctx: CurrentContext, response: Response
) -> Any:
    """A provider callback (`provider` + `external_id` of a recorded event): the event's
    status (text: `delivery_status`; e-mail: `status`; call: `outcome`) moves forward along
    its channel's lifecycle only; a late, older status is kept in `status_history` without
    moving it back, and the same callback twice is recorded once. Unknown pair → 404."""
    event = await callbacks.update_status(ctx=ctx, data=body)
    set_etag(response, event.version)
    return event


@router.get("", response_model=EventPage)
async def list_events(ctx: CurrentContext, filters: Annotated[EventFilters, Query()]) -> Any:
    """The tenant's events, newest `occurred_at` first or `sort`ed; `since` inclusive, `until`
    exclusive on `occurred_at`; `count=true` adds `total`."""
    page = await events.list_events(ctx=ctx, filters=filters)
    return page_response(page, EventPage)


@router.get("/{id}", response_model=EventRead)
async def get_event(id: UUID, ctx: CurrentContext) -> Response:
    """One event."""
    event = await events.get_event(ctx=ctx, id=id)
    return read_response(EVENT_VIEW, event)


# PATCH/PUT/DELETE are not routes: events are facts, so the router answers 405 with `Allow`
# (service/core/errors.py lists every method of the path), and OpenAPI does not offer those verbs.
