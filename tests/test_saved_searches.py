"""Saved searches: filters validated against the list endpoint, run through the same machinery."""

from __future__ import annotations

from typing import Any
from uuid import uuid4

from tests.factories import attach_leads, make_lead
from tests.support.helpers import Account, assert_problem


async def save(account: Account, resource: str, filters: dict[str, Any], **extra: Any) -> Any:
    return await account.client.post(
        "/v1/saved-searches",
        json={"name": f"My {resource}", "resource": resource, "filters": filters, **extra},
    )


async def campaign(account: Account, name: str, **body: Any) -> dict[str, Any]:
    response = await account.client.post(
        "/v1/campaigns", json={"type": "call", "name": name, **body}
    )
    assert response.status_code == 201, response.text
    return response.json()


async def test_save_normalises_and_reads_back(owner: Account, stranger: Account) -> None:
    response = await save(
        owner,
        "campaigns",
        {"status": "active", "tag": " Hot "},
        tenant_id=str(stranger.tenant_id),
    )
    assert response.status_code == 201, response.text
    search = response.json()
    assert search["filters"] == {"status": "active", "tag": "hot"}
    assert search["resource"] == "campaigns" and search["user_id"] == str(owner.id)
    assert search["tenant_id"] == str(owner.tenant_id)
    assert response.headers["ETag"] == '"1"'
    got = await owner.client.get(f"/v1/saved-searches/{search['id']}")
    assert got.status_code == 200 and got.json() == search
    listed = (await owner.client.get("/v1/saved-searches")).json()
    assert [s["id"] for s in listed["items"]] == [search["id"]]


async def test_filters_are_validated_against_the_resource(owner: Account) -> None:
    bad = [
        ("campaigns", {"status": "sleeping"}),
        ("campaigns", {"q": "x"}),  # a lead filter, not a campaign one
        ("leads", {"campaign_id": "not-a-uuid"}),
        ("leads", {"status": "vip"}),
        ("events", {"since": "soon"}),
        ("events", {"since": "2026-11-02", "until": "2026-11-01"}),
        ("events", {"limit": 10}),  # paging is given to /run
        ("leads", {"cursor": "abc"}),
        ("tasks", {}),
    ]
    for resource, filters in bad:
        assert_problem(await save(owner, resource, filters), 422)
    body = assert_problem(await save(owner, "campaigns", {"status": "x", "type": "y"}), 422)
    locs = {tuple(e["loc"]) for e in body["errors"]}
    assert ("body", "filters", "status") in locs and ("body", "filters", "type") in locs
    assert_problem(
        await owner.client.post("/v1/saved-searches", json={"resource": "leads", "name": ""}), 422
    )


async def test_run_campaigns_pages_like_the_list(owner: Account) -> None:
    hot = [await campaign(owner, f"hot{i}", status="active", tags=["hot"]) for i in range(3)]
    await campaign(owner, "cold", status="active", tags=["cold"])
    await campaign(owner, "draft hot", tags=["hot"])
    search = (await save(owner, "campaigns", {"status": "active", "tag": "hot"})).json()
    url = f"/v1/saved-searches/{search['id']}/run"

    first = await owner.client.get(url, params={"limit": 2})
    assert first.status_code == 200, first.text
    page = first.json()
    assert page["resource"] == "campaigns"
    assert [c["id"] for c in page["items"]] == [hot[2]["id"], hot[1]["id"]]
    listed = await owner.client.get(
        "/v1/campaigns", params={"status": "active", "tag": "hot", "limit": 2}
    )
    assert page["items"] == listed.json()["items"]  # the same shape as the list endpoint
    second = (await owner.client.get(url, params={"cursor": page["next_cursor"]})).json()
    assert [c["id"] for c in second["items"]] == [hot[0]["id"]]
    assert second["next_cursor"] is None
    assert_problem(await owner.client.get(url, params={"limit": 500}), 422)
    assert_problem(await owner.client.get(url, params={"status": "draft"}), 422)


async def test_run_leads_and_events(owner: Account) -> None:
    c = await campaign(owner, "C")
    lead_id = (await make_lead(owner, email="a@example.com"))["id"]
    await make_lead(owner, email="b@example.com")
    await attach_leads(owner, c["id"], lead_id)
    event = await owner.client.post(
        "/v1/events",
        json={
            "type": "call",
            "outcome": "answered",
            "duration_seconds": 5,
            "campaign_id": c["id"],
            "lead_id": lead_id,
        },
    )
    assert event.status_code == 201, event.text

    leads = (await save(owner, "leads", {"q": "a@example"})).json()
    run = (await owner.client.get(f"/v1/saved-searches/{leads['id']}/run")).json()
    assert run["resource"] == "leads" and [x["id"] for x in run["items"]] == [lead_id]

    events = (await save(owner, "events", {"lead_id": lead_id, "type": "call"})).json()
    run = (await owner.client.get(f"/v1/saved-searches/{events['id']}/run")).json()
    assert run["resource"] == "events"
    assert [x["id"] for x in run["items"]] == [event.json()["id"]]


async def test_run_is_tenant_scoped(owner: Account, stranger: Account) -> None:
    await campaign(owner, "mine", status="active")
    search = (await save(stranger, "campaigns", {"status": "active"})).json()
    run = (await stranger.client.get(f"/v1/saved-searches/{search['id']}/run")).json()
    assert run["items"] == []


async def test_patch_replaces_filters_with_validation(owner: Account) -> None:
    search = (await save(owner, "campaigns", {"status": "active"})).json()
    url = f"/v1/saved-searches/{search['id']}"
    response = await owner.client.patch(url, json={"filters": {"type": "email"}, "name": "Emails"})
    assert response.status_code == 200, response.text
    assert response.json()["filters"] == {"type": "email"} and response.json()["version"] == 2
    assert_problem(await owner.client.patch(url, json={"filters": {"q": "x"}}), 422)
    assert_problem(await owner.client.patch(url, json={"resource": "leads"}), 422)
    assert_problem(
        await owner.client.patch(url, json={"name": "x"}, headers={"If-Match": '"1"'}), 412
    )


async def test_cross_tenant_404_soft_delete_and_roles(
    owner: Account, stranger: Account, viewer: Account
) -> None:
    search = (await save(owner, "leads", {})).json()
    url = f"/v1/saved-searches/{search['id']}"
    for response in (
        await stranger.client.get(url),
        await stranger.client.get(f"{url}/run"),
        await stranger.client.patch(url, json={"name": "x"}),
        await stranger.client.delete(url),
        await stranger.client.post(f"{url}/restore"),
    ):
        assert_problem(response, 404)
    assert (await viewer.client.get(f"{url}/run")).status_code == 200
    assert_problem(await save(viewer, "leads", {}), 403)

    assert (await owner.client.delete(url)).status_code == 204
    assert_problem(await owner.client.get(url), 404)
    assert_problem(await owner.client.get(f"{url}/run"), 404)
    assert (await owner.client.get("/v1/saved-searches")).json()["items"] == []
    assert (await owner.client.post(f"{url}/restore")).status_code == 200
    assert (await owner.client.get(f"{url}/run")).status_code == 200


async def test_a_saved_search_keeps_its_sort_and_count(owner: Account) -> None:
    for name in ("Beta", "alpha", "Gamma"):
        await campaign(owner, name)
    saved = (await save(owner, "campaigns", {"sort": "-name", "count": True})).json()
    assert saved["filters"] == {"sort": "-name", "count": True}
    run = (await owner.client.get(f"/v1/saved-searches/{saved['id']}/run?limit=2")).json()
    assert [c["name"] for c in run["items"]] == ["alpha", "Gamma"] and run["total"] == 3
    rest = await owner.client.get(
        f"/v1/saved-searches/{saved['id']}/run", params={"cursor": run["next_cursor"]}
    )
    assert [c["name"] for c in rest.json()["items"]] == ["Beta"]
    plain = (await save(owner, "campaigns", {})).json()
    assert "total" not in (await owner.client.get(f"/v1/saved-searches/{plain['id']}/run")).json()
    assert_problem(await save(owner, "leads", {"sort": "email"}), 422)
    assert_problem(await save(owner, "leads", {"near": "0,0", "campaign_id": str(uuid4())}), 422)
