"""The recipient queue: states, atomic claims under concurrency, leases, attempts, opt-outs."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from bson import Binary

from documents.campaign import CampaignLead
from tests.factories import attach_leads, make_campaign, make_lead
from tests.support import work_budget_plugin
from tests.support.helpers import Account, assert_problem


async def email_campaign(account: Account, n: int, **fields: Any) -> tuple[str, list[str]]:
    """An e-mail campaign (no quiet hours) with `n` attached leads; returns (id, lead ids)."""
    rows = [{"type": "generic", "email": f"r{i}@example.com"} for i in range(n)]
    imported = await account.client.post("/v1/leads/bulk", json={"leads": rows})
    assert imported.json()["created"] == n, imported.text
    page = await account.client.get("/v1/leads", params={"limit": 200})
    lead_ids = [lead["id"] for lead in page.json()["items"]]
    body = {"type": "email", "name": "Drip", **fields}
    campaign_id = (await account.client.post("/v1/campaigns", json=body)).json()["id"]
    attached = await account.client.post(
        f"/v1/campaigns/{campaign_id}/leads", json={"lead_ids": lead_ids}
    )
    assert attached.json() == {"added": n}
    return campaign_id, lead_ids


async def claim(account: Account, campaign_id: str, limit: int, **extra: Any) -> list[Any]:
    response = await account.client.post(
        f"/v1/campaigns/{campaign_id}/recipients/claim", json={"limit": limit, **extra}
    )
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


async def email_event(account: Account, campaign_id: str, lead_id: str, status: str) -> Any:
    response = await account.client.post(
        "/v1/events",
        json={"type": "email", "status": status, "campaign_id": campaign_id, "lead_id": lead_id},
    )
    assert response.status_code == 201, response.text
    return response.json()


async def recipients(account: Account, campaign_id: str, **params: Any) -> list[Any]:
    response = await account.client.get(f"/v1/campaigns/{campaign_id}/recipients", params=params)
    assert response.status_code == 200, response.text
    items: list[Any] = response.json()["items"]
    return items


async def test_new_links_are_queued_and_listed(owner: Account) -> None:
    campaign_id, lead_ids = await email_campaign(owner, 3)
    rows = await recipients(owner, campaign_id)
    assert sorted(r["lead_id"] for r in rows) == sorted(lead_ids)
    assert all(r == {**r, "state": "queued", "attempts": 0, "next_attempt_at": None} for r in rows)
    first = await recipients(owner, campaign_id, limit=2)
    response = await owner.client.get(
        f"/v1/campaigns/{campaign_id}/recipients", params={"limit": 2}
    )
    rest = await recipients(owner, campaign_id, limit=2, cursor=response.json()["next_cursor"])
    assert [r["lead_id"] for r in first + rest] == [r["lead_id"] for r in rows]
    assert await recipients(owner, campaign_id, state="reached") == []


async def test_twenty_concurrent_claimers_get_distinct_leads(owner: Account) -> None:
    campaign_id, lead_ids = await email_campaign(owner, 100)
    batches = await asyncio.gather(*(claim(owner, campaign_id, 5) for _ in range(20)))
    # Twenty claimers racing for the same first candidates re-read the ones they lose: that
    # work follows the contention, not the data (a claim alone is judged by the budget below).
    over = work_budget_plugin.BUDGET.take()
    assert all("/recipients/claim" in finding for finding in over), over
    claimed = [item["lead_id"] for batch in batches for item in batch]
    assert len(claimed) == 100 and sorted(claimed) == sorted(lead_ids)  # none twice
    assert all(item["lead"]["id"] == item["lead_id"] for batch in batches for item in batch)
    assert await claim(owner, campaign_id, 10) == []  # every lease still running
    states = {r["state"] for r in await recipients(owner, campaign_id, limit=200)}
    assert states == {"claimed"}


async def test_an_expired_lease_returns_the_recipient(owner: Account) -> None:
    campaign_id, (lead_id,) = await email_campaign(owner, 1)
    (first,) = await claim(owner, campaign_id, 1, lease_seconds=30)
    assert first["lead_id"] == lead_id
    assert await claim(owner, campaign_id, 1) == []
    # The claimer died: its lease runs out.
    past = datetime.now(UTC) - timedelta(seconds=1)
    await CampaignLead.get_pymongo_collection().update_many({}, {"$set": {"claimed_until": past}})
    (again,) = await claim(owner, campaign_id, 1)
    assert again["lead_id"] == lead_id and again["attempts"] == 0


async def test_attempts_until_exhausted_and_retry_spacing(owner: Account) -> None:
    campaign_id, (lead_id,) = await email_campaign(owner, 1, retry_after_minutes=30)
    for attempt in (1, 2):
        await email_event(owner, campaign_id, lead_id, "sent")
        (row,) = await recipients(owner, campaign_id)
        assert row["state"] == "attempted" and row["attempts"] == attempt
        due = datetime.fromisoformat(row["next_attempt_at"])
        last = datetime.fromisoformat(row["last_attempt_at"])
        assert due - last == timedelta(minutes=30)
        assert await claim(owner, campaign_id, 1) == []  # not due yet
    await email_event(owner, campaign_id, lead_id, "bounced")
    (row,) = await recipients(owner, campaign_id)
    assert row["state"] == "exhausted" and row["attempts"] == 3  # the default max_attempts
    await CampaignLead.get_pymongo_collection().update_many({}, {"$set": {"next_attempt_at": None}})
    assert await claim(owner, campaign_id, 1) == []  # never again


async def test_call_campaign_max_attempts(owner: Account) -> None:
    lead = await make_lead(owner, phone="+14155550100")
    campaign = await make_campaign(owner, max_attempts=1)
    campaign_id, lead_id = campaign["id"], lead["id"]
    await attach_leads(owner, campaign_id, lead_id)
    body = {"type": "call", "outcome": "busy", "campaign_id": campaign_id, "lead_id": lead_id}
    assert (await owner.client.post("/v1/events", json=body)).status_code == 201
    assert (await recipients(owner, campaign_id))[0]["state"] == "exhausted"


@pytest.mark.parametrize("status", ["opened", "clicked", "replied"])
async def test_reached(owner: Account, status: str) -> None:
    campaign_id, (lead_id,) = await email_campaign(owner, 1)
    await claim(owner, campaign_id, 1)
    await email_event(owner, campaign_id, lead_id, status)
    (row,) = await recipients(owner, campaign_id)
    assert row["state"] == "reached" and row["attempts"] == 1
    assert await claim(owner, campaign_id, 1) == []


async def test_opted_out_and_suppressed_recipients_are_not_claimed(owner: Account) -> None:
    campaign_id, lead_ids = await email_campaign(owner, 3)
    await owner.client.put(f"/v1/leads/{lead_ids[0]}/consent/email", json={"status": "opted_out"})
    lead = (await owner.client.get(f"/v1/leads/{lead_ids[1]}")).json()
    await owner.client.post("/v1/suppressions", json={"channel": "email", "value": lead["email"]})
    claimed = await claim(owner, campaign_id, 3)
    assert [c["lead_id"] for c in claimed] == [lead_ids[2]]
    states = {r["lead_id"]: r["state"] for r in await recipients(owner, campaign_id)}
    assert states == {lead_ids[0]: "opted_out", lead_ids[1]: "opted_out", lead_ids[2]: "claimed"}


async def test_unsubscribe_event_moves_recipient_to_opted_out(owner: Account) -> None:
    campaign_id, (lead_id,) = await email_campaign(owner, 1)
    await email_event(owner, campaign_id, lead_id, "unsubscribed")
    assert (await recipients(owner, campaign_id))[0]["state"] == "opted_out"


async def test_a_removed_link_is_no_recipient(owner: Account) -> None:
    campaign_id, lead_ids = await email_campaign(owner, 2)
    # What detaching does (branch bounded builds the endpoint): the link row goes.
    await CampaignLead.get_pymongo_collection().delete_one(
        {"lead_id": Binary.from_uuid(UUID(lead_ids[0]))}
    )
    assert [r["lead_id"] for r in await recipients(owner, campaign_id)] == [lead_ids[1]]
    assert [c["lead_id"] for c in await claim(owner, campaign_id, 5)] == [lead_ids[1]]


async def test_errors_and_tenancy(owner: Account, stranger: Account, viewer: Account) -> None:
    campaign_id, _ = await email_campaign(owner, 1)
    url = f"/v1/campaigns/{campaign_id}/recipients"
    assert_problem(await stranger.client.get(url), 404)
    assert_problem(await stranger.client.post(f"{url}/claim", json={"limit": 1}), 404)
    assert_problem(await viewer.client.post(f"{url}/claim", json={"limit": 1}), 403)
    for bad in ({"limit": 0}, {"limit": 101}, {"limit": 1, "lease_seconds": 1}, {}):
        assert_problem(await owner.client.post(f"{url}/claim", json=bad), 422)
    assert_problem(await owner.client.get(url, params={"state": "lost"}), 422)
    social = await owner.client.post("/v1/campaigns", json={"type": "social", "name": "S"})
    assert_problem(
        await owner.client.post(
            f"/v1/campaigns/{social.json()['id']}/recipients/claim", json={"limit": 1}
        ),
        409,
    )
