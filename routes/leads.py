"""Leads: `/v1/leads` (polymorphic CRUD, bulk import, merge, export, timeline, lifecycle)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status
from fastapi.responses import StreamingResponse

from documents.lead import LeadBase
from routes.deps import (
    CurrentContext,
    IfMatch,
    page_response,
    read_response,
    set_etag,
    set_location,
)
from routes.lifecycle import add_lifecycle_routes
from schemas.events import TimelinePage, TimelineParams
from schemas.export import ndjson_chunks
from schemas.leads import (
    LEAD_CSV,
    LEAD_VIEW,
    ExportFormat,
    LeadAssign,
    LeadAssignResult,
    LeadBulkImport,
    LeadBulkResult,
    LeadCreate,
    LeadExportParams,
    LeadFilters,
    LeadMerge,
    LeadPage,
    LeadRead,
    LeadUpdate,
    to_lead_read,
)
from schemas.privacy import LeadErased, SubjectExport
from service import events
from service.leads import commands as leads
from service.leads import merge as lead_merge
from service.leads import privacy
from service.leads import queries as lead_queries

router = APIRouter(prefix="/leads", tags=["leads"])

_EXPORT_TYPES = {
    ExportFormat.csv: "text/csv; charset=utf-8",
    ExportFormat.ndjson: "application/x-ndjson",
}


@router.post("", response_model=LeadRead, status_code=status.HTTP_201_CREATED)
async def create_lead(
    body: LeadCreate, ctx: CurrentContext, request: Request, response: Response
) -> Any:
    """Create a lead; a duplicate email, phone or MLS id → 409 with `existing_id`."""
    lead = await leads.create_lead(ctx=ctx, data=body)
    set_etag(response, lead.version)
    set_location(request, response, "get_lead", id=lead.id)
    return to_lead_read(lead)


@router.post("/bulk", response_model=LeadBulkResult)
async def bulk_import(body: LeadBulkImport, ctx: CurrentContext) -> Any:
    """Import up to 10,000 leads: bad rows fail alone, duplicates are skipped and counted."""
    outcome = await leads.bulk_import(ctx=ctx, rows=body.leads)
    return LeadBulkResult(
        created=outcome.created,
        duplicates=outcome.duplicates,
        failed=outcome.failed,  # type: ignore[arg-type]
    )


@router.post("/assign", response_model=LeadAssignResult)
async def assign_leads(body: LeadAssign, ctx: CurrentContext) -> Any:
    """Assign leads to an active user of the tenant (each change journaled); `updated` counts
    the leads that changed hands. Reassign an agent's leads when they leave."""
    updated = await leads.assign_leads(
        ctx=ctx, lead_ids=body.lead_ids, assignee_id=body.assignee_id
    )
    return LeadAssignResult(updated=updated)


@router.get("", response_model=LeadPage)
async def list_leads(ctx: CurrentContext, filters: Annotated[LeadFilters, Query()]) -> Any:
    """The tenant's leads: newest first, `sort`ed, or nearest first with `near`.

    `q` searches names, email, phone digits, company, MLS id and address; `count=true` adds
    `total`. A cursor belongs to its sort (and `near` point): another one is refused (422).
    """
    page = await lead_queries.list_leads(ctx=ctx, filters=filters)
    return page_response(page, LeadPage)


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "Every matching lead: CSV with a header row, or one JSON lead a line.",
            "content": {
                "text/csv": {"schema": {"type": "string"}},
                "application/x-ndjson": {"schema": {"type": "string"}},
            },
        }
    },
)
async def export_leads(
    ctx: CurrentContext, params: Annotated[LeadExportParams, Query()]
) -> StreamingResponse:
    """Stream every lead matching the list filters, in the list's order (no page limit).

    CSV columns are fixed (every field of both lead types; nested ones as `address.city`,
    lists as JSON text); NDJSON lines are the leads as `GET /v1/leads/{id}` shows them.
    """
    items = await lead_queries.export_leads(ctx=ctx, params=params)
    body = LEAD_CSV.chunks(items) if params.format == ExportFormat.csv else ndjson_chunks(items)
    filename = f"leads.{params.format.value}"
    return StreamingResponse(
        body,
        media_type=_EXPORT_TYPES[params.format],
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.get("/{id}", response_model=LeadRead)
async def get_lead(
    id: UUID,
    ctx: CurrentContext,
    include_deleted: Annotated[
        bool, Query(description="Answer a deleted (or erased) lead too.")
    ] = False,
) -> Response:
    """One lead."""
    lead = await leads.get_lead(ctx=ctx, id=id, include_deleted=include_deleted)
    return read_response(LEAD_VIEW, lead)


@router.patch("/{id}", response_model=LeadRead)
async def update_lead(
    id: UUID, body: LeadUpdate, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    """Change a lead (its type's fields); a dedupe clash → 409 with `existing_id`."""
    lead = await leads.update_lead(ctx=ctx, id=id, data=body, expected_version=if_match)
    set_etag(response, lead.version)
    return to_lead_read(lead)


@router.post("/{id}/merge", response_model=LeadRead)
async def merge_leads(id: UUID, body: LeadMerge, ctx: CurrentContext, response: Response) -> Any:
    """Merge `source_ids` into this lead; answers the merged lead.

    The lead keeps its values and gains the sources' where it has none (address part by
    part, tags and segments united); the sources' touchpoint events and campaign links move
    to it; the sources are soft-deleted with `merged_into` set. Sources that are missing,
    deleted, another tenant's, or this lead itself → 422; a filled-in value another live
    lead holds → 409 with `existing_id` and `field`. Retrying the same merge is safe.
    """
    lead = await lead_merge.merge_leads(ctx=ctx, id=id, source_ids=body.source_ids)
    set_etag(response, lead.version)
    return to_lead_read(lead)


@router.get("/{id}/events", response_model=TimelinePage)
async def lead_timeline(
    id: UUID, ctx: CurrentContext, params: Annotated[TimelineParams, Query()]
) -> Any:
    """The lead's touchpoints, newest `occurred_at` first."""
    page = await events.list_lead_events(ctx=ctx, id=id, params=params)
    return page_response(page, TimelinePage)


@router.post("/{id}/erase", response_model=LeadErased)
async def erase_lead(id: UUID, ctx: CurrentContext) -> Any:
    """Erase the person's data (admin): personal fields, touchpoint free text, journal values.

    The lead stays as a soft-deleted tombstone with `erased_at`; ids, types, times and counts
    stay, so analytics do not change. Erasing it again answers 200 again.
    """
    lead = await privacy.erase_lead(ctx=ctx, id=id)
    return LeadErased(id=lead.id, erased_at=lead.erased_at)


@router.get("/{id}/data-export", response_model=SubjectExport)
async def export_lead_data(id: UUID, ctx: CurrentContext) -> Any:
    """Everything stored about the lead's person (admin): the lead, its consent, campaign
    memberships, touchpoints and history, as stored."""
    return await privacy.subject_export(ctx=ctx, id=id)


add_lifecycle_routes(
    router,
    model=LeadBase,
    read_model=LeadRead,  # type: ignore[arg-type]  # a discriminated union works as a response model
    to_read=to_lead_read,
)
