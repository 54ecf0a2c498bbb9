"""Several processes and crashes: two app instances on one database keep every read model
equal to a rebuild; a database failing in the middle of each write path loses and duplicates
nothing once the process restarts (journal, read models and idempotency records agree)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from unittest.mock import patch

import httpx
import pytest
from bson import Binary
from fastapi import FastAPI

from documents import AGGREGATE_ROOTS
from documents.event import IdempotencyRecord, TouchpointEvent
from documents.journal import DomainEvent
from service import events as events_service
from service import projections
from service.core import journal
from service.core.settings import Settings
from service.embedded import EmbeddedCollection
from service.main import create_app
from tests.factories import attach_leads, make_campaign, make_lead
from tests.support.helpers import Account, read_model_snapshot


@asynccontextmanager
async def instance(
    settings: Settings, database: Any, token: str
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """Another process of the service on the same database, with a client as `token`."""
    app = create_app(settings=settings, database=database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx.AsyncClient(
            transport=transport, base_url="http://t", headers=headers
        ) as client:
            yield app, client


async def equal_to_a_rebuild() -> None:
    await projections.catch_up(patience=10)
    incremental = await read_model_snapshot()
    for name in projections.PROJECTORS:
        await projections.rebuild(name)
    assert await read_model_snapshot() == incremental


async def drive(client: httpx.AsyncClient, n: int, tag: str) -> None:
    """A little of everything: campaigns, leads, links, touchpoints, deletes, blogs, topics."""
    camp = (await client.post("/v1/campaigns", json={"type": "call", "name": f"{tag}{n}"})).json()
    lead = (
        await client.post("/v1/leads", json={"type": "generic", "email": f"{tag}{n}@x.io"})
    ).json()
    await client.post(f"/v1/campaigns/{camp['id']}/leads", json={"lead_ids": [lead["id"]]})
    body = {"type": "call", "campaign_id": camp["id"], "lead_id": lead["id"], "outcome": "busy"}
    await client.post("/v1/events", json=body)
    await client.patch(f"/v1/campaigns/{camp['id']}", json={"status": "active"})
    if n % 3 == 0:
        await client.delete(f"/v1/leads/{lead['id']}")
    if n % 4 == 0:
        await client.delete(f"/v1/campaigns/{camp['id']}")
    await client.post("/v1/blogs", json={"title": f"{tag}{n}"})
    await client.post("/v1/research/topics", json={"topic": f"{tag}{n}"})


async def test_two_instances_keep_every_read_model_equal_to_a_rebuild(
    settings: Settings, database: Any, owner: Account
) -> None:
    async with instance(settings, database, owner.token) as (_, other):
        await asyncio.gather(
            *(drive(owner.client if i % 2 else other, i, "p") for i in range(12)),
            *(owner.client.get("/v1/read-models/campaigns") for _ in range(3)),
            *(other.get("/v1/blogs/stats") for _ in range(3)),
        )
        await equal_to_a_rebuild()
    stats = (
        await projections.PROJECTORS["campaign_stats"]
        .model.get_pymongo_collection()
        .count_documents({"gone": {"$ne": True}})
    )
    assert stats == 9  # 12 campaigns, 3 deleted


async def consistent() -> None:
    """Journal = state: one event per version, no gaps, no outbox left, nothing twice."""
    last: dict[Any, list[int]] = {}
    async for e in DomainEvent.get_pymongo_collection().find({}, {"aggregate_id": 1, "version": 1}):
        last.setdefault(e["aggregate_id"], []).append(e["version"])
    for model in AGGREGATE_ROOTS:
        async for doc in model.get_pymongo_collection().find(
            {}, {"version": 1, "pending_event": 1}
        ):
            assert "pending_event" not in doc or doc["pending_event"] is None, doc
            assert sorted(last.get(doc["_id"], [])) == list(range(1, doc["version"] + 1))


@pytest.mark.embedded_only  # patches EmbeddedCollection
async def test_crashes_in_every_write_path_lose_and_duplicate_nothing(
    settings: Settings, database: Any, owner: Account, app: FastAPI
) -> None:
    c = owner.client
    camp = await make_campaign(owner, name="Chaos")
    lead = await make_lead(owner, email="c@x.io")
    await attach_leads(owner, camp["id"], lead["id"])

    async def die(*_: Any, **__: Any) -> None:
        raise RuntimeError("the database went away")

    # 1. After the state write, before the journal insert.
    with patch.object(journal, "flush_pending", die):
        r = await c.patch(f"/v1/campaigns/{camp['id']}", json={"name": "Chaos 2"})
    assert r.status_code == 500
    # 2. After the journal insert, before the outbox is cleared.
    real_update = EmbeddedCollection.update_one

    async def clear_fails(self: EmbeddedCollection, flt: Any, update: Any, **kw: Any) -> Any:
        if "$unset" in update and "pending_event" in update["$unset"]:
            raise RuntimeError("the database went away")
        return await real_update(self, flt, update, **kw)

    with patch.object(EmbeddedCollection, "update_one", clear_fails):
        r = await c.patch(f"/v1/leads/{lead['id']}", json={"first_name": "Cy"})
    assert r.status_code == 500
    # 3. During a bulk chunk: rows stored, their journal insert fails.
    with patch.object(journal, "flush_many", die):
        bulk = [{"type": "generic", "email": f"bulk{i}@x.io"} for i in range(4)]
        r = await c.post("/v1/leads/bulk", json={"leads": bulk})
    assert r.status_code == 500
    # The process restarts: a new instance on the same database (its start-up repairs).
    await app.state.background.stop()
    async with instance(settings, database, owner.token) as (_, again):
        await consistent()
        got = (await again.get(f"/v1/campaigns/{camp['id']}")).json()
        assert got["name"] == "Chaos 2" and got["version"] >= 2
        assert (await again.get(f"/v1/leads/{lead['id']}")).json()["first_name"] == "Cy"
        leads = (await again.get("/v1/leads", params={"limit": 200})).json()["items"]
        assert len(leads) == 5  # the bulk rows are kept, journaled once each
        history = (await again.get(f"/v1/campaigns/{camp['id']}/history")).json()["items"]
        assert [h["version"] for h in history] == list(range(1, got["version"] + 1))
        await equal_to_a_rebuild()


async def test_a_crash_during_an_idempotent_event_records_it_once(
    settings: Settings, database: Any, owner: Account, app: FastAPI
) -> None:
    """The database fails after the event is stored, before the answer: a retry with the same
    key (after a restart) must answer that event, not record a second one."""
    c = owner.client
    camp = await make_campaign(owner, name="Idem")
    lead = await make_lead(owner, email="i@x.io")
    await attach_leads(owner, camp["id"], lead["id"])

    async def die(*_: Any, **__: Any) -> None:
        raise RuntimeError("the database went away")

    key = {"Idempotency-Key": "chaos-1"}
    body = {"type": "call", "campaign_id": camp["id"], "lead_id": lead["id"], "outcome": "busy"}
    with patch.object(events_service, "_mark_contacted", die):
        r = await c.post("/v1/events", json=body, headers=key)
    assert r.status_code == 500

    await app.state.background.stop()
    async with instance(settings, database, owner.token) as (_, again):
        retry = await again.post("/v1/events", json=body, headers=key)
        assert retry.status_code == 201, retry.text
        replay = await again.post("/v1/events", json=body, headers=key)
        assert replay.json()["id"] == retry.json()["id"]
        await consistent()
        stored = await TouchpointEvent.get_pymongo_collection().count_documents(
            {"tenant_id": Binary.from_uuid(owner.tenant_id)}
        )
        assert stored == 1  # the crashed attempt and its retries made ONE event
        record = await IdempotencyRecord.find_one({"key": "chaos-1"})
        assert record is not None and record.response is not None
        assert record.response["id"] == retry.json()["id"]


@pytest.mark.embedded_only  # patches EmbeddedCollection
async def test_a_claim_whose_winner_stays_invisible_backs_off_and_gives_up(
    owner: Account,
) -> None:
    """After a duplicate key the winner's record may not be visible yet (a majority read right
    after its insert): the claim retries a bounded number of times with backoff, then 409."""
    c = owner.client
    camp = await make_campaign(owner, name="Spin")
    lead = await make_lead(owner, email="s@x.io")
    await attach_leads(owner, camp["id"], lead["id"])
    key = {"Idempotency-Key": "spin-1"}
    body = {"type": "call", "campaign_id": camp["id"], "lead_id": lead["id"], "outcome": "busy"}
    assert (await c.post("/v1/events", json=body, headers=key)).status_code == 201
    lookups = 0
    real_find_one = EmbeddedCollection.find_one

    async def invisible(self: EmbeddedCollection, filter: Any = None, *a: Any, **kw: Any) -> Any:
        nonlocal lookups
        if self.name == IdempotencyRecord.Settings.name:
            lookups += 1
            return None  # the winner's record is not visible to this read
        return await real_find_one(self, filter, *a, **kw)

    with patch.object(EmbeddedCollection, "find_one", invisible):
        r = await asyncio.wait_for(c.post("/v1/events", json=body, headers=key), timeout=20)
    assert r.status_code == 409, r.text
    assert lookups == events_service.CLAIM_ATTEMPTS
