"""Every query of the lead, campaign and event paths has a serving index.

A flow drives every list, sort, filter, search, geo, count, export, merge, dedupe and ingest
path of the area while `service.embedded.observers` records each query sent to `leads`,
`campaigns`, `events` and `campaign_leads`; each is then checked against the indexes the
database really has, by the suite-wide checker (tests/support/query_plans.py, MongoDB's planner
rules; its own tests are in tests/test_query_plans.py). The suite-wide plugin checks every
query any test sends; this flow makes sure each of the area's paths is among them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from documents.campaign import CampaignBase, CampaignLead
from documents.event import TouchpointEvent
from documents.lead import LeadBase
from service.embedded import Operation, observers
from tests.support.helpers import Account
from tests.support.query_plan_allowlist import allowed
from tests.support.query_plan_plugin import shape_of_operation
from tests.support.query_plans import IndexSpec, check

# Records through service.embedded.observers (on MongoDB, tests/test_real_mongodb.py explains).
pytestmark = pytest.mark.embedded_only

COLLECTIONS: dict[str, Any] = {
    "leads": LeadBase,
    "campaigns": CampaignBase,
    "events": TouchpointEvent,
    "campaign_leads": CampaignLead,
}


@pytest.fixture
def recorded() -> Iterator[list[Operation]]:
    ops: list[Operation] = []

    def keep(op: Operation) -> None:
        if op.collection in COLLECTIONS and op.method in (
            "find",
            "count_documents",
            "aggregate",
            "update_one",
            "update_many",
            "delete_many",
        ):
            ops.append(op)

    observers.append(keep)
    yield ops
    observers.remove(keep)


async def _drive(owner: Account) -> None:
    c = owner.client

    async def ok(method: str, path: str, **kwargs: Any) -> Any:
        response = await c.request(method, path, **kwargs)
        assert response.status_code < 300, (path, response.text)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return None

    campaign = await ok("POST", "/v1/campaigns", json={"type": "call", "name": "C"})
    leads = []
    for i in range(4):
        body = {"type": "mls", "mls_id": f"M-{i}", "email": f"m{i}@example.com"}
        body["location"] = {"type": "Point", "coordinates": [i * 0.01, 0]}
        leads.append(await ok("POST", "/v1/leads", json=body))
    await ok("POST", "/v1/leads/bulk", json={"leads": [{"type": "generic", "phone": "4155550101"}]})
    await ok("PATCH", f"/v1/leads/{leads[0]['id']}", json={"email": "changed@example.com"})
    ids = [x["id"] for x in leads]
    await ok("POST", f"/v1/campaigns/{campaign['id']}/leads", json={"lead_ids": ids})
    for lead_id in ids[:2]:
        event = {"type": "call", "outcome": "answered", "campaign_id": campaign["id"]}
        await ok("POST", "/v1/events", json={**event, "lead_id": lead_id})
    sorts = ["created_at", "updated_at", "last_name", "list_price", "status", "last_contacted_at"]
    for sort in [None, *sorts, *(f"-{s}" for s in sorts)]:
        for extra in ({}, {"include_deleted": "true"}, {"status": "new"}, {"type": "mls"}):
            params: dict[str, Any] = {"limit": 1, "count": "true", **extra}
            if sort:
                params["sort"] = sort
            page = await ok("GET", "/v1/leads", params=params)
            if page["next_cursor"]:
                await ok("GET", "/v1/leads", params={**params, "cursor": page["next_cursor"]})
    for params in ({"tag": "x"}, {"q": "m1"}, {"q": "m1", "sort": "-last_name"}):
        await ok("GET", "/v1/leads", params={**params, "count": "true"})
    near = {"near": "0,0", "within_km": 50, "limit": 1, "count": "true"}
    page = await ok("GET", "/v1/leads", params=near)
    await ok("GET", "/v1/leads", params={**near, "cursor": page["next_cursor"]})
    await ok("GET", "/v1/leads", params={**near, "sort": "-list_price"})
    await ok("GET", "/v1/leads/export", params={"format": "csv", "sort": "last_name"})
    await ok("GET", "/v1/leads/export", params={"format": "ndjson", "near": "0,0"})
    members = f"/v1/campaigns/{campaign['id']}/leads"
    for params in ({"limit": 1}, {"sort": "last_name", "limit": 1}):
        page = await ok("GET", members, params={**params, "count": "true"})
        assert page["next_cursor"]
        await ok("GET", members, params={**params, "cursor": page["next_cursor"]})
    for sort in [None, "name", "-status", "starts_at", "created_at", "updated_at"]:
        for extra in ({}, {"type": "call"}, {"tag": "t"}, {"include_deleted": "true"}):
            params = {"limit": 1, "count": "true", **extra, **({"sort": sort} if sort else {})}
            await ok("GET", "/v1/campaigns", params=params)
    for sort in [None, "occurred_at", "-created_at", "updated_at"]:
        for extra in (
            {},
            {"campaign_id": campaign["id"]},
            {"lead_id": ids[0]},
            {"type": "call"},
            {"since": "2024-01-01"},
            {"campaign_id": campaign["id"], "since": "2024-01-01", "until": "2099-01-01"},
        ):
            params = {"limit": 1, "count": "true", **extra, **({"sort": sort} if sort else {})}
            page = await ok("GET", "/v1/events", params=params)
            if page["next_cursor"]:
                await ok("GET", "/v1/events", params={**params, "cursor": page["next_cursor"]})
    await ok("POST", "/v1/events", json={**event, "lead_id": ids[0]})
    page = await ok("GET", f"/v1/leads/{ids[0]}/events", params={"limit": 1})
    await ok("GET", f"/v1/leads/{ids[0]}/events", params={"cursor": page["next_cursor"]})
    await ok("POST", f"/v1/leads/{ids[0]}/merge", json={"source_ids": ids[1:3]})


async def test_every_query_of_the_area_has_a_serving_index(
    owner: Account, recorded: list[Operation]
) -> None:
    await _drive(owner)
    assert len(recorded) > 200
    indexes = {name: await _indexes(model) for name, model in COLLECTIONS.items()}
    shapes = {shape for op in recorded if (shape := shape_of_operation(op)) is not None}
    failures = [
        f"{shape}: {why}"
        for shape in sorted(shapes, key=str)
        if (why := check(shape, indexes[shape.collection])) is not None and not allowed(shape)
    ]
    assert not failures, "\n".join(failures[:10])


async def _indexes(model: Any) -> list[IndexSpec]:
    info = await model.get_pymongo_collection().index_information()
    return [IndexSpec.from_info(name, entry) for name, entry in info.items()]
