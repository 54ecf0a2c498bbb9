"""Analytics endpoints: figures computed by MongoDB aggregation pipelines."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from routes.deps import CurrentContext
from schemas.analytics import CampaignAnalyticsRead, OverviewParams, OverviewRead
from service import analytics

router = APIRouter(prefix="/analytics", tags=["analytics"])


@router.get(
    "/campaigns/{id}",
    response_model=CampaignAnalyticsRead,
    summary="A campaign's leads, touchpoints by type, leads contacted and contact rate",
)
async def campaign_analytics(id: UUID, ctx: CurrentContext) -> Any:
    """One aggregation over the campaign's events, its links and the campaign itself."""
    return await analytics.campaign_analytics(ctx=ctx, campaign_id=id)


@router.get(
    "/overview",
    response_model=OverviewRead,
    summary="Touchpoints per UTC day, week (from Monday) or month, per channel",
)
async def overview(ctx: CurrentContext, params: Annotated[OverviewParams, Query()]) -> Any:
    """`since` inclusive, `until` exclusive; every bucket of the range, empty ones with zeros."""
    return await analytics.overview(
        ctx=ctx, since=params.since, until=params.until, interval=params.interval, tz=params.tz
    )
