"""Read-model endpoints: the CQRS projections, caught up before each answer."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from routes.deps import CurrentContext
from schemas.analytics import (
    CampaignStatsRead,
    DailyParams,
    DailyRead,
    DailyRow,
    GlobalCampaignParams,
    GlobalCampaignRead,
    GlobalTeamRead,
)
from service import read_models

router = APIRouter(prefix="/read-models", tags=["read models"])


@router.get(
    "/campaigns",
    response_model=GlobalCampaignRead,
    summary="A user's campaigns by type and status and last activity (GlobalCampaign)",
)
async def global_campaign(
    ctx: CurrentContext, params: Annotated[GlobalCampaignParams, Query()]
) -> Any:
    """The caller's summary; `user_id` of another user of the tenant needs admin."""
    return await read_models.global_campaign(ctx=ctx, user_id=params.user_id)


@router.get(
    "/campaign-stats/{campaign_id}",
    response_model=CampaignStatsRead,
    summary="A campaign's leads, touchpoints and contact rate (CampaignStats)",
)
async def campaign_stats(campaign_id: UUID, ctx: CurrentContext) -> Any:
    """The projection of one live campaign of the tenant."""
    row = await read_models.campaign_stats(ctx=ctx, campaign_id=campaign_id)
    return row.model_dump()


@router.get(
    "/analytics",
    response_model=DailyRead,
    summary="Touchpoints per UTC day and channel (GlobalAnalytics)",
)
async def analytics_daily(ctx: CurrentContext, params: Annotated[DailyParams, Query()]) -> Any:
    """Days with touchpoints in `[since, until)` (at most 366 days), by day then channel."""
    rows = await read_models.analytics_daily(ctx=ctx, since=params.since, until=params.until)
    return DailyRead(items=[DailyRow.model_validate(r.model_dump()) for r in rows])


@router.get(
    "/teams/{team_id}",
    response_model=GlobalTeamRead,
    summary="A team with its members' usernames and names (GlobalTeam)",
)
async def global_team(team_id: UUID, ctx: CurrentContext) -> Any:
    """The denormalised team, read in one query."""
    row = await read_models.global_team(ctx=ctx, team_id=team_id)
    return row.model_dump()
