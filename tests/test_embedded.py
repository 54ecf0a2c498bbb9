"""The embedded backend keeps MongoDB's semantics: indexes, matching, limits, the async API."""

from __future__ import annotations

import asyncio
import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import Binary
from mongomock.filtering import filter_applies
from pymongo import DeleteOne, InsertOne, ReplaceOne, UpdateOne
from pymongo.errors import (
    BulkWriteError,
    DocumentTooLarge,
    DuplicateKeyError,
    InvalidOperation,
    OperationFailure,
)

from service.embedded import EmbeddedCollection, codec, embedded_database, observers
from service.embedded.engine import prepared
from service.embedded.keys import sort_key, sort_value
from service.embedded.planner import plan

# The embedded backend itself.
pytestmark = pytest.mark.embedded_only

BIG = "x" * (codec.MAX_BSON_SIZE // 2)


@pytest.fixture
def coll() -> EmbeddedCollection:
    return embedded_database("t")["c"]


# -- unique and partial unique indexes ------------------------------------------------------


async def test_unique_index_refuses_duplicates_with_details(coll: EmbeddedCollection) -> None:
    await coll.create_index([("tenant", 1), ("email", 1)], unique=True, name="email_u")
    await coll.insert_one({"tenant": 1, "email": "a@x.io"})
    with pytest.raises(DuplicateKeyError) as caught:
        await coll.insert_one({"tenant": 1, "email": "a@x.io"})
    assert caught.value.code == 11000
    assert caught.value.details["keyPattern"] == {"tenant": 1, "email": 1}
    assert caught.value.details["keyValue"] == {"tenant": 1, "email": "a@x.io"}
    await coll.insert_one({"tenant": 2, "email": "a@x.io"})  # another tenant: no clash
    assert await coll.count_documents({}) == 2


async def test_missing_fields_collide_in_a_full_unique_index(coll: EmbeddedCollection) -> None:
    # MongoDB indexes a missing field as null: two documents without it clash.
    await coll.create_index("phone", unique=True)
    await coll.insert_one({"a": 1})
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"a": 2})


async def test_partial_unique_index_constrains_only_what_it_covers(
    coll: EmbeddedCollection,
) -> None:
    await coll.create_index(
        [("tenant", 1), ("phone", 1)],
        unique=True,
        partialFilterExpression={"phone": {"$type": "string"}, "is_deleted": False},
    )
    for _ in range(3):  # no phone: outside the index, never a clash
        await coll.insert_one({"tenant": 1, "is_deleted": False})
    await coll.insert_one({"tenant": 1, "phone": "+1", "is_deleted": False})
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"tenant": 1, "phone": "+1", "is_deleted": False})
    await coll.insert_one({"tenant": 1, "phone": "+1", "is_deleted": True})  # not covered
    # Leaving the index (soft delete) frees the key; coming back clashes again.
    await coll.update_one({"phone": "+1", "is_deleted": False}, {"$set": {"is_deleted": True}})
    await coll.insert_one({"tenant": 1, "phone": "+1", "is_deleted": False, "n": 2})
    with pytest.raises(DuplicateKeyError):
        await coll.update_one(
            {"n": {"$exists": False}, "phone": "+1"}, {"$set": {"is_deleted": False}}
        )
    info = await coll.index_information()
    assert info["tenant_1_phone_1"]["partialFilterExpression"]["phone"] == {"$type": "string"}


async def test_sparse_unique_index_skips_documents_without_the_field(
    coll: EmbeddedCollection,
) -> None:
    await coll.create_index("code", unique=True, sparse=True)
    await coll.insert_many([{"a": 1}, {"a": 2}, {"code": None}])
    with pytest.raises(DuplicateKeyError):  # present as null: indexed, so it clashes
        await coll.insert_one({"code": None})


async def test_a_failed_update_changes_nothing(coll: EmbeddedCollection) -> None:
    await coll.create_index("email", unique=True)
    await coll.insert_many([{"_id": 1, "email": "a"}, {"_id": 2, "email": "b"}])
    with pytest.raises(DuplicateKeyError):
        await coll.update_one({"_id": 2}, {"$set": {"email": "a", "x": 1}})
    assert await coll.find_one({"_id": 2}) == {"_id": 2, "email": "b"}
    assert [d["_id"] async for d in coll.find({"email": "b"})] == [2]  # index unchanged
    await coll.update_one({"_id": 2}, {"$set": {"email": "c"}})
    assert await coll.find_one({"email": "b"}) is None
    await coll.insert_one({"_id": 3, "email": "b"})  # the old key is free again


async def test_index_creation_refuses_existing_duplicates(coll: EmbeddedCollection) -> None:
    await coll.insert_many([{"k": 1}, {"k": 1}])
    with pytest.raises(DuplicateKeyError):
        await coll.create_index("k", unique=True)
    assert "k_1" not in await coll.index_information()


async def test_multikey_unique_index(coll: EmbeddedCollection) -> None:
    await coll.create_index("tags", unique=True)
    await coll.insert_one({"tags": ["a", "b"]})
    with pytest.raises(DuplicateKeyError):
        await coll.insert_one({"tags": ["c", "b"]})
    assert [d["tags"] async for d in coll.find({"tags": "b"})] == [["a", "b"]]


async def test_unordered_insert_many_keeps_good_rows(coll: EmbeddedCollection) -> None:
    await coll.create_index("k", unique=True)
    with pytest.raises(BulkWriteError) as caught:
        await coll.insert_many([{"k": 1}, {"k": 1}, {"k": 2}, {"k": 2}], ordered=False)
    errors = caught.value.details["writeErrors"]
    assert [e["index"] for e in errors] == [1, 3]
    assert caught.value.details["nInserted"] == 2
    assert sorted([d["k"] async for d in coll.find()]) == [1, 2]


# -- matching: the planner never changes an answer -------------------------------------------


def _random_doc(rng: random.Random, i: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": i, "t": rng.choice([1, 2, 3])}
    if rng.random() < 0.8:
        doc["s"] = rng.choice(["a", "b", "c", None, 5, 2.5, True])
    if rng.random() < 0.7:
        doc["n"] = rng.choice([0, 1, 2, 3, 10, -1, "x", None, [1, 5], []])
    if rng.random() < 0.5:
        doc["d"] = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=rng.randint(0, 30))
    doc["del"] = rng.random() < 0.2
    return doc


def _random_filter(rng: random.Random) -> dict[str, Any]:
    values = [1, 2, 3, "a", "b", None, 0, 5, 10, 2.5, True, "x"]
    pick = rng.choice
    conditions = [
        lambda: {"t": pick(values)},
        lambda: {"t": {"$in": rng.sample(values, 3)}},
        lambda: {"s": pick(values)},
        lambda: {"s": {"$in": [pick(values), pick(values)]}},
        lambda: {"n": {pick(["$gt", "$gte", "$lt", "$lte"]): pick([0, 1, 2, 5, "x"])}},
        lambda: {"n": {"$gt": 0, "$lt": 3}},
        lambda: {"n": pick(values)},
        lambda: {"d": {"$gte": datetime(2026, 1, 10, tzinfo=UTC)}},
        lambda: {"del": False},
        lambda: {"_id": {"$lt": rng.randint(0, 300)}},
        lambda: {"_id": {"$in": rng.sample(range(300), 20)}},
        lambda: {"s": {"$exists": False}},
        lambda: {"n": {"$ne": 1}},
        lambda: {"$or": [{"s": pick(values)}, {"n": pick(values)}]},
        lambda: {"$or": [{"t": 1, "s": "a"}, {"_id": {"$gt": 250}}]},
        lambda: {"$and": [{"t": {"$in": [1, 2]}}, {"n": {"$gte": 1}}]},
    ]
    query: dict[str, Any] = {}
    for make in rng.sample(conditions, rng.randint(1, 3)):
        query.update(make())
    return query


async def test_planned_queries_answer_exactly_as_a_full_scan(coll: EmbeddedCollection) -> None:
    """Random documents, indexes, filters, sorts and limits: indexes change speed, not answers."""
    rng = random.Random(20261130)
    docs = [_random_doc(rng, i) for i in range(300)]
    await coll.insert_many([dict(d) for d in docs])
    for keys in (
        [("t", 1), ("s", 1)],
        [("t", 1), ("del", 1), ("_id", -1)],
        [("n", 1)],
        [("s", 1), ("d", -1)],
        [("d", 1)],
    ):
        await coll.create_index(keys)
    canonical = [codec.canonical(d) for d in docs]
    used: set[str] = set()
    for _ in range(400):
        query = _random_filter(rng)
        sort = rng.choice([[], [("_id", -1)], [("s", 1), ("_id", 1)], [("d", -1), ("_id", -1)]])
        limit = rng.choice([0, 1, 5, 50])
        matcher = prepared(codec.canonical(query))  # the engine's matcher, on a full scan
        expected = [d for d in canonical if filter_applies(matcher, d)]
        for field, direction in reversed(sort):
            expected.sort(
                key=lambda d, f=field, r=direction: sort_value(d, f, r < 0), reverse=direction < 0
            )
        cursor = coll.find(query)
        if sort:
            cursor = cursor.sort(sort)
        got = await cursor.limit(limit).to_list()
        if sort:
            want = expected[:limit] if limit else expected
            assert [d["_id"] for d in got] == [d["_id"] for d in want], (query, sort, limit)
        else:
            ids = {d["_id"] for d in expected}
            assert {d["_id"] for d in got} <= ids and len(got) == (
                min(limit, len(ids)) if limit else len(ids)
            )
        assert await coll.count_documents(query) == len(expected)
        used.add(plan(coll.engine._store, codec.canonical(query), sort).name)
    assert {"COLLSCAN", "OR"} <= used and len(used) >= 5  # the indexes really were used


def test_values_order_as_in_mongodb() -> None:
    ordered = [
        None,
        -5,
        2.5,
        3,
        "",
        "a",
        {"a": 1},
        [1],
        Binary(b"\x00" * 16, 4),
        True,
        datetime(2020, 1, 1),
    ]
    backwards = ordered[::-1]  # the sort must do all the work
    assert sorted(backwards, key=sort_key) == ordered
    assert sort_key(1) == sort_key(1.0)  # numbers compare by value across types


async def test_booleans_never_equal_numbers(coll: EmbeddedCollection) -> None:
    await coll.insert_many([{"_id": 1, "v": True}, {"_id": 2, "v": 1}, {"_id": 3, "v": 1.0}])
    assert [d["_id"] async for d in coll.find({"v": 1})] == [2, 3]
    assert [d["_id"] async for d in coll.find({"v": True})] == [1]
    assert [d["_id"] async for d in coll.find({"v": {"$in": [1, "x"]}})] == [2, 3]
    assert [d["_id"] async for d in coll.find({"v": {"$ne": True}})] == [2, 3]
    assert [d["_id"] async for d in coll.find({"v": {"$nin": [False, True]}})] == [2, 3]


async def test_uuids_match_their_binary_and_come_back_as_uuids(coll: EmbeddedCollection) -> None:
    u = uuid.uuid4()
    await coll.insert_one({"_id": u, "ref": Binary.from_uuid(u)})
    found = await coll.find_one({"ref": u})
    assert found == {"_id": u, "ref": u}
    assert await coll.find_one({"_id": Binary.from_uuid(u)}) is not None


async def test_dates_are_stored_at_millisecond_precision_in_utc(coll: EmbeddedCollection) -> None:
    moment = datetime(2026, 5, 1, 12, 0, 0, 123456, tzinfo=timedelta_tz(2))
    await coll.insert_one({"_id": 1, "at": moment})
    stored = await coll.find_one({"at": moment})
    assert stored is not None
    assert stored["at"] == datetime(2026, 5, 1, 10, 0, 0, 123000, tzinfo=UTC)
    assert stored["at"].tzinfo is not None


def timedelta_tz(hours: int) -> Any:
    from datetime import timezone

    return timezone(timedelta(hours=hours))


async def test_max_follows_bson_order_from_null(coll: EmbeddedCollection) -> None:
    await coll.insert_one({"_id": 1, "seen": None})
    day = datetime(2026, 1, 2, tzinfo=UTC)
    await coll.update_one({"_id": 1}, {"$max": {"seen": day}})
    await coll.update_one({"_id": 1}, {"$max": {"seen": day - timedelta(days=1)}})
    assert (await coll.find_one({"_id": 1}))["seen"] == day  # type: ignore[index]


# -- the 16 MiB document limit ---------------------------------------------------------------


async def test_documents_over_16_mib_are_refused(coll: EmbeddedCollection) -> None:
    with pytest.raises(DocumentTooLarge):
        await coll.insert_one({"a": BIG, "b": BIG, "c": "y"})
    await coll.insert_one({"_id": 1, "a": BIG})
    with pytest.raises(OperationFailure) as caught:
        await coll.update_one({"_id": 1}, {"$set": {"b": BIG}})
    assert caught.value.code == 17419
    assert "b" not in (await coll.find_one({"_id": 1}))  # type: ignore[operator]


async def test_aggregation_rows_over_16_mib_fail_as_on_a_server(coll: EmbeddedCollection) -> None:
    db = coll.database
    await db["big"].insert_many([{"k": 1, "blob": "x" * 1_000_000} for _ in range(17)])
    await coll.insert_one({"k": 1})
    lookup = {"$lookup": {"from": "big", "localField": "k", "foreignField": "k", "as": "all"}}
    with pytest.raises(OperationFailure):
        await coll.aggregate([lookup])
    # Unwound right away, MongoDB never builds the big array: fine.
    rows = await (await coll.aggregate([lookup, {"$unwind": "$all"}, {"$count": "n"}])).to_list()
    assert rows == [{"n": 17}]
    with pytest.raises(OperationFailure):
        await db["big"].aggregate([{"$group": {"_id": None, "all": {"$push": "$blob"}}}])


# -- the async API ----------------------------------------------------------------------------


async def test_cursor_chains_and_reads_in_batches(coll: EmbeddedCollection) -> None:
    await coll.insert_many([{"_id": i, "even": i % 2 == 0} for i in range(1200)])
    # 600 matches; the 550 after the first 10 span two decoding batches.
    cursor = coll.find({"even": True}, {"_id": 1}).sort("_id", -1).skip(10).limit(550)
    first = await cursor.next()
    assert first == {"_id": 1178}
    rest = [d["_id"] async for d in cursor]
    assert len(rest) == 549 and rest[-1] == 1178 - 2 * 549
    with pytest.raises(InvalidOperation):
        cursor.limit(1)
    assert await coll.find({}).sort([("_id", 1)]).to_list(3) == [
        {"_id": i, "even": i % 2 == 0} for i in range(3)
    ]


@pytest.mark.usefixtures("coll")
async def test_operations_run_off_the_event_loop() -> None:
    threads: list[str] = []
    observers.append(lambda op: threads.append(threading.current_thread().name))
    try:
        from service.embedded import aio

        name = await aio.run(lambda: threading.current_thread().name)
    finally:
        observers.pop()
    assert name.startswith("embedded-mongodb") and name != threading.current_thread().name


async def test_bulk_write_reports_like_pymongo(coll: EmbeddedCollection) -> None:
    await coll.create_index("k", unique=True)
    result = await coll.bulk_write(
        [
            InsertOne({"_id": 1, "k": 1}),
            ReplaceOne({"_id": 2}, {"k": 2}, upsert=True),
            UpdateOne({"_id": 1}, {"$set": {"x": 1}}),
            DeleteOne({"_id": 2}),
        ]
    )
    assert (result.inserted_count, result.upserted_count, result.modified_count) == (1, 1, 1)
    assert result.deleted_count == 1 and result.upserted_ids == {1: 2}
    with pytest.raises(BulkWriteError) as caught:
        await coll.bulk_write([InsertOne({"k": 1}), InsertOne({"k": 3})], ordered=False)
    assert [e["index"] for e in caught.value.details["writeErrors"]] == [0]
    assert await coll.count_documents({"k": 3}) == 1


async def test_find_one_and_update_and_upserts(coll: EmbeddedCollection) -> None:
    from pymongo import ReturnDocument

    after = await coll.find_one_and_update(
        {"_id": "c"}, {"$inc": {"n": 1}}, upsert=True, return_document=ReturnDocument.AFTER
    )
    assert after == {"_id": "c", "n": 1}
    before = await coll.find_one_and_update({"_id": "c"}, {"$inc": {"n": 1}})
    assert before == {"_id": "c", "n": 1}
    result = await coll.update_one({"_id": "d"}, {"$set": {"n": 0}}, upsert=True)
    assert result.upserted_id == "d" and result.matched_count == 0


async def test_sessions_and_change_streams_are_refused_clearly(coll: EmbeddedCollection) -> None:
    with pytest.raises(NotImplementedError, match="sessions"):
        coll.database.client.start_session()
    with pytest.raises(NotImplementedError, match="change streams"):
        coll.watch()


async def test_ttl_indexes_expire_documents(coll: EmbeddedCollection) -> None:
    await coll.create_index("expires_at", expireAfterSeconds=0)
    now = datetime.now(UTC)
    await coll.insert_many(
        [
            {"_id": 1, "expires_at": now - timedelta(seconds=5)},
            {"_id": 2, "expires_at": now + timedelta(hours=1)},
        ]
    )
    coll.engine._store._next_expiry = None  # the monitor's next pass is due now
    assert [d["_id"] async for d in coll.find({})] == [2]


async def test_index_information_and_buildinfo_serve_beanie(coll: EmbeddedCollection) -> None:
    info = await coll.database.command({"buildInfo": 1})
    assert int(info["version"].split(".")[0]) >= 5
    await coll.create_index([("a", 1), ("b", -1)], name="ab")
    assert (await coll.index_information())["ab"]["key"] == [("a", 1), ("b", -1)]
    assert await coll.database.list_collection_names() == ["c"]
    with pytest.raises(OperationFailure):
        await coll.create_index([("a", 1)], name="ab")  # same name, other definition


# -- exact plans: the index bounds decide the filter, candidates are not re-checked ----------


async def _expected(docs: list[dict[str, Any]], query: Any) -> list[Any]:
    matcher = prepared(codec.canonical(query))
    return sorted(d["_id"] for d in docs if filter_applies(matcher, codec.canonical(d)))


async def test_exact_plans_skip_the_recheck_and_answer_exactly(
    coll: EmbeddedCollection, monkeypatch: Any
) -> None:
    docs: list[dict[str, Any]] = [
        {"_id": i, "t": i % 3, "del": i % 4 == 0, "s": ["a", None, "b"][i % 3]} for i in range(60)
    ]
    for doc in docs[::7]:
        del doc["s"]  # missing fields are indexed as null
    await coll.insert_many([dict(d) for d in docs])
    await coll.create_index([("t", 1), ("del", 1), ("_id", -1)])
    await coll.create_index([("s", 1)])
    decoded = 0
    original = codec.to_canonical

    def counting(raw: bytes) -> dict[str, Any]:
        nonlocal decoded
        decoded += 1
        return original(raw)

    monkeypatch.setattr(codec, "to_canonical", counting)
    exact = [
        {"t": 1, "del": False},
        {"t": {"$in": [0, 2]}, "del": {"$eq": False}},
        {"s": None},  # null or missing, as MongoDB matches it
        {"s": {"$in": ["a", None]}},
    ]
    for query in exact:
        assert plan(coll.engine._store, codec.canonical(query)).exact, query
        decoded = 0
        got = await coll.find(query).to_list()
        assert decoded == 0, query  # no candidate decoded to re-check the filter
        assert sorted(d["_id"] for d in got) == await _expected(docs, query), query
        paged = await coll.find(query).sort("_id", -1).limit(5).to_list()
        assert [d["_id"] for d in paged] == sorted(await _expected(docs, query))[::-1][:5]


async def test_residual_conditions_are_still_applied(coll: EmbeddedCollection) -> None:
    docs: list[dict[str, Any]] = [
        {"_id": i, "t": i % 3, "del": False, "s": "ab"[i % 2], "n": [i, i + 1] if i % 5 else i}
        for i in range(60)
    ]
    await coll.insert_many([dict(d) for d in docs])
    await coll.create_index([("t", 1), ("del", 1)])
    await coll.create_index([("n", 1)])  # multikey: arrays stored
    await coll.create_index([("s", 1)], partialFilterExpression={"t": 1}, name="partial")
    residual = [
        {"t": 1, "del": False, "s": "a"},  # a field the index does not hold
        {"t": 1, "del": False, "s": {"$ne": "a"}},
        {"t": 1, "del": {"$in": [False], "$ne": True}},  # an operator besides the points
        {"t": 1, "del": False, "$or": [{"s": "a"}, {"s": "b"}]},
        {"t": {"$gte": 1}, "del": False},  # a range
        {"n": 6},  # a multikey index: equality also matches array elements
        {"s": "a", "t": 1},
        {"t": 1, "del": False, "$expr": {"$gt": ["$_id", 30]}},
        {"t": 1, "del": {"$in": []}},  # no bounds at all: nothing matches
    ]
    for query in residual:
        assert not plan(coll.engine._store, codec.canonical(query)).exact, query
        got = await coll.find(query).to_list()
        assert sorted(d["_id"] for d in got) == await _expected(docs, query), query
    assert [d["_id"] for d in await coll.find({"t": 1, "del": False, "s": "a"}).to_list()] == [
        i for i in range(60) if i % 3 == 1 and i % 2 == 0
    ]


async def test_a_point_read_by_id_is_planned_on_the_id_index_and_still_checked(
    coll: EmbeddedCollection,
) -> None:
    # One `_id` value plans straight on `_id_` (no other index costed); the other conditions
    # are still applied to the one candidate.
    docs: list[dict[str, Any]] = [{"_id": i, "t": i % 3, "del": i % 4 == 0} for i in range(40)]
    await coll.insert_many([dict(d) for d in docs])
    await coll.create_index([("t", 1), ("del", 1)])
    queries = [
        {"_id": 5, "t": 2, "del": False},
        {"_id": 5, "t": 1, "del": False},  # another "tenant": no match
        {"_id": 8, "t": 2, "del": False},  # deleted: no match
        {"_id": {"$in": [7]}, "t": {"$in": [0, 1]}},
        {"_id": {"$eq": 9, "$gt": 3}},
        {"_id": 99, "t": 0},
    ]
    for query in queries:
        chosen = plan(coll.engine._store, codec.canonical(query))
        assert chosen.name == "_id_", query
        got = await coll.find(query).to_list()
        assert sorted(d["_id"] for d in got) == await _expected(docs, query), query
    assert await coll.find_one({"_id": 5, "t": 2, "del": False}) == docs[5]
    assert await coll.find_one({"_id": 5, "t": 1}) is None
    # Several ids are costed as before (any index may be cheaper for them).
    several = {"_id": {"$in": [1, 2, 3]}, "t": 1, "del": False}
    got = await coll.find(several).to_list()
    assert sorted(d["_id"] for d in got) == await _expected(docs, several)


async def test_point_reads_run_on_the_loop_only_when_the_engine_is_free(
    coll: EmbeddedCollection, monkeypatch: Any
) -> None:
    from service.embedded import aio

    await coll.insert_many([{"_id": i, "v": i * 10} for i in range(5)])
    where: list[str] = []
    first = aio.EmbeddedCursor._first

    def recording(self: Any) -> Any:
        where.append(threading.current_thread().name)
        return first(self)

    monkeypatch.setattr(aio.EmbeddedCursor, "_first", recording)
    assert await coll.find_one({"_id": 3}) == {"_id": 3, "v": 30}
    assert await coll.find_one({"v": 30}) == {"_id": 3, "v": 30}  # not by `_id`: the worker
    assert where[0] == threading.current_thread().name
    assert where[1].startswith("embedded-mongodb")
    # While another call holds the engine, a point read waits for it in the worker.
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with aio._ENGINE:
            held.set()
            release.wait(5)

    holder = threading.Thread(target=hold)
    holder.start()
    held.wait(5)
    pending = asyncio.ensure_future(coll.find_one({"_id": 4}))
    await asyncio.sleep(0.05)
    assert not pending.done()  # it did not run beside the holder
    release.set()
    assert await pending == {"_id": 4, "v": 40}
    holder.join()
    assert where[2].startswith("embedded-mongodb")
