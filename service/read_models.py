"""Queries over the read models; each catches its projector up before answering.

Read models are not aggregate roots (no version, no soft delete, no journal), so they are not
read through `Repository`; every query goes through `tenant_filter`, the one helper that adds
the caller's tenant. Catching up first means a reader sees every write that finished before
its request (when this process can run the projector; otherwise after at most `READ_WAIT`,
see service/projections/runner.py), within the inline budget (`INLINE_FEED_BATCHES` batches
of each feed and `INLINE_FEED_BUDGET_MS` in all), so a backlog (after an import or an outage)
cannot make a read slow: the background worker applies the rest.

Rows marked `gone` (tombstones of keys that no longer exist, kept so a paused projector
cannot bring them back) are not rows: every query adds `runner.LIVE`.

One authorization rule for every per-user read model (campaign summary, blog stats, research
stats): `subject` — your own with any role, another user's of your tenant with admin or more.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from beanie import SortDirection

from documents.read_models import CampaignStats, GlobalAnalytics, GlobalCampaign, GlobalTeam
from documents.user import User
from documents.workspace_read_models import GlobalBlog, GlobalResearchStats
from service import projections
from service.analytics import resolve_range
from service.core.context import RequestContext, Role
from service.core.errors import NotFound
from service.core.repository import Repository, tenant_filter, uuid_filter
from service.projections import runner


async def subject(ctx: RequestContext, user_id: UUID | None) -> UUID:
    """Whose per-user read model the caller may read: their own, or (admin+) a colleague's.

    The caller's own by default (an API key has none: 403 without `user_id`); another user's
    needs admin, and must be a user of the caller's tenant (404 otherwise).
    """
    target = user_id or ctx.require_user()
    if target != ctx.user_id:
        ctx.require(Role.admin)  # data decides: only another user's read model needs admin
        await Repository(User, ctx).get(target)
    return target


async def _fresh(name: str) -> None:
    await projections.catch_up([name], budget=runner.INLINE)


async def global_campaign(*, ctx: RequestContext, user_id: UUID | None) -> dict[str, Any]:
    """A user's campaign summary (the caller's by default; another user's needs admin)."""
    target = await subject(ctx, user_id)
    await _fresh("global_campaign")
    row = await GlobalCampaign.find_one(
        tenant_filter(ctx, {"_id": uuid_filter(target), **runner.LIVE})
    )
    if row is not None:
        return row.model_dump()
    # No campaigns and no touchpoints yet: an all-zero summary.
    return GlobalCampaign(id=target, tenant_id=ctx.tenant_id, user_id=target).model_dump()


async def blog_stats(*, ctx: RequestContext, user_id: UUID | None) -> GlobalBlog:
    """A user's blog rollup (the caller's by default; another user's needs admin)."""
    target = await subject(ctx, user_id)
    await _fresh("blog_stats")
    row = await GlobalBlog.find_one(
        tenant_filter(ctx, {"user_id": uuid_filter(target), **runner.LIVE})
    )
    return row or GlobalBlog(tenant_id=ctx.tenant_id, user_id=target)


async def research_stats(*, ctx: RequestContext, user_id: UUID | None) -> GlobalResearchStats:
    """A user's research rollup (the caller's by default; another user's needs admin)."""
    target = await subject(ctx, user_id)
    await _fresh("research_stats")
    query = tenant_filter(ctx, {"user_id": uuid_filter(target), **runner.LIVE})
    row = await GlobalResearchStats.find_one(query)
    return row or GlobalResearchStats(tenant_id=ctx.tenant_id, user_id=target)


async def campaign_stats(*, ctx: RequestContext, campaign_id: UUID) -> CampaignStats:
    """The stats row of a live campaign of the tenant (404 otherwise)."""
    await _fresh("campaign_stats")
    row = await CampaignStats.find_one(
        tenant_filter(ctx, {"_id": uuid_filter(campaign_id), **runner.LIVE})
    )
    if row is None:
        raise NotFound(f"campaign {campaign_id} not found")
    return row


async def analytics_daily(
    *, ctx: RequestContext, since: datetime | None, until: datetime | None
) -> list[GlobalAnalytics]:
    """The tenant's per-day, per-channel rows in `[since, until)` (whole UTC days, ≤ 366)."""
    _, _, days = resolve_range(since, until, "day")
    await _fresh("global_analytics")
    # Rows are whole days: the range selects the days it touches, as the buckets do.
    first, last = (datetime.fromisoformat(d).replace(tzinfo=UTC) for d in (days[0], days[-1]))
    query = tenant_filter(ctx, {"day": {"$gte": first, "$lte": last}, **runner.LIVE})
    return (
        await GlobalAnalytics.find(query)
        .sort([("day", SortDirection.ASCENDING), ("channel", SortDirection.ASCENDING)])
        .to_list()
    )


async def global_team(*, ctx: RequestContext, team_id: UUID) -> GlobalTeam:
    """A live team of the tenant with its members' names (404 otherwise)."""
    await _fresh("global_team")
    row = await GlobalTeam.find_one(
        tenant_filter(ctx, {"_id": uuid_filter(team_id), **runner.LIVE})
    )
    if row is None:
        raise NotFound(f"team {team_id} not found")
    return row
