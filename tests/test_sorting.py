"""Sorted lists of leads, campaigns and events: every sort, direction, cursor and count.

Each list is walked page by page (small pages, so cursors cross ties and nulls) and compared
with the order computed here: the field's value (missing or null lowest), ties broken by id
in the same direction; `count=true` answers the number of matching items on every page.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pytest

from tests.support.helpers import Account, assert_problem

LAST_NAMES = ["Silva", None, "Abreu", "Silva", "Zola", None, "abreu", "Mota", "Silva"]
PRICES = [300_000, None, 150_000.5, 300_000, None, 90_000]


async def walk(client: httpx.AsyncClient, path: str, **params: Any) -> list[dict[str, Any]]:
    """Every item of a list, page by page; checks `total` and that pages never overlap."""
    items: list[dict[str, Any]] = []
    cursor = None
    totals = set()
    while True:
        query = {**params, "count": "true", **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        totals.add(page["total"])
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert totals == {len(items)}, totals
    assert len({i["id"] for i in items}) == len(items)
    return items


TIMES = {"created_at", "updated_at", "last_contacted_at", "occurred_at", "starts_at"}


def expected(items: list[dict[str, Any]], field: str, descending: bool) -> list[str]:
    def key(item: dict[str, Any]) -> tuple[Any, ...]:
        value = item.get(field)
        if value is not None and field in TIMES:  # "…:05Z" is later than "…:04.999Z"
            value = datetime.fromisoformat(value)
        return (value is not None, value if value is not None else 0, item["id"])

    return [i["id"] for i in sorted(items, key=key, reverse=descending)]


@pytest.fixture
async def leads(owner: Account) -> list[dict[str, Any]]:
    made = []
    for i, last in enumerate(LAST_NAMES):
        body: dict[str, Any] = {"type": "generic", "email": f"g{i}@example.com"}
        if last is not None:
            body["last_name"] = last
        if i % 3 == 0:
            body["status"] = "qualified"
        made.append(await post(owner, "/v1/leads", body))
    for i, price in enumerate(PRICES):
        body = {"type": "mls", "mls_id": f"M-{i}", "last_name": LAST_NAMES[i]}
        if price is not None:
            body["list_price"] = price
        made.append(await post(owner, "/v1/leads", body))
    # Contact a few (by patching): last_contacted_at stays null for the rest.
    campaign = await post(owner, "/v1/campaigns", {"type": "call", "name": "C"})
    chosen = [made[1]["id"], made[4]["id"], made[10]["id"]]
    await owner.client.post(f"/v1/campaigns/{campaign['id']}/leads", json={"lead_ids": chosen})
    for lead_id in chosen:
        event = {"type": "call", "outcome": "answered", "campaign_id": campaign["id"]}
        await post(owner, "/v1/events", {**event, "lead_id": lead_id})
    await owner.client.patch(f"/v1/leads/{made[2]['id']}", json={"first_name": "Later"})
    return [(await owner.client.get(f"/v1/leads/{m['id']}")).json() for m in made]


async def post(account: Account, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await account.client.post(path, json=body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


@pytest.mark.parametrize(
    "field", ["created_at", "updated_at", "last_name", "list_price", "status", "last_contacted_at"]
)
@pytest.mark.parametrize("descending", [False, True])
async def test_lead_sorts_walk_every_page_in_order(
    owner: Account, leads: list[dict[str, Any]], field: str, descending: bool
) -> None:
    sort = f"-{field}" if descending else field
    got = await walk(owner.client, "/v1/leads", sort=sort, limit=2)
    assert [i["id"] for i in got] == expected(leads, field, descending)


async def test_sorts_combine_with_filters_and_deleted_items(
    owner: Account, leads: list[dict[str, Any]]
) -> None:
    deleted = leads[0]["id"]
    assert (await owner.client.delete(f"/v1/leads/{deleted}")).status_code == 204
    live = [x for x in leads if x["id"] != deleted]
    got = await walk(owner.client, "/v1/leads", sort="last_name", limit=3)
    assert [i["id"] for i in got] == expected(live, "last_name", False)
    everything = await walk(
        owner.client, "/v1/leads", sort="-last_name", limit=4, include_deleted="true"
    )
    assert [i["id"] for i in everything] == expected(leads, "last_name", True)
    mls = [x for x in live if x["type"] == "mls"]
    got = await walk(owner.client, "/v1/leads", sort="-list_price", type="mls", limit=2)
    assert [i["id"] for i in got] == expected(mls, "list_price", True)
    qualified = [x for x in live if x["status"] == "qualified"]
    got = await walk(owner.client, "/v1/leads", sort="created_at", status="qualified", limit=1)
    assert [i["id"] for i in got] == expected(qualified, "created_at", False)


async def test_default_order_and_count(owner: Account, leads: list[dict[str, Any]]) -> None:
    got = await walk(owner.client, "/v1/leads", limit=4)
    assert [i["id"] for i in got] == sorted((x["id"] for x in leads), reverse=True)
    page = (await owner.client.get("/v1/leads", params={"limit": 1})).json()
    assert "total" not in page  # only when asked
    assert (await owner.client.get("/v1/leads?count=false&limit=1")).json().keys() == {
        "items",
        "next_cursor",
    }


async def test_campaign_members_sort_and_count(owner: Account, leads: list[dict[str, Any]]) -> None:
    campaign = await post(owner, "/v1/campaigns", {"type": "email", "name": "E"})
    members = leads[::2]
    await owner.client.post(
        f"/v1/campaigns/{campaign['id']}/leads", json={"lead_ids": [m["id"] for m in members]}
    )
    path = f"/v1/campaigns/{campaign['id']}/leads"
    got = await walk(owner.client, path, limit=2)
    assert [i["id"] for i in got] == sorted((m["id"] for m in members), reverse=True)
    for sort, field, descending in (("last_name", "last_name", False), ("-status", "status", True)):
        got = await walk(owner.client, path, sort=sort, limit=2)
        assert [i["id"] for i in got] == expected(members, field, descending)
    via_list = await walk(owner.client, "/v1/leads", campaign_id=campaign["id"], sort="-last_name")
    assert [i["id"] for i in via_list] == expected(members, "last_name", True)


async def test_campaign_sorts(owner: Account) -> None:
    made = []
    for name, status, starts in (
        ("Beta", "draft", None),
        ("alpha", "active", "2024-03-01T00:00:00Z"),
        ("Beta", "active", "2024-01-01T00:00:00Z"),
        ("Gamma", "completed", None),
        ("Delta", "draft", "2024-02-01T00:00:00Z"),
    ):
        body: dict[str, Any] = {"type": "call", "name": name, "status": status}
        if starts:
            body["starts_at"] = starts
        made.append(await post(owner, "/v1/campaigns", body))
    await owner.client.patch(f"/v1/campaigns/{made[0]['id']}", json={"description": "x"})
    made = [(await owner.client.get(f"/v1/campaigns/{m['id']}")).json() for m in made]
    for field in ("created_at", "updated_at", "name", "status", "starts_at"):
        for descending in (False, True):
            sort = f"-{field}" if descending else field
            got = await walk(owner.client, "/v1/campaigns", sort=sort, limit=2)
            assert [i["id"] for i in got] == expected(made, field, descending), sort


async def test_event_sorts(owner: Account) -> None:
    campaign = await post(owner, "/v1/campaigns", {"type": "call", "name": "C"})
    lead = await post(owner, "/v1/leads", {"type": "generic", "email": "e@example.com"})
    await owner.client.post(
        f"/v1/campaigns/{campaign['id']}/leads", json={"lead_ids": [lead["id"]]}
    )
    made = []
    for when in ("2024-01-03", "2024-01-01", "2024-01-03", "2024-01-02", "2024-01-01"):
        body = {
            "type": "call",
            "outcome": "answered",
            "campaign_id": campaign["id"],
            "lead_id": lead["id"],
            "occurred_at": f"{when}T00:00:00Z",
        }
        made.append(await post(owner, "/v1/events", body))
    default = await walk(owner.client, "/v1/events", limit=2)
    assert [i["id"] for i in default] == expected(made, "occurred_at", True)
    for field in ("occurred_at", "created_at", "updated_at"):
        for descending in (False, True):
            sort = f"-{field}" if descending else field
            got = await walk(owner.client, "/v1/events", sort=sort, limit=2)
            assert [i["id"] for i in got] == expected(made, field, descending), sort
    ranged = await walk(owner.client, "/v1/events", since="2024-01-02", limit=1)
    assert [i["id"] for i in ranged] == expected(
        [m for m in made if m["occurred_at"] >= "2024-01-02"], "occurred_at", True
    )


@pytest.mark.parametrize(
    ("path", "sort"),
    [
        ("/v1/leads", "password_hash"),
        ("/v1/leads", "-email"),
        ("/v1/leads", "list_price_cents"),
        ("/v1/leads", "--created_at"),
        ("/v1/campaigns", "lead_count"),
        ("/v1/events", "lead_id"),
    ],
)
async def test_unknown_sort_fields_are_422(owner: Account, path: str, sort: str) -> None:
    assert_problem(await owner.client.get(f"{path}?sort={sort}"), 422)
