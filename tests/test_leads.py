"""Leads over REST: normalisation, dedupe (409 with the existing id), search, filters, tenancy."""

from __future__ import annotations

from typing import Any

import pytest

from documents.tenant import Tenant
from service.core.repository import Repository
from tests.factories import make_campaign, make_lead
from tests.support.helpers import Account, assert_problem

MLS = {
    "type": "mls",
    "mls_id": " ml-123 ",
    "list_price": 450000.5,
    "beds": 3,
    "baths": 2.5,
    "square_feet": 1800,
    "property_type": "single_family",
    "listing_status": "active",
    "address": {"line1": "1 Main St", "city": "Springfield", "postal_code": "62704"},
    "listing_agent": {"name": "Ann Agent", "phone": "217 555 0100"},
}


async def post_lead(account: Account, **body: Any) -> Any:
    return await account.client.post("/v1/leads", json={"type": "generic", **body})


async def test_generic_lead_is_normalised(owner: Account) -> None:
    lead = await make_lead(
        owner, email="  Ana@Example.COM ", phone="(415) 555-0100", first_name="Ana", tags=["Hot"]
    )
    assert lead["email"] == "ana@example.com"
    assert lead["phone"] == "+14155550100"
    assert lead["status"] == "new" and lead["type"] == "generic" and lead["tags"] == ["hot"]
    got = await owner.client.get(f"/v1/leads/{lead['id']}")
    assert got.headers["etag"] == '"1"' and got.json() == lead


async def test_mls_lead_round_trips_money_and_ids(owner: Account) -> None:
    lead = (await owner.client.post("/v1/leads", json=MLS)).json()
    assert lead["mls_id"] == "ML-123"
    assert lead["list_price"] == 450000.5
    assert lead["listing_agent"]["phone"] == "+12175550100"
    assert lead["baths"] == 2.5 and lead["address"]["city"] == "Springfield"


async def test_phone_read_in_tenant_region(owner: Account) -> None:
    tenant = await Repository(Tenant, owner.ctx).get(owner.tenant_id)
    await Repository(Tenant, owner.ctx).update(tenant, {"default_phone_region": "GB"})
    lead = await make_lead(owner, phone="020 7183 8750")
    assert lead["phone"] == "+442071838750"


@pytest.mark.parametrize(
    "body",
    [
        {"type": "generic"},  # neither email nor phone
        {"type": "generic", "email": "not-an-email"},
        {"type": "generic", "phone": "12"},
        {"type": "generic", "phone": "abcdefgh"},
        {"type": "mls"},  # no mls_id
        {"type": "mls", "mls_id": "x", "list_price": -1},
        {"type": "mls", "mls_id": "x", "list_price": 1.005},
        {"type": "mls", "mls_id": "x", "beds": -1},
        {"type": "mls", "mls_id": "$where"},
        {"type": "lead", "email": "a@example.com"},
        {"type": "generic", "email": {"$gt": ""}},
        {"type": "generic", "email": "a@example.com", "status": "hot"},
        {"type": "generic", "email": "a@example.com", "version": 3},
        {"type": "generic", "email": "a@example.com", "mls_id": "X1"},
        {"type": "generic", "email": "a@example.com", "notes": "x" * 5001},
    ],
)
async def test_invalid_leads_are_422(owner: Account, body: dict[str, Any]) -> None:
    assert_problem(await owner.client.post("/v1/leads", json=body), 422)


async def test_duplicates_are_409_with_existing_id(owner: Account) -> None:
    first = await make_lead(owner, email="dup@example.com", phone="+14155550101")
    for body in (
        {"email": " DUP@example.com"},
        {"phone": "415-555-0101"},
        {"email": "other@example.com", "phone": "+1 415 555 0101"},
    ):
        problem = assert_problem(await post_lead(owner, **body), 409)
        assert problem["existing_id"] == first["id"]
    mls = await make_lead(owner, **MLS)
    problem = assert_problem(
        await owner.client.post("/v1/leads", json={**MLS, "mls_id": "ML-123"}), 409
    )
    assert problem["existing_id"] == mls["id"] and problem["field"] == "mls_id"


async def test_dedupe_is_per_tenant(owner: Account, stranger: Account) -> None:
    await make_lead(owner, email="shared@example.com")
    await make_lead(stranger, email="shared@example.com")


async def test_soft_deleted_lead_does_not_block_and_restore_clash_is_409(owner: Account) -> None:
    old = await make_lead(owner, email="again@example.com")
    assert (await owner.client.delete(f"/v1/leads/{old['id']}")).status_code == 204
    new = await make_lead(owner, email="again@example.com")
    clash = assert_problem(await owner.client.post(f"/v1/leads/{old['id']}/restore"), 409)
    # The same body as the create route's clash: which lead holds which key.
    assert clash["existing_id"] == new["id"] and clash["field"] == "email"
    assert (await owner.client.delete(f"/v1/leads/{new['id']}")).status_code == 204
    restored = await owner.client.post(f"/v1/leads/{old['id']}/restore")
    assert restored.status_code == 200 and restored.json()["is_deleted"] is False


async def test_patch_normalises_and_checks_dedupe(owner: Account) -> None:
    a = await make_lead(owner, email="a@example.com")
    b = await make_lead(owner, email="b@example.com")
    url = f"/v1/leads/{b['id']}"
    problem = assert_problem(await owner.client.patch(url, json={"email": "A@example.com"}), 409)
    assert problem["existing_id"] == a["id"]
    ok = await owner.client.patch(url, json={"phone": "415.555.0199", "status": "qualified"})
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'
    assert ok.json()["phone"] == "+14155550199" and ok.json()["status"] == "qualified"
    same = await owner.client.patch(url, json={"email": "b@example.com"})  # its own key
    assert same.status_code == 200 and same.json()["version"] == 2


async def test_patch_merges_address(owner: Account) -> None:
    lead = await make_lead(
        owner, email="addr@example.com", address={"line1": "1 Main St", "city": "Springfield"}
    )
    url = f"/v1/leads/{lead['id']}"
    response = await owner.client.patch(url, json={"address": {"city": "Shelbyville"}})
    assert response.json()["address"]["line1"] == "1 Main St"
    assert response.json()["address"]["city"] == "Shelbyville"
    assert_problem(await owner.client.patch(url, json={"address": {"$set": "x"}}), 422)


async def test_patch_rules(owner: Account) -> None:
    lead = await make_lead(owner, email="rules@example.com")
    url = f"/v1/leads/{lead['id']}"
    assert_problem(await owner.client.patch(url, json={"type": "mls"}), 422)
    assert_problem(await owner.client.patch(url, json={"beds": 3}), 422)  # an MLS field
    assert_problem(await owner.client.patch(url, json={"email": None}), 422)  # nothing left
    assert_problem(await owner.client.patch(url, json={"status": None}), 422)
    assert_problem(await owner.client.patch(url, json={"status": {"$set": "x"}}), 422)
    stale = await owner.client.patch(url, json={"first_name": "x"}, headers={"If-Match": '"7"'})
    assert_problem(stale, 412)
    assert (await owner.client.get(url)).json()["version"] == 1


async def test_mls_patch_price(owner: Account) -> None:
    lead = await make_lead(owner, **MLS)
    url = f"/v1/leads/{lead['id']}"
    response = await owner.client.patch(url, json={"list_price": 399999.99, "company": None})
    assert_problem(response, 422)  # `company` belongs to generic leads
    response = await owner.client.patch(url, json={"list_price": 399999.99})
    assert response.json()["list_price"] == 399999.99
    history = (await owner.client.get(f"{url}/history")).json()["items"]
    change = history[-1]["changes"][0]
    assert change == {"field": "list_price", "old": 450000.5, "new": 399999.99}  # API terms


async def test_search_and_filters(owner: Account) -> None:
    ana = await make_lead(
        owner, first_name="Ana", last_name="Silva", email="ana@acme.io", tags=["vip"]
    )
    bob = await make_lead(
        owner,
        first_name="Bob",
        phone="+1 (312) 555-0142",
        address={"line1": "42 Lake Shore Dr", "city": "Chicago"},
        status="qualified",
    )
    mls = await make_lead(owner, **MLS)

    async def ids(query: str) -> list[str]:
        response = await owner.client.get(f"/v1/leads?{query}")
        assert response.status_code == 200, response.text
        return [x["id"] for x in response.json()["items"]]

    assert await ids("") == [mls["id"], bob["id"], ana["id"]]
    assert await ids("q=ana") == [ana["id"]]
    assert await ids("q=ANA%20SILVA") == [ana["id"]]
    assert await ids("q=Ana@ACME") == [ana["id"]]
    assert await ids("q=312-555") == [bob["id"]]
    assert await ids("q=lake%20shore") == [bob["id"]]
    assert await ids("q=chicago") == [bob["id"]]
    assert await ids("q=ml-1") == [mls["id"]]
    assert await ids("q=.*") == []  # a regex is matched literally
    assert await ids("q=%5E%28a%2B%29%2B%24") == []  # ^(a+)+$, escaped
    assert await ids("type=mls") == [mls["id"]]
    assert await ids("status=qualified") == [bob["id"]]
    assert await ids("tag=vip") == [ana["id"]]
    assert await ids("type=generic&q=bob") == [bob["id"]]
    bad = ("q=" + "x" * 101, "q=", "q=a%00b", "status[$ne]=new", "status=unknown", "sort=email")
    for query in bad:
        assert_problem(await owner.client.get(f"/v1/leads?{query}"), 422)


async def test_list_by_campaign(owner: Account, stranger: Account) -> None:
    campaign = await make_campaign(owner, type="text", name="T")
    inside = await make_lead(owner, email="in@example.com", status="qualified")
    other = await make_lead(owner, email="in2@example.com")
    await make_lead(owner, email="out@example.com")
    await owner.client.post(
        f"/v1/campaigns/{campaign['id']}/leads", json={"lead_ids": [inside["id"], other["id"]]}
    )
    listed = (await owner.client.get(f"/v1/leads?campaign_id={campaign['id']}")).json()["items"]
    assert [x["id"] for x in listed] == [other["id"], inside["id"]]
    filtered = await owner.client.get(f"/v1/leads?campaign_id={campaign['id']}&status=qualified")
    assert [x["id"] for x in filtered.json()["items"]] == [inside["id"]]
    theirs = await stranger.client.get(f"/v1/leads?campaign_id={campaign['id']}")
    assert theirs.json()["items"] == []
    assert_problem(await owner.client.get("/v1/leads?campaign_id=nope"), 422)


async def test_other_tenant_gets_404_on_every_verb(owner: Account, stranger: Account) -> None:
    lead = await make_lead(owner, email="private@example.com")
    url = f"/v1/leads/{lead['id']}"
    s = stranger.client
    assert_problem(await s.get(url), 404)
    assert_problem(await s.patch(url, json={"first_name": "x"}), 404)
    assert_problem(await s.delete(url), 404)
    for action in ("restore", "archive", "unarchive"):
        assert_problem(await s.post(f"{url}/{action}"), 404)
    assert_problem(await s.get(f"{url}/history"), 404)
    assert_problem(await s.get(f"{url}/events"), 404)
    assert (await s.get("/v1/leads?q=private")).json()["items"] == []
    assert (await owner.client.get(url)).json()["version"] == 1


async def test_viewer_cannot_write(owner: Account, viewer: Account) -> None:
    lead = await make_lead(owner, email="v@example.com")
    assert (await viewer.client.get(f"/v1/leads/{lead['id']}")).status_code == 200
    assert_problem(await post_lead(viewer, email="w@example.com"), 403)
    assert_problem(await viewer.client.delete(f"/v1/leads/{lead['id']}"), 403)
    bulk = await viewer.client.post("/v1/leads/bulk", json={"leads": []})
    assert_problem(bulk, 403)


async def test_pagination_stable_under_inserts(owner: Account) -> None:
    made = [await make_lead(owner, email=f"l{i}@example.com") for i in range(5)]
    first = (await owner.client.get("/v1/leads?limit=3")).json()
    await make_lead(owner, email="late@example.com")
    seen = [x["id"] for x in first["items"]]
    page = (await owner.client.get(f"/v1/leads?limit=3&cursor={first['next_cursor']}")).json()
    seen += [x["id"] for x in page["items"]]
    assert page["next_cursor"] is None
    assert seen == [x["id"] for x in reversed(made)]
    assert_problem(await owner.client.get("/v1/leads?cursor=bm90LWEtY3Vyc29y"), 422)
