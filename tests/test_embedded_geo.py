"""The embedded backend's geo operators: exact great-circle distances on MongoDB's sphere."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest
from pymongo.errors import OperationFailure

from service.core.geo import EARTH_RADIUS_M, great_circle_m, point_of
from service.embedded import EmbeddedCollection, embedded_database

# The embedded backend's geo queries themselves.
pytestmark = pytest.mark.embedded_only

ONE_DEGREE_M = EARTH_RADIUS_M * math.pi / 180  # 111,318.845 m on MongoDB's sphere


def point(lng: float, lat: float) -> dict[str, Any]:
    return {"type": "Point", "coordinates": [lng, lat]}


@pytest.mark.parametrize(
    ("a", "b", "metres"),
    [
        ((0, 0), (0, 0), 0.0),
        ((0, 0), (1, 0), ONE_DEGREE_M),  # along the equator
        ((0, 0), (0, 1), ONE_DEGREE_M),  # along a meridian
        ((10, 89), (-170, 89), 2 * ONE_DEGREE_M),  # over the pole
        ((0, 0), (180, 0), math.pi * EARTH_RADIUS_M),  # antipodes
        ((0, 90), (0, -90), math.pi * EARTH_RADIUS_M),  # pole to pole
        ((179.5, 0), (-179.5, 0), ONE_DEGREE_M),  # across the antimeridian
        (
            (0, 60),
            (1, 60),
            2
            * EARTH_RADIUS_M
            * math.asin(math.cos(math.radians(60)) * math.sin(math.radians(0.5))),
        ),
    ],
)
def test_known_distances(a: tuple[float, float], b: tuple[float, float], metres: float) -> None:
    assert great_circle_m(a, b) == pytest.approx(metres, abs=1e-6)
    assert great_circle_m(b, a) == pytest.approx(metres, abs=1e-6)


def test_distances_agree_with_the_spherical_law_of_cosines() -> None:
    rng = random.Random(7)
    for _ in range(200):
        a = (rng.uniform(-180, 180), rng.uniform(-90, 90))
        b = (rng.uniform(-180, 180), rng.uniform(-90, 90))
        la1, la2 = math.radians(a[1]), math.radians(b[1])
        cos_c = math.sin(la1) * math.sin(la2) + math.cos(la1) * math.cos(la2) * math.cos(
            math.radians(b[0] - a[0])
        )
        expected = math.acos(max(-1.0, min(1.0, cos_c))) * EARTH_RADIUS_M
        assert great_circle_m(a, b) == pytest.approx(expected, rel=1e-9, abs=1e-3)


def test_san_francisco_to_los_angeles() -> None:
    # 559.1 km on a 6,371 km sphere; MongoDB's sphere is 6,378.1 km, so scale by that ratio.
    sf, la = (-122.4194, 37.7749), (-118.2437, 34.0522)
    assert great_circle_m(sf, la) / 1000 == pytest.approx(559.12 * 6378.1 / 6371.0, abs=0.05)


def test_points_are_read_from_geojson_and_legacy_pairs() -> None:
    assert point_of(point(1.5, -2)) == (1.5, -2.0)
    assert point_of([1.5, -2]) == (1.5, -2.0)
    for bad in ({"type": "LineString", "coordinates": [1, 2]}, [200, 0], [0, 91], [True, 1], "x"):
        assert point_of(bad) is None


@pytest.fixture
async def places() -> EmbeddedCollection:
    coll = embedded_database("geo")["places"]
    await coll.create_index([("tenant", 1), ("loc", "2dsphere")])
    docs = [{"_id": i, "tenant": 1, "loc": point(i * 0.1, 0.0)} for i in range(10)]
    docs += [
        {"_id": 100, "tenant": 2, "loc": point(0.0, 0.0)},  # another tenant
        {"_id": 101, "tenant": 1},  # no location
        {"_id": 102, "tenant": 1, "loc": [0.05, 0.0]},  # a legacy pair
    ]
    await coll.insert_many(docs)
    return coll


def near(lng: float, lat: float, **band: float) -> dict[str, Any]:
    spec: dict[str, Any] = {"$geometry": point(lng, lat)}
    spec.update({f"${k}": v for k, v in band.items()})
    return {"$nearSphere": spec}


async def test_near_sphere_orders_by_distance_within_the_band(places: EmbeddedCollection) -> None:
    query = {"tenant": 1, "loc": near(0.0, 0.0, maxDistance=0.35 * ONE_DEGREE_M)}
    assert [d["_id"] async for d in places.find(query)] == [0, 102, 1, 2, 3]
    # A band, both ends inclusive: exactly 0.2 degrees away is in (the points sit at
    # multiples of 0.1 degree; 3 * 0.1 is a hair above 0.3, so the top end is 0.3 + 1 m).
    band = near(
        0.0, 0.0, minDistance=great_circle_m((0, 0), (0.2, 0)), maxDistance=0.3 * ONE_DEGREE_M + 1
    )
    assert [d["_id"] async for d in places.find({"tenant": 1, "loc": band})] == [2, 3]
    # The order holds with a limit, and an explicit sort overrides it, as on a server.
    assert [d["_id"] async for d in places.find({"tenant": 1, "loc": near(0.45, 0)}).limit(2)] in (
        [4, 5],
        [5, 4],
    )
    ordered = places.find({"tenant": 1, "loc": near(0.0, 0.0)}).sort("_id", -1)
    assert [d["_id"] async for d in ordered][:3] == [102, 9, 8]


async def test_legacy_near_sphere_takes_radians(places: EmbeddedCollection) -> None:
    query = {"tenant": 1, "loc": {"$nearSphere": [0.0, 0.0], "$maxDistance": math.radians(0.15)}}
    assert [d["_id"] async for d in places.find(query)] == [0, 102, 1]


async def test_geo_within_center_sphere(places: EmbeddedCollection) -> None:
    cap = {"$geoWithin": {"$centerSphere": [[0.3, 0.0], math.radians(0.1) + 1e-12]}}
    found = sorted([d["_id"] async for d in places.find({"tenant": 1, "loc": cap})])
    assert found == [2, 3, 4]
    assert await places.count_documents({"loc": cap}) == 3  # an ordinary filter


async def test_near_sphere_is_refused_where_a_server_refuses_it(places: EmbeddedCollection) -> None:
    query = {"tenant": 1, "loc": near(0.0, 0.0)}
    with pytest.raises(OperationFailure):
        await places.count_documents(query)
    with pytest.raises(OperationFailure):
        await places.aggregate([{"$match": query}])
    with pytest.raises(OperationFailure):
        await places.find({"$or": [query, {"tenant": 2}]}).to_list()
    with pytest.raises(OperationFailure):
        await places.find({"loc": near(0, 0), "$and": [{"loc": near(1, 1)}]}).to_list()
    with pytest.raises(OperationFailure):
        await places.find({"loc": near(0, 0, maxDistance=-1)}).to_list()
    with pytest.raises(OperationFailure):
        await places.find({"loc": near(200, 0)}).to_list()
    no_index = embedded_database("geo2")["plain"]
    await no_index.insert_one({"loc": point(0, 0)})
    with pytest.raises(OperationFailure) as caught:
        await no_index.find({"loc": near(0, 0)}).to_list()
    assert caught.value.code == 291


async def test_unsupported_shapes_say_so(places: EmbeddedCollection) -> None:
    polygon = {"$geoWithin": {"$geometry": {"type": "Polygon", "coordinates": []}}}
    with pytest.raises(NotImplementedError):
        await places.find({"loc": polygon}).to_list()


# -- the 2dsphere ring walk against a full scan ------------------------------------------------


def _oracle(
    docs: list[dict[str, Any]], tenant: int, centre: tuple[float, float], low: float, high: float
) -> list[int]:
    """What MongoDB answers, by a full scan: the band's points by (distance, _id)."""
    rows = []
    for doc in docs:
        where = point_of(doc.get("loc"))
        if doc["tenant"] != tenant or where is None or doc.get("gone"):
            continue
        distance = great_circle_m(centre, where)
        if low <= distance <= high:
            rows.append((distance, doc["_id"]))
    return [i for _, i in sorted(rows)]


def _scatter(rng: random.Random, n: int) -> list[dict[str, Any]]:
    # Clusters (one point shared by many), a dense city, the poles, both sides of the
    # antimeridian, legacy pairs, documents without a point and another tenant.
    spots = [(0.0, 0.0), (179.99, 10.0), (-179.99, 10.0), (0.0, 89.9), (45.0, -89.95)]
    docs: list[dict[str, Any]] = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.2:
            where = rng.choice(spots)
        elif kind < 0.6:
            where = (-122.4 + rng.uniform(-0.2, 0.2), 37.7 + rng.uniform(-0.2, 0.2))
        elif kind < 0.95:
            where = (rng.uniform(-180, 180), math.degrees(math.asin(rng.uniform(-1, 1))))
        else:
            docs.append({"_id": i, "tenant": 1})
            continue
        loc: Any = list(where) if i % 7 == 0 else point(*where)
        docs.append({"_id": i, "tenant": 1 + (i % 11 == 0), "loc": loc, "gone": i % 13 == 0})
    return docs


async def test_the_ring_walk_answers_what_a_full_scan_answers() -> None:
    rng = random.Random(23)
    coll = embedded_database("geo_rings")["places"]
    await coll.create_index([("tenant", 1), ("loc", "2dsphere")])
    docs = _scatter(rng, 3000)
    await coll.insert_many([dict(d) for d in docs])
    centres = [(-122.4, 37.7), (0.0, 0.0), (180.0, 10.0), (-180.0, 10.0), (10.0, 90.0)]
    centres += [(rng.uniform(-180, 180), rng.uniform(-90, 90)) for _ in range(25)]
    for centre in centres:
        low = rng.choice([0.0, 0.0, rng.uniform(0, 3e6)])
        high = rng.choice([math.pi * EARTH_RADIUS_M, low + rng.uniform(0, 5e6)])
        tenant = rng.choice([1, 1, 2])
        expected = _oracle(docs, tenant, centre, low, high)
        query = {"tenant": tenant, "gone": {"$ne": True}, "loc": near(*centre, minDistance=low)}
        query["loc"]["$nearSphere"]["$maxDistance"] = high
        for limit in (1, 5, 40, 0):
            found = [d["_id"] async for d in coll.find(query).limit(limit)]
            assert found == (expected[:limit] if limit else expected), (centre, low, high, limit)
        assert [d["_id"] async for d in coll.find(query).skip(3).limit(4)] == expected[3:7]


async def test_the_ring_walk_reads_about_the_page_not_the_collection() -> None:
    from service.embedded import work

    rng = random.Random(5)
    coll = embedded_database("geo_bounded")["places"]
    await coll.create_index([("tenant", 1), ("loc", "2dsphere")])
    examined = []
    for size in (1000, 8000):
        await coll.delete_many({})
        docs = [
            {"_id": i, "tenant": 1, "loc": point(rng.uniform(-1, 1), rng.uniform(-1, 1))}
            for i in range(size)
        ]
        await coll.insert_many(docs)
        with work.measuring() as counted:
            page = await coll.find({"tenant": 1, "loc": near(0.0, 0.0)}).limit(20).to_list()
        assert len(page) == 20
        examined.append(counted.examined)
    # A full read would be 1,000 and 8,000; the walk reads a few times the page at both.
    assert examined[1] <= examined[0] + 64 and examined[1] < 200, examined
