"""Campaigns over REST: polymorphic CRUD, status rules, filters, lead links, tenancy, If-Match."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import pytest
from bson import Binary

from documents.campaign import CampaignLead
from documents.journal import DomainEvent
from tests.factories import make_campaign, make_lead
from tests.support.helpers import Account, assert_problem


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"type": "call", "script": "Hi", "caller_ids": ["(415) 555-0100"], "max_attempts": 5},
            {"script": "Hi", "caller_ids": ["+14155550100"], "max_attempts": 5},
        ),
        (
            {"type": "social", "platforms": ["facebook"], "post_content": "Open house"},
            {"platforms": ["facebook"], "post_content": "Open house"},
        ),
        (
            {"type": "text", "message_template": "Hi {name}", "sender_numbers": ["+442071838750"]},
            {"message_template": "Hi {name}", "sender_numbers": ["+442071838750"]},
        ),
        (
            {"type": "email", "subject": "New listing", "from_email": " Agent@Example.com "},
            {"subject": "New listing", "from_email": "agent@example.com"},
        ),
    ],
)
async def test_create_each_type_round_trips(
    owner: Account, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    created = await make_campaign(owner, **body, tags=["Spring"])
    assert created["type"] == body["type"]
    assert created["status"] == "draft" and created["version"] == 1
    assert created["tags"] == ["spring"] and created["lead_count"] == 0
    assert created["tenant_id"] == str(owner.tenant_id) and created["user_id"] == str(owner.id)
    assert expected.items() <= created.items()
    got = await owner.client.get(f"/v1/campaigns/{created['id']}")
    assert got.status_code == 200 and got.headers["etag"] == '"1"'
    assert got.json() == created


async def test_create_rejects_bad_input(owner: Account) -> None:
    c = owner.client
    for body in [
        {"type": "fax", "name": "x"},  # unknown type
        {"name": "x"},  # no type
        {"type": "call"},  # no name
        {"type": "call", "name": "x", "platforms": ["facebook"]},  # another type's field
        {"type": "call", "name": "x", "status": "running"},
        {"type": "call", "name": "x", "caller_ids": ["not a phone"]},
        {"type": "call", "name": "x" * 201},
        {"type": "call", "name": {"$gt": ""}},  # operator-shaped value
        {"type": "call", "name": "x", "is_deleted": True},  # mass assignment
        {"type": "call", "name": "x", "version": 9},
        {"type": "call", "name": "x", "segments": {"$where": "1"}},
        {"type": "call", "name": "x", "segments": {"a.b": "1"}},
        {"type": "call", "name": "x", "segments": {"a\u0000b": "1"}},
        {"type": "call", "name": "x", "tags": ["t"] * 51},
    ]:
        assert_problem(await c.post("/v1/campaigns", json=body), 422)
    assert (await c.get("/v1/campaigns")).json()["items"] == []


async def test_tenant_id_in_body_is_ignored(owner: Account, stranger: Account) -> None:
    created = await make_campaign(owner, tenant_id=str(stranger.tenant_id))
    assert created["tenant_id"] == str(owner.tenant_id)


async def test_viewer_reads_but_cannot_write(owner: Account, viewer: Account) -> None:
    created = await make_campaign(owner)
    assert (await viewer.client.get(f"/v1/campaigns/{created['id']}")).status_code == 200
    assert_problem(
        await viewer.client.post("/v1/campaigns", json={"type": "call", "name": "x"}), 403
    )
    patch = await viewer.client.patch(f"/v1/campaigns/{created['id']}", json={"name": "y"})
    assert_problem(patch, 403)


async def test_unauthenticated_is_401(client: Any) -> None:
    assert_problem(await client.get("/v1/campaigns"), 401)


async def test_patch_changes_fields_journals_and_bumps_etag(owner: Account) -> None:
    created = await make_campaign(owner)
    url = f"/v1/campaigns/{created['id']}"
    response = await owner.client.patch(
        url, json={"name": "Renamed", "script": "Hello", "tenant_id": "ignored"}
    )
    assert response.status_code == 200, response.text
    assert response.headers["etag"] == '"2"'
    assert response.json()["name"] == "Renamed" and response.json()["script"] == "Hello"
    history = (await owner.client.get(f"{url}/history")).json()["items"]
    assert [h["event_type"] for h in history] == ["campaign.created", "campaign.updated"]
    fields = {c["field"] for c in history[1]["changes"]}
    assert fields == {"name", "script"}


async def test_patch_refuses_other_types_fields_and_type_change(owner: Account) -> None:
    created = await make_campaign(owner)
    url = f"/v1/campaigns/{created['id']}"
    body = assert_problem(await owner.client.patch(url, json={"subject": "x"}), 422)
    assert body["errors"][0]["loc"] == ["body", "subject"]
    assert_problem(await owner.client.patch(url, json={"type": "email"}), 422)
    assert_problem(await owner.client.patch(url, json={"name": None}), 422)
    assert_problem(await owner.client.patch(url, json={"bogus": 1}), 422)
    assert (await owner.client.get(url)).json()["version"] == 1


async def test_status_transitions(owner: Account) -> None:
    created = await make_campaign(owner)
    url = f"/v1/campaigns/{created['id']}"
    assert_problem(await owner.client.patch(url, json={"status": "paused"}), 409)
    for status in ("active", "paused", "active", "completed"):
        response = await owner.client.patch(url, json={"status": status})
        assert response.status_code == 200 and response.json()["status"] == status
    assert_problem(await owner.client.patch(url, json={"status": "active"}), 409)
    history = (await owner.client.get(f"{url}/history")).json()["items"]
    assert history[-1]["event_type"] == "campaign.status_changed"


async def test_stale_if_match_is_412_and_changes_nothing(owner: Account) -> None:
    created = await make_campaign(owner)
    url = f"/v1/campaigns/{created['id']}"
    ok = await owner.client.patch(url, json={"name": "v2"}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200
    stale = await owner.client.patch(url, json={"name": "v3"}, headers={"If-Match": '"1"'})
    assert_problem(stale, 412)
    assert_problem(await owner.client.delete(url, headers={"If-Match": '"1"'}), 412)
    current = (await owner.client.get(url)).json()
    assert current["name"] == "v2" and current["version"] == 2 and not current["is_deleted"]


async def test_soft_delete_restore_archive(owner: Account) -> None:
    created = await make_campaign(owner)
    url = f"/v1/campaigns/{created['id']}"
    assert (await owner.client.delete(url)).status_code == 204
    assert_problem(await owner.client.get(url), 404)
    assert_problem(await owner.client.delete(url), 404)
    listed = (await owner.client.get("/v1/campaigns")).json()["items"]
    assert listed == []
    with_deleted = (await owner.client.get("/v1/campaigns?include_deleted=true")).json()["items"]
    assert [c["id"] for c in with_deleted] == [created["id"]]
    restored = await owner.client.post(f"{url}/restore")
    assert restored.status_code == 200 and restored.json()["is_deleted"] is False
    archived = await owner.client.post(f"{url}/archive")
    assert archived.json()["archived_at"] is not None
    assert (await owner.client.get("/v1/campaigns")).json()["items"] == []
    both = (await owner.client.get("/v1/campaigns?include_archived=true")).json()["items"]
    assert len(both) == 1


async def test_list_filters_and_operator_injection(owner: Account) -> None:
    call = await make_campaign(owner, tags=["vip"])
    email = await make_campaign(owner, type="email", status="active")
    c = owner.client

    async def ids(query: str) -> list[str]:
        response = await c.get(f"/v1/campaigns?{query}")
        assert response.status_code == 200, response.text
        return [x["id"] for x in response.json()["items"]]

    assert await ids("") == [email["id"], call["id"]]  # newest first
    assert await ids("type=email") == [email["id"]]
    assert await ids("status=draft") == [call["id"]]
    assert await ids("tag=VIP") == [call["id"]]
    for query in ("status[$ne]=x", "type=$gt", "limit=201", "limit=0", "cursor=%24where", "foo=1"):
        assert_problem(await c.get(f"/v1/campaigns?{query}"), 422)


async def test_pagination_is_stable_under_concurrent_inserts(owner: Account) -> None:
    made = [await make_campaign(owner, name=f"c{i}") for i in range(5)]
    first = (await owner.client.get("/v1/campaigns?limit=2")).json()
    assert [x["name"] for x in first["items"]] == ["c4", "c3"]
    await make_campaign(owner, name="late")  # inserted while paging
    seen = [x["name"] for x in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = (await owner.client.get(f"/v1/campaigns?limit=2&cursor={cursor}")).json()
        seen += [x["name"] for x in page["items"]]
        cursor = page["next_cursor"]
    assert seen == [m["name"] for m in reversed(made)]


async def test_other_tenant_gets_404_on_every_verb(owner: Account, stranger: Account) -> None:
    created = await make_campaign(owner)
    url = f"/v1/campaigns/{created['id']}"
    s = stranger.client
    assert_problem(await s.get(url), 404)
    assert_problem(await s.patch(url, json={"name": "x"}), 404)
    assert_problem(await s.delete(url), 404)
    for action in ("restore", "archive", "unarchive"):
        assert_problem(await s.post(f"{url}/{action}"), 404)
    assert_problem(await s.get(f"{url}/history"), 404)
    assert_problem(await s.get(f"{url}/leads"), 404)
    lead = await make_lead(stranger, email="theirs@example.com")
    assert_problem(await s.post(f"{url}/leads", json={"lead_ids": [lead["id"]]}), 404)
    assert (await s.get("/v1/campaigns")).json()["items"] == []
    assert (await owner.client.get(url)).json()["version"] == 1


async def test_malformed_id_is_422(owner: Account) -> None:
    assert_problem(await owner.client.get("/v1/campaigns/not-a-uuid"), 422)


async def test_attach_leads_counts_new_links_and_lists_them(owner: Account) -> None:
    campaign = await make_campaign(owner)
    url = f"/v1/campaigns/{campaign['id']}"
    a = await make_lead(owner, email="a@example.com")
    b = await make_lead(owner, email="b@example.com")
    response = await owner.client.post(f"{url}/leads", json={"lead_ids": [a["id"], a["id"]]})
    assert response.status_code == 200 and response.json() == {"added": 1}
    response = await owner.client.post(f"{url}/leads", json={"lead_ids": [a["id"], b["id"]]})
    assert response.json() == {"added": 1}
    again = await owner.client.post(f"{url}/leads", json={"lead_ids": [b["id"]]})
    assert again.json() == {"added": 0}
    assert (
        await CampaignLead.find({"campaign_id": Binary.from_uuid(uuid_of(campaign))}).count() == 2
    )
    current = (await owner.client.get(url)).json()
    assert current["lead_count"] == 2 and current["version"] == 3  # no change → no version
    members = (await owner.client.get(f"{url}/leads")).json()
    assert [m["id"] for m in members["items"]] == [b["id"], a["id"]]
    journal = await DomainEvent.find(
        {"aggregate_id": Binary.from_uuid(uuid_of(campaign))}
    ).to_list()
    assert [e.event_type for e in journal][-1] == "campaign.leads_attached"


def uuid_of(resource: dict[str, Any]) -> Any:
    from uuid import UUID

    return UUID(resource["id"])


async def test_attach_refuses_unknown_foreign_or_too_many(
    owner: Account, stranger: Account
) -> None:
    campaign = await make_campaign(owner)
    url = f"/v1/campaigns/{campaign['id']}/leads"
    mine = await make_lead(owner, email="mine@example.com")
    theirs = await make_lead(stranger, email="theirs@example.com")
    for ids in ([mine["id"], theirs["id"]], [str(uuid4())], [], ["x"]):
        assert_problem(await owner.client.post(url, json={"lead_ids": ids}), 422)
    too_many = [str(uuid4()) for _ in range(1001)]
    assert_problem(await owner.client.post(url, json={"lead_ids": too_many}), 422)
    assert_problem(await owner.client.post(url, json={"lead_ids": {"$ne": None}}), 422)
    assert (await owner.client.get(url)).json()["items"] == []


async def test_campaign_leads_page_and_filter(owner: Account) -> None:
    campaign = await make_campaign(owner)
    url = f"/v1/campaigns/{campaign['id']}/leads"
    leads = [await make_lead(owner, email=f"p{i}@example.com") for i in range(5)]
    outsider = await make_lead(owner, email="outsider@example.com")
    await owner.client.post(url, json={"lead_ids": [x["id"] for x in leads]})
    first = (await owner.client.get(f"{url}?limit=2")).json()
    late = await make_lead(owner, email="late@example.com")
    await owner.client.post(url, json={"lead_ids": [late["id"]]})
    seen = [x["id"] for x in first["items"]]
    cursor = first["next_cursor"]
    while cursor:
        page = (await owner.client.get(f"{url}?limit=2&cursor={cursor}")).json()
        seen += [x["id"] for x in page["items"]]
        cursor = page["next_cursor"]
    assert seen == [x["id"] for x in reversed(leads)]
    assert outsider["id"] not in seen
    found = (await owner.client.get(f"{url}?q=p3")).json()["items"]
    assert [x["id"] for x in found] == [leads[3]["id"]]
    await owner.client.delete(f"/v1/leads/{leads[0]['id']}")
    live = (await owner.client.get(f"{url}?limit=200")).json()["items"]
    assert leads[0]["id"] not in [x["id"] for x in live]


# -- lead_count: the campaign's LIVE leads ----------------------------------------------------


async def _two_member_campaign(owner: Account) -> tuple[str, list[str]]:
    campaign = await make_campaign(owner)
    ids = []
    for email in ("one@example.com", "two@example.com"):
        created = await make_lead(owner, email=email)
        ids.append(created["id"])
    attached = await owner.client.post(
        f"/v1/campaigns/{campaign['id']}/leads", json={"lead_ids": ids}
    )
    assert attached.json() == {"added": 2}
    return campaign["id"], ids


async def _count(owner: Account, campaign_id: str) -> tuple[int, int]:
    campaign = (await owner.client.get(f"/v1/campaigns/{campaign_id}")).json()
    members = (await owner.client.get(f"/v1/campaigns/{campaign_id}/leads?count=true")).json()
    return campaign["lead_count"], members["total"]


async def test_liveness_changes_apply_once_when_replayed(owner: Account) -> None:
    # What the lifecycle hooks call after a lead's soft delete and restore; a replay (a retry
    # of the hook) finds every link already flipped and changes nothing.
    from service.campaigns import lead_liveness_changed

    campaign_id, (first, _) = await _two_member_campaign(owner)
    await owner.client.delete(f"/v1/leads/{first}")
    await lead_liveness_changed(owner.ctx, uuid4(), live=False)  # in no campaign: nothing
    await lead_liveness_changed(owner.ctx, UUID(first), live=False)
    assert await _count(owner, campaign_id) == (1, 1)
    history = (await owner.client.get(f"/v1/campaigns/{campaign_id}/history")).json()["items"]
    assert history[-1]["event_type"] == "campaign.lead_count_changed"
    # Re-attaching a deleted lead adds no link and the count stays right.
    assert (
        await owner.client.post(f"/v1/campaigns/{campaign_id}/leads", json={"lead_ids": [first]})
    ).status_code == 422
    await owner.client.post(f"/v1/leads/{first}/restore")
    await lead_liveness_changed(owner.ctx, UUID(first), live=True)
    assert await _count(owner, campaign_id) == (2, 2)


async def test_lead_count_follows_soft_delete_and_restore(owner: Account) -> None:
    campaign_id, (first, _) = await _two_member_campaign(owner)
    assert await _count(owner, campaign_id) == (2, 2)
    await owner.client.delete(f"/v1/leads/{first}")
    assert await _count(owner, campaign_id) == (1, 1)
    await owner.client.post(f"/v1/leads/{first}/restore")
    assert await _count(owner, campaign_id) == (2, 2)


async def test_campaign_leads_list_live_leads_only(owner: Account) -> None:
    campaign_id, (first, second) = await _two_member_campaign(owner)
    await owner.client.delete(f"/v1/leads/{first}")
    listed = (await owner.client.get(f"/v1/campaigns/{campaign_id}/leads")).json()["items"]
    assert [x["id"] for x in listed] == [second]
    with_deleted = await owner.client.get(
        f"/v1/campaigns/{campaign_id}/leads", params={"include_deleted": "true"}
    )
    assert {x["id"] for x in with_deleted.json()["items"]} == {first, second}
