"""The change feed: oldest first, resumable, never skipping or repeating, tenant-scoped."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import httpx
import pytest

from documents.campaign import CampaignBase
from service.cli.read_models import repair_journal
from service.core import journal
from service.core.repository import Repository
from tests.factories import make_campaign, make_lead
from tests.support import analytics_seed as seed
from tests.support.helpers import Account, assert_problem


async def read_all(client: httpx.AsyncClient, cursor: str | None = None, **params: Any) -> Any:
    """Every change after `cursor`, page by page; returns (items, the last cursor)."""
    items: list[dict[str, Any]] = []
    while True:
        query = {"limit": 3, **params, **({"after": cursor} if cursor else {})}
        r = await client.get("/v1/changes", params=query)
        assert r.status_code == 200, r.text
        page = r.json()
        assert page["next_cursor"]  # never null
        items += page["items"]
        cursor = page["next_cursor"]
        if len(page["items"]) < query["limit"]:
            return items, cursor


async def test_oldest_first_and_resumable_without_skips_or_repeats(owner: Account) -> None:
    c = await owner.client.post("/v1/campaigns", json={"type": "call", "name": "A"})
    cid = c.json()["id"]
    first, cursor = await read_all(owner.client)
    # Writes go on between reads: only the new changes come, once each.
    await owner.client.patch(f"/v1/campaigns/{cid}", json={"name": "B"})
    await make_lead(owner, email="a@example.com")
    second, cursor2 = await read_all(owner.client, cursor)
    assert (second[0]["aggregate_id"], second[0]["version"]) == (cid, 2)
    assert [e["event_type"] for e in second] == ["campaign.updated", "lead.created"]
    assert not {e["id"] for e in first} & {e["id"] for e in second}
    again, cursor3 = await read_all(owner.client, cursor2)
    assert again == [] and cursor3 == cursor2  # an idle feed keeps its cursor
    keys = {"id", "aggregate_type", "aggregate_id", "version", "event_type", "actor_id"}
    assert keys | {"occurred_at", "changes"} == set(second[0])
    everything, _ = await read_all(owner.client)
    assert [e["id"] for e in everything] == [e["id"] for e in first + second]


async def test_filters_and_tenancy(owner: Account, stranger: Account) -> None:
    await make_campaign(owner, name="A")
    await make_lead(owner, email="b@example.com")
    await make_campaign(stranger, name="Theirs")
    leads, _ = await read_all(owner.client, aggregate_type="lead")
    assert [e["event_type"] for e in leads] == ["lead.created"]
    made, _ = await read_all(owner.client, event_type="campaign.created")
    assert len(made) == 1
    theirs, _ = await read_all(stranger.client)
    ours, _ = await read_all(owner.client)
    assert not {e["id"] for e in theirs} & {e["id"] for e in ours}
    assert "Theirs" not in str(ours)


async def test_bad_input_is_422(owner: Account, client: httpx.AsyncClient) -> None:
    for params in (
        {"after": "@@"},
        {"after": "eyJzIjotMX0"},  # {"s":-1}
        {"limit": 500},
        {"aggregate_type": "$where"},
        {"event_type": "lead"},
        {"cursor": "x"},
    ):
        assert_problem(await owner.client.get("/v1/changes", params=params), 422)
    assert_problem(await client.get("/v1/changes"), 401)


async def test_an_outbox_flushed_late_reaches_a_consumer_already_past_its_id(
    owner: Account,
) -> None:
    camp = await seed.campaign(owner.ctx)

    async def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("the process died between the state write and the journal insert")

    with patch.object(journal, "flush_pending", crash), pytest.raises(RuntimeError):
        await Repository(CampaignBase, owner.ctx).update(camp, {"status": "active"})
    # Later changes (larger ids) are read; the consumer's cursor moves past the lost id.
    await make_lead(owner, email="c@example.com")
    seen, cursor = await read_all(owner.client)
    assert [e["event_type"] for e in seen][-1] == "lead.created"
    assert "campaign.status_changed" not in {e["event_type"] for e in seen}

    assert await repair_journal() == 1  # the outbox is journaled now, with its original (old) id

    late, _ = await read_all(owner.client, cursor)
    assert [(e["event_type"], e["version"]) for e in late] == [("campaign.updated", 2)]
    assert late[0]["id"] < seen[-1]["id"]  # an id from before what was already read


async def test_another_users_private_fields_are_left_out(owner: Account, member: Account) -> None:
    await owner.client.put("/v1/ai/config", json={"temperature": 0.3})
    await owner.client.patch("/v1/users/me", json={"profile": {"first_name": "Olga"}})

    def fields(items: list[dict[str, Any]]) -> set[str]:
        return {
            c["field"].split(".")[0]
            for e in items
            if e["aggregate_type"] == "user" and e["aggregate_id"] == str(owner.id)
            for c in e["changes"]
        }

    mine, _ = await read_all(owner.client, aggregate_type="user")
    theirs, _ = await read_all(member.client, aggregate_type="user")
    assert {"ai_config", "profile"} <= fields(mine)
    assert "profile" in fields(theirs) and "ai_config" not in fields(theirs)
    assert "password_hash" not in fields(theirs)
