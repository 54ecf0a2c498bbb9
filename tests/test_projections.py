"""Read models: incremental equals rebuilt, idempotent re-runs, checkpoints by `seq`, isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch
from uuid import uuid4

import pytest
from beanie import Document
from bson import Binary

from documents.base import utcnow
from documents.campaign import CampaignBase
from documents.journal import DomainEvent
from documents.read_models import (
    CampaignStats,
    GlobalAnalytics,
    GlobalCampaign,
    GlobalTeam,
    ProjectionCheckpoint,
    analytics_key,
)
from documents.team import Team, TeamMember, TeamRole
from documents.user import User
from documents.workspace_read_models import GlobalBlog, GlobalResearchStats
from service import lifecycle, projections
from service.cli.read_models import repair_journal
from service.core import journal
from service.core.repository import Repository
from service.core.settings import Settings
from service.embedded import aio
from service.feeds import sequencer
from service.projections import runner
from tests.support import analytics_seed as seed
from tests.support.helpers import Account, assert_problem

MODELS: list[type[Document]] = [
    GlobalCampaign,
    CampaignStats,
    GlobalAnalytics,
    GlobalTeam,
    GlobalBlog,
    GlobalResearchStats,
]


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No background workers here: these tests count what each catch-up applies itself."""
    return settings.model_copy(update={"background_workers": False})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def snapshot(model: type[Document]) -> list[dict[str, Any]]:
    """A read model's stored rows without their stamps (time, fence, rebuild generation), by key."""
    rows = (
        await model.get_pymongo_collection()
        .find({"gone": {"$ne": True}}, {"computed_at": 0, "fence": 0, "built": 0})
        .to_list(None)
    )
    return sorted(rows, key=lambda r: str(r["_id"]))


async def make_team(account: Account, *members: Account) -> Team:
    team = Team(
        tenant_id=account.tenant_id,
        name="Sellers",
        members=[TeamMember(user_id=account.id, role=TeamRole.owner)]
        + [TeamMember(user_id=m.id) for m in members],
    )
    return await Repository(Team, account.ctx).create(team)


async def build_world(owner: Account, member: Account, stranger: Account) -> dict[str, Any]:
    """Two tenants with campaigns, links, touchpoints, changes, a deletion and a team."""
    ctx = owner.ctx
    c1 = await seed.campaign(ctx)
    c2 = await seed.campaign(ctx, kind="email")
    leads = [await seed.lead(ctx) for _ in range(3)]
    await seed.link(ctx, c1.id, *(x.id for x in leads))
    await projections.catch_up()  # a checkpoint in the middle of the story
    await seed.touch(ctx, "call", c1.id, leads[0].id, at("2024-05-01 09:00"))
    await seed.touch(ctx, "text", c1.id, leads[0].id, at("2024-05-01 10:00"))
    await seed.touch(ctx, "email", c2.id, leads[1].id, at("2024-05-02 10:00"), user_id=member.id)
    c1 = await Repository(CampaignBase, ctx).update(c1, {"status": "active"})
    await projections.catch_up()
    doomed = await seed.campaign(ctx)
    await seed.touch(ctx, "call", doomed.id, leads[2].id, at("2024-05-03 10:00"))
    await lifecycle.delete(ctx=ctx, model=CampaignBase, id=doomed.id)
    team = await make_team(owner, member)
    await owner.client.post("/v1/blogs", json={"title": "Open house"})
    await member.client.post("/v1/blogs", json={"title": "Draft"})
    await owner.client.post(
        "/v1/research/topics",
        json={"topic": "Condos", "results": [{"keywords": ["a", "b"], "search_volume": 5}]},
    )
    s_camp, s_lead = await seed.campaign(stranger.ctx), await seed.lead(stranger.ctx)
    await seed.link(stranger.ctx, s_camp.id, s_lead.id)
    await seed.touch(stranger.ctx, "social", s_camp.id, s_lead.id, at("2024-05-01 12:00"))
    await projections.catch_up()
    return {"c1": c1, "c2": c2, "doomed": doomed, "team": team, "s_camp": s_camp}


async def test_rebuilt_read_models_equal_the_incremental_ones(
    owner: Account, member: Account, stranger: Account
) -> None:
    await build_world(owner, member, stranger)
    incremental = {m.__name__: await snapshot(m) for m in MODELS}
    assert all(incremental.values()), incremental  # every read model has rows

    for name in projections.PROJECTORS:
        await projections.rebuild(name)

    assert {m.__name__: await snapshot(m) for m in MODELS} == incremental


async def test_projected_figures(owner: Account, member: Account, stranger: Account) -> None:
    world = await build_world(owner, member, stranger)
    stats = await CampaignStats.get(world["c1"].id)
    assert stats is not None
    assert (stats.leads_total, stats.events_total, stats.leads_contacted) == (3, 2, 1)
    assert stats.events_by_type == {"call": 1, "text": 1, "social": 0, "email": 0}
    assert abs(stats.contact_rate - 1 / 3) < 1e-9 and stats.status == "active"
    doomed = {"_id": Binary.from_uuid(world["doomed"].id), "gone": {"$ne": True}}
    assert await CampaignStats.find_one(doomed) is None  # deleted: no row (or a tombstone)

    mine = await GlobalCampaign.get(owner.id)
    assert mine is not None
    assert mine.campaigns_total == 2  # the deleted one is gone
    assert mine.by_type == {"call": 1, "email": 1}
    assert mine.by_type_and_status == {"call": {"active": 1}, "email": {"draft": 1}}
    assert mine.events_total == 3  # touchpoints made by the owner, incl. the deleted campaign's
    assert mine.last_activity_at is not None
    agent = await GlobalCampaign.get(member.id)
    assert agent is not None and agent.campaigns_total == 0 and agent.events_total == 1

    day = await GlobalAnalytics.get(analytics_key(owner.tenant_id, "2024-05-01", "call"))
    assert day is not None and (day.events, day.leads_touched) == (1, 1)
    foreign = await GlobalAnalytics.get(analytics_key(stranger.tenant_id, "2024-05-01", "social"))
    assert foreign is not None and foreign.tenant_id == stranger.tenant_id


async def test_a_rerun_from_scratch_does_not_double_count(
    owner: Account, member: Account, stranger: Account
) -> None:
    await build_world(owner, member, stranger)
    before = {m.__name__: await snapshot(m) for m in MODELS}
    await ProjectionCheckpoint.get_pymongo_collection().delete_many({})  # forget every position
    await projections.catch_up()
    await projections.catch_up()
    assert {m.__name__: await snapshot(m) for m in MODELS} == before


async def test_checkpoint_resumes_after_the_last_row(owner: Account) -> None:
    camp, lead = await seed.campaign(owner.ctx), await seed.lead(owner.ctx)
    await seed.touch(owner.ctx, "call", camp.id, lead.id, at("2024-05-01 09:00"))
    await projections.catch_up(["global_analytics"])
    cp = await ProjectionCheckpoint.get("global_analytics:events")
    assert cp is not None and cp.rows_seen == 1
    assert cp.position == await sequencer.head("events")  # everything up to the head

    await seed.touch(owner.ctx, "call", camp.id, lead.id, at("2024-05-01 10:00"))
    seen = await projections.catch_up(["global_analytics"])
    assert seen == {"global_analytics": 1}  # only the new entry
    day = await GlobalAnalytics.get(analytics_key(owner.tenant_id, "2024-05-01", "call"))
    assert day is not None and day.events == 2 and day.leads_touched == 1


async def test_an_entry_visible_late_below_the_position_is_still_applied(owner: Account) -> None:
    """A touchpoint stored with an OLD id (an idempotent takeover) after newer ones were read."""
    camp, lead = await seed.campaign(owner.ctx), await seed.lead(owner.ctx)
    await seed.touch(owner.ctx, "call", camp.id, lead.id, at("2024-05-01 09:00"))
    await projections.catch_up(["global_analytics"])
    early = projections_floor(utcnow() - timedelta(minutes=10))
    late = await seed.touch(owner.ctx, "text", camp.id, lead.id, at("2024-05-01 11:00"), id=early)
    assert late.id < (await seed.touch(owner.ctx, "call", camp.id, lead.id, at("2024-05-02"))).id

    await projections.catch_up(["global_analytics"])

    text = await GlobalAnalytics.get(analytics_key(owner.tenant_id, "2024-05-01", "text"))
    assert text is not None and text.events == 1


@pytest.mark.embedded_only  # service.embedded observers
async def test_an_empty_scan_moves_the_position_to_the_head(owner: Account) -> None:
    await projections.catch_up()
    # Many journal entries that `global_team` does not follow (campaigns).
    for _ in range(3):
        await seed.campaign(owner.ctx)
    await projections.catch_up(["global_team"])
    head = await sequencer.head("domain_events")
    cp = await ProjectionCheckpoint.get("global_team:domain_events")
    assert cp is not None and cp.position == head
    reads: list[Any] = []
    aio.observers.append(lambda op: reads.append(op) if op.collection == "domain_events" else None)
    try:
        await projections.catch_up(["global_team"])
    finally:
        aio.observers.pop()
    # The sequencer probes the feed's tail; the projector scans nothing (no `seq` range read).
    scans = [op for op in reads if "$lte" in str((op.filter or {}).get("seq"))]
    assert scans == []


async def test_batches_are_bounded_and_resume(owner: Account) -> None:
    camp, lead = await seed.campaign(owner.ctx), await seed.lead(owner.ctx)
    for hour in range(5):
        await seed.touch(owner.ctx, "call", camp.id, lead.id, at(f"2024-05-01 0{hour}:00"))
    seen = await projections.catch_up(["global_analytics"], batch_size=2, max_batches=1)
    assert seen == {"global_analytics": 2}
    rest = await projections.catch_up(["global_analytics"], batch_size=2)
    assert rest == {"global_analytics": 3}
    day = await GlobalAnalytics.get(analytics_key(owner.tenant_id, "2024-05-01", "call"))
    # Recomputing a key counts every source row of it, not just the batch's.
    assert day is not None and day.events == 5


async def test_team_view_follows_member_names(owner: Account, member: Account) -> None:
    team = await make_team(owner, member)
    user = await Repository(User, member.ctx).get(member.id)
    profile = user.profile.model_copy(update={"first_name": "Ana", "last_name": "Lima"})
    await Repository(User, member.ctx).update(user, {"profile": profile})

    r = await owner.client.get(f"/v1/read-models/teams/{team.id}")

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["member_count"] == 2 and body["name"] == "Sellers"
    assert [(m["user_id"], m["role"], m["username"]) for m in body["members"]] == [
        (str(owner.id), "owner", owner.user.username),
        (str(member.id), "member", member.user.username),
    ]
    assert (body["members"][1]["first_name"], body["members"][1]["last_name"]) == ("Ana", "Lima")


async def test_team_view_keeps_a_member_whose_user_is_not_found(
    owner: Account, member: Account
) -> None:
    """A member the `$lookup` finds no user for is listed without names, not dropped.

    On MongoDB `$arrayElemAt` past the end is missing and `$push` keeps the rest of the object;
    the embedded backend used to drop the member (issue 30).
    """
    team = await make_team(owner, member)
    users = User.get_pymongo_collection()
    await users.delete_one({"_id": Binary.from_uuid(member.id)})

    r = await owner.client.get(f"/v1/read-models/teams/{team.id}")

    assert r.status_code == 200, r.text
    body = r.json()
    assert body["member_count"] == 2
    missing = body["members"][1]
    assert missing["user_id"] == str(member.id) and missing["role"] == "member"
    assert missing["username"] is None and missing["first_name"] is None


async def test_read_model_endpoints_answer_current_data(owner: Account, member: Account) -> None:
    camp, lead = await seed.campaign(owner.ctx), await seed.lead(owner.ctx)
    await seed.link(owner.ctx, camp.id, lead.id)
    await seed.touch(owner.ctx, "call", camp.id, lead.id, at("2024-05-01 09:00"))

    stats = await owner.client.get(f"/v1/read-models/campaign-stats/{camp.id}")
    assert stats.status_code == 200, stats.text
    assert (stats.json()["leads_contacted"], stats.json()["contact_rate"]) == (1, 1.0)

    mine = (await owner.client.get("/v1/read-models/campaigns")).json()
    assert mine["user_id"] == str(owner.id) and mine["by_type"] == {"call": 1}

    daily = await owner.client.get(
        "/v1/read-models/analytics", params={"since": "2024-05-01", "until": "2024-05-02"}
    )
    assert daily.json() == {
        "items": [{"day": "2024-05-01", "channel": "call", "events": 1, "leads_touched": 1}]
    }
    # A user without campaigns gets zeros; another user's summary needs admin.
    empty = (await member.client.get("/v1/read-models/campaigns")).json()
    assert empty["campaigns_total"] == 0 and empty["by_type"] == {}
    r = await member.client.get("/v1/read-models/campaigns", params={"user_id": str(owner.id)})
    assert_problem(r, 403)
    r = await owner.client.get("/v1/read-models/campaigns", params={"user_id": str(member.id)})
    assert r.status_code == 200 and r.json()["user_id"] == str(member.id)


async def test_read_models_are_tenant_scoped(
    owner: Account, member: Account, stranger: Account
) -> None:
    world = await build_world(owner, member, stranger)
    c1, team = world["c1"], world["team"]
    client = stranger.client
    assert_problem(await client.get(f"/v1/read-models/campaign-stats/{c1.id}"), 404)
    assert_problem(await client.get(f"/v1/read-models/teams/{team.id}"), 404)
    r = await client.get("/v1/read-models/campaigns", params={"user_id": str(owner.id)})
    assert_problem(r, 404)
    daily = await client.get(
        "/v1/read-models/analytics", params={"since": "2024-05-01", "until": "2024-05-04"}
    )
    assert daily.json()["items"] == [
        {"day": "2024-05-01", "channel": "social", "events": 1, "leads_touched": 1}
    ]
    assert_problem(await owner.client.get(f"/v1/read-models/teams/{uuid4()}"), 404)
    assert_problem(await owner.client.get("/v1/read-models/analytics?since=x"), 422)
    assert_problem(await owner.client.get("/v1/read-models/campaigns?bogus=1"), 422)


# -- crash repair and the CLI ------------------------------------------------------------------


async def test_late_repaired_event_reaches_the_read_models(owner: Account) -> None:
    camp = await seed.campaign(owner.ctx)
    await projections.catch_up(["campaign_stats"])

    async def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("process died between the state write and the journal insert")

    with patch.object(journal, "flush_pending", crash), pytest.raises(RuntimeError):
        await Repository(CampaignBase, owner.ctx).update(camp, {"status": "active"})
    # Time passes: newer journal entries are read, the checkpoint moves past the crashed id.
    await seed.campaign(owner.ctx)
    await projections.catch_up(["campaign_stats"])
    stale = await CampaignStats.get(camp.id)
    assert stale is not None and stale.status == "draft"

    assert await repair_journal() == 1  # flushes the outbox and rewinds the journal checkpoints
    await projections.catch_up(["campaign_stats"])
    fresh = await CampaignStats.get(camp.id)
    assert fresh is not None and fresh.status == "active"
    history = await DomainEvent.find({"aggregate_id": Binary.from_uuid(camp.id)}).to_list()
    assert sorted(e.version for e in history) == [1, 2]


@pytest.mark.embedded_only  # service.embedded observers
async def test_rebuild_swaps_rows_in_without_an_empty_window(
    owner: Account, member: Account, stranger: Account
) -> None:
    world = await build_world(owner, member, stranger)
    # A row of a key that no longer exists: the rebuild must remove it, and only it.
    await CampaignStats.get_pymongo_collection().insert_one(
        {
            "_id": Binary.from_uuid(uuid4()),
            "tenant_id": Binary.from_uuid(owner.tenant_id),
            "computed_at": utcnow() - timedelta(days=1),
        }
    )
    seen: list[Any] = []
    aio.observers.append(
        lambda op: seen.append(op) if op.collection == "read_campaign_stats" else None
    )
    try:
        rows = await projections.rebuild("campaign_stats")
    finally:
        aio.observers.pop()
    writes = [op.method for op in seen if op.method in ("bulk_write", "delete_many")]
    # Upsert over the old rows (a bulk write per tenant: two here), then prune.
    assert writes == ["bulk_write", "bulk_write", "delete_many"]
    prune = next(op for op in seen if op.method == "delete_many")
    assert set(prune.filter or {}) == {"built", "fence"}  # only rows the rebuild did not write
    assert rows == await CampaignStats.get_pymongo_collection().count_documents({})
    assert await CampaignStats.get(world["c1"].id) is not None


async def test_a_second_run_applies_nothing(owner: Account) -> None:
    camp, lead = await seed.campaign(owner.ctx), await seed.lead(owner.ctx)
    await seed.touch(owner.ctx, "call", camp.id, lead.id, at("2024-05-01 09:00"))
    first = await projections.catch_up()
    assert first["global_analytics"] == 1 and first["campaign_stats"] >= 2
    calls = 0
    real = runner.apply

    async def counting(*args: Any, **kwargs: Any) -> int:
        nonlocal calls
        calls += 1
        return await real(*args, **kwargs)

    with patch.object(runner, "apply", counting):
        again = await projections.catch_up()
    assert set(again.values()) == {0} and calls == 0


def projections_floor(moment: datetime) -> Any:
    """The smallest UUIDv7 of a millisecond (an id as a writer of that moment made it)."""
    from uuid import UUID

    ms = int(moment.timestamp() * 1000)
    return UUID(int=(ms << 80) | (0x7 << 76) | (0b10 << 62))
