"""Issue 22's findings 2-6: the embedded backend answers as MongoDB does (each fails unfixed).

The expected answers are MongoDB's, from its documentation and its jstests (cited per test),
not from the backend's own matcher.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import BulkWriteError, ExecutionTimeout, OperationFailure, WriteError

from service.embedded import EmbeddedCollection, embedded_database
from service.embedded import engine as engine_module
from service.embedded.keys import sort_key

pytestmark = pytest.mark.embedded_only


@pytest.fixture
def coll() -> EmbeddedCollection:
    return embedded_database("t")["c"]


async def _ids(coll: EmbeddedCollection, query: dict[str, Any], **kwargs: Any) -> list[Any]:
    return [d["_id"] async for d in coll.find(query, **kwargs)]


# -- 2. multikey point intersection -------------------------------------------------------

AND_AB = {"$and": [{"v": "a"}, {"v": "b"}]}


@pytest.mark.parametrize(
    "query",
    [
        AND_AB,
        {"$and": [{"v": {"$in": ["a", "x"]}}, {"v": {"$in": ["b", "y"]}}]},
        {"v": {"$eq": "a", "$in": ["b"]}},
        {"$and": [{"v": "a"}, {"v": "b"}], "$or": [{"v": "a"}, {"w": 1}]},
    ],
)
async def test_multikey_points_of_one_field_are_not_intersected(
    coll: EmbeddedCollection, query: dict[str, Any]
) -> None:
    # Two conditions on one array field may be met by two of its elements.
    await coll.create_index("v")
    await coll.insert_many([{"_id": 0, "v": ["a", "b"]}, {"_id": 1, "v": ["a"]}])
    assert await _ids(coll, query) == [0]
    assert await coll.count_documents(query) == 1


async def test_multikey_intersection_in_every_write_path(coll: EmbeddedCollection) -> None:
    await coll.create_index("v")
    docs = [{"_id": i, "v": ["a", "b"]} for i in range(4)]
    await coll.insert_many(docs)
    assert (await coll.update_one(AND_AB, {"$set": {"u": 1}})).modified_count == 1
    assert (await coll.replace_one(AND_AB, {"v": ["a", "b"], "r": 1})).modified_count == 1
    found = await coll.find_one_and_update(
        AND_AB, {"$set": {"f": 1}}, return_document=ReturnDocument.AFTER
    )
    assert found is not None and found["f"] == 1
    assert (await coll.delete_one(AND_AB)).deleted_count == 1
    assert (await coll.delete_many(AND_AB)).deleted_count == 3


# -- 3. null on dotted paths ----------------------------------------------------------------


async def test_null_on_a_dotted_path_in_an_exact_plan(coll: EmbeddedCollection) -> None:
    # jstests/core/null2.js: with or without an index on "a.b", {"a.b": null} matches
    # documents where some element of `a` is a subdocument lacking b (or b null), or where
    # `a` is missing; never `[]` or arrays of scalars (null_query_semantics.js agrees for
    # [null, null] and [[]]).
    await coll.create_index("a.b")
    # These five leave the index single-valued, so its plan is exact unless told otherwise.
    await coll.insert_many(
        [
            {"_id": 0, "a": []},
            {"_id": 1, "a": [1, 2]},
            {"_id": 2, "a": [None, None]},
            {"_id": 3, "a": [[]]},
            {"_id": 4},
        ]
    )
    queries: list[dict[str, Any]] = [
        {"a.b": None},
        {"a.b": {"$in": [None]}},
        {"a.b": {"$eq": None}},
    ]
    for query in queries:
        assert await _ids(coll, query) == [4]
        assert await coll.count_documents(query) == 1
    await coll.insert_many(
        [
            {"_id": 5, "a": [{"b": 5}]},
            {"_id": 6, "a": [{}, {"b": 5}]},
            {"_id": 7, "a": [5, {"b": 5}]},
        ]
    )
    for query in queries:
        assert await _ids(coll, query) == [4, 6]
    await coll.drop_index("a.b_1")
    assert await _ids(coll, {"a.b": None}) == [4, 6]


async def test_null_on_a_dotted_path_below_a_scalar(coll: EmbeddedCollection) -> None:
    # jstests/core/query/null_query_semantics.js (testDottedEqualsNull and its $ne twin):
    # {"a.b": null} matches {a: 4}, {a: null}, {a: {}}, {a: {b: null}} and a missing `a`;
    # {"a.b": {$ne: null}} is exactly the others.
    docs: list[dict[str, Any]] = [
        {"_id": "a_empty_subobject", "a": {}},
        {"_id": "a_null", "a": None},
        {"_id": "a_number", "a": 4},
        {"_id": "a_subobject_b_not_null", "a": {"b": "hi"}},
        {"_id": "a_subobject_b_null", "a": {"b": None}},
        {"_id": "no_a"},
        {"_id": "a_value_array_no_nulls", "a": [1, "string", 4]},
        {"_id": "a_object_array_some_b_missing", "a": [{"b": 3}, {}]},
    ]
    await coll.insert_many(docs)
    equal = ["a_empty_subobject", "a_null", "a_number", "a_object_array_some_b_missing"]
    equal += ["a_subobject_b_null", "no_a"]
    for indexed in (False, True):
        if indexed:
            await coll.create_index("a.b")
        for query in ({"a.b": None}, {"a.b": {"$eq": None}}, {"a.b": {"$in": [None, 9]}}):
            assert sorted(await _ids(coll, query)) == sorted(equal)
        others = sorted(d["_id"] for d in docs if d["_id"] not in equal)
        for query in ({"a.b": {"$ne": None}}, {"a.b": {"$nin": [None, 9]}}):
            assert sorted(await _ids(coll, query)) == others
        both = {"$or": [{"a.b": None}], "a.b": {"$in": [None]}}
        assert sorted(await _ids(coll, both)) == sorted(equal)


# -- 4. number <-> boolean updates ----------------------------------------------------------


async def test_an_update_from_a_number_to_a_boolean_is_stored(coll: EmbeddedCollection) -> None:
    await coll.create_index("a")
    await coll.insert_many([{"_id": 0, "a": 1}, {"_id": 1, "a": 1}, {"_id": 2, "a": True}])
    result = await coll.update_one({"_id": 0}, {"$set": {"a": True}})
    assert (result.matched_count, result.modified_count) == (1, 1)
    assert await coll.find_one({"_id": 0}) == {"_id": 0, "a": True}
    # With another field changed too, the index entry follows the new type.
    await coll.update_one({"_id": 1}, {"$set": {"a": True, "b": 2}})
    assert await _ids(coll, {"a": True}) == [0, 1, 2]
    assert await _ids(coll, {"a": 1}) == []
    await coll.update_one({"_id": 2}, {"$set": {"a": 1.0}})
    assert await _ids(coll, {"a": 1}) == [2]
    # A true no-op still reports nothing modified.
    assert (await coll.update_one({"_id": 2}, {"$set": {"a": 1.0}})).modified_count == 0


async def test_a_document_holding_nan_is_not_modified_by_a_no_op(coll: EmbeddedCollection) -> None:
    # NaN is the same BSON as NaN: setting a field to its value (or another field's NaN
    # staying put) modifies nothing.
    await coll.insert_one({"_id": 0, "n": math.nan, "s": 1})
    assert (await coll.update_one({"_id": 0}, {"$set": {"s": 1}})).modified_count == 0
    assert (await coll.update_one({"_id": 0}, {"$set": {"n": math.nan}})).modified_count == 0
    assert (await coll.update_one({"_id": 0}, {"$set": {"s": 1.0}})).modified_count == 1


# -- 5. empty arrays sort before null -------------------------------------------------------


async def test_empty_arrays_sort_before_null_and_missing(coll: EmbeddedCollection) -> None:
    # cursor.sort(): "a comparison of an empty array considers the empty array as less than a
    # null value or a missing field value"; arrays sort by their smallest element ascending
    # and their largest descending.
    docs = [
        {"_id": 0, "s": "x"},
        {"_id": 1, "s": {"k": 1}},
        {"_id": 2, "s": []},
        {"_id": 3, "s": None},
        {"_id": 4},
        {"_id": 5, "s": [3, "z"]},
    ]
    await coll.insert_many(docs)
    for indexed in (False, True):
        if indexed:
            await coll.create_index("s")
        up = await _ids(coll, {}, sort=[("s", 1), ("_id", 1)])
        assert up == [2, 3, 4, 5, 0, 1]
        down = await _ids(coll, {}, sort=[("s", -1), ("_id", 1)])
        assert down == [1, 5, 0, 3, 4, 2]


async def test_find_one_and_update_picks_the_empty_array_first(coll: EmbeddedCollection) -> None:
    await coll.create_index("s")
    await coll.insert_many([{"_id": 0, "s": "a"}, {"_id": 1, "s": []}, {"_id": 2, "s": None}])
    before = await coll.find_one_and_update({}, {"$set": {"hit": 1}}, sort=[("s", 1)])
    assert before is not None and before["_id"] == 1


# -- 6. the smaller ones --------------------------------------------------------------------


async def test_partial_type_filter_covers_arrays_holding_the_type(
    coll: EmbeddedCollection,
) -> None:
    # A partial filter is a query: {$type: "string"} matches an array holding a string.
    await coll.create_index(
        "f", unique=True, partialFilterExpression={"f": {"$type": "string"}}, name="f_u"
    )
    await coll.insert_one({"_id": 0, "f": ["x", 1]})
    with pytest.raises(WriteError) as caught:
        await coll.insert_one({"_id": 1, "f": "x"})
    assert caught.value.code == 11000
    await coll.insert_many([{"_id": 2, "f": None}, {"_id": 3, "f": None}])  # not covered


async def test_the_same_keys_under_another_name_conflict(coll: EmbeddedCollection) -> None:
    assert await coll.create_index("k", name="k_1") == "k_1"
    assert await coll.create_index("k", name="k_1") == "k_1"  # the same index again: fine
    with pytest.raises(OperationFailure) as caught:
        await coll.create_index("k", name="other")
    assert caught.value.code == 85
    with pytest.raises(OperationFailure) as caught:
        await coll.create_index("k", name="k_1", unique=True)
    assert caught.value.code == 85
    # Another partial filter makes another index (MongoDB allows it).
    await coll.create_index("k", name="k_p", partialFilterExpression={"k": {"$gt": 1}})
    assert set(await coll.index_information()) == {"_id_", "k_1", "k_p"}


def test_nan_sorts_below_minus_infinity_and_equals_only_nan() -> None:
    nan, ninf = sort_key(math.nan), sort_key(-math.inf)
    assert nan < ninf < sort_key(0)
    assert nan == sort_key(float("nan")) != ninf
    assert sort_key(-1e308) > ninf


async def test_nan_is_its_own_index_key(coll: EmbeddedCollection) -> None:
    await coll.create_index("n")
    await coll.insert_many([{"_id": 0, "n": -math.inf}, {"_id": 1, "n": math.nan}])
    assert await _ids(coll, {"n": -math.inf}) == [0]
    assert await _ids(coll, {"n": math.nan}) == [1]
    assert await _ids(coll, {"n": {"$in": [math.nan]}}) == [1]
    assert await _ids(coll, {}, sort=[("n", 1)]) == [1, 0]


async def test_collation_is_refused_everywhere(coll: EmbeddedCollection) -> None:
    en = {"locale": "en", "strength": 2}
    calls = [
        lambda: coll.find({}, collation=en).to_list(),
        lambda: coll.find({}).collation(en).to_list(),
        lambda: coll.count_documents({}, collation=en),
        lambda: coll.distinct("a", collation=en),
        lambda: coll.aggregate([], collation=en),
        lambda: coll.create_index("a", collation=en),
        lambda: coll.update_one({}, {"$set": {"a": 1}}, collation=en),
        lambda: coll.delete_many({}, collation=en),
        lambda: coll.find_one_and_update({}, {"$set": {"a": 1}}, collation=en),
        lambda: coll.find_one_and_delete({}, collation=en),
        lambda: coll.bulk_write([UpdateOne({}, {"$set": {"a": 1}}, collation=en)]),
    ]
    for call in calls:
        with pytest.raises(NotImplementedError, match="collation"):
            await call()


async def test_array_filters_are_refused_clearly(coll: EmbeddedCollection) -> None:
    await coll.insert_one({"_id": 0, "a": [1, 2]})
    update = {"$set": {"a.$[x]": 0}}
    calls = [
        lambda: coll.update_one({}, update, array_filters=[{"x": 1}]),
        lambda: coll.update_many({}, update, array_filters=[{"x": 1}]),
        lambda: coll.find_one_and_update({}, update, array_filters=[{"x": 1}]),
        lambda: coll.bulk_write([UpdateOne({}, update, array_filters=[{"x": 1}])]),
    ]
    for call in calls:
        with pytest.raises(NotImplementedError, match="array_filters"):
            await call()
    assert await coll.find_one({"_id": 0}) == {"_id": 0, "a": [1, 2]}


async def test_an_array_id_is_refused(coll: EmbeddedCollection) -> None:
    # MongoDB: "can't use an array for _id" (BadValue, code 2).
    with pytest.raises(WriteError) as caught:
        await coll.insert_one({"_id": [1, 2]})
    assert caught.value.code == 2
    with pytest.raises(BulkWriteError) as bulk:
        await coll.insert_many([{"_id": 1}, {"_id": [1]}, {"_id": 3}], ordered=False)
    assert [e["code"] for e in bulk.value.details["writeErrors"]] == [2]
    with pytest.raises(WriteError):
        await coll.update_one({"_id": [5]}, {"$set": {"a": 1}}, upsert=True)
    assert sorted(await _ids(coll, {})) == [1, 3]


class _Clock:
    """A monotonic clock that moves one second at every reading."""

    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        self.now += 1.0
        return self.now


async def test_max_time_ms_is_honoured(
    coll: EmbeddedCollection, monkeypatch: pytest.MonkeyPatch
) -> None:
    await coll.insert_many([{"_id": i, "a": i} for i in range(600)])
    assert len(await coll.find({"a": {"$gte": 0}}).max_time_ms(60_000).to_list()) == 600
    from service.embedded import aio

    clock = _Clock()
    monkeypatch.setattr(engine_module, "time", clock)
    monkeypatch.setattr(aio, "time", clock)
    calls = [
        lambda: coll.find({"a": {"$gte": 0}}).max_time_ms(1500).to_list(),
        lambda: coll.find({"a": {"$gte": 0}}, max_time_ms=1500).to_list(),
        lambda: coll.count_documents({"a": {"$gte": 0}}, maxTimeMS=1500),
        lambda: coll.distinct("a", {}, maxTimeMS=1500),
        lambda: coll.aggregate([{"$match": {}}, {"$count": "n"}], maxTimeMS=1500),
        lambda: coll.find_one_and_update({"b": 1}, {"$set": {"c": 1}}, maxTimeMS=1500),
    ]
    for call in calls:
        with pytest.raises(ExecutionTimeout) as caught:
            await call()
        assert caught.value.code == 50
    # Without a limit nothing is interrupted.
    assert await coll.count_documents({"a": {"$gte": 0}}) == 600


def test_a_partial_index_built_outside_create_index_covers_arrays_too() -> None:
    # A snapshot's load builds its indexes on the store directly: the same rule must hold.
    from pymongo.errors import DuplicateKeyError

    from service.embedded import codec
    from service.embedded.engine import EngineClient
    from service.embedded.store import Index

    store = EngineClient().database("t").store("c")
    partial = {"f": {"$type": "string"}}
    store.create_index(
        Index("f_u", [("f", 1)], {"unique": True, "partialFilterExpression": partial})
    )
    store.insert(*codec.stored({"_id": 0, "f": ["x", 1]}))
    with pytest.raises(DuplicateKeyError):
        store.insert(*codec.stored({"_id": 1, "f": "x"}))
