"""`rebuild` streams per tenant, and a projector without checkpoints is rebuilt, not replayed."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4

import pytest
from beanie import Document
from beanie.odm.utils.encoder import Encoder
from bson import Binary

from documents.base import utcnow
from documents.read_models import CampaignStats, ProjectionCheckpoint
from service import background, pipelines, projections
from service.core.settings import Settings
from service.embedded import aio
from service.feeds import sequencer, workers
from service.projections import definitions, runner
from tests.support import analytics_seed as seed
from tests.support.helpers import Account

# Fields a recompute stamps anew or draws at random (a rollup's `_id` is a fresh uuid7).
VOLATILE = {"_id", "id", "computed_at", "revision_id"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No background workers: each test runs the worker's step itself."""
    return settings.model_copy(update={"background_workers": False})


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def comparable(docs: list[Document]) -> list[str]:
    """Computed rows without their volatile fields, in a stable order."""
    encoder = Encoder()
    out = []
    for doc in docs:
        raw = {k: v for k, v in encoder.encode(doc).items() if k not in VOLATILE}
        out.append(repr(sorted(raw.items(), key=lambda kv: kv[0])))
    return sorted(out)


async def two_tenants(owner: Account, stranger: Account) -> None:
    """Every read model's sources, in two tenants."""
    for account, kinds in ((owner, ("call", "email")), (stranger, ("call",))):
        ctx = account.ctx
        lead = await seed.lead(ctx)
        for kind in kinds:
            camp = await seed.campaign(ctx, kind=kind)
            await seed.link(ctx, camp.id, lead.id)
            await seed.touch(ctx, kind, camp.id, lead.id, at("2024-05-01 09:00"))
        await account.client.post("/v1/blogs", json={"title": "Open house"})
        await account.client.post(
            "/v1/research/topics",
            json={"topic": "Condos", "results": [{"keywords": ["a"], "search_volume": 5}]},
        )
        r = await account.client.post("/v1/teams", json={"name": "Sellers"})
        assert r.status_code == 201, r.text


async def test_per_tenant_compute_equals_the_full_recompute(
    owner: Account, stranger: Account
) -> None:
    await two_tenants(owner, stranger)
    for name, projector in projections.PROJECTORS.items():
        tenants = await runner.tenants_of(projector)
        assert set(tenants) == {owner.tenant_id, stranger.tenant_id}, name
        streamed: list[Document] = []
        for tenant in tenants:
            rows = await projector.compute_tenant(tenant)
            assert rows, (name, tenant)  # every read model has rows in both tenants
            assert {r.tenant_id for r in rows} == {tenant}, name  # type: ignore[attr-defined]
            streamed += rows
        assert comparable(streamed) == comparable(await projector.compute(None)), name


async def test_a_rebuild_holds_one_tenant_at_a_time(
    owner: Account, stranger: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    await two_tenants(owner, stranger)
    await projections.catch_up()
    matches: list[dict[str, Any]] = []
    written: list[set[Any]] = []
    real_run, real_upsert = definitions.run, runner._upsert

    async def counted_run(spec: tuple[str, pipelines.Pipeline]) -> list[dict[str, Any]]:
        matches.append(spec[1][0]["$match"])
        return await real_run(spec)

    async def counted_upsert(
        projector: Any, docs: Any, fence: Any = None, built: Any = None
    ) -> int:
        written.append({d.tenant_id for d in docs})
        assert len(docs) <= runner.BATCH_SIZE
        return await real_upsert(projector, docs, fence, built)

    monkeypatch.setattr(definitions, "run", counted_run)
    monkeypatch.setattr(runner, "_upsert", counted_upsert)
    monkeypatch.setattr(runner, "BATCH_SIZE", 1)  # every row its own batch
    for name in projections.PROJECTORS:
        await projections.rebuild(name)

    # Every source pipeline was scoped to one tenant (an equality, not every tenant at once)…
    assert matches and all(isinstance(m.get("tenant_id"), Binary) for m in matches)
    tenants = {Binary.from_uuid(owner.tenant_id), Binary.from_uuid(stranger.tenant_id)}
    assert {m["tenant_id"] for m in matches} == tenants
    # …and every write holds one row of one tenant.
    assert written and all(len(t) == 1 for t in written)


def feed_reads(seen: list[aio.Operation]) -> int:
    """A projector's reads of a feed range (`position < seq <= head`): replaying the feed."""
    feeds = set(sequencer.FEEDS)
    return sum(
        1
        for op in seen
        if op.collection in feeds
        and op.method == "find"
        and isinstance((op.filter or {}).get("seq"), dict)
        and "$lte" in (op.filter or {})["seq"]
    )


@pytest.mark.embedded_only  # service.embedded observers
async def test_a_projector_without_checkpoints_is_rebuilt_by_the_worker_not_replayed(
    owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    camp, lead = await seed.campaign(owner.ctx), await seed.lead(owner.ctx)
    await seed.link(owner.ctx, camp.id, lead.id)
    await projections.catch_up()
    # The projector's checkpoints are lost (or it is new on an old database), and the feed
    # goes on: its backlog is past what a request may replay.
    await ProjectionCheckpoint.get_pymongo_collection().delete_many({})
    await seed.touch(owner.ctx, "call", camp.id, lead.id, at("2024-05-01 09:00"))
    monkeypatch.setattr(runner, "INLINE_REPLAY_MAX", 0)

    seen: list[aio.Operation] = []
    aio.observers.append(seen.append)
    try:
        r = await owner.client.get(f"/v1/read-models/campaign-stats/{camp.id}")
    finally:
        aio.observers.pop()
    assert r.status_code == 200, r.text
    assert r.json()["events_total"] == 0  # what exists: the request replayed nothing
    assert feed_reads(seen) == 0
    assert await ProjectionCheckpoint.find_all().count() == 0

    # The worker's step (under the lease) rebuilds it and stores the heads.
    projector = projections.PROJECTORS["campaign_stats"]
    seen.clear()
    aio.observers.append(seen.append)
    try:
        async with workers.leased(
            runner.lease_name("campaign_stats"), ttl=runner.LEASE_TTL
        ) as held:
            assert held is not None
            more = await background._projector_step("campaign_stats")(held)
    finally:
        aio.observers.pop()
    assert more is False and feed_reads(seen) == 0  # rebuilt from the sources, not the feed
    heads = await sequencer.heads(projector.feeds)
    assert await runner.positions(projector) == heads
    stats = await CampaignStats.get(camp.id)
    assert stats is not None and (stats.events_total, stats.leads_contacted) == (1, 1)

    # From there on requests catch up as usual.
    await seed.touch(owner.ctx, "text", camp.id, lead.id, at("2024-05-01 10:00"))
    r = await owner.client.get(f"/v1/read-models/campaign-stats/{camp.id}")
    assert r.json()["events_total"] == 2


async def test_a_young_database_without_checkpoints_is_caught_up_inline(owner: Account) -> None:
    camp, lead = await seed.campaign(owner.ctx), await seed.lead(owner.ctx)
    await seed.link(owner.ctx, camp.id, lead.id)
    await seed.touch(owner.ctx, "call", camp.id, lead.id, at("2024-05-01 09:00"))
    assert await ProjectionCheckpoint.find_all().count() == 0
    r = await owner.client.get(f"/v1/read-models/campaign-stats/{camp.id}")
    assert r.status_code == 200 and r.json()["events_total"] == 1


async def _stale_row(owner: Account, *, computed: datetime) -> dict[str, Any]:
    """A stats row of a campaign that does not exist, stamped `computed`; its filter."""
    stale = {"_id": Binary.from_uuid(uuid4()), "tenant_id": Binary.from_uuid(owner.tenant_id)}
    await CampaignStats.get_pymongo_collection().insert_one({**stale, "computed_at": computed})
    return stale


async def test_a_rebuild_that_loses_its_lease_stops_before_pruning(
    owner: Account, stranger: Account
) -> None:
    await two_tenants(owner, stranger)
    await projections.catch_up()
    stale = await _stale_row(owner, computed=utcnow() - timedelta(days=1))
    before = await runner.positions(projections.PROJECTORS["campaign_stats"])
    async with workers.leased(runner.lease_name("campaign_stats"), ttl=runner.LEASE_TTL) as held:
        assert held is not None
        held.renewed_mono -= held.ttl.total_seconds()  # paused past its TTL: the lease is gone
        with pytest.raises(TimeoutError):
            await runner._rebuild(projections.PROJECTORS["campaign_stats"], held)
    # Nothing pruned and no checkpoint moved: the next holder's rebuild does it.
    assert await CampaignStats.get_pymongo_collection().count_documents(stale) == 1
    assert await runner.positions(projections.PROJECTORS["campaign_stats"]) == before


async def test_a_clock_stepping_back_during_a_rebuild_prunes_no_fresh_row(
    owner: Account, stranger: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    await two_tenants(owner, stranger)
    await projections.catch_up()
    collection = CampaignStats.get_pymongo_collection()
    before = await collection.count_documents(runner.LIVE)
    assert before > 0
    # The rebuild reads the clock an hour ahead of the rows it then writes: as if NTP
    # stepped the clock back after its start. No row it writes may be taken for a stale one.
    ahead = utcnow() + timedelta(hours=1)
    monkeypatch.setattr(runner, "utcnow", lambda: ahead)
    assert await projections.rebuild("campaign_stats") == before
    assert await collection.count_documents(runner.LIVE) == before


async def test_a_rebuild_prunes_stale_rows_stamped_by_a_clock_ahead(
    owner: Account, stranger: Account
) -> None:
    await two_tenants(owner, stranger)
    await projections.catch_up()
    # A row of a vanished key written by another host whose clock ran an hour ahead.
    stale = await _stale_row(owner, computed=utcnow() + timedelta(hours=1))
    collection = CampaignStats.get_pymongo_collection()
    await projections.rebuild("campaign_stats")
    assert await collection.count_documents(stale) == 0


async def test_a_rebuild_leaves_rows_a_newer_holder_wrote(
    owner: Account, stranger: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    await two_tenants(owner, stranger)
    await projections.catch_up()
    collection = CampaignStats.get_pymongo_collection()
    newer = {"_id": Binary.from_uuid(uuid4()), "tenant_id": Binary.from_uuid(owner.tenant_id)}
    real = runner._upsert
    fences: list[int | None] = []

    async def meanwhile(projector: Any, docs: Any, fence: Any = None, built: Any = None) -> int:
        # While this rebuild writes, its lease lapses and a newer holder stores a row.
        fences.append(fence)
        if len(fences) == 1:
            await collection.insert_one({**newer, runner.FENCE: fence + 1, "computed_at": utcnow()})
        return await real(projector, docs, fence, built)

    monkeypatch.setattr(runner, "_upsert", meanwhile)
    await projections.rebuild("campaign_stats")
    assert fences and fences[0] is not None
    assert await collection.count_documents(newer) == 1  # the newer writer's, not pruned
