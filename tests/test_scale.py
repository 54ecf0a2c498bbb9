"""Counted work at N and 8N stored documents: every hot request does the same work (issue 23).

One tenant, one campaign holding every lead, one touchpoint per lead; the same requests are
sent to a world of N leads and one of 8N, each measured with service/embedded/work.py (keys
and documents examined, as MongoDB's executionStats counts them). A request passes when its
work at 8N is within `SLACK` of its work at N (and within the work budget of the plugin).

The N/8N comparison is marked `scale` (seeding takes a while): `make scale` runs it, `make
test` does not.
Requests still known to grow are listed in `GROWING` with why; they are measured and shown
but not asserted (the test fails if one of them stops growing, so the list stays true).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest

from documents.campaign import CampaignLead
from documents.event import CallEvent, TouchpointEvent
from schemas.campaigns import CallCampaignCreate
from service import campaign_tallies, campaigns, event_slots
from service.auth import register_owner
from service.core import security
from service.core.context import RequestContext, Role
from service.core.journal import to_bson
from service.core.repository import Repository
from service.database import embedded_database
from service.embedded import work
from service.leads import commands as leads
from service.main import create_app
from tests.conftest import make_settings
from tests.factories import make_lead
from tests.support import work_budget_plugin
from tests.support.helpers import PASSWORD

pytestmark = pytest.mark.embedded_only

N = 300
SLACK = 64  # keys + documents: an index walk reads ahead in chunks (16, 32, 64 keys)
_seq = itertools.count()

# Requests whose work still grows with the campaign (issue 23, not fixed on this branch).
GROWING: dict[str, str] = {
    # MongoDB returns equal distances in any order and no index seeks inside them: a page
    # ending in a cluster of identical points reads the cluster (lead_queries.py).
    "near cluster": "a page within one point's tie cluster reads the cluster",
    "near cluster page 2": "as `near cluster`",
}


@dataclass
class World:
    client: httpx.AsyncClient
    ctx: RequestContext
    campaign: str
    leads: list[str]
    spare: list[str]


def _where(i: int) -> list[float]:
    # Half the MLS leads at distinct points scattered over a 10 km square (denser at 8N, as
    # a growing market is), half at one address far from it (a tie cluster growing with N).
    if i % 10 == 5:
        return list(CLUSTER)
    return [-122.45 + (i * 7919 % 10007) / 100070, 37.65 + (i * 104729 % 10009) / 100090]


CLUSTER = (-122.2, 37.9)


def _rows(n: int, offset: int = 0) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for i in range(offset, offset + n):
        if i % 5 == 0:
            rows.append(
                {
                    "type": "mls",
                    "mls_id": f"MLS-{i:06d}",
                    "last_name": f"Owner{i % 97:02d}",
                    "location": {"type": "Point", "coordinates": _where(i)},
                    "address": {"line1": f"{i} Market St", "city": "San Francisco"},
                }
            )
        else:
            rows.append(
                {
                    "type": "generic",
                    "email": f"person{i:06d}@example{i % 13}.com",
                    "first_name": f"First{i % 31}",
                    "last_name": f"Last{i % 97:02d}",
                    "tags": ["hot"] if i % 3 == 0 else [],
                    "status": "new" if i % 2 else "qualified",
                }
            )
    return rows


@asynccontextmanager
async def world(n: int) -> AsyncIterator[World]:
    """A fresh app whose tenant has `n` leads in one campaign and one touchpoint per lead."""
    settings = make_settings()
    app = create_app(settings=settings, database=embedded_database(f"scale_{next(_seq)}"))
    async with app.router.lifespan_context(app):
        user = await register_owner(
            settings=settings,
            username=f"scale{n}",
            email=f"scale{n}@example.com",
            password=PASSWORD,
            organization_name="Scale",
        )
        ctx = RequestContext(tenant_id=user.tenant_id, actor_id=user.id, role=Role.owner)
        outcome = await leads.bulk_import(ctx=ctx, rows=_rows(n + 4))
        assert outcome.created == n + 4, outcome
        stored = Repository(leads.LeadBase, ctx).stream(sort=None)
        ids = sorted([str(raw["_id"]) async for raw in stored])
        members, spare = ids[:n], ids[n:]
        campaign = await campaigns.create_campaign(
            ctx=ctx,
            data=CallCampaignCreate(type="call", name="Big"),
        )
        await campaigns.attach_leads(ctx=ctx, id=campaign.id, lead_ids=[UUID(i) for i in members])
        events = [
            to_bson(
                CallEvent(
                    tenant_id=ctx.tenant_id,
                    campaign_id=campaign.id,
                    lead_id=UUID(i),
                    outcome="answered",
                )
            )
            for i in members
        ]
        for event in events:
            event.pop("revision_id", None)
        await TouchpointEvent.get_pymongo_collection().insert_many(events)
        await campaign_tallies.rebuild(ctx, campaign.id)  # the counters of the bulk-loaded events
        await event_slots.rebuild(ctx)
        token, _ = security.create_access_token(
            settings, user_id=user.id, tenant_id=user.tenant_id, role=user.role
        )
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            yield World(client, ctx, str(campaign.id), members, spare)


async def measured(w: World, method: str, url: str, **kwargs: Any) -> dict[str, int]:
    """One request's counted work (it must succeed)."""
    with work.measuring() as counted:
        start = time.perf_counter()
        response = await w.client.request(method, url, **kwargs)
        elapsed_us = int((time.perf_counter() - start) * 1e6)
    assert response.status_code < 300, (method, url, response.status_code, response.text)
    examined = counted.examined
    total = response.json().get("total") if response.content else None
    if isinstance(total, int):
        # `count=true` answers the number of matching items: a COUNT_SCAN reads one index key
        # per item counted (as MongoDB's does) and no document. Those keys are the answer, so
        # they are judged as returned, and the rest of the request must not grow.
        count_ops = [op for op in counted.operations if op.method == "count"]
        assert all(op.docs_examined == 0 for op in count_ops), count_ops
        examined -= min(total, sum(op.keys_examined for op in count_ops))
    return {**counted.summary(), "examined": examined, "us": elapsed_us}


async def requests(w: World) -> dict[str, dict[str, int]]:
    """The hot requests, each measured once, in an order that keeps them valid."""
    c, member, other = w.campaign, w.leads[len(w.leads) // 2], w.leads[len(w.leads) // 3]
    out: dict[str, dict[str, int]] = {}
    # Steady state first: the seeding's journal and touchpoints are fed to the projectors (a
    # read-model GET and the change feed catch up inline, unmeasured), so what is measured
    # is each request's own work, not the backlog's.
    await w.client.get(f"/v1/read-models/campaign-stats/{c}")
    await w.client.get("/v1/changes")

    async def get(name: str, url: str, **params: Any) -> None:
        out[name] = await measured(w, "GET", url, params=params)

    await get("list", "/v1/leads", limit=50)
    await get("list by status", "/v1/leads", limit=50, status="qualified")
    await get("list by type", "/v1/leads", limit=50, type="mls")
    await get("list by tag", "/v1/leads", limit=50, tag="hot")
    await get("list by last_name", "/v1/leads", limit=50, sort="last_name")
    await get("list by -created_at", "/v1/leads", limit=50, sort="-created_at")
    await get("list by -updated_at", "/v1/leads", limit=50, sort="-updated_at")
    page = (await w.client.get("/v1/leads", params={"limit": 50})).json()
    await get("list page 2", "/v1/leads", limit=50, cursor=page["next_cursor"])
    await get("count", "/v1/leads", limit=50, count="true")
    await get("q no match", "/v1/leads", q="zzyzx-nobody")
    await get("q email", "/v1/leads", q="person000007@example7.com")
    await get("q mls id", "/v1/leads", q="mls-000010")
    await get("q phone-like", "/v1/leads", q="555 0100")
    await get("near", "/v1/leads", near="-122.4,37.7", limit=20)
    near = (await w.client.get("/v1/leads", params={"near": "-122.4,37.7", "limit": 20})).json()
    await get("near page 2", "/v1/leads", near="-122.4,37.7", limit=20, cursor=near["next_cursor"])
    spot = f"{CLUSTER[0]},{CLUSTER[1]}"
    await get("near cluster", "/v1/leads", near=spot, limit=20)
    tied = (await w.client.get("/v1/leads", params={"near": spot, "limit": 20})).json()
    await get("near cluster page 2", "/v1/leads", near=spot, limit=20, cursor=tied["next_cursor"])
    await get("get lead", f"/v1/leads/{member}")
    await get("get campaign", f"/v1/campaigns/{c}")
    await get("members", f"/v1/campaigns/{c}/leads", limit=50)
    await get("members by last_name", f"/v1/campaigns/{c}/leads", limit=50, sort="last_name")
    await get("members count", f"/v1/campaigns/{c}/leads", limit=50, count="true")
    await get("history", f"/v1/campaigns/{c}/history")
    await get("changes", "/v1/changes")
    await get("campaign analytics", f"/v1/analytics/campaigns/{c}")
    await get("overview", "/v1/analytics/overview")
    await get("campaign stats read model", f"/v1/read-models/campaign-stats/{c}")
    out["attach"] = await measured(
        w, "POST", f"/v1/campaigns/{c}/leads", json={"lead_ids": [w.spare[0]]}
    )
    out["detach"] = await measured(w, "DELETE", f"/v1/campaigns/{c}/leads/{w.spare[0]}")
    out["delete member"] = await measured(w, "DELETE", f"/v1/leads/{member}")
    out["restore member"] = await measured(w, "POST", f"/v1/leads/{member}/restore")
    out["merge member"] = await measured(
        w, "POST", f"/v1/leads/{w.spare[1]}/merge", json={"source_ids": [other]}
    )
    body = {"type": "call", "campaign_id": c, "lead_id": member, "outcome": "answered"}
    out["event ingest"] = await measured(w, "POST", "/v1/events", json=body)
    return out


@pytest.mark.scale
async def test_hot_requests_do_the_same_work_at_n_and_8n() -> None:
    async with world(N) as small:
        at_n = await requests(small)
    async with world(8 * N) as large:
        at_8n = await requests(large)
    # This test judges each request against its own work at N (stricter than the suite's
    # budget); the known `GROWING` ones and the warm-up catch-up are over that budget.
    work_budget_plugin.BUDGET.take()
    table = [
        f"{name:28} {at_n[name]['examined']:>7} {at_8n[name]['examined']:>7}"
        f"  sorted {at_n[name]['sorted_in_memory']:>5} {at_8n[name]['sorted_in_memory']:>5}"
        for name in at_n
    ]
    print("\nrequest                      work@N work@8N (keys+docs examined)\n" + "\n".join(table))
    grew = {
        name: (at_n[name]["examined"], at_8n[name]["examined"])
        for name in at_n
        if at_8n[name]["examined"] > at_n[name]["examined"] + SLACK
        or at_8n[name]["sorted_in_memory"] > at_n[name]["sorted_in_memory"] + SLACK
    }
    unexpected = {k: v for k, v in grew.items() if k not in GROWING}
    assert not unexpected, f"work grew with the data: {unexpected}"
    stale = set(GROWING) - set(grew)
    assert not stale, f"no longer growing, remove from GROWING: {stale}"
    # Flat requests also stay within the per-request budget at 8N.
    assert all(at_8n[name]["docs_examined"] <= 4 * 51 + 200 for name in at_n if name not in GROWING)


async def test_archived_leads_leave_lists_through_an_indexed_equality(
    owner: Any,
) -> None:
    lead_id = (await make_lead(owner, email="a@x.io"))["id"]
    collection = leads.LeadBase.get_pymongo_collection()
    assert (await collection.find_one({"_id": UUID(lead_id)}))["is_archived"] is False
    assert (await owner.client.post(f"/v1/leads/{lead_id}/archive")).status_code == 200
    assert (await collection.find_one({"_id": UUID(lead_id)}))["is_archived"] is True
    listed = (await owner.client.get("/v1/leads", params={"count": "true"})).json()
    assert listed["items"] == [] and listed["total"] == 0
    shown = (await owner.client.get("/v1/leads", params={"include_archived": "true"})).json()
    assert [x["id"] for x in shown["items"]] == [lead_id]
    assert (await owner.client.post(f"/v1/leads/{lead_id}/unarchive")).status_code == 200
    assert (await collection.find_one({"_id": UUID(lead_id)}))["is_archived"] is False
    with work.measuring() as counted:
        page = (await owner.client.get("/v1/leads", params={"count": "true"})).json()
    assert page["total"] == 1
    count = next(op for op in counted.operations if op.method == "count")
    assert count.docs_examined == 0  # counted from the index keys alone


# -- the members' count=true from the links' copied lead state ----------------------------------

FLAGS = [(d, a) for d in (False, True) for a in (False, True)]


async def _joined_count(owner: Any, campaign: str, deleted: bool, archived: bool) -> int:
    """The oracle: the members counted by joining every link to its lead."""
    from schemas.leads import CampaignLeadFilters
    from service.leads.queries import _members_pipeline

    filters = CampaignLeadFilters(include_deleted=deleted, include_archived=archived)
    stages = _members_pipeline(owner.ctx, UUID(campaign), filters, counting=True)
    rows = await (await CampaignLead.get_pymongo_collection().aggregate(stages)).to_list()
    return int(rows[0]["n"]) if rows else 0


async def _assert_counts_match(owner: Any, campaign: str, *, from_keys: bool = True) -> None:
    for deleted, archived in FLAGS:
        params = {"count": "true", "include_deleted": deleted, "include_archived": archived}
        with work.measuring() as counted:
            page = (await owner.client.get(f"/v1/campaigns/{campaign}/leads", params=params)).json()
        assert page["total"] == await _joined_count(owner, campaign, deleted, archived), params
        counts = [op for op in counted.operations if op.method == "count"]
        assert counts and all(op.docs_examined == 0 for op in counts), counts
        joined = [op for op in counted.operations if op.method == "aggregate"]
        assert bool(joined) != from_keys, counted.operations  # the join only for old links


async def test_member_counts_equal_the_join_after_random_operations(owner: Any) -> None:
    import random

    rng = random.Random(23)
    made = [
        (await owner.client.post("/v1/leads", json={"type": "generic", "email": f"m{i}@x.io"}))
        for i in range(12)
    ]
    ids = [r.json()["id"] for r in made]
    campaign = (await owner.client.post("/v1/campaigns", json={"type": "call", "name": "C"})).json()
    c = campaign["id"]
    base = f"/v1/campaigns/{c}/leads"
    for _ in range(60):
        lead = rng.choice(ids)
        action = rng.choice(["attach", "detach", "archive", "unarchive", "delete", "restore"])
        if action == "attach":
            await owner.client.post(base, json={"lead_ids": [lead]})
        elif action == "detach":
            await owner.client.delete(f"{base}/{lead}")
        elif action == "delete":
            await owner.client.delete(f"/v1/leads/{lead}")
        else:
            await owner.client.post(f"/v1/leads/{lead}/{action}")
        await _assert_counts_match(owner, c)
    # A merge moves the sources' links to the target, which may be archived.
    live = [i for i in ids if (await owner.client.get(f"/v1/leads/{i}")).status_code == 200]
    target, source = live[0], live[1]
    await owner.client.post(f"/v1/leads/{target}/archive")
    await owner.client.post(base, json={"lead_ids": [source]})
    merged = await owner.client.post(f"/v1/leads/{target}/merge", json={"source_ids": [source]})
    assert merged.status_code == 200, merged.text
    await _assert_counts_match(owner, c)


async def test_concurrent_archive_and_attach_leave_the_links_exact(owner: Any) -> None:
    import asyncio

    ids = [
        (
            await owner.client.post("/v1/leads", json={"type": "generic", "email": f"r{i}@x.io"})
        ).json()["id"]
        for i in range(10)
    ]
    c = (await owner.client.post("/v1/campaigns", json={"type": "call", "name": "R"})).json()["id"]
    await asyncio.gather(
        *(owner.client.post(f"/v1/campaigns/{c}/leads", json={"lead_ids": [i]}) for i in ids),
        *(owner.client.post(f"/v1/leads/{i}/archive") for i in ids[::2]),
    )
    await asyncio.gather(*(owner.client.post(f"/v1/leads/{i}/unarchive") for i in ids[::4]))
    links = CampaignLead.get_pymongo_collection()
    leads_coll = leads.LeadBase.get_pymongo_collection()
    async for link in links.find({"tenant_id": to_bson(owner.tenant_id)}):
        lead = await leads_coll.find_one({"_id": link["lead_id"]})
        assert (link["archived"], link["lead_version"]) == (lead["is_archived"], lead["version"])
    await _assert_counts_match(owner, c)


async def test_migrate_backfills_the_lead_state_of_older_links(owner: Any) -> None:
    from service.storage import migrations

    ids = [
        (
            await owner.client.post("/v1/leads", json={"type": "generic", "email": f"o{i}@x.io"})
        ).json()["id"]
        for i in range(5)
    ]
    c = (await owner.client.post("/v1/campaigns", json={"type": "call", "name": "O"})).json()["id"]
    await owner.client.post(f"/v1/campaigns/{c}/leads", json={"lead_ids": ids})
    await owner.client.post(f"/v1/leads/{ids[0]}/archive")
    await owner.client.delete(f"/v1/leads/{ids[1]}")
    links = CampaignLead.get_pymongo_collection()
    # Links as stored before they carried the lead state (and, older still, `counted`).
    await links.update_many({}, {"$unset": {"archived": "", "lead_version": ""}})
    await links.update_one({"lead_id": UUID(ids[2])}, {"$unset": {"counted": ""}})
    await _assert_counts_match(owner, c, from_keys=False)  # through the join meanwhile
    dry = await campaigns.backfill_link_states(dry_run=True)
    assert (dry.pending, dry.migrated) == (5, 0)
    report = await migrations.migrate()
    state = next(x for x in report.collections if x.collection == "campaign_leads (lead state)")
    assert (state.pending, state.migrated, state.failed) == (5, 5, [])
    assert (await links.find_one({"lead_id": UUID(ids[2])}))["counted"] is True
    await _assert_counts_match(owner, c)
    again = await campaigns.backfill_link_states()
    assert (again.pending, again.migrated) == (0, 0)
