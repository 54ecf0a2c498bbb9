"""Touchpoint events: `/v1/events` (idempotent create, read, list; events are immutable)."""

from __future__ import annotations

from typing import Annotated, Any, NoReturn
from uuid import UUID

from fastapi import APIRouter, Header, Query, Response, status
from starlette.exceptions import HTTPException

from routes.deps import CurrentContext, Member, SettingsDep, set_etag
from schemas.common import Page, Problem
from schemas.events import EventCreate, EventFilters, EventRead, to_event_read
from service import events

router = APIRouter(prefix="/v1/events", tags=["events"])

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
    ctx: Member,
    settings: SettingsDep,
    response: Response,
    idempotency_key: IdempotencyKey = None,
) -> Any:
    """Record a touchpoint; `campaign_id` and `lead_id` must be the tenant's (else 422)."""
    view = await events.create_event(
        ctx=ctx,
        data=body,
        idempotency_key=idempotency_key,
        ttl_hours=settings.idempotency_ttl_hours,
    )
    set_etag(response, view["version"])
    return view


@router.get("", response_model=Page[EventRead])
async def list_events(ctx: CurrentContext, filters: Annotated[EventFilters, Query()]) -> Any:
    """The tenant's events, newest first; `since` inclusive, `until` exclusive on `occurred_at`."""
    page = await events.list_events(ctx=ctx, filters=filters)
    return {"items": [to_event_read(e) for e in page.items], "next_cursor": page.next_cursor}


@router.get("/{id}", response_model=EventRead)
async def get_event(id: UUID, ctx: CurrentContext, response: Response) -> Any:
    """One event."""
    event = await events.get_event(ctx=ctx, id=id)
    set_etag(response, event.version)
    return to_event_read(event)


async def events_are_immutable(id: UUID) -> NoReturn:
    """Events are facts: they cannot be changed or deleted (always 405)."""
    raise HTTPException(
        status.HTTP_405_METHOD_NOT_ALLOWED,
        detail="Events are immutable facts: they cannot be changed or deleted.",
        headers={"Allow": "GET"},
    )


# Declared (rather than left to the router) so that OpenAPI documents the 405 of each verb.
for _method in ("PATCH", "PUT", "DELETE"):
    router.add_api_route(
        "/{id}",
        events_are_immutable,
        methods=[_method],
        status_code=status.HTTP_405_METHOD_NOT_ALLOWED,
        response_model=None,
        responses={405: {"model": Problem, "description": "Events are immutable facts."}},
        summary=f"{_method} an event (not allowed)",
        operation_id=f"{_method.lower()}_event_not_allowed",
    )
