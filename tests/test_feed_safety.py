"""Feed consumers on a cluster's terms (issue 24.4-24.5, 23.6): a paused writer that lost its
lease cannot overwrite a newer row; a stale read never makes a reader skip an entry; the
feed work a request does inline is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any
from unittest.mock import patch
from uuid import UUID

import pytest

from documents.read_models import GlobalTeam
from documents.team import Team, TeamMember, TeamRole
from documents.workspace_read_models import GlobalBlog
from service import projections
from service.core.repository import Repository
from service.core.settings import Settings
from service.embedded import EmbeddedCollection
from service.feeds import leases, sequencer
from service.projections import runner
from tests.factories import make_lead
from tests.support.helpers import Account

TTL = timedelta(seconds=30)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No background workers: each test drives the projectors and leases itself."""
    return settings.model_copy(update={"background_workers": False})


async def new_team(account: Account, name: str) -> Team:
    team = Team(
        tenant_id=account.tenant_id,
        name=name,
        members=[TeamMember(user_id=account.id, role=TeamRole.owner)],
    )
    return await Repository(Team, account.ctx).create(team)


async def rename(account: Account, team_id: UUID, name: str) -> None:
    repo = Repository(Team, account.ctx)
    await repo.update(await repo.get(team_id), {"name": name})


async def stored_name(team_id: UUID) -> str | None:
    row = await GlobalTeam.get(team_id)
    return row.name if row is not None else None


# -- fencing ----------------------------------------------------------------------------------


async def paused_writer_race(change: Any) -> None:
    """Writer A computes the team's row and pauses; `change` happens, A's lease moves on to B,
    B applies it; then A wakes up and writes what it computed (its rows and checkpoint)."""
    projector = projections.PROJECTORS["global_team"]
    computed, resume = asyncio.Event(), asyncio.Event()
    real = type(projector).compute
    calls = 0

    async def pausing(self: Any, keys: Any) -> Any:
        nonlocal calls
        calls += 1
        docs = await real(self, keys)
        if calls == 1:  # only writer A pauses
            computed.set()
            await resume.wait()
        return docs

    name = runner.lease_name("global_team")
    a = await leases.take(name, "writer-a", TTL)
    assert a is not None
    with patch.object(type(projector), "compute", pausing):
        paused = asyncio.create_task(runner.catch_up_projector(projector, held=a))
        await computed.wait()
        await change()
        await projections.sync_feeds()
        await leases.release(a)
        b = await leases.take(name, "writer-b", TTL)
        assert b is not None and b.fence > a.fence
        await runner.catch_up_projector(projector, held=b)
        resume.set()
        await paused
    assert await runner.caught_up(projector)  # B's checkpoint stands too


async def test_a_paused_writer_that_lost_its_lease_cannot_overwrite_a_newer_row(
    owner: Account,
) -> None:
    team = await new_team(owner, "Old")
    await projections.catch_up(["global_team"])
    await rename(owner, team.id, "Newer")
    await projections.sync_feeds()

    await paused_writer_race(lambda: rename(owner, team.id, "Newest"))

    assert await stored_name(team.id) == "Newest"  # the newer holder's row stands


async def test_a_paused_writer_cannot_bring_a_deleted_row_back(owner: Account) -> None:
    team = await new_team(owner, "Doomed")
    await projections.catch_up(["global_team"])
    await rename(owner, team.id, "Doomed 2")
    await projections.sync_feeds()

    async def delete() -> None:
        r = await owner.client.delete(f"/v1/teams/{team.id}")
        assert r.status_code == 204, r.text

    await paused_writer_race(delete)

    r = await owner.client.get(f"/v1/read-models/teams/{team.id}")
    assert r.status_code == 404, r.text  # A's row did not come back over B's tombstone


async def test_a_newer_row_is_kept_without_an_error(owner: Account) -> None:
    """The fence turns the upsert of an older writer into a no-op, never a 500."""
    projector = projections.PROJECTORS["global_team"]
    team = await new_team(owner, "One")
    docs = await projector.compute({(owner.tenant_id, team.id)})
    await runner._upsert(projector, docs, 7)
    stale = [docs[0].model_copy(update={"name": "Stale"})]
    assert await runner._upsert(projector, stale, 3) == 1  # kept by the newer writer
    assert await stored_name(team.id) == "One"
    assert await runner._upsert(projector, stale, 7) == 0  # the same writer may rewrite it
    assert await stored_name(team.id) == "Stale"


async def test_a_key_gone_before_its_row_was_stored_holds_an_older_writer_back(
    owner: Account,
) -> None:
    """Writer A (fence 3) computed a new team's row, then paused; writer B (fence 7) found the
    team deleted while no row was stored yet. B's tombstone must hold A's late upsert back
    (without it, A's row came back live: the stress run's "differs from a rebuild")."""
    projector = projections.PROJECTORS["global_team"]
    team = await new_team(owner, "Short-lived")
    key = (owner.tenant_id, team.id)
    computed_by_a = await projector.compute({key})
    r = await owner.client.delete(f"/v1/teams/{team.id}")
    assert r.status_code == 204, r.text

    assert await runner.apply(projector, {key}, fence=7) == 0  # B: gone, nothing stored
    assert await runner._upsert(projector, computed_by_a, 3) == 1  # A: kept back
    assert await GlobalTeam.find_one({"_id": team.id, **runner.LIVE}) is None
    r = await owner.client.get(f"/v1/read-models/teams/{team.id}")
    assert r.status_code == 404, r.text

    fresh = computed_by_a[0].model_copy(update={"name": "Back"})
    assert await runner._upsert(projector, [fresh], 8) == 0  # a newer writer replaces it
    assert await stored_name(team.id) == "Back"


async def test_a_rollup_gone_before_it_was_stored_holds_an_older_writer_back(
    owner: Account, member: Account
) -> None:
    """The same for a per-user rollup, whose rows are unique by (tenant_id, user_id)."""
    projector = projections.PROJECTORS["blog_stats"]
    key = (owner.tenant_id, member.id)
    stale = GlobalBlog(tenant_id=owner.tenant_id, user_id=member.id, total=2)

    assert await runner.apply(projector, {key}, fence=7) == 0  # no blogs: gone
    assert await runner._upsert(projector, [stale], 3) == 1
    rows = await GlobalBlog.find({"user_id": member.id}).to_list()
    assert [r.total for r in rows] == [0]  # the tombstone only (read as defaults)
    assert await GlobalBlog.find_one({"user_id": member.id, **runner.LIVE}) is None


# -- stale reads ------------------------------------------------------------------------------


@contextmanager
def stale_reads(feed: str, visible: int) -> Iterator[None]:
    """Reads of `feed` by position see only `seq <= visible` (a majority snapshot older than
    the head read just before, as after a failover)."""
    real_find, real_find_one = EmbeddedCollection.find, EmbeddedCollection.find_one

    def clamp(self: EmbeddedCollection, query: Any) -> Any:
        seq = query.get("seq") if isinstance(query, dict) else None
        if self.name == feed and isinstance(seq, dict) and "$lte" in seq:
            return {**query, "seq": {**seq, "$lte": min(seq["$lte"], visible)}}
        return query

    def find(self: EmbeddedCollection, filter: Any = None, *args: Any, **kw: Any) -> Any:
        return real_find(self, clamp(self, filter), *args, **kw)

    async def find_one(self: EmbeddedCollection, filter: Any = None, *args: Any, **kw: Any) -> Any:
        return await real_find_one(self, clamp(self, filter), *args, **kw)

    with (
        patch.object(EmbeddedCollection, "find", find),
        patch.object(EmbeddedCollection, "find_one", find_one),
    ):
        yield


@pytest.mark.embedded_only  # patches EmbeddedCollection
async def test_a_stale_range_read_makes_no_projector_skip_an_entry(owner: Account) -> None:
    first = await new_team(owner, "First")
    await projections.catch_up(["global_team"])
    await projections.sync_feeds()
    visible = await sequencer.head(sequencer.JOURNAL)
    late = await new_team(owner, "Late")
    await projections.sync_feeds()
    assert await sequencer.head(sequencer.JOURNAL) > visible

    with stale_reads(sequencer.JOURNAL, visible):
        await projections.catch_up(["global_team"])
    assert await stored_name(late.id) is None  # not seen yet
    await projections.catch_up(["global_team"])  # the next read sees it

    assert await stored_name(late.id) == "Late"
    assert await stored_name(first.id) == "First"


@pytest.mark.embedded_only  # patches EmbeddedCollection
async def test_a_stale_range_read_makes_the_change_feed_skip_nothing(owner: Account) -> None:
    c = owner.client
    await c.post("/v1/campaigns", json={"type": "call", "name": "A"})
    await projections.sync_feeds()
    visible = await sequencer.head(sequencer.JOURNAL)
    await c.post("/v1/campaigns", json={"type": "call", "name": "B"})
    await make_lead(owner, email="s@example.com")

    with stale_reads(sequencer.JOURNAL, visible):
        page = (await c.get("/v1/changes", params={"limit": 50})).json()
    assert page["items"][-1]["event_type"] == "campaign.created"  # A, the last one visible
    rest = (await c.get("/v1/changes", params={"after": page["next_cursor"]})).json()

    assert [e["event_type"] for e in rest["items"]] == ["campaign.created", "lead.created"]


# -- inline work --------------------------------------------------------------------------------


async def test_read_model_gets_do_bounded_feed_work_inline(owner: Account) -> None:
    teams = [await new_team(owner, f"T{n}") for n in range(6)]
    runner.configure_inline(batches=1, seconds=5)
    applied: list[int] = []
    real = runner.apply

    async def counting(projector: Any, keys: Any, **kw: Any) -> int:
        applied.append(len(keys))
        return await real(projector, keys, **kw)

    try:
        with patch.object(runner, "BATCH_SIZE", 2), patch.object(runner, "apply", counting):
            r = await owner.client.get(f"/v1/read-models/teams/{teams[0].id}")
            assert r.status_code == 200, r.text
            assert len(applied) == 1  # one batch of the backlog inline, the rest is background
            for _ in range(5):
                await owner.client.get(f"/v1/read-models/teams/{teams[0].id}")
    finally:
        runner.configure_inline(batches=4, seconds=0.25)
    # The owner's user.created and 6 team.created entries: 4 batches of 2, one per request.
    assert len(applied) == 4
    assert await stored_name(teams[-1].id) == "T5"


async def test_the_change_feed_sequences_a_bounded_backlog_inline(owner: Account) -> None:
    passes = 0

    async def endless(**_: Any) -> int:  # a backlog that never ends
        nonlocal passes
        passes += 1
        return sequencer.BATCH

    runner.configure_inline(batches=2, seconds=5)
    try:
        with patch.object(sequencer, "sequence_all", endless):
            r = await asyncio.wait_for(owner.client.get("/v1/changes"), timeout=10)
    finally:
        runner.configure_inline(batches=4, seconds=0.25)
    assert r.status_code == 200, r.text
    assert passes == 2


@pytest.mark.usefixtures("owner", "app")
async def test_the_inline_budget_comes_from_the_settings() -> None:
    assert (runner.INLINE.batches, runner.INLINE.seconds) == (4, 0.25)  # the defaults
    settings = Settings(inline_feed_batches=2, inline_feed_budget_ms=40)
    assert (settings.inline_feed_batches, settings.inline_feed_budget_ms) == (2, 40)


@pytest.mark.usefixtures("app")
async def test_feed_reads_share_one_session_only_where_sessions_exist() -> None:
    async with sequencer.feed_session() as session:
        if session is None:  # the embedded backend: one consistent store, no sessions
            return
        assert session.options.causal_consistency
        head = await sequencer.head(sequencer.JOURNAL, session=session)
        assert await sequencer.visible_top(sequencer.JOURNAL, 0, head, session) == head
