"""A campaign's numbers agree with its live leads on every path that changes a lead's liveness
or membership: the lead list, analytics and the CampaignStats read model (and `lead_count`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.helpers import Account

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
        r = await owner.client.post("/v1/leads", json={"type": "generic", "email": f"n{i}@x.io"})
        leads.append(r.json()["id"])
    await owner.client.post(f"/v1/campaigns/{cid}/leads", json={"lead_ids": leads[:3]})
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
