"""Touchpoint events: subtypes, references, idempotency, immutability, lead bookkeeping, lists."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from bson import Binary

from documents.event import IdempotencyRecord, TouchpointEvent
from documents.journal import DomainEvent
from tests.factories import make_campaign, make_lead
from tests.support.helpers import Account, assert_problem


@pytest.fixture
async def refs(owner: Account) -> dict[str, str]:
    """A campaign of the owner's tenant and a lead attached to it."""
    campaign = await make_campaign(owner)
    lead = await make_lead(owner, email="l@example.com")
    attached = await owner.client.post(
        f"/v1/campaigns/{campaign['id']}/leads", json={"lead_ids": [lead["id"]]}
    )
    assert attached.json() == {"added": 1}
    return {"campaign_id": campaign["id"], "lead_id": lead["id"]}


def call(refs: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {"type": "call", "outcome": "answered", "duration_seconds": 60, **refs, **extra}


@pytest.mark.parametrize(
    "body",
    [
        {
            "type": "call",
            "outcome": "voicemail",
            "duration_seconds": 30,
            "recording_url": "https://r/1",
        },
        {"type": "text", "direction": "inbound", "body": "Yes!", "delivery_status": "received"},
        {"type": "social", "platform": "instagram", "action": "comment", "url": "https://ig/p/1"},
        {"type": "email", "subject": "Hello", "status": "opened"},
    ],
)
async def test_each_type_round_trips(
    owner: Account, refs: dict[str, str], body: dict[str, Any]
) -> None:
    response = await owner.client.post("/v1/events", json={**body, **refs})
    assert response.status_code == 201, response.text
    event = response.json()
    assert body.items() <= event.items()
    assert event["user_id"] == str(owner.id) and event["version"] == 1
    assert response.headers["etag"] == '"1"'
    got = await owner.client.get(f"/v1/events/{event['id']}")
    assert got.status_code == 200 and got.json() == event
    stored = await TouchpointEvent.find_one(
        {"_id": Binary.from_uuid(UUID(event["id"]))}, with_children=True
    )
    assert stored is not None and type(stored).__name__.lower().startswith(body["type"])


@pytest.mark.parametrize(
    "patch",
    [
        {"type": "fax"},
        {"type": None},
        {"outcome": "maybe"},
        {"duration_seconds": -1},
        {"duration_seconds": {"$gt": 0}},
        {"occurred_at": "yesterday"},
        {"lead_id": "not-a-uuid"},
        {"body": "a text field on a call"},
        {"is_deleted": True},
    ],
)
async def test_invalid_events_are_422(
    owner: Account, refs: dict[str, str], patch: dict[str, Any]
) -> None:
    body = {k: v for k, v in {**call(refs), **patch}.items() if v is not None}
    assert_problem(await owner.client.post("/v1/events", json=body), 422)


async def test_references_must_exist_in_tenant(
    owner: Account, stranger: Account, refs: dict[str, str]
) -> None:
    theirs = await make_lead(stranger, email="t@example.com")
    for bad in (
        {"lead_id": theirs["id"]},
        {"campaign_id": refs["lead_id"]},
        {"lead_id": "00000000-0000-4000-8000-000000000000"},
    ):
        problem = assert_problem(await owner.client.post("/v1/events", json=call(refs, **bad)), 422)
        assert problem["errors"][0]["loc"][-1] in {"lead_id", "campaign_id"}
    await owner.client.delete(f"/v1/leads/{refs['lead_id']}")
    assert_problem(await owner.client.post("/v1/events", json=call(refs)), 422)
    assert await TouchpointEvent.find_all(with_children=True).count() == 0


async def test_future_occurred_at_is_422(owner: Account, refs: dict[str, str]) -> None:
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    assert_problem(await owner.client.post("/v1/events", json=call(refs, occurred_at=future)), 422)


async def test_event_updates_lead_contact_and_status(owner: Account, refs: dict[str, str]) -> None:
    lead_url = f"/v1/leads/{refs['lead_id']}"
    late = "2024-05-02T10:00:00Z"
    early = "2024-05-01T10:00:00Z"
    await owner.client.post("/v1/events", json=call(refs, occurred_at=late))
    lead = (await owner.client.get(lead_url)).json()
    assert lead["status"] == "contacted" and lead["version"] == 2
    assert lead["last_contacted_at"].startswith("2024-05-02T10:00:00")
    await owner.client.post("/v1/events", json=call(refs, occurred_at=early))  # older: no change
    lead = (await owner.client.get(lead_url)).json()
    assert lead["last_contacted_at"].startswith("2024-05-02T10:00:00") and lead["version"] == 2
    history = (await owner.client.get(f"{lead_url}/history")).json()["items"]
    assert history[-1]["event_type"] == "lead.status_changed"
    assert history[-1]["changes"] == [{"field": "status", "old": "new", "new": "contacted"}]


async def test_event_keeps_advanced_status(owner: Account, refs: dict[str, str]) -> None:
    lead_url = f"/v1/leads/{refs['lead_id']}"
    await owner.client.patch(lead_url, json={"status": "qualified"})
    await owner.client.post("/v1/events", json=call(refs))
    assert (await owner.client.get(lead_url)).json()["status"] == "qualified"


async def test_events_are_immutable(owner: Account, refs: dict[str, str]) -> None:
    event = (await owner.client.post("/v1/events", json=call(refs))).json()
    url = f"/v1/events/{event['id']}"
    for method in ("PATCH", "PUT", "DELETE"):
        response = await owner.client.request(method, url, json={"outcome": "busy"})
        assert_problem(response, 405)
        assert "GET" in response.headers["allow"]
    assert (await owner.client.get(url)).json() == event


async def test_idempotent_replay_returns_the_first_answer(
    owner: Account, refs: dict[str, str]
) -> None:
    headers = {"Idempotency-Key": "call-42"}
    first = await owner.client.post("/v1/events", json=call(refs), headers=headers)
    reordered = dict(reversed(list(call(refs).items())))
    again = await owner.client.post("/v1/events", json=reordered, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert await TouchpointEvent.find_all(with_children=True).count() == 1
    other = await owner.client.post(
        "/v1/events", json=call(refs, duration_seconds=61), headers=headers
    )
    assert_problem(other, 409)
    assert await TouchpointEvent.find_all(with_children=True).count() == 1


async def test_idempotency_key_is_per_tenant_and_bounded(
    owner: Account, stranger: Account, refs: dict[str, str]
) -> None:
    headers = {"Idempotency-Key": "shared"}
    assert (
        await owner.client.post("/v1/events", json=call(refs), headers=headers)
    ).status_code == 201
    c = await make_campaign(stranger)
    lead = await make_lead(stranger, email="s@example.com")
    await stranger.client.post(f"/v1/campaigns/{c['id']}/leads", json={"lead_ids": [lead["id"]]})
    theirs = call({"campaign_id": c["id"], "lead_id": lead["id"]})
    response = await stranger.client.post("/v1/events", json=theirs, headers=headers)
    assert response.status_code == 201
    too_long = {"Idempotency-Key": "k" * 256}
    assert_problem(await owner.client.post("/v1/events", json=call(refs), headers=too_long), 422)
    record = await IdempotencyRecord.find_one({"key": "shared"})
    assert record is not None and record.expires_at - record.created_at >= timedelta(hours=24)


async def test_concurrent_retries_make_one_event(owner: Account, refs: dict[str, str]) -> None:
    headers = {"Idempotency-Key": "burst"}
    responses = await asyncio.gather(
        *[owner.client.post("/v1/events", json=call(refs), headers=headers) for _ in range(8)]
    )
    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert await TouchpointEvent.find_all(with_children=True).count() == 1
    lead = (await owner.client.get(f"/v1/leads/{refs['lead_id']}")).json()
    assert lead["status"] == "contacted"


async def test_failed_first_attempt_releases_the_key(owner: Account, refs: dict[str, str]) -> None:
    headers = {"Idempotency-Key": "retry-me"}
    missing = call(refs, lead_id="00000000-0000-4000-8000-000000000000")
    assert_problem(await owner.client.post("/v1/events", json=missing, headers=headers), 422)
    response = await owner.client.post("/v1/events", json=call(refs), headers=headers)
    assert response.status_code == 201


async def test_events_are_not_journaled(owner: Account, refs: dict[str, str]) -> None:
    event = (await owner.client.post("/v1/events", json=call(refs))).json()
    journal = await DomainEvent.find({"aggregate_id": Binary.from_uuid(UUID(event["id"]))}).count()
    assert journal == 0


async def test_list_filters_and_time_range(owner: Account, refs: dict[str, str]) -> None:
    c = owner.client
    e1 = (await c.post("/v1/events", json=call(refs, occurred_at="2024-01-01T00:00:00Z"))).json()
    e2 = (
        await c.post(
            "/v1/events",
            json={"type": "email", **refs, "occurred_at": "2024-01-02T12:00:00Z"},
        )
    ).json()
    other = (await c.post("/v1/campaigns", json={"type": "email", "name": "E"})).json()
    await c.post(f"/v1/campaigns/{other['id']}/leads", json={"lead_ids": [refs["lead_id"]]})
    e3 = (await c.post("/v1/events", json=call(refs, campaign_id=other["id"]))).json()

    async def ids(query: str) -> list[str]:
        response = await c.get(f"/v1/events?{query}")
        assert response.status_code == 200, response.text
        return [x["id"] for x in response.json()["items"]]

    assert await ids("") == [e3["id"], e2["id"], e1["id"]]
    assert await ids(f"campaign_id={other['id']}") == [e3["id"]]
    assert await ids("type=email") == [e2["id"]]
    assert await ids(f"lead_id={refs['lead_id']}&type=call") == [e3["id"], e1["id"]]
    assert await ids("since=2024-01-01&until=2024-01-02") == [e1["id"]]  # until exclusive
    assert await ids("since=2024-01-02") == [e3["id"], e2["id"]]
    for query in ("since=2024-02-01&until=2024-01-01", "type=fax", "type[$ne]=call", "limit=500"):
        assert_problem(await c.get(f"/v1/events?{query}"), 422)


async def test_lead_timeline_newest_occurrence_first(owner: Account, refs: dict[str, str]) -> None:
    times = ["2024-03-01T00:00:00Z", "2024-01-01T00:00:00Z", "2024-02-01T00:00:00Z"]
    made = [
        (await owner.client.post("/v1/events", json=call(refs, occurred_at=t))).json()
        for t in times
    ]
    url = f"/v1/leads/{refs['lead_id']}/events"
    first = (await owner.client.get(f"{url}?limit=2")).json()
    assert [x["id"] for x in first["items"]] == [made[0]["id"], made[2]["id"]]
    await owner.client.post("/v1/events", json=call(refs, occurred_at="2023-06-01T00:00:00Z"))
    rest = (await owner.client.get(f"{url}?limit=2&cursor={first['next_cursor']}")).json()
    assert rest["items"][0]["id"] == made[1]["id"]
    assert_problem(await owner.client.get(f"{url}?foo=1"), 422)


async def test_other_tenant_cannot_read_events(
    owner: Account, stranger: Account, refs: dict[str, str]
) -> None:
    event = (await owner.client.post("/v1/events", json=call(refs))).json()
    assert_problem(await stranger.client.get(f"/v1/events/{event['id']}"), 404)
    assert (await stranger.client.get("/v1/events")).json()["items"] == []
    listed = await stranger.client.get(f"/v1/events?lead_id={refs['lead_id']}")
    assert listed.json()["items"] == []


async def test_viewer_cannot_create(viewer: Account, refs: dict[str, str]) -> None:
    assert_problem(await viewer.client.post("/v1/events", json=call(refs)), 403)


async def test_the_lead_must_be_one_of_the_campaigns_leads(
    owner: Account, refs: dict[str, str]
) -> None:
    outsider = await make_lead(owner, email="out@example.com")
    body = call(refs, lead_id=outsider["id"])
    problem = assert_problem(await owner.client.post("/v1/events", json=body), 422)
    assert problem["errors"][0]["loc"] == ["body", "lead_id"]
    assert "campaign" in problem["detail"]
    # Attached to ANOTHER campaign is not enough either.
    other = await owner.client.post("/v1/campaigns", json={"type": "text", "name": "T"})
    await owner.client.post(
        f"/v1/campaigns/{other.json()['id']}/leads", json={"lead_ids": [outsider["id"]]}
    )
    assert_problem(await owner.client.post("/v1/events", json=body), 422)
    await owner.client.post(
        f"/v1/campaigns/{refs['campaign_id']}/leads", json={"lead_ids": [outsider["id"]]}
    )
    assert (await owner.client.post("/v1/events", json=body)).status_code == 201
    schema = (await owner.client.get("/openapi.json")).json()["components"]["schemas"]
    assert (
        "attached to the campaign"
        in schema["CallEventCreate"]["properties"]["lead_id"]["description"]
    )
