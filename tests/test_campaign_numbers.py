"""A campaign's numbers agree with its live leads on every path that changes a lead's liveness
or membership: the lead list, analytics and the CampaignStats read model (and `lead_count`)."""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import Any
from uuid import UUID, uuid4

import pytest

from tests.factories import attach_leads, make_campaign, make_lead
from tests.support.helpers import Account

Path = Callable[[Account, dict[str, Any]], Awaitable[None]]


async def attach(owner: Account, s: dict[str, Any]) -> None:
    r = await owner.client.post(f"/v1/campaigns/{s['campaign']}/leads", json={"lead_ids": s["new"]})
    assert r.status_code == 200, r.text


async def soft_delete(owner: Account, s: dict[str, Any]) -> None:
    assert (await owner.client.delete(f"/v1/leads/{s['leads'][0]}")).status_code == 204


async def restore(owner: Account, s: dict[str, Any]) -> None:
    await soft_delete(owner, s)
    r = await owner.client.post(f"/v1/leads/{s['leads'][0]}/restore")
    assert r.status_code == 200, r.text


async def merge(owner: Account, s: dict[str, Any]) -> None:
    # The second (contacted) member merges into the lead outside the campaign: its link and
    # events move to the target, and it is soft-deleted.
    r = await owner.client.post(
        f"/v1/leads/{s['new'][0]}/merge", json={"source_ids": [s["leads"][1]]}
    )
    assert r.status_code == 200, r.text


# Every path that changes a lead's liveness or campaign membership.
PATHS: dict[str, Path] = {
    "attach": attach,
    "soft_delete": soft_delete,
    "restore": restore,
    "merge": merge,
}


async def numbers(owner: Account, campaign: str) -> dict[str, Any]:
    listed = await owner.client.get(f"/v1/campaigns/{campaign}/leads", params={"limit": 200})
    analytics = (await owner.client.get(f"/v1/analytics/campaigns/{campaign}")).json()
    stats = (await owner.client.get(f"/v1/read-models/campaign-stats/{campaign}")).json()
    return {
        "listed": len(listed.json()["items"]),
        "lead_count": (await owner.client.get(f"/v1/campaigns/{campaign}")).json()["lead_count"],
        "analytics": (
            analytics["leads_total"],
            analytics["leads_contacted"],
            analytics["events_total"],
        ),
        "stats": (stats["leads_total"], stats["leads_contacted"], stats["events_total"]),
    }


async def world(owner: Account) -> dict[str, Any]:
    campaign = await owner.client.post("/v1/campaigns", json={"type": "call", "name": "N"})
    cid = campaign.json()["id"]
    leads = []
    for i in range(4):
        leads.append((await make_lead(owner, email=f"n{i}@x.io"))["id"])
    await attach_leads(owner, cid, *leads[:3])
    for lead in leads[:2]:  # two contacted leads, the first of them the one that changes
        body = {"type": "call", "campaign_id": cid, "lead_id": lead, "outcome": "answered"}
        assert (await owner.client.post("/v1/events", json=body)).status_code == 201
    return {"campaign": cid, "leads": leads, "new": leads[3:]}


@pytest.mark.parametrize("path", list(PATHS))
async def test_analytics_and_read_model_agree_with_the_live_leads(
    owner: Account, path: str
) -> None:
    s = await world(owner)
    await PATHS[path](owner, s)
    got = await numbers(owner, s["campaign"])
    live = got["listed"]
    contacted = {"attach": 2, "soft_delete": 1, "restore": 2, "merge": 2}[path]
    assert got["analytics"] == (live, contacted, 2)  # a deleted lead's events still count
    assert got["stats"] == got["analytics"]
    assert live == {"attach": 4, "soft_delete": 2, "restore": 3, "merge": 3}[path]


@pytest.mark.parametrize("path", list(PATHS))
async def test_lead_count_agrees_with_the_live_leads(owner: Account, path: str) -> None:
    s = await world(owner)
    await PATHS[path](owner, s)
    got = await numbers(owner, s["campaign"])
    assert got["lead_count"] == got["listed"] == got["analytics"][0]


# -- lead_count is kept incrementally: it must equal a recount after any sequence ----------------


async def recounted(campaign: str) -> int:
    """`lead_count` as a full recount defines it: links whose lead is live."""
    from documents.campaign import CampaignLead
    from documents.lead import LeadBase

    links = CampaignLead.get_pymongo_collection()
    leads = LeadBase.get_pymongo_collection()
    linked = [row["lead_id"] async for row in links.find({"campaign_id": UUID(campaign)})]
    return await leads.count_documents({"_id": {"$in": linked}, "is_deleted": False})


MEMBERSHIP_OPS = ("attach", "detach", "delete", "restore", "merge")


async def campaigns_and_leads(owner: Account, prefix: str) -> tuple[list[str], list[str]]:
    """Two campaigns and eight leads (e-mails `<prefix><i>@x.io`) for a random sequence."""
    campaigns = [(await make_campaign(owner, name=name))["id"] for name in ("A", "B")]
    leads = [(await make_lead(owner, email=f"{prefix}{i}@x.io"))["id"] for i in range(8)]
    return campaigns, leads


async def membership_op(
    owner: Account, rng: random.Random, op: str, campaign: str, lead: str, leads: list[str]
) -> None:
    """One random change of a campaign's membership, with every answer it may rightly give."""
    if op == "attach":
        chosen = rng.sample(leads, 3)
        r = await owner.client.post(f"/v1/campaigns/{campaign}/leads", json={"lead_ids": chosen})
        assert r.status_code in (200, 422), r.text  # 422: one of them is deleted
    elif op == "detach":
        r = await owner.client.delete(f"/v1/campaigns/{campaign}/leads/{lead}")
        assert r.status_code in (204, 404), r.text
    elif op == "delete":
        assert (await owner.client.delete(f"/v1/leads/{lead}")).status_code in (204, 404)
    elif op == "restore":
        r = await owner.client.post(f"/v1/leads/{lead}/restore")
        assert r.status_code in (200, 404, 409), r.text
    else:
        assert op == "merge", op
        target, source = rng.sample(leads, 2)
        r = await owner.client.post(f"/v1/leads/{target}/merge", json={"source_ids": [source]})
        assert r.status_code in (200, 404, 409, 422), r.text


async def test_incremental_lead_count_equals_a_recount_after_random_operations(
    owner: Account,
) -> None:
    from service.campaigns import recount_lead_count

    rng = random.Random(23)
    campaigns, leads = await campaigns_and_leads(owner, "r")
    done = []
    for _ in range(60):
        op = rng.choice(["attach", "detach", "delete", "restore", "merge", "replay"])
        campaign, lead = rng.choice(campaigns), rng.choice(leads)
        if op in MEMBERSHIP_OPS:
            await membership_op(owner, rng, op, campaign, lead, leads)
        else:  # a replayed liveness change (a retried hook) must change nothing
            from service.campaigns import lead_liveness_changed

            live = (await owner.client.get(f"/v1/leads/{lead}")).status_code == 200
            await lead_liveness_changed(owner.ctx, UUID(lead), live=live)
        done.append(op)
        for c in campaigns:
            shown = (await owner.client.get(f"/v1/campaigns/{c}")).json()["lead_count"]
            assert shown == await recounted(c) == await recount_lead_count(owner.ctx, UUID(c)), done
    assert {"attach", "detach", "delete", "restore", "merge"} <= set(done)


async def test_detach_a_lead(owner: Account, stranger: Account, viewer: Account) -> None:
    s = await world(owner)
    campaign, first, second = s["campaign"], s["leads"][0], s["leads"][1]
    assert (
        await stranger.client.delete(f"/v1/campaigns/{campaign}/leads/{first}")
    ).status_code == 404
    assert (
        await viewer.client.delete(f"/v1/campaigns/{campaign}/leads/{first}")
    ).status_code == 403
    assert (await owner.client.delete(f"/v1/campaigns/{campaign}/leads/{first}")).status_code == 204
    got = await numbers(owner, campaign)
    assert got["lead_count"] == got["listed"] == 2
    history = (await owner.client.get(f"/v1/campaigns/{campaign}/history")).json()["items"]
    assert history[-1]["event_type"] == "campaign.lead_detached"
    # Not attached (any more), unknown, or another tenant's campaign: 404 like a missing one.
    assert (await owner.client.delete(f"/v1/campaigns/{campaign}/leads/{first}")).status_code == 404
    assert (
        await owner.client.delete(f"/v1/campaigns/{campaign}/leads/{uuid4()}")
    ).status_code == 404
    assert (await owner.client.delete(f"/v1/campaigns/{uuid4()}/leads/{second}")).status_code == 404
    assert (
        await owner.client.delete(f"/v1/campaigns/{campaign}/leads/not-a-uuid")
    ).status_code == 422
    # A deleted member detached: the count stays (it did not count), the detach is journaled.
    assert (await owner.client.delete(f"/v1/leads/{second}")).status_code == 204
    before = (await owner.client.get(f"/v1/campaigns/{campaign}")).json()
    assert (
        await owner.client.delete(f"/v1/campaigns/{campaign}/leads/{second}")
    ).status_code == 204
    after = (await owner.client.get(f"/v1/campaigns/{campaign}")).json()
    assert after["lead_count"] == before["lead_count"] == 1
    assert after["version"] == before["version"] + 1
    # Restoring the detached lead does not count it again.
    assert (await owner.client.post(f"/v1/leads/{second}/restore")).status_code == 200
    assert (await owner.client.get(f"/v1/campaigns/{campaign}")).json()["lead_count"] == 1


async def test_incremental_analytics_equal_the_pipeline_after_random_operations(
    owner: Account,
) -> None:
    """Touchpoints (some retried with their idempotency key), attaches, detaches, deletes,
    restores and merges in a random order: after each, the counters the endpoint reads equal
    the pipeline's recompute over every event (service/campaign_tallies.py)."""
    from service import campaign_tallies

    rng = random.Random(2323)
    campaigns, leads = await campaigns_and_leads(owner, "t")
    for c in campaigns:
        r = await owner.client.post(f"/v1/campaigns/{c}/leads", json={"lead_ids": leads[:5]})
        assert r.status_code == 200, r.text
    done: list[str] = []
    keys: list[tuple[str, dict[str, Any]]] = []
    for step in range(90):
        ops = ["event", "retry", "attach", "detach", "delete", "restore", "merge"]
        (op,) = rng.choices(ops, weights=[8, 2, 2, 1, 1, 2, 1])
        campaign, lead = rng.choice(campaigns), rng.choice(leads)
        if op == "event":
            kind = rng.choice(["call", "text", "email", "social"])
            body: dict[str, Any] = {"type": kind, "campaign_id": campaign, "lead_id": lead}
            body |= {
                "call": {"outcome": "answered", "direction": "outbound"},
                "text": {"body": "hi", "direction": "outbound"},
                "email": {"subject": "hi"},
                "social": {"platform": "facebook", "action": "like"},
            }[kind]
            key = f"k{step}"
            r = await owner.client.post("/v1/events", json=body, headers={"Idempotency-Key": key})
            assert r.status_code in (201, 422), r.text  # 422: not linked or deleted
            if r.status_code == 201:
                keys.append((key, body))
        elif op == "retry" and keys:  # the same key and body: stored once, counted once
            key, body = rng.choice(keys)
            r = await owner.client.post("/v1/events", json=body, headers={"Idempotency-Key": key})
            assert r.status_code in (200, 201), r.text
        elif op in MEMBERSHIP_OPS:
            await membership_op(owner, rng, op, campaign, lead, leads)
        done.append(op)
        for c in campaigns:
            kept = await campaign_tallies.read(owner.ctx, UUID(c))
            assert kept == await campaign_tallies.recount(owner.ctx, UUID(c)), done
    totals = [await campaign_tallies.read(owner.ctx, UUID(c)) for c in campaigns]
    assert {"event", "retry", "attach", "detach", "delete", "restore", "merge"} <= set(done)
    assert all(t["leads_contacted"] > 0 for t in totals), totals
    assert sum(t["violations"] for t in totals) > 0, totals


async def test_rebuild_counters_restores_the_figures_of_bulk_loaded_events(
    owner: Account,
) -> None:
    """Events inserted around the event service (old data) are counted by `rebuild-counters`."""
    from datetime import UTC, datetime

    from documents.event import CallEvent
    from service.cli.counters import rebuild_counters

    r = await owner.client.post("/v1/campaigns", json={"type": "call", "name": "Old"})
    campaign = r.json()["id"]
    lead = await make_lead(owner, email="o@x.io")
    await owner.client.post(f"/v1/campaigns/{campaign}/leads", json={"lead_ids": [lead["id"]]})
    at = datetime(2024, 5, 1, 12, tzinfo=UTC)
    for _ in range(3):
        event = CallEvent(
            tenant_id=owner.ctx.tenant_id,
            campaign_id=UUID(campaign),
            lead_id=UUID(lead["id"]),
            outcome="answered",
            occurred_at=at,
        )
        await event.insert()
    figures = f"/v1/analytics/campaigns/{campaign}"
    overview = {"since": "2024-05-01", "until": "2024-05-02"}
    assert (await owner.client.get(figures)).json()["events_total"] == 0  # not counted yet
    done = await rebuild_counters()
    assert done["campaigns"] >= 1 and done["slots"] >= 1
    body = (await owner.client.get(figures)).json()
    assert (body["events_total"], body["leads_contacted"]) == (3, 1)
    series = (await owner.client.get("/v1/analytics/overview", params=overview)).json()
    assert series["series"] == [
        {"bucket": "2024-05-01", "call": 3, "text": 0, "social": 0, "email": 0}
    ]
    assert await rebuild_counters() == done  # repeating it changes nothing
    assert (await owner.client.get(figures)).json() == body
