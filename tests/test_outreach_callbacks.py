"""Provider ids on events and status callbacks: forward-only, bounded history, out of order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from documents.event import STATUS_HISTORY_MAX
from tests.factories import make_lead
from tests.support.helpers import Account, assert_problem


@pytest.fixture
async def refs(owner: Account) -> dict[str, str]:
    lead = await make_lead(owner, phone="+14155550100", email="p@example.com")
    ids = {"lead_id": lead["id"]}
    for kind in ("text", "email", "social"):
        campaign = await owner.client.post("/v1/campaigns", json={"type": kind, "name": kind})
        await owner.client.post(
            f"/v1/campaigns/{campaign.json()['id']}/leads", json={"lead_ids": [ids["lead_id"]]}
        )
        ids[kind] = campaign.json()["id"]
    return ids


def text(refs: dict[str, str], **extra: Any) -> dict[str, Any]:
    return {
        "type": "text",
        "body": "Open house Sunday",
        "delivery_status": "queued",
        "provider": "Twilio",
        "external_id": "SM1",
        "campaign_id": refs["text"],
        "lead_id": refs["lead_id"],
        "occurred_at": "2026-07-01T18:00:00Z",
        **extra,
    }


async def status(account: Account, body: dict[str, Any]) -> Any:
    return await account.client.post("/v1/events/status", json=body)


async def test_provider_id_replays_and_conflicts(owner: Account, refs: dict[str, str]) -> None:
    first = await owner.client.post("/v1/events", json=text(refs))
    assert first.status_code == 201, first.text
    assert first.json()["provider"] == "twilio" and first.json()["external_id"] == "SM1"
    again = await owner.client.post("/v1/events", json=text(refs))
    assert again.status_code == 201 and again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    other_body = await owner.client.post("/v1/events", json=text(refs, body="Changed"))
    assert_problem(other_body, 409)
    other_provider = await owner.client.post("/v1/events", json=text(refs, provider="plivo"))
    assert other_provider.status_code == 201 and other_provider.json()["id"] != first.json()["id"]
    assert_problem(await owner.client.post("/v1/events", json=text(refs, external_id=None)), 422)


async def test_concurrent_creates_of_one_provider_id_make_one_event(
    owner: Account, refs: dict[str, str]
) -> None:
    answers = await asyncio.gather(
        *(owner.client.post("/v1/events", json=text(refs, external_id="SMX")) for _ in range(5))
    )
    assert {a.status_code for a in answers} == {201}
    assert len({a.json()["id"] for a in answers}) == 1


async def test_forward_only_with_history(owner: Account, refs: dict[str, str]) -> None:
    await owner.client.post("/v1/events", json=text(refs))
    base = {"provider": "twilio", "external_id": "SM1"}
    sent = await status(owner, {**base, "status": "sent", "occurred_at": "2026-07-01T18:00:01Z"})
    assert sent.status_code == 200, sent.text
    assert sent.json()["delivery_status"] == "sent" and sent.json()["version"] == 2
    delivered = {**base, "status": "delivered", "occurred_at": "2026-07-01T18:00:05Z"}
    assert (await status(owner, delivered)).json()["delivery_status"] == "delivered"
    # A late, older status is kept but does not move it back; a repeat is recorded once.
    late = await status(owner, {**base, "status": "queued", "occurred_at": "2026-07-01T18:00:00Z"})
    assert late.json()["delivery_status"] == "delivered"
    repeat = await status(owner, delivered)
    assert repeat.json()["version"] == late.json()["version"]
    history = [h["status"] for h in repeat.json()["status_history"]]
    assert history == ["queued", "sent", "delivered"]  # ordered by occurred_at
    failed = await status(owner, {**base, "status": "failed"})
    assert failed.json()["delivery_status"] == "delivered"  # no move between final statuses


async def test_out_of_order_email_callbacks(owner: Account, refs: dict[str, str]) -> None:
    body = {
        "type": "email",
        "status": "sent",
        "provider": "sendgrid",
        "external_id": "m-1",
        "campaign_id": refs["email"],
        "lead_id": refs["lead_id"],
    }
    assert (await owner.client.post("/v1/events", json=body)).status_code == 201
    base = {"provider": "sendgrid", "external_id": "m-1"}
    for name, minute in (("clicked", 9), ("delivered", 1), ("opened", 5)):
        got = await status(
            owner, {**base, "status": name, "occurred_at": f"2026-07-01T18:0{minute}:00Z"}
        )
        assert got.status_code == 200, got.text
    assert got.json()["status"] == "clicked"
    recipients = await owner.client.get(f"/v1/campaigns/{refs['email']}/recipients")
    assert recipients.json()["items"][0]["state"] == "reached"
    unsubscribed = await status(owner, {**base, "status": "unsubscribed"})
    assert unsubscribed.json()["status"] == "unsubscribed"
    lead = (await owner.client.get(f"/v1/leads/{refs['lead_id']}")).json()
    assert lead["consent"]["email"] == {
        **lead["consent"]["email"],
        "status": "opted_out",
        "source": unsubscribed.json()["id"],
    }


async def test_history_is_bounded_and_concurrent_callbacks_all_land(
    owner: Account, refs: dict[str, str]
) -> None:
    await owner.client.post("/v1/events", json=text(refs))
    base = {"provider": "twilio", "external_id": "SM1"}
    answers = await asyncio.gather(
        *(
            status(owner, {**base, "status": "sent", "occurred_at": f"2026-07-01T18:{m:02d}:00Z"})
            for m in range(10)
        )
    )
    assert {a.status_code for a in answers} == {200}
    event = (await owner.client.get(f"/v1/events/{answers[0].json()['id']}")).json()
    assert len(event["status_history"]) == 10 and event["version"] == 11
    for m in range(10, 30):
        await status(owner, {**base, "status": "sent", "occurred_at": f"2026-07-01T18:{m:02d}:00Z"})
    event = (await owner.client.get(f"/v1/events/{event['id']}")).json()
    assert len(event["status_history"]) == STATUS_HISTORY_MAX
    assert event["status_history"][-1]["occurred_at"].startswith("2026-07-01T18:29")


async def test_errors_and_tenancy(
    owner: Account, stranger: Account, viewer: Account, refs: dict[str, str]
) -> None:
    await owner.client.post("/v1/events", json=text(refs))
    base = {"provider": "twilio", "external_id": "SM1"}
    assert_problem(await status(owner, {**base, "external_id": "nope", "status": "sent"}), 404)
    assert_problem(await status(stranger, {**base, "status": "sent"}), 404)
    assert_problem(await status(viewer, {**base, "status": "sent"}), 403)
    assert_problem(await status(owner, {**base, "status": "opened"}), 422)  # an e-mail status
    assert_problem(await status(owner, {**base}), 422)
    future = {**base, "status": "sent", "occurred_at": "2999-01-01T00:00:00Z"}
    assert_problem(await status(owner, future), 422)
    social = {
        "type": "social",
        "platform": "facebook",
        "action": "like",
        "provider": "meta",
        "external_id": "p1",
        "campaign_id": refs["social"],
        "lead_id": refs["lead_id"],
    }
    assert (await owner.client.post("/v1/events", json=social)).status_code == 201
    assert_problem(
        await status(owner, {"provider": "meta", "external_id": "p1", "status": "x"}), 422
    )


async def test_events_filter_by_user(owner: Account, member: Account, refs: dict[str, str]) -> None:
    await owner.client.post("/v1/events", json=text(refs))
    await member.client.post("/v1/events", json=text(refs, external_id="SM2"))
    mine = await owner.client.get("/v1/events", params={"user_id": str(member.id)})
    assert [e["user_id"] for e in mine.json()["items"]] == [str(member.id)]
