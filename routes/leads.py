"""Leads: `/v1/leads` (polymorphic CRUD, bulk import, timeline, lifecycle)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from documents.lead import LeadBase
from routes.deps import CurrentContext, IfMatch, Member, set_etag, set_location
from routes.lifecycle import add_lifecycle_routes
from schemas.common import Page
from schemas.events import EventRead, TimelineParams, to_event_read
from schemas.leads import (
    LeadBulkImport,
    LeadBulkResult,
    LeadCreate,
    LeadFilters,
    LeadRead,
    LeadUpdate,
    to_lead_read,
)
from service import events, leads

router = APIRouter(prefix="/leads", tags=["leads"])


@router.post("", response_model=LeadRead, status_code=status.HTTP_201_CREATED)
async def create_lead(body: LeadCreate, ctx: Member, request: Request, response: Response) -> Any:
    """Create a lead; a duplicate email, phone or MLS id → 409 with `existing_id`."""
    lead = await leads.create_lead(ctx=ctx, data=body)
    set_etag(response, lead.version)
    set_location(request, response, "get_lead", id=lead.id)
    return to_lead_read(lead)


@router.post("/bulk", response_model=LeadBulkResult)
async def bulk_import(body: LeadBulkImport, ctx: Member) -> Any:
    """Import up to 10,000 leads: bad rows fail alone, duplicates are skipped and counted."""
    outcome = await leads.bulk_import(ctx=ctx, rows=body.leads)
    return LeadBulkResult(
        created=outcome.created,
        duplicates=outcome.duplicates,
        failed=outcome.failed,  # type: ignore[arg-type]
    )


@router.get("", response_model=Page[LeadRead])
async def list_leads(ctx: CurrentContext, filters: Annotated[LeadFilters, Query()]) -> Any:
    """The tenant's leads, newest first; `q` searches name, email, phone and address."""
    page = await leads.list_leads(ctx=ctx, filters=filters)
    return {"items": [to_lead_read(lead) for lead in page.items], "next_cursor": page.next_cursor}


@router.get("/{id}", response_model=LeadRead)
async def get_lead(id: UUID, ctx: CurrentContext, response: Response) -> Any:
    """One lead."""
    lead = await leads.get_lead(ctx=ctx, id=id)
    set_etag(response, lead.version)
    return to_lead_read(lead)


@router.patch("/{id}", response_model=LeadRead)
async def update_lead(
    id: UUID, body: LeadUpdate, ctx: Member, if_match: IfMatch, response: Response
) -> Any:
    """Change a lead (its type's fields); a dedupe clash → 409 with `existing_id`."""
    lead = await leads.update_lead(ctx=ctx, id=id, data=body, expected_version=if_match)
    set_etag(response, lead.version)
    return to_lead_read(lead)


@router.get("/{id}/events", response_model=Page[EventRead])
async def lead_timeline(
    id: UUID, ctx: CurrentContext, params: Annotated[TimelineParams, Query()]
) -> Any:
    """The lead's touchpoints, newest `occurred_at` first."""
    page = await events.list_lead_events(ctx=ctx, id=id, params=params)
    return {"items": [to_event_read(e) for e in page.items], "next_cursor": page.next_cursor}


add_lifecycle_routes(
    router,
    model=LeadBase,
    read_model=LeadRead,  # type: ignore[arg-type]  # a discriminated union works as a response model
    to_read=to_lead_read,  # type: ignore[arg-type]
)
