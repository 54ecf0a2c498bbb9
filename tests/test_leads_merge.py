"""`POST /v1/leads/{id}/merge`: fill, move, delete, journal, count — and safe to retry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest.mock import patch

import pytest

from service import campaigns as campaign_service
from service.leads import claims as lead_claims
from tests.factories import make_lead
from tests.support.helpers import Account, assert_problem


async def post(account: Account, path: str, body: dict[str, Any], status: int = 201) -> Any:
    response = await account.client.post(path, json=body)
    assert response.status_code == status, response.text
    return response.json()


async def merge(account: Account, target: str, *sources: str) -> Any:
    return await account.client.post(
        f"/v1/leads/{target}/merge", json={"source_ids": list(sources)}
    )


async def touch(account: Account, campaign: str, lead_id: str, when: str) -> dict[str, Any]:
    body = {
        "type": "call",
        "outcome": "answered",
        "campaign_id": campaign,
        "lead_id": lead_id,
        "occurred_at": when,
    }
    result: dict[str, Any] = await post(account, "/v1/events", body)
    return result


async def attach(account: Account, campaign: str, *lead_ids: str) -> None:
    await post(account, f"/v1/campaigns/{campaign}/leads", {"lead_ids": list(lead_ids)}, 200)


async def _crash(*_: Any, **__: Any) -> None:
    raise ConnectionError("the database went away")  # a crash between merge steps 2 and 4


async def get(account: Account, path: str) -> Any:
    response = await account.client.get(path)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def trio(owner: Account) -> dict[str, Any]:
    """A target, two duplicates of it, and campaigns they belong to."""
    c = owner.client
    target = await make_lead(
        owner,
        first_name="Ana",
        email="ana@example.com",
        address={"city": "Porto"},
        tags=["buyer"],
        segments={"tier": "gold"},
    )
    first = await make_lead(
        owner,
        first_name="Anna",
        last_name="Silva",
        phone="(415) 555-0100",
        company="Acme",
        address={"city": "Lisbon", "line1": "Rua 1", "postal_code": "1000"},
        tags=["seller", "buyer"],
        segments={"tier": "silver", "source": "fair"},
        notes="met at the fair",
    )
    second = await make_lead(owner, email="ana.s@example.com", last_name="Souza", job_title="CEO")
    both = await post(owner, "/v1/campaigns", {"type": "call", "name": "Both"})
    only_source = await post(owner, "/v1/campaigns", {"type": "email", "name": "Only source"})
    await attach(owner, both["id"], target["id"], first["id"])
    await attach(owner, only_source["id"], first["id"], second["id"])
    event = await touch(owner, only_source["id"], first["id"], "2024-02-01T00:00:00Z")
    assert (await c.get(f"/v1/leads/{target['id']}")).json()["status"] == "new"
    return {
        "target": target,
        "first": first,
        "second": second,
        "both": both,
        "only_source": only_source,
        "event": event,
    }


async def test_merge_fills_moves_deletes_and_counts(owner: Account, trio: dict[str, Any]) -> None:
    t, a, b = trio["target"]["id"], trio["first"]["id"], trio["second"]["id"]
    response = await merge(owner, t, a, b)
    assert response.status_code == 200, response.text
    merged = response.json()
    assert response.headers["etag"] == f'"{merged["version"]}"'
    # The target keeps its values and gains the sources' where it had none (first source wins).
    assert merged["first_name"] == "Ana" and merged["email"] == "ana@example.com"
    assert merged["last_name"] == "Silva" and merged["phone"] == "+14155550100"
    assert merged["company"] == "Acme" and merged["job_title"] == "CEO"
    assert merged["notes"] == "met at the fair"
    assert merged["address"]["city"] == "Porto" and merged["address"]["line1"] == "Rua 1"
    assert merged["address"]["postal_code"] == "1000"
    assert merged["tags"] == ["buyer", "seller"]
    assert merged["segments"] == {"tier": "gold", "source": "fair"}
    # It was contacted through a source's event: the event's bookkeeping comes along.
    assert merged["status"] == "contacted"
    assert merged["last_contacted_at"] == "2024-02-01T00:00:00Z"
    assert merged == await get(owner, f"/v1/leads/{t}")
    # The sources are soft-deleted and point at the target.
    for source in (a, b):
        assert_problem(await owner.client.get(f"/v1/leads/{source}"), 404)
    listed = await get(owner, "/v1/leads?include_deleted=true&limit=200")
    by_id = {x["id"]: x for x in listed["items"]}
    assert by_id[a]["is_deleted"] and by_id[a]["merged_into"] == t
    assert by_id[b]["is_deleted"] and by_id[b]["merged_into"] == t
    assert by_id[t]["merged_into"] is None
    # Events and links moved; every campaign counts its live leads once.
    timeline = await get(owner, f"/v1/leads/{t}/events")
    assert [e["id"] for e in timeline["items"]] == [trio["event"]["id"]]
    assert (await get(owner, f"/v1/events?lead_id={a}"))["items"] == []
    for campaign in (trio["both"], trio["only_source"]):
        members = await get(owner, f"/v1/campaigns/{campaign['id']}/leads?count=true")
        assert [m["id"] for m in members["items"]] == [t] and members["total"] == 1
        assert (await get(owner, f"/v1/campaigns/{campaign['id']}"))["lead_count"] == 1


async def test_merge_frees_the_sources_keys_and_is_journaled(
    owner: Account, trio: dict[str, Any]
) -> None:
    t, b = trio["target"]["id"], trio["second"]["id"]
    assert (await merge(owner, t, b)).status_code == 200
    # The target kept its email, so the source's is free again for a new lead.
    assert (
        await owner.client.post("/v1/leads", json={"type": "generic", "email": "ana.s@example.com"})
    ).status_code == 201
    # The target took the source's last name; its history says so, the source's says merged.
    target_history = (await get(owner, f"/v1/leads/{t}/history"))["items"]
    last = target_history[-1]
    assert last["event_type"] == "lead.merged" and last["actor_id"] == str(owner.id)
    assert {"field": "last_name", "old": None, "new": "Souza"} in last["changes"]
    source_history = (await get(owner, f"/v1/leads/{b}/history"))["items"]
    changes = {c["field"]: c["new"] for c in source_history[-1]["changes"]}
    assert source_history[-1]["event_type"] == "lead.merged"
    assert changes["is_deleted"] is True and changes["merged_into"] == t


async def test_a_retry_changes_nothing(owner: Account, trio: dict[str, Any]) -> None:
    t, a, b = trio["target"]["id"], trio["first"]["id"], trio["second"]["id"]
    first = (await merge(owner, t, a, b)).json()
    history = await get(owner, f"/v1/leads/{t}/history")
    again = await merge(owner, t, b, a, a)
    assert again.status_code == 200 and again.json() == first
    assert await get(owner, f"/v1/leads/{t}/history") == history
    campaign = await get(owner, f"/v1/campaigns/{trio['both']['id']}")
    assert campaign["lead_count"] == 1


async def test_a_crash_midway_is_completed_by_the_retry(
    owner: Account, trio: dict[str, Any]
) -> None:
    t, a = trio["target"]["id"], trio["first"]["id"]

    with patch.object(campaign_service, "move_links", _crash):
        response = await merge(owner, t, a)
    assert response.status_code == 500
    # The source is already merged into the target: the same request carries on.
    assert_problem(await owner.client.get(f"/v1/leads/{a}"), 404)
    response = await merge(owner, t, a)
    assert response.status_code == 200, response.text
    assert response.json()["phone"] == "+14155550100"
    members = await get(owner, f"/v1/campaigns/{trio['only_source']['id']}/leads")
    assert {m["id"] for m in members["items"]} == {t, trio["second"]["id"]}
    assert (await get(owner, f"/v1/campaigns/{trio['both']['id']}"))["lead_count"] == 1
    assert (await get(owner, f"/v1/campaigns/{trio['only_source']['id']}"))["lead_count"] == 2


async def test_a_key_taken_meanwhile_is_409_like_create(
    owner: Account, trio: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    t, a = trio["target"]["id"], trio["first"]["id"]

    with patch.object(campaign_service, "move_links", _crash):
        assert (await merge(owner, t, a)).status_code == 500
    # The target claimed the source's phone before the crash: within the grace period the
    # claim holds, so a retry would complete.
    early = await owner.client.post("/v1/leads", json={"type": "generic", "phone": "4155550100"})
    assert assert_problem(early, 409)["existing_id"] == t
    # After the grace period the claim is stale (the target does not hold the phone): another
    # lead takes it over, and the retried merge is the create route's 409.
    monkeypatch.setattr(lead_claims, "CLAIM_GRACE", timedelta(0))
    taker = await make_lead(owner, phone="+14155550100")
    body = assert_problem(await merge(owner, t, a), 409)
    assert body["existing_id"] == taker["id"] and body["field"] == "phone"


async def test_mixed_types_fill_only_the_targets_fields(owner: Account) -> None:
    target = await make_lead(owner, email="t@example.com")
    mls = await post(
        owner,
        "/v1/leads",
        {"type": "mls", "mls_id": "M-1", "first_name": "Mo", "list_price": 100, "beds": 2},
    )
    merged = (await merge(owner, target["id"], mls["id"])).json()
    assert merged["type"] == "generic" and merged["first_name"] == "Mo"
    assert "mls_id" not in merged and "beds" not in merged
    # The MLS id is free again.
    assert (
        await owner.client.post("/v1/leads", json={"type": "mls", "mls_id": "M-1"})
    ).status_code == 201


async def test_refusals(
    owner: Account, stranger: Account, viewer: Account, trio: dict[str, Any]
) -> None:
    t, a, b = trio["target"]["id"], trio["first"]["id"], trio["second"]["id"]
    foreign = await make_lead(stranger, email="x@example.com")
    gone = await make_lead(owner, email="gone@example.com")
    await owner.client.delete(f"/v1/leads/{gone['id']}")
    missing = "01900000-0000-7000-8000-000000000000"
    for sources, position in (
        ([t], 0),  # itself
        ([a, t], 1),
        ([foreign["id"]], 0),  # another tenant's
        ([a, gone["id"]], 1),  # deleted (not by this merge)
        ([missing], 0),
    ):
        body = assert_problem(await merge(owner, t, *sources), 422)
        assert body["errors"][0]["loc"] == ["body", "source_ids", position]
    assert (await get(owner, f"/v1/leads/{a}"))["is_deleted"] is False  # nothing happened
    # A source merged into ANOTHER target is not this merge's to take.
    assert (await merge(owner, b, a)).status_code == 200
    assert_problem(await merge(owner, t, a), 422)
    for bad in ({"source_ids": []}, {"source_ids": ["x"]}, {}, {"source_ids": [a] * 21}):
        assert_problem(await owner.client.post(f"/v1/leads/{t}/merge", json=bad), 422)
    assert_problem(await merge(owner, missing, b), 404)
    assert_problem(await merge(stranger, t, foreign["id"]), 404)
    assert_problem(await merge(viewer, t, b), 403)
