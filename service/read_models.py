"""Queries over the read models; each catches its projector up before answering.

Read models are not aggregate roots (no version, no soft delete, no journal), so they are not
read through `Repository`; every query goes through `tenant_filter`, the one helper that adds
the caller's tenant. Catching up first means a reader sees every write that finished
before its request; it reads at most `CATCH_UP_BATCHES` batches of each feed, so a backlog
(after an import or an outage) cannot make a read slow — the next reads continue from there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from beanie import SortDirection

from documents.read_models import CampaignStats, GlobalAnalytics, GlobalCampaign, GlobalTeam
from documents.user import User
from service import projections
from service.analytics import resolve_range
from service.context import RequestContext, Role
from service.errors import NotFound
from service.repository import Repository, tenant_filter, uuid_filter

CATCH_UP_BATCHES = 4


async def global_campaign(*, ctx: RequestContext, user_id: UUID | None) -> dict[str, Any]:
    """A user's campaign summary (the caller's by default; another user's needs admin)."""
    target = user_id or ctx.require_user()
    if target != ctx.user_id:
        ctx.require(Role.admin)
    await projections.catch_up(["global_campaign"], max_batches=CATCH_UP_BATCHES)
    row = await GlobalCampaign.find_one(tenant_filter(ctx, {"_id": uuid_filter(target)}))
    if row is not None:
        return row.model_dump()
    # No campaigns and no touchpoints yet: an all-zero summary, if the user is the tenant's.
    await Repository(User, ctx).get(target)
    return GlobalCampaign(id=target, tenant_id=ctx.tenant_id, user_id=target).model_dump()


async def campaign_stats(*, ctx: RequestContext, campaign_id: UUID) -> CampaignStats:
    """The stats row of a live campaign of the tenant (404 otherwise)."""
    await projections.catch_up(["campaign_stats"], max_batches=CATCH_UP_BATCHES)
    row = await CampaignStats.find_one(tenant_filter(ctx, {"_id": uuid_filter(campaign_id)}))
    if row is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return row


async def analytics_daily(
    *, ctx: RequestContext, since: datetime | None, until: datetime | None
) -> list[GlobalAnalytics]:
    """The tenant's per-day, per-channel rows in `[since, until)` (whole UTC days, ≤ 366)."""
    _, _, days = resolve_range(since, until, "day")
    await projections.catch_up(["global_analytics"], max_batches=CATCH_UP_BATCHES)
    # Rows are whole days: the range selects the days it touches, as the buckets do.
    query = tenant_filter(ctx, {"day": {"$gte": days[0], "$lte": days[-1]}})
    return (
        await GlobalAnalytics.find(query)
        .sort([("day", SortDirection.ASCENDING), ("channel", SortDirection.ASCENDING)])
        .to_list()
    )


async def global_team(*, ctx: RequestContext, team_id: UUID) -> GlobalTeam:
    """A live team of the tenant with its members' names (404 otherwise)."""
    await projections.catch_up(["global_team"], max_batches=CATCH_UP_BATCHES)
    row = await GlobalTeam.find_one(tenant_filter(ctx, {"_id": uuid_filter(team_id)}))
    if row is None:
        raise NotFound(f"team {team_id} not found")
    return row
