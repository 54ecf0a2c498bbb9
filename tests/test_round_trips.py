"""Database round trips per request are constant in the data size (issue 18).

Each read is counted with the embedded backend's call counter (tests/support/dbcalls.py) at two data
sizes: the calls must be the same, and within budget — a list at most 2 (page + optional
count), a single GET 1, the overview 1 aggregate (campaign analytics: the campaign, then one
aggregate per collection it reads). The two credential reads of every
request (`users.find_one`, `tenants.find_one`; the tests run without the auth cache) are
counted apart. The bulk import's per-chunk calls are checked here too.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from service.leads import commands as lead_service
from tests.factories import attach_leads, make_campaign, make_lead
from tests.support.dbcalls import count_db_calls
from tests.support.helpers import Account

CREDENTIALS = {"users.find_one", "tenants.find_one"}  # `find_one` counts as one call


async def _calls(account: Account, path: str, **params: Any) -> Counter[str]:
    with count_db_calls() as (calls, _):
        response = await account.client.get(path, params=params)
    assert response.status_code == 200, response.text
    return calls


def _data_calls(calls: Counter[str]) -> Counter[str]:
    return Counter({k: v for k, v in calls.items() if k not in CREDENTIALS})


async def _grow(owner: Account, refs: dict[str, str], start: int, end: int) -> None:
    """Leads `start..end` (each updated once, attached to the campaign) and one call each."""
    for i in range(start, end):
        lead_id = (await make_lead(owner, email=f"r{i}@example.com"))["id"]
        await owner.client.patch(f"/v1/leads/{lead_id}", json={"first_name": f"R{i}"})
        await owner.client.post(
            f"/v1/campaigns/{refs['campaign_id']}/leads", json={"lead_ids": [lead_id]}
        )
        touch = {"type": "call", "outcome": "answered", "duration_seconds": 60}
        await owner.client.post(
            "/v1/events", json={**touch, "lead_id": lead_id, "campaign_id": refs["campaign_id"]}
        )
        # The first lead gets more history and timeline as the data grows.
        await owner.client.patch(f"/v1/leads/{refs['lead_id']}", json={"last_name": f"L{i}"})
        await owner.client.post("/v1/events", json={**touch, **refs})


@pytest.fixture
async def refs(owner: Account) -> dict[str, str]:
    campaign = await make_campaign(owner)
    lead = await make_lead(owner, email="l@example.com")
    await attach_leads(owner, campaign["id"], lead["id"])
    event = await owner.client.post(
        "/v1/events",
        json={
            "type": "call",
            "outcome": "answered",
            "duration_seconds": 60,
            "lead_id": lead["id"],
            "campaign_id": campaign["id"],
        },
    )
    return {
        "campaign_id": campaign["id"],
        "lead_id": lead["id"],
        "event_id": event.json()["id"],
    }


# (path template, query parameters, budget of data calls)
READS: list[tuple[str, dict[str, Any], int]] = [
    ("/v1/leads", {"limit": 5}, 1),
    ("/v1/leads", {"limit": 5, "count": "true"}, 2),
    ("/v1/leads", {"limit": 5, "sort": "last_name"}, 1),
    ("/v1/campaigns", {"limit": 5}, 1),
    ("/v1/events", {"limit": 5}, 1),
    ("/v1/leads/{lead_id}", {}, 1),
    ("/v1/campaigns/{campaign_id}", {}, 1),
    ("/v1/events/{event_id}", {}, 1),
    ("/v1/leads/{lead_id}/history", {"limit": 5}, 2),  # the lead (visibility), the page
    ("/v1/leads/{lead_id}/events", {"limit": 5}, 2),  # the lead (404 / tenant), the page
]


async def test_reads_make_the_same_calls_at_any_size(owner: Account, refs: dict[str, str]) -> None:
    before = {}
    await _grow(owner, refs, 0, 2)
    for path, params, _ in READS:
        before[path, str(params)] = await _calls(owner, path.format(**refs), **params)
    await _grow(owner, refs, 2, 14)  # past several pages of every list
    for path, params, budget in READS:
        after = await _calls(owner, path.format(**refs), **params)
        assert after == before[path, str(params)], (path, params)
        data = _data_calls(after)
        assert sum(data.values()) <= budget, (path, params, data)
        assert set(after) - set(data) <= CREDENTIALS


async def test_analytics_calls_are_constant_in_the_events(
    owner: Account, refs: dict[str, str]
) -> None:
    campaign = f"/v1/analytics/campaigns/{refs['campaign_id']}"
    # (path, parameters, the data calls expected at every size)
    paths: list[tuple[str, dict[str, Any], Counter[str]]] = [
        ("/v1/analytics/overview", {"interval": "day"}, Counter({"event_slots.find": 1})),
        ("/v1/analytics/overview", {"interval": "week"}, Counter({"event_slots.find": 1})),
        # The campaign (404 first; its `lead_count` is the live members), then its counters.
        (campaign, {}, Counter({"campaigns.find_one": 1, "campaign_tallies.find_one": 1})),
    ]
    for path, params, expected in paths:
        assert _data_calls(await _calls(owner, path, **params)) == expected, path
    await _grow(owner, refs, 0, 10)
    for path, params, expected in paths:
        assert _data_calls(await _calls(owner, path, **params)) == expected, path


async def test_bulk_import_makes_a_constant_number_of_calls_per_chunk(
    owner: Account, monkeypatch: Any
) -> None:
    monkeypatch.setattr(lead_service, "BULK_CHUNK", 10)

    async def import_calls(first: int, n: int) -> Counter[str]:
        rows = [{"type": "generic", "email": f"b{first + i}@example.com"} for i in range(n)]
        with count_db_calls() as (calls, _):
            response = await owner.client.post("/v1/leads/bulk", json={"leads": rows})
        assert response.json()["created"] == n
        return _data_calls(calls)

    one, three = await import_calls(0, 10), await import_calls(100, 30)
    # Per chunk: the key claims, the leads insert, the journal insert, the outbox clear.
    per_chunk = {"lead_claims.insert_many": 1, "leads.insert_many": 1}
    per_chunk["domain_events.insert_many"] = 1
    per_chunk["leads.update_many"] = 1
    assert one == Counter(per_chunk)
    assert three == Counter({k: 3 * v for k, v in per_chunk.items()})
