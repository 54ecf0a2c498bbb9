"""The sequencer and leases: positions are unique, gap-free below the head, in version order;
a late writer cannot land below the head; one lease owner at a time."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest
from bson import Binary
from pymongo.errors import DuplicateKeyError
from uuid6 import uuid7

from documents.base import utcnow
from documents.lease import Lease
from service.core.settings import Settings
from service.embedded import aio
from service.feeds import leases, sequencer
from tests.factories import make_lead
from tests.support.helpers import Account


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The test drives the sequencer itself."""
    return settings.model_copy(update={"background_workers": False})


def journal() -> Any:
    return sequencer.collection(sequencer.JOURNAL)


async def positions() -> list[int]:
    rows = await journal().find({"seq": {"$gt": 0}}, {"seq": 1}).to_list(None)
    return sorted(r["seq"] for r in rows)


def entry(aggregate: Any, version: int, tenant: Any) -> dict[str, Any]:
    return {
        "_id": Binary.from_uuid(uuid7()),
        "tenant_id": Binary.from_uuid(tenant),
        "aggregate_type": "lead",
        "aggregate_id": Binary.from_uuid(aggregate),
        "version": version,
        "event_type": "lead.updated",
        "occurred_at": utcnow(),
        "changes": [],
        "seq": None,
    }


async def test_positions_are_unique_contiguous_and_published(owner: Account) -> None:
    await make_lead(owner, email="s@x.io")
    await sequencer.sequence_all()
    seqs = await positions()
    assert seqs == list(range(1, len(seqs) + 1))
    assert await sequencer.head(sequencer.JOURNAL) == len(seqs)
    assert not await sequencer.unsequenced(sequencer.JOURNAL)


async def test_an_aggregates_versions_are_sequenced_in_order(owner: Account) -> None:
    await sequencer.sequence_all()
    aggregate = uuid7()
    v2 = entry(aggregate, 2, owner.tenant_id)  # created first: the smaller id
    v1 = entry(aggregate, 1, owner.tenant_id)  # a writer with a slower clock
    await journal().insert_many([v2, v1])
    await sequencer.sequence_all(batch=1)  # v2 alone fits the batch: v1 must still come first
    order = await journal().find({"aggregate_id": v1["aggregate_id"]}).sort("seq", 1).to_list(None)
    assert [r["version"] for r in order] == [1, 2]


async def test_nothing_can_land_below_the_head(owner: Account) -> None:
    await sequencer.sequence_all()
    head = await sequencer.head(sequencer.JOURNAL)
    late = entry(uuid7(), 1, owner.tenant_id)
    late["seq"] = head  # a stale sequencer's write of an old position
    with pytest.raises(DuplicateKeyError):
        await journal().insert_one(late)


async def test_a_broken_tail_is_resequenced_and_a_whole_one_published(owner: Account) -> None:
    await sequencer.sequence_all()
    head = await sequencer.head(sequencer.JOURNAL)
    a, b = entry(uuid7(), 1, owner.tenant_id), entry(uuid7(), 1, owner.tenant_id)
    a["seq"], b["seq"] = head + 1, head + 3  # a gap at head + 2: a concurrent pass died
    await journal().insert_many([a, b])
    await sequencer.sequence_all()
    seqs = await positions()
    assert seqs == list(range(1, len(seqs) + 1)) and await sequencer.head("domain_events") == len(
        seqs
    )
    c = entry(uuid7(), 1, owner.tenant_id)
    c["seq"] = len(seqs) + 1  # assigned, not published (the pass died before its step 4)
    await journal().insert_one(c)
    await sequencer.sequence_all()
    assert await sequencer.head("domain_events") == len(seqs) + 1


async def test_concurrent_passes_never_share_a_position(owner: Account) -> None:
    await journal().insert_many([entry(uuid7(), 1, owner.tenant_id) for _ in range(50)])
    await asyncio.gather(*(sequencer.sequence_all(batch=7) for _ in range(4)))
    while await sequencer.unsequenced(sequencer.JOURNAL):
        await sequencer.sequence_all()
    seqs = await positions()
    assert seqs == list(range(1, len(seqs) + 1))
    assert await sequencer.head("domain_events") == len(seqs)


@pytest.mark.usefixtures("app")
async def test_a_lease_has_one_owner_until_it_expires_or_is_released() -> None:
    ttl = timedelta(seconds=30)
    a = await leases.take("job", "a", ttl)
    assert a is not None and await leases.take("job", "b", ttl) is None
    assert await leases.holder("job") == "a" and await leases.renew(a)
    await leases.release(a)
    b = await leases.take("job", "b", ttl)
    assert b is not None and not await leases.renew(a)  # a's lease is gone
    assert b.fence > a.fence


@pytest.mark.usefixtures("app")
async def test_a_silent_lease_is_taken_after_a_ttl_on_the_contenders_monotonic_clock() -> None:
    short = timedelta(seconds=0.3)
    b = await leases.take("job", "b", short)
    assert b is not None
    # The holder's wall clock says the lease expired long ago: nobody decides by it.
    await Lease.get_pymongo_collection().update_one(
        {"_id": "job"}, {"$set": {"expires_at": utcnow() - timedelta(days=1)}}
    )
    assert await leases.take("job", "c", short) is None  # first sight of b's token
    await asyncio.sleep(0.2)
    assert await leases.renew(b)  # b is alive: its renewal resets what c saw
    assert await leases.take("job", "c", short) is None
    await asyncio.sleep(0.35)  # b stops renewing for a whole TTL
    c = await leases.take("job", "c", short)
    assert c is not None and c.fence > b.fence and not await leases.renew(b)
    assert not b.valid  # b's own monotonic clock told it to stop half a TTL after renewing


@pytest.mark.usefixtures("app")
async def test_two_contenders_for_a_silent_lease_one_wins() -> None:
    short = timedelta(seconds=0.2)
    assert await leases.take("job", "gone", short) is not None
    assert await leases.take("job", "x", short) is None
    await asyncio.sleep(0.25)
    won = await asyncio.gather(*(leases.take("job", f"c{n}", short) for n in range(4)))
    assert sum(h is not None for h in won) == 1


@pytest.mark.embedded_only  # service.embedded observers
async def test_a_batch_of_first_versions_looks_for_no_lower_ones(owner: Account) -> None:
    await sequencer.sequence_all()
    batch = [entry(uuid7(), 1, owner.tenant_id) for _ in range(3)]
    later = entry(uuid7(), 2, owner.tenant_id)
    await journal().insert_many([*batch, later])
    seen: list[Any] = []
    aio.observers.append(lambda op: seen.append(op) if op.collection == "domain_events" else None)
    try:
        await sequencer.sequence_all(batch=3)  # the three first versions: nothing lower exists
        await sequencer.sequence_all(batch=3)  # version 2: its version 1 is looked for
    finally:
        aio.observers.pop()
    lookups = [op for op in seen if op.method == "find" and "aggregate_id" in (op.filter or {})]
    assert len(lookups) == 1 and lookups[0].filter["aggregate_id"] == {
        "$in": [later["aggregate_id"]]
    }
    assert sorted(await positions()) == list(range(1, len(await positions()) + 1))
