"""The counted-work check itself (tests/support/work_budget_plugin.py, service/embedded/work.py).

The backend counts keys and documents examined and documents returned per operation, as
MongoDB's executionStats does; the plugin fails a request that examines far more than it
returns. Shown here on a request made to scan (its service call replaced by one that reads a
collection without an index) and on the same data read through an index.
"""

from __future__ import annotations

from typing import Any
from uuid import uuid4

import pytest

from service import campaigns
from service.embedded import embedded_database, work
from tests.support import work_budget_plugin
from tests.support.helpers import Account

pytestmark = pytest.mark.embedded_only


async def test_counts_keys_documents_returned_and_sorts() -> None:
    db = embedded_database("work")
    things = db["things"]
    await things.create_index([("t", 1), ("n", 1)])
    await things.insert_many([{"t": 1, "n": i, "s": str(i)} for i in range(1000)])
    with work.measuring() as page:
        rows = await things.find({"t": 1}).sort("n", 1).limit(10).to_list()
    assert len(rows) == 10
    assert page.returned == 10 and page.docs_examined == 10
    assert page.keys_examined < 50 and page.sorted_in_memory == 0
    with work.measuring() as scan:
        rows = await things.find({"s": "7"}).sort("n", 1).to_list()
    assert len(rows) == 1 and scan.docs_examined == 1000 and scan.returned == 1
    assert scan.sorted_in_memory == 1
    with work.measuring() as counted:
        assert await things.count_documents({"t": 1}) == 1000
    assert counted.docs_examined == 0 and counted.keys_examined == 1000  # a COUNT_SCAN
    with work.measuring() as joined:
        other = db["other"]
        await other.insert_one({"k": 1})
        pipeline = [
            {"$match": {"t": 1, "n": {"$lt": 3}}},
            {"$lookup": {"from": "things", "localField": "n", "foreignField": "n", "as": "x"}},
        ]
        rows = await (await things.aggregate(pipeline)).to_list()
    # Each `$lookup` probe on `n` (no index led by it) scans: counted in the aggregate.
    assert len(rows) == 3 and joined.returned == 3
    assert joined.docs_examined == 3 + 3 * 1000 and len(joined.operations) == 1


async def test_nothing_counted_outside_a_measurement() -> None:
    db = embedded_database("quiet")
    await db["c"].insert_one({"a": 1})
    assert work.current() is None
    assert await db["c"].count_documents({}) == 1


def test_budget_is_proportional_to_what_is_returned() -> None:
    assert work_budget_plugin.budget({"returned": 0}) == work_budget_plugin.BUDGET_CONSTANT
    assert work_budget_plugin.budget({"returned": 50}) == (
        50 * work_budget_plugin.BUDGET_RATIO + work_budget_plugin.BUDGET_CONSTANT
    )


async def test_a_request_that_scans_fails_the_check(
    owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    campaign = await owner.client.post("/v1/campaigns", json={"type": "call", "name": "C"})
    campaign_id = campaign.json()["id"]
    scratch = campaigns.CampaignLead.get_pymongo_collection().database["scratch"]
    await scratch.insert_many([{"n": i} for i in range(400)])
    work_budget_plugin.BUDGET.take()
    original = campaigns.get_campaign

    async def scanning_get(**kwargs: Any) -> Any:
        await scratch.find({"n": -1}).to_list()  # no index: all 400 documents examined
        return await original(**kwargs)

    monkeypatch.setattr(campaigns, "get_campaign", scanning_get)
    assert (await owner.client.get(f"/v1/campaigns/{campaign_id}")).status_code == 200
    found = work_budget_plugin.BUDGET.take()
    assert len(found) == 1 and "examined" in found[0] and "scratch" in found[0], found

    monkeypatch.setattr(campaigns, "get_campaign", original)
    assert (await owner.client.get(f"/v1/campaigns/{campaign_id}")).status_code == 200
    assert (await owner.client.get(f"/v1/campaigns/{uuid4()}")).status_code == 404
    assert work_budget_plugin.BUDGET.take() == []
