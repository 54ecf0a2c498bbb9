"""Real-estate geography: MLS leads with a location, nearest first, within a radius, paged."""

from __future__ import annotations

from typing import Any

import pytest

from service.core.geo import great_circle_m
from tests.factories import make_lead
from tests.support.helpers import Account, assert_problem

CENTRE = (-122.4194, 37.7749)  # San Francisco City Hall-ish
PLACES = {
    "ferry": (-122.3937, 37.7955),
    "mission": (-122.4148, 37.7599),
    "sunset": (-122.4941, 37.7531),
    "oakland": (-122.2712, 37.8044),
    "sanjose": (-121.8863, 37.3382),
    "la": (-118.2437, 34.0522),
    "condo": (-122.4010, 37.7880),  # five units at exactly the same point
}


async def mls(
    account: Account, mls_id: str, where: tuple[float, float] | None, **extra: Any
) -> str:
    body: dict[str, Any] = {"type": "mls", "mls_id": mls_id, **extra}
    if where is not None:
        body["location"] = {"type": "Point", "coordinates": list(where)}
    return str((await make_lead(account, **body))["id"])


@pytest.fixture
async def listings(owner: Account) -> dict[str, tuple[float, float]]:
    """Lead id → location (plus one MLS lead without a location and a generic lead)."""
    made = {}
    for i, (name, where) in enumerate(PLACES.items()):
        units = 5 if name == "condo" else 1
        for unit in range(units):
            lead_id = await mls(owner, f"{name}-{unit}", where, list_price=100_000 * (i + unit + 1))
            made[lead_id] = where
    await mls(owner, "no-location", None)
    await make_lead(owner, email="g@example.com")
    return made


def nearest(listings: dict[str, tuple[float, float]], within_km: float | None) -> list[str]:
    rows = [(great_circle_m(CENTRE, where), lead_id) for lead_id, where in listings.items()]
    return [i for d, i in sorted(rows) if within_km is None or d <= within_km * 1000]


async def walk(account: Account, **params: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor = None
    while True:
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await account.client.get("/v1/leads", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        items += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            return items


NEAR = f"{CENTRE[0]},{CENTRE[1]}"


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
async def test_nearest_first_over_every_page(
    owner: Account, listings: dict[str, tuple[float, float]], limit: int
) -> None:
    got = await walk(owner, near=NEAR, within_km=60, limit=limit)
    assert [x["id"] for x in got] == nearest(listings, 60)  # ties (the condo) by id
    everything = await walk(owner, near=NEAR, limit=limit)
    assert [x["id"] for x in everything] == nearest(listings, None)  # LA too, not the unlocated


async def test_count_and_sort_within_a_radius(
    owner: Account, listings: dict[str, tuple[float, float]]
) -> None:
    page = (
        await owner.client.get(
            "/v1/leads", params={"near": NEAR, "within_km": 10, "count": "true", "limit": 2}
        )
    ).json()
    inside = nearest(listings, 10)
    assert page["total"] == len(inside) and len(page["items"]) == 2
    by_price = await walk(owner, near=NEAR, within_km=10, sort="-list_price", limit=3)
    prices = [x["list_price"] for x in by_price]
    assert {x["id"] for x in by_price} == set(inside) and prices == sorted(prices, reverse=True)
    page = (
        await owner.client.get(
            "/v1/leads",
            params={"near": NEAR, "within_km": 10, "sort": "list_price", "count": "true"},
        )
    ).json()
    assert page["total"] == len(inside)


async def test_the_location_round_trips_and_is_validated(owner: Account) -> None:
    lead_id = await mls(owner, "X-1", (2.2945, 48.8584))
    got = (await owner.client.get(f"/v1/leads/{lead_id}")).json()
    assert got["location"] == {"type": "Point", "coordinates": [2.2945, 48.8584]}
    patched = await owner.client.patch(f"/v1/leads/{lead_id}", json={"location": None})
    assert patched.json()["location"] is None
    for bad in (
        {"type": "Point", "coordinates": [181, 0]},
        {"type": "Point", "coordinates": [0, -90.5]},
        {"type": "Point", "coordinates": [0]},
        {"type": "Point", "coordinates": [True, 1]},
        {"type": "Point", "coordinates": ["1", "2"]},
        {"type": "Polygon", "coordinates": [0, 0]},
        {"coordinates": [0, 0], "$where": "x"},
        [0, 0],
    ):
        response = await owner.client.post(
            "/v1/leads", json={"type": "mls", "mls_id": "BAD", "location": bad}
        )
        assert_problem(response, 422)
    generic = {
        "type": "generic",
        "email": "a@b.io",
        "location": {"type": "Point", "coordinates": [0, 0]},
    }
    assert_problem(await owner.client.post("/v1/leads", json=generic), 422)


@pytest.mark.parametrize(
    "params",
    [
        {"near": "200,0"},
        {"near": "0,91"},
        {"near": "abc"},
        {"near": "1"},
        {"near": "1,2,3"},
        {"near": "1e2,3"},
        {"within_km": 5},  # without near
        {"near": "0,0", "within_km": 0},
        {"near": "0,0", "within_km": -1},
        {"near": "0,0", "within_km": 30000},
        {"near": "0,0", "campaign_id": "01900000-0000-7000-8000-000000000000"},
    ],
)
async def test_bad_geo_parameters_are_422(owner: Account, params: dict[str, Any]) -> None:
    assert_problem(await owner.client.get("/v1/leads", params=params), 422)


@pytest.mark.usefixtures("listings")
async def test_a_cursor_belongs_to_its_point(owner: Account) -> None:
    page = (await owner.client.get("/v1/leads", params={"near": NEAR, "limit": 1})).json()
    elsewhere = {"near": "0,0", "limit": 1, "cursor": page["next_cursor"]}
    assert_problem(await owner.client.get("/v1/leads", params=elsewhere), 422)
    plain = {"limit": 1, "cursor": page["next_cursor"]}
    assert_problem(await owner.client.get("/v1/leads", params=plain), 422)


async def test_other_tenants_and_deleted_leads_are_never_near(
    owner: Account, stranger: Account, listings: dict[str, tuple[float, float]]
) -> None:
    await mls(stranger, "theirs", CENTRE)
    first = nearest(listings, None)[0]
    await owner.client.delete(f"/v1/leads/{first}")
    got = await walk(owner, near=NEAR, within_km=5, limit=10)
    assert [x["id"] for x in got] == [i for i in nearest(listings, 5) if i != first]
    with_deleted = await walk(owner, near=NEAR, within_km=5, include_deleted="true")
    assert [x["id"] for x in with_deleted] == nearest(listings, 5)


@pytest.mark.embedded_only  # patches the embedded geo
async def test_paging_holds_when_the_server_orders_ties_and_last_digits_its_own_way(
    owner: Account,
) -> None:
    # A server computes distances with its own formula (equal to ours but for the last digits)
    # and returns equal distances in any order. Make the embedded backend do both: a tiny,
    # per-document error on each distance, which reorders the thirty units of one building.
    from service.embedded import geo

    exact = geo.Near.distance

    def noisy(self: geo.Near, doc: Any) -> float | None:
        distance = exact(self, doc)
        if distance is None:
            return None
        return distance * (1 + (hash(str(doc["_id"])) % 1000 - 500) * 1e-12)

    made: dict[str, tuple[float, float]] = {}
    for unit in range(30):
        made[await mls(owner, f"tower-{unit}", PLACES["condo"])] = PLACES["condo"]
    for name in ("ferry", "mission", "sunset"):
        made[await mls(owner, name, PLACES[name])] = PLACES[name]
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(geo.Near, "distance", noisy)
        for limit in (1, 2, 7):
            got = await walk(owner, near=NEAR, limit=limit)
            assert [x["id"] for x in got] == nearest(made, None), limit
