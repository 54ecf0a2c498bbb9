"""Campaigns: `/v1/campaigns` (polymorphic CRUD, lead links, lifecycle)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from documents.campaign import CampaignBase
from routes.deps import (
    CurrentContext,
    IfMatch,
    page_response,
    read_response,
    set_etag,
    set_location,
)
from routes.lifecycle import add_lifecycle_routes
from schemas.campaigns import (
    CAMPAIGN_VIEW,
    AttachLeads,
    AttachResult,
    CampaignCreate,
    CampaignFilters,
    CampaignPage,
    CampaignRead,
    CampaignUpdate,
    to_campaign_read,
)
from schemas.leads import CampaignLeadFilters, LeadPage
from service import campaigns
from service.leads import queries as lead_queries

router = APIRouter(prefix="/campaigns", tags=["campaigns"])


@router.post("", response_model=CampaignRead, status_code=status.HTTP_201_CREATED)
async def create_campaign(
    body: CampaignCreate, ctx: CurrentContext, request: Request, response: Response
) -> Any:
    """Create a campaign; `type` (call, social, text, email) picks its type-specific fields."""
    campaign = await campaigns.create_campaign(ctx=ctx, data=body)
    set_etag(response, campaign.version)
    set_location(request, response, "get_campaign", id=campaign.id)
    return to_campaign_read(campaign)


@router.get("", response_model=CampaignPage)
async def list_campaigns(ctx: CurrentContext, filters: Annotated[CampaignFilters, Query()]) -> Any:
    """The tenant's campaigns, newest first or `sort`ed; `count=true` adds `total`."""
    page = await campaigns.list_campaigns(ctx=ctx, filters=filters)
    return page_response(page, CampaignPage)


@router.get("/{id}", response_model=CampaignRead)
async def get_campaign(id: UUID, ctx: CurrentContext) -> Response:
    """One campaign; `lead_count` is the number of its live leads."""
    campaign = await campaigns.get_campaign(ctx=ctx, id=id)
    return read_response(CAMPAIGN_VIEW, campaign)


@router.patch("/{id}", response_model=CampaignRead)
async def update_campaign(
    id: UUID, body: CampaignUpdate, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    """Change a campaign (its type's fields; status along the allowed transitions, else 409)."""
    campaign = await campaigns.update_campaign(ctx=ctx, id=id, data=body, expected_version=if_match)
    set_etag(response, campaign.version)
    return to_campaign_read(campaign)


@router.post("/{id}/leads", response_model=AttachResult)
async def attach_leads(id: UUID, body: AttachLeads, ctx: CurrentContext) -> Any:
    """Attach up to 1000 leads; `added` counts new links. Unknown ids → 422, none added."""
    added = await campaigns.attach_leads(ctx=ctx, id=id, lead_ids=body.lead_ids)
    return AttachResult(added=added)


@router.delete("/{id}/leads/{lead_id}", status_code=status.HTTP_204_NO_CONTENT)
async def detach_lead(id: UUID, lead_id: UUID, ctx: CurrentContext) -> Response:
    """Detach one lead from the campaign (journaled; `lead_count` follows). Not attached → 404."""
    await campaigns.detach_lead(ctx=ctx, id=id, lead_id=lead_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{id}/leads", response_model=LeadPage)
async def list_campaign_leads(
    id: UUID, ctx: CurrentContext, filters: Annotated[CampaignLeadFilters, Query()]
) -> Any:
    """The campaign's live leads (deleted ones with `include_deleted=true`), newest lead first."""
    page = await lead_queries.list_campaign_leads(ctx=ctx, id=id, filters=filters)
    return page_response(page, LeadPage)


add_lifecycle_routes(
    router,
    model=CampaignBase,
    read_model=CampaignRead,  # type: ignore[arg-type]  # a discriminated union works as a response model
    to_read=to_campaign_read,
)
