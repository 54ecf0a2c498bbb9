"""The engine's fast paths give mongomock's route's answers, byte for byte (issue 27, point 3).

Simple `$set`/`$unset` updates, exact-plan updates (no re-match) and inclusion projections
skip mongomock's machinery. Here two engines hold the same documents and indexes; one runs
with the fast paths (`engine.FAST_PATHS`), the other without, and every operation must give
the same return value or error, the same stored BSON, the same index entries and unique
owners, and the same write-ahead log records. Documents, filters and updates are seeded
random (mixed BSON kinds, arrays, embedded documents, null, NaN, missing fields) plus the
cases that decide "modified" (1 -> 1.0 is a change, the same value is not).
"""

from __future__ import annotations

import contextlib
import enum
import functools
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID

import bson
import pytest
from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from bson.son import SON
from pymongo.errors import BulkWriteError, DocumentTooLarge, DuplicateKeyError

from service.embedded import codec, engine, keys, planner, work
from service.embedded import mongomock_hooks as hooks
from service.embedded.engine import EngineClient, EngineCollection
from tests.support.helpers import MemoryLog, decoded_fields, engine_outcome, engine_state

pytestmark = pytest.mark.embedded_only

FIELDS = ["a", "b", "c", "d", "tags", "n"]
VALUES: list[Any] = [
    None,
    0,
    1,
    1.0,
    -0.0,
    0.0,
    True,
    False,
    Int64(1),
    2**40,
    "x",
    "y",
    "",
    math.nan,
    datetime(2024, 1, 1, 12, 0, 0, 123000),
    ObjectId("0" * 23 + "1"),
    Binary(UUID(int=7).bytes, 4),
    b"\x01\x02",
    Decimal128("2.5"),
    [],
    [1],
    [None],
    [1, 2],
    ["x", "y"],
    [[1]],
    {"k": 1},
    {"k": [1, {"z": math.nan}]},
    {"k": None, "j": "x"},
]


def collection() -> tuple[EngineCollection, MemoryLog]:
    client = EngineClient()
    log = MemoryLog()
    client.recorder.log = log  # type: ignore[assignment]
    coll = client.database("db").get_collection("c")
    coll.create_index([("a", 1)], unique=True, sparse=True, name="a_unique")
    coll.create_index(
        [("b", 1)],
        unique=True,
        partialFilterExpression={"c": {"$type": "string"}},
        name="b_partial_unique",
    )
    coll.create_index([("c", 1), ("d", -1)], name="c_d")
    coll.create_index([("tags", 1)], name="tags")
    coll.create_index([("d", 1)], partialFilterExpression={"n": True}, name="d_partial")
    return coll, log


def random_doc(rng: random.Random, _id: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"_id": _id}
    for name in rng.sample(FIELDS, rng.randint(0, len(FIELDS))):
        doc[name] = rng.choice(VALUES)
    return doc


def random_filter(rng: random.Random, ids: int) -> dict[str, Any]:
    shape = rng.randrange(9)
    if shape == 0:
        return {"_id": rng.randrange(ids)}
    if shape == 1:
        return {"_id": {"$in": [rng.randrange(ids) for _ in range(rng.randint(0, 6))]}}
    if shape == 2:
        return {rng.choice(FIELDS): rng.choice(VALUES)}
    if shape == 3:
        return {"c": rng.choice(VALUES), "d": rng.choice(VALUES)}
    if shape == 4:
        return {"_id": rng.randrange(ids), rng.choice(FIELDS): rng.choice([None, 1, "x"])}
    if shape == 5:
        return {"tags": {"$in": [rng.choice(VALUES) for _ in range(2)]}}
    if shape == 6:
        return {"d": {"$gte": rng.choice([0, 1, "x"])}}
    if shape == 7:
        return {"c.k": rng.choice([None, 1])}
    return {}


def random_update(rng: random.Random) -> dict[str, Any]:
    names = rng.sample([*FIELDS, "new1", "new2"], rng.randint(1, 4))
    cut = rng.randint(0, len(names))
    update: dict[str, Any] = {}
    if cut:
        update["$set"] = {name: rng.choice(VALUES) for name in names[:cut]}
    if cut < len(names):
        update["$unset"] = dict.fromkeys(names[cut:], "")
    return update


@contextlib.contextmanager
def fast_paths(on: bool) -> Iterator[None]:
    before = engine.FAST_PATHS
    engine.FAST_PATHS = on
    try:
        yield
    finally:
        engine.FAST_PATHS = before


def update(coll: EngineCollection, filter: Any, change: Any, *, multi: bool, fast: bool) -> Any:
    # As aio.py hands them over: canonical filter and update.
    query = codec.canonical(filter)
    canonical = codec.canonical({"u": change})["u"]
    with fast_paths(fast):
        return engine_outcome(lambda: coll._update(query, canonical, upsert=False, multi=multi))


def same_state(
    fast: tuple[EngineCollection, MemoryLog], slow: tuple[EngineCollection, MemoryLog]
) -> None:
    mine, theirs = engine_state(*fast), engine_state(*slow)
    assert mine["docs"] == theirs["docs"]
    assert mine["indexes"] == theirs["indexes"]
    assert mine["log"] == theirs["log"]


def pair(docs: list[dict[str, Any]]) -> tuple[tuple[Any, MemoryLog], tuple[Any, MemoryLog]]:
    made = []
    for _ in range(2):
        coll, log = collection()
        for doc in docs:
            with contextlib.suppress(DuplicateKeyError):
                coll._insert(dict(doc))
        made.append((coll, log))
    return made[0], made[1]


def apply_both(fast: Any, slow: Any, filter: Any, change: Any, *, multi: bool) -> Any:
    mine = update(fast[0], filter, change, multi=multi, fast=True)
    theirs = update(slow[0], filter, change, multi=multi, fast=False)
    assert repr(mine) == repr(theirs), (filter, change, multi)  # repr: NaN in error details
    same_state(fast, slow)
    return mine[0]


@pytest.mark.parametrize("seed", range(40))
def test_random_simple_updates_match_mongomocks_route(seed: int) -> None:
    rng = random.Random(seed)
    docs = [random_doc(rng, i) for i in range(30)]
    fast, slow = pair(docs)
    same_state(fast, slow)
    for _ in range(40):
        apply_both(fast, slow, random_filter(rng, 32), random_update(rng), multi=rng.random() < 0.5)


def one(doc: dict[str, Any], filter: Any, change: Any, *, multi: bool = False) -> Any:
    fast, slow = pair([doc])
    return apply_both(fast, slow, filter, change, multi=multi)


def test_setting_the_same_value_is_no_modification_and_no_record() -> None:
    answer = one({"_id": 1, "a": 1, "t": True, "f": 1.5}, {"_id": 1}, {"$set": {"a": 1, "t": True}})
    assert (answer["n"], answer["nModified"]) == (1, 0)


@pytest.mark.parametrize(
    ("stored", "given"), [(1, 1.0), (1.0, 1), (1, True), (True, 1), (0.0, -0.0), (1, Int64(1))]
)
def test_another_bson_kind_of_an_equal_value_is_a_modification(stored: Any, given: Any) -> None:
    answer = one({"_id": 1, "a": stored}, {"_id": 1}, {"$set": {"a": given}})
    assert (answer["n"], answer["nModified"]) == (1, 1)


def test_unset_of_a_missing_field_is_no_modification() -> None:
    answer = one({"_id": 1, "a": 1}, {"_id": 1}, {"$unset": {"zz": ""}})
    assert (answer["n"], answer["nModified"]) == (1, 0)


def test_new_fields_are_appended_in_the_order_named() -> None:
    fast, slow = pair([{"_id": 1, "c": "x", "a": 1}])
    apply_both(fast, slow, {"_id": 1}, {"$set": {"z": 1, "a": 2, "b": 3}}, multi=False)
    raw = fast[0]._store.docs[next(iter(fast[0]._store.docs))][0]
    assert list(codec.to_canonical(raw)) == ["_id", "c", "a", "z", "b"]


def test_unique_clash_raises_the_same_error_and_leaves_the_document() -> None:
    fast, slow = pair([{"_id": 1, "a": "one"}, {"_id": 2, "a": "two"}])
    records = len(fast[1].records)
    answer = apply_both(fast, slow, {"_id": 2}, {"$set": {"a": "one", "x": 1}}, multi=False)
    assert answer[0] == "DuplicateKeyError"
    assert answer[2]["keyValue"] == {"a": "one"}
    assert len(fast[1].records) == records  # nothing logged for the failed update


def test_a_clash_midway_through_update_many_keeps_the_earlier_changes() -> None:
    docs = [{"_id": i, "b": i, "c": "s"} for i in range(1, 4)]
    fast, slow = pair(docs)
    assert len(fast[0]._store) == 3
    answer = apply_both(fast, slow, {"c": "s"}, {"$set": {"b": 7}}, multi=True)
    assert answer[0] == "DuplicateKeyError"  # b is unique where c is a string
    assert codec.to_canonical(fast[0]._store.docs[(2, 1)][0])["b"] == 7
    assert codec.to_canonical(fast[0]._store.docs[(2, 2)][0])["b"] == 2


def test_an_update_moves_a_document_into_and_out_of_a_partial_index() -> None:
    fast, slow = pair([{"_id": 1, "b": 5, "c": 3}, {"_id": 2, "b": 5, "c": "s"}])
    answer = apply_both(fast, slow, {"_id": 1}, {"$set": {"c": "now a string"}}, multi=False)
    assert answer[0] == "DuplicateKeyError"
    apply_both(fast, slow, {"_id": 2}, {"$unset": {"c": ""}}, multi=False)
    apply_both(fast, slow, {"_id": 1}, {"$set": {"c": "now a string"}}, multi=False)
    assert fast[0]._store.indexes["b_partial_unique"].owners == {((2, 5),): (2, 1)}
    apply_both(fast, slow, {"_id": 2}, {"$set": {"n": True, "d": [1, 2]}}, multi=False)
    assert fast[0]._store.indexes["d_partial"].multikey


@pytest.mark.parametrize(
    "value",
    [None, [1, [2, {"x": None}]], {"k": {"j": [1, 2]}}, [], {}, math.nan, [math.nan]],
)
def test_arrays_documents_null_and_nan_as_set_values(value: Any) -> None:
    fast, slow = pair([{"_id": 1, "a": 1, "tags": {"k": {"j": [1, 2]}}}])
    for name in ("a", "tags", "fresh"):
        for _ in range(2):  # the second time it is the same value
            apply_both(fast, slow, {"_id": 1}, {"$set": {name: value}}, multi=False)


def test_the_same_nested_nan_is_no_modification() -> None:
    # MongoDB compares the stored BSON: a NaN inside an array or document is the same NaN.
    answer = one({"_id": 1, "a": [math.nan], "b": {"z": math.nan}}, {"_id": 1}, {"$set": {"c": 1}})
    assert answer["nModified"] == 1
    answer = one({"_id": 1, "a": [math.nan]}, {"_id": 1}, {"$set": {"a": [math.nan]}})
    assert answer["nModified"] == 0


def test_the_work_counted_is_the_same() -> None:
    docs = [{"_id": i, "c": 5, "d": i % 3} for i in range(20)]
    fast, slow = pair(docs)
    assert len(fast[0]._store) == 20
    for filter in ({"c": 5, "d": 1}, {"_id": {"$in": [1, 2, 3, 99]}}, {"d": {"$gte": 1}}):
        mine = update(fast[0], filter, {"$set": {"x": 1}}, multi=True, fast=True)
        theirs = update(slow[0], filter, {"$set": {"x": 1}}, multi=True, fast=False)
        assert mine == theirs
        assert mine[1]["docs_examined"] > 0


def test_shapes_left_to_mongomock() -> None:
    sets: dict[str, Any] = {"a": 1}
    documents: list[Any] = [
        {"$set": {"a.b": 1}},
        {"$set": {"_id": 1}},
        {"$set": {"$a": 1}},
        {"$set": {}},
        {"$set": {"a": 1}, "$unset": {"a": ""}},
        {"$set": {"a": datetime(2024, 1, 1, 0, 0, 0, 1)}},
        {"$set": {"a": (1, 2)}},
        {"$inc": {"a": 1}},
        {"$set": sets, "$inc": {"b": 1}},
        [{"$set": {"a": 1}}],
        {"a": 1},
    ]
    for document in documents:
        assert engine._simple_update(document, {}) is None, document
    assert engine._simple_update({"$set": sets}, {"hint": "a_1"}) is None
    assert engine._simple_update({"$set": sets, "$unset": {"b": ""}}, {}) == (sets, ["b"])


def test_upserts_and_other_operators_still_agree() -> None:
    fast, slow = pair([{"_id": 1, "a": 1}])
    apply_both(fast, slow, {"_id": 1}, {"$inc": {"a": 1}, "$set": {"b": 2}}, multi=False)
    for coll, on in ((fast[0], True), (slow[0], False)):
        with fast_paths(on):
            coll._update({"_id": 5}, {"$set": {"b": 2}}, upsert=True)
    same_state(fast, slow)


def test_mongomocks_filter_datetime_rule_is_kept() -> None:
    # mongomock truncates a filter's datetimes to milliseconds before matching.
    when = datetime(2024, 1, 1, 12, 0, 0, 123000)
    fast, slow = pair([{"_id": 1, "w": when}])
    query = {"w": datetime(2024, 1, 1, 12, 0, 0, 123456)}
    for coll, on in ((fast[0], True), (slow[0], False)):
        with fast_paths(on):
            assert coll._update(query, {"$set": {"x": 1}}, multi=False)["n"] == 1
    same_state(fast, slow)
    assert list(hooks.patch_datetimes({"v": when})) == ["v"]


def test_simple_updates_take_the_fast_path(monkeypatch: pytest.MonkeyPatch) -> None:
    taken: list[Any] = []
    original = EngineCollection._update_simply

    def spy(self: EngineCollection, *args: Any, **kwargs: Any) -> Any:
        taken.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EngineCollection, "_update_simply", spy)
    coll, _ = collection()
    coll._insert({"_id": 1, "seq": None})
    assert coll._update({"_id": 1, "seq": None}, {"$set": {"seq": 1}}, multi=False)["n"] == 1
    assert coll._update({"_id": 1}, {"$inc": {"seq": 1}}, multi=False)["nModified"] == 1
    assert len(taken) == 1


@pytest.mark.parametrize(
    "value", [math.nan, Decimal128("2.5"), ObjectId("0" * 23 + "1"), {"k": [1, "x"]}]
)
def test_a_duplicate_key_names_the_value(value: Any) -> None:
    # The message's `keyValue` is rebuilt from the index key: every kind, NaN included
    # (it failed to encode the key's stand-ins before: InvalidDocument instead of E11000).
    coll, _ = collection()
    coll._insert({"_id": 1, "a": value})
    with pytest.raises(DuplicateKeyError) as raised:
        coll._insert({"_id": 2, "a": value})
    assert raised.value.details is not None
    assert repr(raised.value.details["keyValue"]) == repr({"a": value})


# -- exact plans: no re-match --------------------------------------------------------------


SINGLE: list[Any] = [
    None,
    0,
    1,
    1.0,
    -0.0,
    True,
    False,
    "x",
    math.nan,
    Int64(1),
    2**40,
    [1],
    [None],
    [],
    [[1]],
    {"k": 1},
    datetime(2024, 1, 1),
    Binary(UUID(int=7).bytes, 4),
]


@pytest.mark.parametrize("seed", range(15))
def test_exact_plans_decide_like_the_matcher(seed: int) -> None:
    # A single-valued index (no document holds two keys) on values that test exactness:
    # arrays of one element, empty arrays, null and missing, numbers of several kinds,
    # booleans beside numbers. Every candidate of an exact plan must match, and an update
    # or find that skips the re-match must pick what the matcher picks.
    rng = random.Random(1000 + seed)
    docs = []
    for i in range(40):
        doc: dict[str, Any] = {"_id": i}
        for name in ("c", "d"):
            if rng.random() < 0.8:
                doc[name] = rng.choice(SINGLE)
        docs.append(doc)
    fast, slow = pair(docs)
    assert not fast[0]._store.indexes["c_d"].multikey
    exact = 0
    for _ in range(40):
        value, other = rng.choice(SINGLE[:11]), rng.choice(SINGLE[:11])
        filter = rng.choice(
            [
                {"c": value},
                {"c": {"$in": [value, other]}},
                {"c": value, "d": {"$eq": other}},
                {"_id": {"$in": [rng.randrange(40), rng.randrange(40)]}},
            ]
        )
        query = codec.canonical(filter)
        chosen = fast[0]._plan(query)
        if chosen.exact:
            exact += 1
            for raw, _ in chosen.candidates:
                assert engine.filter_applies(engine.prepared(query), codec.to_canonical(raw))
        apply_both(fast, slow, filter, {"$set": {"seen": rng.randrange(3)}}, multi=True)
        with fast_paths(True):
            mine = [doc["_id"] for doc in fast[0].find(filter)]
        with fast_paths(False):
            theirs = [doc["_id"] for doc in fast[0].find(filter)]
        assert mine == theirs, filter
    assert exact > 10


# -- projections ---------------------------------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_inclusion_projections_keep_the_documents_order(seed: int) -> None:
    rng = random.Random(2000 + seed)
    coll, _ = collection()
    for _ in range(30):
        doc = codec.canonical(random_doc(rng, rng.randrange(100)))
        names = rng.sample([*FIELDS, "_id", "zz"], rng.randint(1, 4))
        projection: Any = {name: rng.choice([1, True]) for name in names}
        if rng.random() < 0.3:
            projection["_id"] = rng.choice([0, False, 1, True])
        if rng.random() < 0.2:
            projection = list(names)
        with fast_paths(True):
            mine = coll.project(doc, projection)
        with fast_paths(False):
            theirs = coll.project(doc, projection)
        assert mine == theirs  # the same fields and values (mongomock puts `_id` last)
        assert list(mine) == [name for name in doc if name in mine]  # MongoDB's order
        assert codec.encode({"v": mine}) == codec.encode({"v": {k: doc[k] for k in mine}})


def test_projections_left_to_mongomock() -> None:
    for projection in ({}, {"_id": 0}, {"a": 0}, {"a.b": 1}, {"a": 1.0}, {"a": {"$slice": 1}}):
        assert engine._inclusion(projection) is None, projection
    assert engine._inclusion({"a": 1, "_id": False}) == frozenset({"a"})
    assert engine._inclusion({"_id": 1}) == frozenset({"_id"})


# -- partial filters ------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["$gt", "$gte", "$lt", "$lte"])
@pytest.mark.parametrize("bound", [0, -1, 1.5, Int64(2), -0.0, math.inf])
def test_a_numeric_range_partial_filter_covers_as_the_matcher_does(op: str, bound: Any) -> None:
    # The sequencer's `seq_unique` index covers `{seq: {$gt: 0}}`: decided without the
    # matcher for numbers, null and missing; the matcher's answer everywhere.
    covers = engine.partial_matcher({"seq": {op: bound}})
    query = engine.prepared({"seq": {op: bound}})
    values = [v for v in VALUES if not isinstance(v, Decimal128)]  # mongomock cannot order it
    for value in [*values, math.inf, -math.inf, -1, 3, [0, 5], [math.nan], ["x"]]:
        doc = codec.canonical({"_id": 1, "seq": value})
        assert covers(doc) == engine.filter_applies(query, doc), (op, bound, value)
    assert covers({"_id": 1}) == engine.filter_applies(query, {"_id": 1}) is False


@pytest.mark.parametrize("seed", range(10))
def test_a_projector_decodes_once_to_the_same_reply(seed: int) -> None:
    # What a cursor with a projection returns: the same values (UUIDs, aware datetimes) as
    # the canonical copy projected and re-encoded, in the document's order.
    rng = random.Random(3000 + seed)
    coll, _ = collection()
    plain = CodecOptions(uuid_representation=UuidRepresentation.STANDARD)
    for _ in range(30):
        doc = random_doc(rng, rng.randrange(100))
        doc["u"] = UUID(int=rng.randrange(1 << 64))
        doc["w"] = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
        raw = codec.encode(doc)
        names = rng.sample([*FIELDS, "_id", "u", "w", "zz"], rng.randint(1, 5))
        projection: Any = dict.fromkeys(names, 1)
        if rng.random() < 0.3:
            projection["_id"] = 0
        for options in (codec.READER, plain):
            mine = coll.projector(projection, options)(raw)
            with fast_paths(False):
                theirs = codec.reply(coll.project(codec.to_canonical(raw), projection), options)
            assert repr(mine) == repr(
                dict(sorted(theirs.items(), key=lambda i: list(doc).index(i[0])))
            )


# -- point lookups by `_id` -----------------------------------------------------------------


@pytest.mark.parametrize("seed", range(10))
def test_id_lookups_plan_as_the_general_planner(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(4000 + seed)
    ids: list[Any] = [None, 0, 1, 2.5, "x", ObjectId("0" * 23 + "2"), b"\x01", True, -0.0]
    ids += [Binary(UUID(int=9).bytes, 4), datetime(2024, 1, 1), Int64(7), 2**40]
    coll, _ = collection()
    for value in ids:
        with contextlib.suppress(DuplicateKeyError):
            coll._insert(codec.canonical({"_id": value, "c": rng.choice(VALUES)}))
    store = coll._store
    for _ in range(60):
        query: dict[str, Any] = {"_id": rng.choice([*ids, 1.0, "missing", Int64(1), False])}
        if rng.random() < 0.4:
            some = [rng.choice([*ids, "missing", 1.0]) for _ in range(rng.randint(0, 6))]
            query["_id"] = {"$in": some}
        if rng.random() < 0.5:
            query[rng.choice(["c", "d", "c.k"])] = rng.choice([None, 1, {"$exists": True}])
        if rng.random() < 0.1:
            query["$or"] = [{"c": 1}, {"d": 1}]
        query = codec.canonical(query)
        answers = []
        for general in (False, True):
            with monkeypatch.context() as patch:
                if general:
                    patch.setattr(planner, "_id_lookup", lambda store, query: None)
                    patch.setattr(planner, "_id_points", lambda index, intervals: False)
                with work.measuring() as counted, work.operation("c", "find"):
                    chosen = planner.plan(store, query, [("_id", -1)] if seed % 2 else ())
                    found = [next(chosen.candidates, None)]  # counted as read: one first
                    first = counted.summary()
                    found += list(chosen.candidates)
            plain = (chosen.name, chosen.cost, chosen.ordered, chosen.exact)
            answers.append((*plain, found, first, counted.summary()))
        assert answers[0] == answers[1], query


# -- inserts ---------------------------------------------------------------------------------


def test_insert_many_refuses_a_too_large_document_before_writing_any() -> None:
    coll, log = collection()
    records = len(log.records)
    big = "x" * (16 * 1024 * 1024)
    with pytest.raises(DocumentTooLarge):
        coll._insert_many([{"_id": 1}, {"_id": 2, "big": big}], True)
    assert len(coll._store) == 0 and len(log.records) == records


def test_insert_many_reports_the_stored_form_of_a_clashing_document() -> None:
    coll, _ = collection()
    when = datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    with pytest.raises(BulkWriteError) as raised:
        coll._insert_many([{"_id": 1, "a": "x"}, {"_id": 2, "a": "x", "w": when}, {"_id": 3}], True)
    details = raised.value.details
    assert details["nInserted"] == 1 and len(coll._store) == 1
    assert details["writeErrors"][0]["op"] == {
        "_id": 2,
        "a": "x",
        "w": datetime(2024, 1, 1, 12, 0, 0, 123000),
    }


# -- equality filters without mongomock's matcher ---------------------------------------------

LITERALS: list[Any] = [
    None,
    0,
    1,
    1.0,
    -0.0,
    True,
    False,
    Int64(1),
    2**40,
    "x",
    "",
    math.nan,
    datetime(2024, 1, 1, 12, 0, 0, 123000),
    ObjectId("0" * 23 + "1"),
    Binary(UUID(int=7).bytes, 4),
    Binary(UUID(int=7).bytes, 3),
]


@pytest.mark.parametrize("seed", range(20))
def test_quick_equality_filters_answer_as_the_matcher(seed: int) -> None:
    rng = random.Random(5000 + seed)
    decided = 0
    for _ in range(300):
        doc = random_doc(rng, 1)
        if rng.random() < 0.3:
            doc["c"] = {"k": rng.choice(VALUES), "j": {"k": rng.choice(LITERALS)}}
        doc = codec.canonical(doc)
        filter: dict[str, Any] = {}
        for _ in range(rng.randint(1, 3)):
            name = rng.choice([*FIELDS, "_id", "c.k", "c.j.k", "a.k", "zz"])
            literal = rng.choice(LITERALS)
            if "." in name and literal is None:
                literal = 1
            shape = rng.randrange(3)
            if shape == 0:
                filter[name] = literal
            elif shape == 1:
                filter[name] = {"$eq": literal}
            else:
                choices = [x for x in LITERALS if "." not in name or x is not None]
                filter[name] = {"$in": rng.sample(choices, rng.randint(0, 3))}
        filter = codec.canonical(filter)
        quick = engine.quick_matcher(filter)
        assert quick is not None, filter
        answer = quick(doc)
        if answer is not None:
            decided += 1
            assert answer == engine.filter_applies(engine.prepared(filter), doc), (filter, doc)
    assert decided > 200


BOUNDS: list[Any] = [
    0,
    1,
    -1,
    1.5,
    -0.0,
    2**40,
    2**53 + 1,
    2**63 - 1,
    Int64(5),
    math.inf,
    -math.inf,
]
RANGED: list[Any] = [
    *BOUNDS,
    float(2**53),
    -(2**63),
    math.nan,
    None,
    True,
    False,
    "5",
    Decimal128("1.5"),
    Decimal128("NaN"),
    datetime(2024, 1, 1),
    [],
    [3],
    [math.nan, 2],
    {"k": 1},
]


@pytest.mark.parametrize("seed", range(20))
def test_quick_numeric_ranges_answer_as_the_matcher(seed: int) -> None:
    # `{seq: {$gt: a, $lte: b}}` (a feed's window) and the like, alone or beside equalities:
    # what the quick test decides is mongomock's answer; the rest it leaves to the matcher.
    rng = random.Random(5100 + seed)
    decided = undecided = 0
    for _ in range(400):
        doc: dict[str, Any] = {"_id": 1}
        for name in rng.sample(["a", "b", "c"], rng.randint(0, 3)):
            doc[name] = rng.choice(RANGED)
        doc = codec.canonical(doc)
        filter: dict[str, Any] = {}
        for name in rng.sample(["a", "b"], rng.randint(1, 2)):
            ops = rng.sample(["$gt", "$gte", "$lt", "$lte"], rng.randint(1, 2))
            filter[name] = {op: rng.choice(BOUNDS) for op in ops}
        if rng.random() < 0.3:
            filter["c"] = rng.choice(LITERALS)
        filter = codec.canonical(filter)
        quick = engine.quick_matcher(filter)
        assert quick is not None, filter
        expected: Any
        try:
            expected = engine.filter_applies(engine.prepared(filter), doc)
        except NotImplementedError:  # mongomock: no Decimal128 order (the quick test asks)
            expected = "raises"
        answer = quick(doc)
        if answer is None:
            undecided += 1
            continue
        decided += 1
        assert answer == expected, (filter, doc)
    assert decided > 250 and undecided > 10


def test_filters_left_to_the_matcher() -> None:
    for filter in (
        {"a.b": None},
        {"a": {"$gt": True}},
        {"a": {"$gt": math.nan}},
        {"a": {"$gt": "x"}},
        {"a": {"$gt": Decimal128("1")}},
        {"a": {"$gt": datetime(2024, 1, 1)}},
        {"a": {"$gt": 1, "$ne": 2}},
        {"a.b": {"$gt": 1}},
        {"a": {}},
        {"a": {"$in": [1], "$nin": [2]}},
        {"a.0": 1},
        {"$or": [{"a": 1}]},
        {"a": {"k": 1}},
        {"a": [1]},
        {"a": Decimal128("1")},
        {"a": {"$in": [[1]]}},
    ):
        assert engine.quick_matcher(codec.canonical(filter)) is None, filter
    quick = engine.quick_matcher({"a": 1, "b.c": "x"})
    assert quick is not None
    assert quick({"a": [1, Decimal128("1")], "b": {"c": "x"}}) is None  # asks the matcher
    assert quick({"a": 1, "b": [{"c": "x"}]}) is None
    assert quick({"a": 1, "b": {"c": "x"}}) is True
    assert quick({"a": True, "b": {"c": "x"}}) is False


# -- writes: keys picked per index, updates spliced into the stored BSON ----------------------

UNINDEXED = ["e", "f"]


class Colour(str, enum.Enum):  # noqa: UP042  (str, Enum): str() is not the value
    RED = "red"


class Shade(enum.StrEnum):
    DARK = "dark"


# Values a caller hands in that are stored in another form (aware datetimes, UUIDs, string
# enums, 64-bit ints, tuples, ordered dicts): inserts must index what the BSON holds.
GIVEN: list[Any] = [
    datetime(2024, 1, 1, 12, 0, 0, 123456, tzinfo=UTC),
    datetime(2024, 1, 1, 12, 0, 0, 999999, tzinfo=timezone(timedelta(hours=-5))),
    datetime(2024, 1, 1, 12, 0, 0, 1000),
    datetime(1, 1, 1, 0, 0, tzinfo=timezone(timedelta(hours=-1))),
    UUID(int=12345),
    Colour.RED,
    Shade.DARK,
    ["y", "x", "y"],
    ["é", "Z", "a", ""],
    [Colour.RED, "red"],
    2**31,
    -(2**31) - 1,
    (1, 2),
    {"k": UUID(int=1), "d": datetime(2024, 5, 5, 5, 5, 5, 5, tzinfo=UTC)},
    Binary(b"\x01", 0),
    Binary(b"\x01", 3),
    SON([("k", 1)]),
]


def random_wide_doc(rng: random.Random, _id: int) -> dict[str, Any]:
    doc = random_doc(rng, _id)
    for name in rng.sample(UNINDEXED, rng.randint(0, 2)):
        doc[name] = rng.choice(VALUES + GIVEN)
    return doc


def random_wide_filter(rng: random.Random, ids: int) -> dict[str, Any]:
    # Filters the indexes do not decide, so every candidate is tested: unindexed and dotted
    # fields, operators, `$or` (which needs the whole document).
    name = rng.choice([*UNINDEXED, *FIELDS, "e.k", "c.k"])
    shape = rng.randrange(6)
    if shape == 0:
        return {name: rng.choice(VALUES)}
    if shape == 1:
        return {name: {"$exists": rng.random() < 0.5}}
    if shape == 2:
        return {name: {"$in": [rng.choice(VALUES) for _ in range(2)]}, "_id": {"$lt": ids}}
    if shape == 3:
        return {"$or": [{name: rng.choice(VALUES)}, {"e": {"$exists": True}}]}
    if shape == 4:
        return {name: {"$ne": rng.choice(VALUES)}}
    return {"_id": rng.randrange(ids), name: {"$type": "number"}}


def random_wide_update(rng: random.Random) -> dict[str, Any]:
    names = rng.sample([*FIELDS, *UNINDEXED, "new1", "new2"], rng.randint(1, 4))
    cut = rng.randint(0, len(names))
    update: dict[str, Any] = {}
    if cut:
        update["$set"] = {name: rng.choice(VALUES) for name in names[:cut]}
    if cut < len(names):
        update["$unset"] = dict.fromkeys(names[cut:], "")
    return update


def inserted_pair(
    docs: list[dict[str, Any]],
) -> tuple[tuple[Any, MemoryLog], tuple[Any, MemoryLog]]:
    # The same documents inserted with the fast paths (keys through `Scalars`) and without.
    made = []
    for on in (True, False):
        coll, log = collection()
        coll.create_index([("e", 1), ("tags", 1), ("a", -1)], name="e_tags_a")
        coll.create_index([("c.k", 1), ("e", 1)], sparse=True, name="ck_e")
        with fast_paths(on):
            for doc in docs:
                with contextlib.suppress(DuplicateKeyError):
                    coll._insert(dict(doc))
            with contextlib.suppress(BulkWriteError):
                coll._insert_many([dict(doc) for doc in docs[:5]], False)
        made.append((coll, log))
    return made[0], made[1]


@pytest.mark.parametrize("seed", range(30))
def test_inserts_key_every_index_as_the_general_route(seed: int) -> None:
    rng = random.Random(6000 + seed)
    docs = [random_wide_doc(rng, rng.randrange(40)) for _ in range(40)]
    fast, slow = inserted_pair(docs)
    assert len(fast[0]._store) > 10
    same_state(fast, slow)


@pytest.mark.parametrize("seed", range(30))
def test_spliced_updates_match_mongomocks_route(seed: int) -> None:
    rng = random.Random(7000 + seed)
    docs = [random_wide_doc(rng, i) for i in range(30)]
    fast, slow = inserted_pair(docs)
    for _ in range(40):
        filter = random_wide_filter(rng, 32) if rng.random() < 0.7 else random_filter(rng, 32)
        apply_both(fast, slow, filter, random_wide_update(rng), multi=rng.random() < 0.5)


def test_a_spliced_update_keeps_the_other_fields_bytes() -> None:
    # The splice replaces an element in place, drops an unset one, appends new ones in the
    # order named: the bytes a decoded, changed and re-encoded document has.
    coll, _ = collection()
    coll._insert({"_id": 1, "a": 1, "x": {"k": [1, 2]}, "e": "old", "z": math.nan})
    store = coll._store
    change = {"$set": {"e": {"new": [1]}, "n2": 2, "n1": None}, "$unset": {"x": "", "zz": ""}}
    assert coll._update({"_id": 1, "e": "old"}, change, multi=False)["nModified"] == 1
    raw = store.docs[(2, 1)][0]
    assert raw == codec.encode(
        {"_id": 1, "a": 1, "e": {"new": [1]}, "z": math.nan, "n2": 2, "n1": None}
    )


KINDS: list[Any] = [
    *VALUES,
    Regex("^a", "i"),
    Code("x = 1"),
    Code("x = y", {"y": 1}),
    Timestamp(5, 1),
    MinKey(),
    MaxKey(),
    2**62,
    "é ü",
    {"nested": {"deeper": [1, {"x": b"\x00"}]}},
]


@pytest.mark.parametrize("seed", range(10))
def test_spans_find_every_top_level_element(seed: int) -> None:
    rng = random.Random(8000 + seed)
    for _ in range(50):
        doc = {"_id": rng.randrange(9)}
        for n in range(rng.randint(0, 8)):
            doc[rng.choice(["f", "é", "g"]) + str(n)] = rng.choice(KINDS)
        raw = codec.encode(doc)
        canonical = codec.to_canonical(raw)
        wanted = {name.encode(): name for name in [*doc, "missing"]}
        found = codec.spans(raw, wanted)
        if found is None:  # a regular expression: not walked
            assert any(isinstance(v, Regex) for v in canonical.values())
            continue
        assert set(found) == set(doc)
        for name, (start, end) in found.items():
            assert raw[start:end] == codec.element(name, canonical[name])


def test_a_document_holding_a_regex_is_updated_by_decoding_it() -> None:
    fast, slow = pair([{"_id": 1, "r": Regex("^a"), "e": 1}, {"_id": 2, "e": 1}])
    apply_both(fast, slow, {"e": 1}, {"$set": {"a": "x"}, "$unset": {"r": ""}}, multi=True)


@pytest.mark.parametrize("seed", range(10))
def test_canonical_fields_are_the_decoded_fields(seed: int) -> None:
    # What an insert indexes without decoding: the stored form of each field, or None.
    rng = random.Random(9000 + seed)
    converted = 0
    for _ in range(200):
        doc = random_wide_doc(rng, rng.randrange(9))
        for name in rng.sample(["g", "h"], rng.randint(0, 2)):
            doc[name] = rng.choice(GIVEN)
        names = rng.sample([*doc, "missing"], rng.randint(1, len(doc) + 1))
        fields = codec.canonical_fields(doc, names)
        decoded = codec.to_canonical(codec.encode(doc))
        if fields is None:
            assert any(isinstance(doc[n], tuple | SON) for n in names if n in doc) or any(
                repr(doc[n]).count("datetime(1, 1, 1") for n in names if n in doc
            )
            continue
        converted += 1
        expected = {n: decoded[n] for n in names if n in decoded}
        assert repr(fields) == repr(expected)
        assert kinds(fields) == kinds(expected)
        assert codec.encode(fields) == codec.encode(expected)
    assert converted > 100


def kinds(value: Any) -> Any:
    """A value's shape by exact Python types, containers walked."""
    if isinstance(value, dict):
        return {k: kinds(v) for k, v in value.items()}
    if isinstance(value, list):
        return [kinds(v) for v in value]
    return type(value).__name__


def test_an_index_created_between_encoding_and_inserting_is_keyed_from_the_bson() -> None:
    # A sliced `insert_many` encodes every document first; an index created by another call
    # between its slices reads fields the early view does not hold: the BSON is decoded.
    fast, slow = collection(), collection()
    doc = {"_id": 1, "e": "x", "g": UUID(int=3), "a": 1}
    stored = fast[0].storable(dict(doc))
    assert stored[1] is not None and "g" not in stored[1][1]
    for coll, _ in (fast, slow):
        coll.create_index([("g", 1)], name="g")
    assert fast[0].insert_stored(stored[0], 0, [], stored[1])
    with fast_paths(False):
        slow[0]._insert(dict(doc))
    same_state(fast, slow)
    assert len(fast[0]._store.indexes["g"].entries) == 1


# -- reads: UUIDs made by a type decoder ---------------------------------------------------------


def random_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(10 if depth < 3 else 6)
    if pick == 0:
        return UUID(int=rng.randrange(1 << 128))
    if pick == 1:
        return Binary(bytes(rng.randrange(256) for _ in range(rng.choice([0, 15, 16, 17]))), 4)
    if pick == 2:
        return Binary(UUID(int=rng.randrange(1 << 64)).bytes, rng.choice([0, 3, 5]))
    if pick == 3:
        return datetime(2024, 1, 1, 12, 0, 0, 123000, tzinfo=UTC)
    if pick in (4, 5):
        return rng.choice(VALUES)
    if pick == 6:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if pick == 7:
        return {f"k{n}": random_value(rng, depth + 1) for n in range(rng.randint(0, 3))}
    if pick == 8:
        return DBRef("c", random_value(rng, depth + 1), extra=random_value(rng, depth + 1))
    return Code("x", {"s": random_value(rng, depth + 1)})


def decoded(call: Any) -> Any:
    try:
        return repr(call()), kinds(call())
    except Exception as exc:
        return type(exc).__name__


@pytest.mark.parametrize("seed", range(10))
def test_reads_decode_as_the_driver(seed: int) -> None:
    rng = random.Random(10000 + seed)
    failed = 0
    for _ in range(200):
        doc = {"_id": random_value(rng), **{f"f{n}": random_value(rng) for n in range(4)}}
        raw = bson.encode(doc, codec_options=codec._WIRE)
        mine = decoded(lambda raw=raw: codec.read(raw))
        theirs = decoded(lambda raw=raw: bson.decode(raw, codec_options=codec.READER))
        assert mine == theirs
        failed += isinstance(mine, str)
    assert 0 < failed < 150


# -- finds whose candidates are decoded in part --------------------------------------------------


@pytest.mark.parametrize("seed", range(20))
def test_partly_decoded_finds_match_the_general_route(seed: int) -> None:
    # A cursor's find keeps no decoded documents: its candidates are decoded only in the
    # fields the filter and the sort read. Same documents, order and counted work.
    rng = random.Random(11000 + seed)
    docs = [random_wide_doc(rng, i) for i in range(40)]
    fast, _ = inserted_pair(docs)
    coll = fast[0]
    for _ in range(30):
        filter = random_wide_filter(rng, 42) if rng.random() < 0.6 else random_filter(rng, 42)
        if rng.random() < 0.2:
            filter = {"$and": [filter, {rng.choice(UNINDEXED): {"$exists": True}}]}
        if rng.random() < 0.1:
            filter = {**filter, "$comment": "x"}
        if rng.random() < 0.15:  # reads a field the filter's names do not show
            filter = {**filter, "$expr": {"$eq": [f"${rng.choice(UNINDEXED)}", 1]}}
        query = codec.canonical(filter)
        sort = rng.choice([[], [("e", 1)], [("f", -1), ("_id", 1)], [("c.k", 1)], [("a", -1)]])
        limit = rng.choice([0, 0, 3])
        answers = []
        for on in (True, False):
            with fast_paths(on), work.measuring() as counted:
                try:
                    found: Any = coll.matching(query, sort=sort, limit=limit, keep=False)
                    found = [raw for raw, _ in found]
                except Exception as exc:  # mongomock: `$expr` on a missing field is a KeyError
                    found = type(exc).__name__
            answers.append((found, counted.summary()))
        assert answers[0] == answers[1], (filter, sort)


def _reads_alike(coll: Any, raw: bytes, projection: Any, doc: Any) -> None:
    # A stored document read through `projection` with the fast paths on and off, with the
    # client's options and the driver's plain STANDARD ones: the same copies.
    for options in (
        codec.READER,
        CodecOptions(uuid_representation=UuidRepresentation.STANDARD),
    ):

        def read(options: Any = options) -> Any:
            return coll.projector(projection, options)(raw)  # the route chosen when built

        with fast_paths(True):
            mine = decoded(read)
        with fast_paths(False):
            theirs = decoded(read)
        assert mine == theirs, (doc, projection)


@pytest.mark.parametrize("seed", range(10))
def test_projected_reads_decode_only_the_kept_fields_alike(seed: int) -> None:
    rng = random.Random(12000 + seed)
    coll, _ = collection()
    for _ in range(40):
        doc = {"_id": random_value(rng), **{f"f{n}": random_value(rng) for n in range(4)}}
        if rng.random() < 0.2:
            doc["r"] = Regex("^a")  # not walked: the whole document is decoded
        raw = bson.encode(doc, codec_options=codec._WIRE)
        projection: Any = dict.fromkeys(rng.sample([*doc, "zz"], rng.randint(1, 3)), 1)
        if rng.random() < 0.3:
            projection["_id"] = 0
        _reads_alike(coll, raw, projection, doc)


@pytest.mark.parametrize("seed", range(5))
def test_string_array_keys_are_the_general_keys(seed: int) -> None:
    rng = random.Random(13000 + seed)
    words = ["", "a", "b", "B", "é", "ab", "a\x00", "10", "9"]
    for _ in range(300):
        value: Any = [rng.choice(words) for _ in range(rng.randint(0, 6))]
        if rng.random() < 0.2 and value:
            value[rng.randrange(len(value))] = rng.choice([1, None, ["a"], Colour.RED])
        fast = keys.string_array_keys(value)
        if fast is None:
            assert not value or any(type(v) is not str for v in value)
            continue
        assert fast == keys.field_keys({"f": value}, "f")


# -- the sequencer's per-op costs: `{_id, seq: null}` checked, patched and swept cheaply ------


@pytest.mark.parametrize("seed", range(10))
def test_top_level_scalar_conditions_are_the_general_loops(seed: int) -> None:
    rng = random.Random(9100 + seed)
    for _ in range(200):
        names = rng.sample([*FIELDS, "_id", "zz"], rng.randint(1, 3))
        filter = codec.canonical({name: rng.choice(LITERALS) for name in names})
        # `{f: {$eq: v}}` takes the general loop; `{f: v}` the shortcut: the same conditions.
        general = {name: {"$eq": value} for name, value in filter.items()}
        quick, slow = engine.quick_matcher(filter), engine.quick_matcher(general)
        assert quick is not None and slow is not None
        assert quick.args == slow.args, filter  # type: ignore[attr-defined]
    assert engine.quick_matcher({"0": 1}) is None  # a digit name stays the matcher's


@pytest.mark.parametrize("seed", range(10))
def test_flat_filters_are_patched_as_mongomock_patches_them(seed: int) -> None:
    rng = random.Random(9200 + seed)
    for _ in range(200):
        spec = codec.canonical(random_filter(rng, 20))
        if rng.random() < 0.2:
            spec["when"] = datetime(2024, 1, 1, 12, 0, 0, 123456)
        with fast_paths(True):
            mine = engine._patched(spec)
        assert mine == hooks.patch_datetimes(spec) and mine is not spec, spec
        assert type(mine) is type(hooks.patch_datetimes(spec))


def test_a_ttl_index_created_after_writes_still_sweeps() -> None:
    coll, _ = collection()
    old = datetime(2000, 1, 1)
    coll._insert({"_id": 1, "at": old})
    coll._insert({"_id": 2, "at": datetime.utcnow()})
    assert coll._update({"_id": 1, "seq": None}, {"$set": {"seq": 1}})["nModified"] == 1
    coll.create_index([("at", 1)], expireAfterSeconds=60, name="at_ttl")
    coll._update({"_id": 2, "seq": None}, {"$set": {"seq": 2}})  # the op sweeps first
    assert list(coll._store.docs) == [keys.sort_key(2)]
    coll._store.drop_index("at_ttl")
    coll._insert({"_id": 3, "at": old})
    coll._update({"_id": 3, "seq": None}, {"$set": {"seq": 3}})
    assert len(coll._store.docs) == 2  # no TTL index: nothing swept


def _small_sorted_lists() -> tuple[Any, Any]:
    """Two empty SortedLists with sublists of 8 (the inlined steps and the library's methods)."""
    from sortedcontainers import SortedList

    mine, theirs = SortedList(), SortedList()
    mine._reset(8)
    theirs._reset(8)
    return mine, theirs


@pytest.mark.parametrize("seed", range(5))
def test_inlined_entry_adds_give_the_methods_list(seed: int) -> None:
    from service.embedded.store import _add_entries

    rng = random.Random(9300 + seed)
    mine, theirs = _small_sorted_lists()  # many splits
    for step in range(400):
        batch = [(rng.randrange(50), (rng.randrange(1000),)) for _ in range(rng.randint(1, 20))]
        if step % 97 == 5:
            _ = mine[len(mine) // 2]  # builds the positional index the adds must then keep
        _add_entries(mine, batch)
        theirs.update(batch)
        assert list(mine) == list(theirs) and len(mine) == len(theirs)
    mine._check()


@pytest.mark.parametrize("seed", range(5))
def test_an_inlined_entry_add_gives_the_methods_list(seed: int) -> None:
    from service.embedded.store import _add_entry

    rng = random.Random(9350 + seed)
    mine, theirs = _small_sorted_lists()  # many splits
    for step in range(1500):
        # Mostly growing values (a queue's, a time's), some anywhere, some equal.
        value = (step // 3 if step % 4 else rng.randrange(600), (rng.randrange(3),))
        if step % 97 == 5:
            _ = mine[len(mine) // 2]  # builds the positional index the add must then keep
        _add_entry(mine, value)
        theirs.add(value)
        assert list(mine) == list(theirs) and len(mine) == len(theirs)
        mine._check()


def test_equal_tokens_share_one_key() -> None:
    first = keys.string_array_keys(["b", "a", "b"])
    again = keys.string_array_keys(["a"])
    assert first == [keys.sort_key("a"), keys.sort_key("b")]
    assert first is not None and again is not None and first[0] is again[0]


def _round_trip(doc: Any) -> dict[str, Any]:
    # `codec.canonical`'s reference: encoded as the driver encodes, decoded in canonical form.
    return bson.decode(codec.encode(doc), codec_options=codec._CANONICAL)


@pytest.mark.parametrize("seed", range(10))
def test_flat_filters_are_made_canonical_as_the_bson_round_trip(seed: int) -> None:
    # Filters and updates converted without encoding: the same values, kinds, order and
    # errors as the round trip (anything unsure goes through it).
    rng = random.Random(9500 + seed)
    for _ in range(300):
        doc = random_wide_doc(rng, rng.choice([1, "x", UUID(int=rng.randrange(9)), None]))
        for name in rng.sample(["g", "h"], rng.randint(0, 2)):
            doc[name] = rng.choice(GIVEN)
        if rng.random() < 0.3:
            doc = {name: doc[name] for name in rng.sample(list(doc), len(doc))}  # `_id` anywhere
        if rng.random() < 0.2:
            doc = {"$set": doc}
        try:
            expected: Any = _round_trip(doc)
        except Exception as exc:
            expected = type(exc)
        try:
            mine: Any = codec.canonical(doc)
        except Exception as exc:
            mine = type(exc)
        assert repr(mine) == repr(expected)
        if isinstance(expected, dict):
            assert list(mine) == list(expected)  # a top-level `_id` first, as BSON writes it
            assert kinds(mine) == kinds(expected)
            assert codec.encode(mine) == codec.encode(expected)


@pytest.mark.parametrize(
    "doc",
    [
        {"a": "\ud800"},  # a lone surrogate: no UTF-8 for it
        {"a\0b": 1},  # a NUL in a key
        {"a": {"b\0": 1}},
        {1: "x"},
        {"a": 2**63},  # beyond int64
        {"a": datetime(1, 1, 1, tzinfo=UTC)},
        {"a": Colour.RED, "b": "é", "c": -(2**31), "d": 2**31, "e": [UUID(int=1), b"\x00"]},
        {"x": 1, "_id": UUID(int=5), "y": None},
    ],
)
def test_canonical_refuses_and_converts_as_the_round_trip(doc: dict[Any, Any]) -> None:
    try:
        expected: Any = _round_trip(doc)
    except Exception as exc:
        expected = type(exc)
    try:
        mine: Any = codec.canonical(doc)
    except Exception as exc:
        mine = type(exc)
    assert repr(mine) == repr(expected)
    if isinstance(expected, dict):
        assert kinds(mine) == kinds(expected) and list(mine) == list(expected)


@pytest.mark.parametrize(
    "value", [None, 0, 1, -1, 2**31 - 1, -(2**31), 2**31, -(2**31) - 1, True, 1.5, "x", UUID(int=1)]
)
def test_small_elements_are_written_as_encode_writes_them(value: Any) -> None:
    for name in ("seq", "é", "a.b", ""):
        assert codec.element(name, value) == codec.encode({name: value})[4:-1]


@pytest.mark.parametrize("seed", range(5))
def test_inlined_entry_removes_give_the_methods_list(seed: int) -> None:
    from service.embedded.store import _remove_entry

    rng = random.Random(9400 + seed)
    mine, theirs = _small_sorted_lists()  # many merges
    values = [(rng.randrange(50), (i,)) for i in range(600)]
    mine.update(values)
    theirs.update(values)
    step = 0
    while theirs:
        step += 1
        if step % 53 == 7:
            _ = mine[len(mine) // 2]  # the positional index: left to the method
        # A queue's lowest entry every third step, else any.
        value = theirs[0] if step % 3 == 0 else theirs[rng.randrange(len(theirs))]
        _remove_entry(mine, value)
        theirs.remove(value)
        assert list(mine) == list(theirs) and len(mine) == len(theirs)
        mine._check()
        if step % 50 == 0:
            for missing in ((99, (-1,)), (25, (-1,))):  # above every entry, between two
                with pytest.raises(ValueError, match="not in list"):
                    _remove_entry(mine, missing)


@pytest.mark.parametrize("seed", range(10))
def test_point_filters_with_more_conditions_match_mongomocks_route(seed: int) -> None:
    # `{_id, f: v}` and `{_id: {$in}, f: v}`: the `_id` is decided by the lookup or the
    # `_id_` index's points, the rest tested (cached per filter of plain scalars); updates
    # and finds give the general route's answers.
    rng = random.Random(9600 + seed)
    docs = [random_doc(rng, i) for i in range(12)]
    fast, slow = pair(docs)
    for _ in range(40):
        name = rng.choice(FIELDS)
        filter = {"_id": rng.randrange(14), name: rng.choice(VALUES)}
        if rng.random() < 0.3:
            filter = {name: filter[name], "_id": filter["_id"]}
        if rng.random() < 0.4:  # an `$in` of ids (and of other kinds, not decided)
            ids = [rng.randrange(14) for _ in range(rng.randint(0, 4))]
            filter["_id"] = {"$in": ids + rng.sample([1.0, "1", None, [1], {"k": 1}], 1)}
        change = {"$set": {rng.choice(FIELDS): rng.choice(VALUES)}}
        apply_both(fast, slow, filter, change, multi=rng.random() < 0.5)
        query = codec.canonical(filter)
        found = []
        for coll, flag in ((fast[0], True), (slow[0], False)):
            with fast_paths(flag):
                found.append([raw for raw, _ in coll.matching(query)])
        assert found[0] == found[1], filter


def test_log_records_keep_their_bytes() -> None:
    import struct
    import zlib

    from service.embedded import wal

    for kind, database, collection, payload in [
        (wal.INSERT, "db", "c", b"\x05\x00\x00\x00\x00"),
        (wal.DROP, "données", "é" * 300, b""),
        (wal.INSERT, "db", "c", b"x" * 1000),
    ]:
        db, coll = database.encode(), collection.encode()
        names = bytes((kind,)) + struct.pack("<H", len(db)) + db
        names += struct.pack("<H", len(coll)) + coll
        body = names + payload
        expected = struct.pack("<II", len(body), zlib.crc32(body)) + body
        assert wal.encode(kind, database, collection, payload) == expected


@pytest.mark.parametrize("seed", range(5))
def test_string_array_entries_are_the_general_keys(seed: int) -> None:
    # An index with one field holding strings (tags, search tokens): its entries built from
    # the document's scalar keys and the strings' shared keys are `index_keys`' own.
    from service.embedded.store import Scalars, _memo, _string_array_entries

    rng = random.Random(9700 + seed)
    arrays = [["b", "a", "b"], ["x"], [], ["é", ""], ["a", 1], [None], "s", None, [["a"]]]
    arrays += [["a\x00", "a", "\ud800"], ["\x00\x00", "a\x00b"]]
    built = 0
    for _ in range(600):
        doc: dict[str, Any] = {"_id": rng.choice([1, "k", Binary(UUID(int=3).bytes, 4)])}
        for name in rng.sample(["t", "u", "a", "b"], rng.randint(0, 4)):
            doc[name] = rng.choice(arrays + VALUES)
        fields = tuple(rng.sample(["t", "u", "a", "b", "_id"], rng.randint(1, 4)))
        key = keys.sort_key(doc["_id"])
        found = _string_array_entries(fields, Scalars(doc, key), key)
        if found is None:
            continue
        built += 1
        general = keys.index_keys(doc, fields, memo=_memo(doc, key))
        assert found == tuple((*k, key) for k in general)
        # As a multikey index holds them once encoded: each entry's bytes, its id recoverable.
        encoded = _string_array_entries(fields, Scalars(doc, key), key, encoded=True)
        assert encoded == tuple(keys.entry_bytes(k) + keys.id_tail(key) for k in general)
        assert all(keys.entry_id_bytes(entry) == keys.key_bytes(key) for entry in encoded)
    assert built > 10


# -- byte keys: one bytes comparison in the key tuples' order -----------------------------------

KEYED: list[Any] = [
    *VALUES,
    -1,
    -1.5,
    -(2**63),
    2**63 - 1,
    2**53 + 1,
    float(2**53),
    1e308,
    -1e-308,
    5e-324,
    math.inf,
    -math.inf,
    0.1,
    100,
    10,
    1.05,
    Decimal128("1.50"),
    1.5,
    Decimal128("1.5"),
    Decimal128("-150E-2"),
    Decimal128("1.00E+2"),
    100.0,
    Decimal128("-0"),
    Decimal128("1E+6144"),
    Decimal128("-1E-6176"),
    Decimal128("Infinity"),
    Decimal128("-Infinity"),
    Decimal128("NaN"),
    Decimal128("0.1"),
    "a",
    "a\x00",
    "a\x00b",
    "a\x01",
    "ab",
    "\ud800",
    "\ue000",
    "é",
    "\U0001f600",
    datetime(1, 1, 1),
    datetime(9999, 12, 31, 23, 59, 59, 999000),
    datetime(1970, 1, 1),
    Timestamp(5, 1),
    Timestamp(5, 2),
    Regex("^a", "i"),
    Regex("^a"),
    MinKey(),
    MaxKey(),
    Binary(b"", 0),
    Binary(b"\x00", 0),
    Binary(b"\x00", 5),
    b"\x01\x02\x03",
    ObjectId("f" * 24),
    {},
    {"a": 1},
    {"a": 1, "b": 2},
    {"a": "1"},
    {"b": 1},
    {"a": {"a": None}},
    [[]],
    [1, "a"],
    [1, 1],
    [math.nan],
    [{"k": []}],
    Code("a"),
    Code("a\x00"),
    Code("b"),
    Code("a", {}),
    Code("a", {"x": 1}),
    Code("b", {"x": 1}),
    DBRef("c", 1),
    DBRef("c", 1, "d"),
]


def _random_key_value(rng: random.Random, depth: int = 0) -> Any:
    pick = rng.randrange(10)
    if depth < 2 and pick == 0:
        return [_random_key_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if depth < 2 and pick == 1:
        names = rng.sample(["a", "b", "a\x00", ""], rng.randint(0, 3))
        return {name: _random_key_value(rng, depth + 1) for name in names}
    if pick == 2:
        return rng.choice(
            [rng.randint(-(10**6), 10**6), rng.randint(-5, 5) * 10 ** rng.randint(0, 18)]
        )
    if pick == 3:
        return rng.choice(
            [rng.uniform(-1e6, 1e6), rng.randint(-5, 5) / 4, 2.0 ** rng.randint(-60, 60)]
        )
    if pick == 4:
        return "".join(rng.choice("ab\x00\x01é") for _ in range(rng.randint(0, 4)))
    return rng.choice(KEYED)


def _sign(a: Any, b: Any) -> int:
    return (a > b) - (a < b)


@pytest.mark.parametrize("seed", range(10))
def test_byte_keys_order_as_the_key_tuples(seed: int) -> None:
    # Every pair of keys (and of entries: tuples of keys, with the planner's sentinels and
    # bracket ends) compares as bytes exactly as it does as tuples, equal included.
    rng = random.Random(9800 + seed)
    values = [_random_key_value(rng) for _ in range(150)] + (KEYED if seed == 0 else [])
    found = [keys.sort_key(v) for v in values]
    found += [keys.EMPTY_ARRAY_KEY, keys.LOWEST, keys.HIGHEST, (2.5,), (3.5,), keys.NULL_KEY]
    encoded = [keys.key_bytes(k) for k in found]
    for i, (a, ea) in enumerate(zip(found, encoded, strict=True)):
        for b, eb in zip(found[i:], encoded[i:], strict=True):
            assert _sign(a, b) == _sign(ea, eb), (a, b)
    for _ in range(3000):
        width = rng.randint(1, 3)
        one = tuple(rng.choice(found) for _ in range(width))
        other = tuple(rng.choice(found) for _ in range(rng.randint(1, 3)))
        if rng.random() < 0.5:  # a shared prefix: the later parts decide
            other = one[: rng.randint(0, width)] + other
        assert _sign(one, other) == _sign(keys.entry_bytes(one), keys.entry_bytes(other)), (
            one,
            other,
        )


@pytest.mark.parametrize("seed", range(5))
def test_byte_entries_order_as_entry_tuples_and_give_back_their_ids(seed: int) -> None:
    # Entries as a multikey index holds them (key parts' bytes, then `id_tail`: the id's
    # bytes and their length, long ids too) order among themselves and against a walk's
    # bounds (key parts, sentinels) exactly as the entry tuples do; each gives back its id.
    rng = random.Random(9850 + seed)
    values = [_random_key_value(rng) for _ in range(40)] + ["x" * 300, "y" * 254, "é" * 200]
    found = [keys.sort_key(v) for v in values]
    ids = [keys.sort_key(v) for v in (*values[:12], "z" * 400, "a" * 253, 7, 7.5)]
    entries = []
    for _ in range(400):
        parts = tuple(rng.choice(found) for _ in range(2))
        entries.append((*parts, rng.choice(ids)))
    encoded = {entry: keys.entry_bytes(entry[:-1]) + keys.id_tail(entry[-1]) for entry in entries}
    assert sorted(encoded) == sorted(encoded, key=encoded.__getitem__)
    for entry, data in encoded.items():
        assert keys.entry_id_bytes(data) == keys.key_bytes(entry[-1])
    sentinels = [keys.LOWEST, keys.HIGHEST, keys.NULL_KEY]
    for _ in range(1500):
        entry = rng.choice(entries)
        width = rng.randint(0, 2)
        bound = entry[:width] + tuple(
            rng.choice(found + sentinels) for _ in range(rng.randint(0, 1))
        )
        # (A bound equal to a whole entry sorts before it, as `(bytes,)` before `(bytes, id)`.)
        expected = _sign(bound, entry) or (-1 if len(bound) == len(entry) else 0)
        assert expected == _sign(keys.entry_bytes(bound), encoded[entry]), (bound, entry)


def _twin_collections(encodable: bool) -> EngineCollection:
    coll = EngineClient().database("db").get_collection("c")
    coll.create_index([("t", 1), ("a", 1)], name="t_a")
    coll.create_index([("a", 1), ("t", -1)], name="a_t")
    if not encodable:
        for index in coll._store.indexes.values():
            index.encodable = False
    return coll


TOKENS: list[Any] = ["a", "b", "a\x00", "", "é", 1, 2.5, math.nan, None, True, Decimal128("2")]


@pytest.mark.parametrize("seed", range(10))
def test_byte_entries_answer_as_tuple_entries(seed: int) -> None:
    # Two collections with the same multikey indexes, one holding its entries as bytes (the
    # default once multikey), one as key tuples: every query finds the same documents in
    # the same order, the same keys examined.
    rng = random.Random(9900 + seed)
    mine, theirs = _twin_collections(True), _twin_collections(False)
    for i in range(120):
        doc: dict[str, Any] = {"_id": rng.choice([i, f"s{i}", float(i) + 0.5])}
        if rng.random() < 0.9:
            doc["t"] = (
                rng.sample(TOKENS, rng.randint(0, 4)) if rng.random() < 0.7 else rng.choice(TOKENS)
            )
        if rng.random() < 0.8:
            doc["a"] = rng.choice([*TOKENS, [1, 2], []])
        for coll in (mine, theirs):
            with contextlib.suppress(DuplicateKeyError):
                coll._insert(dict(doc))
    assert mine._store.indexes["t_a"].encoded and not theirs._store.indexes["t_a"].encoded
    for _ in range(150):
        field, other = rng.sample(["t", "a"], 2)
        shape = rng.randrange(5)
        if shape == 0:
            filter: dict[str, Any] = {field: rng.choice(TOKENS)}
        elif shape == 1:
            filter = {field: {"$in": rng.sample(TOKENS, 3)}}
        elif shape == 2:
            op = rng.choice(["$gt", "$gte", "$lt", "$lte"])
            filter = {field: {op: rng.choice(["a", 1, 2.5, ""])}}
        elif shape == 3:
            filter = {field: rng.choice(TOKENS), other: {"$gte": rng.choice(["a", 0])}}
        else:
            filter = {field: {"$regex": "^a"}}
        query = codec.canonical(filter)
        sort = rng.choice([(), (("_id", 1),), ((field, -1),)])
        limit = rng.choice([0, 3])
        answers = [
            engine_outcome(
                functools.partial(coll.matching, query, sort=sort, limit=limit, keep=False)
            )
            for coll in (mine, theirs)
        ]
        assert answers[0] == answers[1], (filter, sort, limit)


def test_a_walk_resumes_after_its_index_turns_to_bytes() -> None:
    # A walk between chunks when a write makes its index multikey (its entries then bytes):
    # it resumes after the same entry, as the same walk over key tuples does.
    walked = []
    for encodable in (True, False):
        coll = _twin_collections(encodable)
        for i in range(100):
            coll._insert({"_id": i, "t": f"k{i:03d}", "a": i})
        index = coll._store.indexes["t_a"]
        for reverse in (False, True):
            walk = planner._keys_in(index, (), (keys.HIGHEST,), reverse)
            first = [next(walk) for _ in range(20)]
            if not reverse:
                coll._insert({"_id": 1000, "t": ["k050", "k999", "a"], "a": 1})
            assert index.encoded == encodable
            walked.append((first, list(walk)))
    assert walked[0] == walked[2] and walked[1] == walked[3]
    assert len(walked[0][0]) + len(walked[0][1]) == 102  # the new document's two later keys


RANGE_VALUES: list[Any] = [0, 1, 2, 2.5, -1, 7, Int64(3), 2**53 + 1, math.inf, -math.inf, -0.0]
ODD_RANGE_VALUES: list[Any] = [math.nan, None, True, "3", Decimal128("2"), Decimal128("NaN")]


@pytest.mark.parametrize("seed", range(20))
def test_numeric_range_plans_decide_like_the_matcher(seed: int) -> None:
    # `{p: point, n: {$gt: a, $lte: b}}` on an index (p, n): the walk's entries decide the
    # range (`planner._range_test`), odd values (NaN, Decimal128, other kinds) rechecked
    # whole; every find, count and update answers as mongomock's route, errors included.
    rng = random.Random(9950 + seed)
    odd = seed % 4 == 0  # some runs hold values the entries do not decide
    docs = []
    for i in range(80):
        doc: dict[str, Any] = {"_id": i, "p": rng.choice(["x", "y", 1])}
        if rng.random() < 0.9:
            doc["n"] = rng.choice(RANGE_VALUES + (ODD_RANGE_VALUES if odd else []))
        docs.append(doc)
    made = []
    for _ in range(2):
        coll = EngineClient().database("db").get_collection("c")
        coll.create_index([("p", 1), ("n", 1)], name="p_n")
        coll.create_index([("n", -1)], name="n")
        for doc in docs:
            coll._insert(dict(doc))
        made.append(coll)
    ranged = 0
    for _ in range(60):
        ops = rng.sample(["$gt", "$gte", "$lt", "$lte"], rng.randint(1, 2))
        filter: dict[str, Any] = {"n": {op: rng.choice(RANGE_VALUES) for op in ops}}
        if rng.random() < 0.6:
            filter = {"p": rng.choice(["x", "y", 1]), **filter}
        query = codec.canonical(filter)
        with fast_paths(True):
            ranged += made[0]._plan(query, reading=True).ranged
        sort = rng.choice([(), (("n", 1),), (("n", -1),)])
        limit = rng.choice([0, 5])
        answers = []
        for coll, on in zip(made, (True, False), strict=True):
            with fast_paths(on):
                # (The work counted differs: an exact plan examines no document to count.)
                found = engine_outcome(
                    functools.partial(coll.matching, query, sort=sort, limit=limit)
                )
                counted = engine_outcome(functools.partial(coll.count_documents, query))
            answers.append((found[0], counted[0]))
        assert answers[0] == answers[1], (filter, sort, limit)
        if rng.random() < 0.3:
            mine = update(made[0], filter, {"$inc": {"k": 1}}, multi=True, fast=True)
            theirs = update(made[1], filter, {"$inc": {"k": 1}}, multi=True, fast=False)
            assert repr(mine[0]) == repr(theirs[0]), filter
            assert dict(made[0]._store.docs) == dict(made[1]._store.docs)
    assert ranged > 20


def _sequenced_pair(
    docs: list[dict[str, Any]],
) -> tuple[tuple[Any, MemoryLog], tuple[Any, MemoryLog]]:
    # A journal's indexes in miniature: compound ones ending in `seq`, one holding an array
    # field (`tags`), a dotted one, the sequencer's unique partial `seq_unique`.
    made = []
    for _ in range(2):
        client = EngineClient()
        log = MemoryLog()
        client.recorder.log = log  # type: ignore[assignment]
        coll = client.database("db").get_collection("events")
        coll.create_index([("t", 1), ("seq", 1)], name="t_seq")
        coll.create_index([("t", 1), ("tags", 1), ("seq", 1)], name="t_tags_seq")
        coll.create_index([("seq", 1), ("_id", 1)], name="seq_pending")
        coll.create_index([("seq", 1)], unique=True, partialFilterExpression={"seq": {"$gt": 0}})
        coll.create_index([("e.k", 1), ("seq", 1)], name="ek_seq")
        for doc in docs:
            coll._insert(dict(doc))
        made.append((coll, log))
    return made[0], made[1]


@pytest.mark.parametrize("seed", range(20))
def test_moved_entries_are_the_entries_derived_afresh(seed: int) -> None:
    # `store.replace` derives a changed document's entries from its old ones (the changed
    # fields' keys put in); each update must leave the index entries, unique owners, stored
    # BSON and log that mongomock's route (every entry derived afresh) leaves.
    rng = random.Random(12000 + seed)
    docs = []
    for i in range(25):
        doc: dict[str, Any] = {"_id": i, "t": rng.choice(["a", "b", 1, None]), "seq": None}
        if rng.random() < 0.7:
            doc["tags"] = rng.choice([[], ["x"], ["x", "y"], [1, "x"], "x", None])
        if rng.random() < 0.5:
            doc["e"] = rng.choice([{"k": 1}, {"k": [1, 2]}, [{"k": 3}], "s"])
        docs.append(doc)
    fast, slow = _sequenced_pair(docs)
    for n in range(60):
        target = rng.randrange(27)
        shape = rng.randrange(5)
        if shape == 0:
            filter, change = {"_id": target, "seq": None}, {"$set": {"seq": n + 1}}
        elif shape == 1:
            filter, change = {"_id": target}, {"$set": {"seq": rng.choice([None, 1, [n], n])}}
        elif shape == 2:
            filter, change = {"_id": target}, {"$set": {"tags": rng.choice([["z"], [], "z"])}}
        elif shape == 3:
            filter, change = {"_id": target}, {"$unset": {rng.choice(["seq", "t", "e"]): ""}}
        else:
            filter, change = {"t": rng.choice(["a", "b"])}, {"$set": {"seq": n + 100}}
        apply_both(fast, slow, filter, change, multi=shape == 4)


def test_a_sequencer_update_decodes_only_the_id_and_its_filter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `{_id, seq: null}` -> `$set: {seq}` over indexes keying top-level fields: the new
    # entries come from the old ones, so the other indexed fields are not decoded.
    fast, _ = _sequenced_pair([{"_id": 1, "t": "a", "tags": ["x"], "seq": None, "big": "b" * 99}])
    decoded = decoded_fields(monkeypatch)
    coll = fast[0]
    coll.drop_index("ek_seq")  # a dotted index needs the whole document
    assert (
        update(coll, {"_id": 1, "seq": None}, {"$set": {"seq": 1}}, multi=False, fast=True)[0][
            "nModified"
        ]
        == 1
    )
    assert decoded == [["_id", "seq"]]
    index = coll._store.indexes["t_tags_seq"]
    assert list(index.entries) == [((3, "a"), (3, "x"), (2, 1), (2, 1))]


def test_an_update_no_index_watches_decodes_only_what_its_filter_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An outbox clear on a collection whose indexes key none of it (`_id` alone): no index
    # entry to derive, so nothing beyond the splice's own fields is decoded.
    docs = [{"_id": i, "t": "a", "big": "b" * 99, "p": {"v": 1}} for i in range(3)]
    (fast, _), (slow, _) = pair(docs)
    decoded = decoded_fields(monkeypatch)
    change = {"$unset": {"p": ""}}
    query = {"_id": {"$in": [0, 1, 2]}, "p.v": 1}
    assert update(fast, query, change, multi=True, fast=True)[0]["nModified"] == 3
    assert not any(len(fields) > 2 for fields in decoded), decoded
    monkeypatch.undo()
    update(slow, query, change, multi=True, fast=False)
    assert [raw for raw, _ in fast._store.docs.values()] == [
        raw for raw, _ in slow._store.docs.values()
    ]


# -- exclusion projections --------------------------------------------------------------------


def _random_exclusion(rng: random.Random, doc: dict[str, Any]) -> Any:
    # Mostly exclusions of top-level names (present or not, `_id: 0` or not); also shapes
    # the fast path leaves to mongomock: `_id: 1` beside exclusions, dotted paths, 0.0,
    # a mix with an inclusion, an operator.
    names = rng.sample([*doc, "zz", "_id"], rng.randint(1, min(4, len(doc) + 2)))
    projection: dict[str, Any] = {name: rng.choice([0, False]) for name in names}
    odd = rng.randrange(10)
    if odd == 0:
        projection["_id"] = rng.choice([1, True])
    elif odd == 1:
        projection["e.k"] = 0
    elif odd == 2:
        projection[next(iter(projection))] = 0.0
    elif odd == 3:
        projection["zz"] = 1
    elif odd == 4:
        projection["tags"] = {"$slice": 1}
    return projection


@pytest.mark.parametrize("seed", range(20))
def test_exclusion_projections_read_as_the_general_route(seed: int) -> None:
    # `projector` (the cursor's copies) and `project` (the engine's own finds) with an
    # exclusion: the same reply, value kinds and field order as mongomock's route, errors
    # included; the document's order kept.
    rng = random.Random(13000 + seed)
    coll, _ = collection()
    for _ in range(40):
        doc = {"_id": random_value(rng), **{f"f{n}": random_value(rng) for n in range(4)}}
        for name in rng.sample(FIELDS, rng.randint(0, 3)):
            doc[name] = rng.choice(VALUES + GIVEN[:6])
        if rng.random() < 0.15:
            doc["r"] = Regex("^a")  # not walked: the whole document is decoded
        raw = bson.encode(doc, codec_options=codec._WIRE)
        projection = _random_exclusion(rng, doc)
        _reads_alike(coll, raw, projection, doc)
        stored = codec.to_canonical(raw)
        project = functools.partial(coll.project, stored, projection)
        # (mongomock puts a kept `_id` last; MongoDB, and the fast path, keep its place)
        mine, theirs = _in_order(project, stored, True), _in_order(project, stored, False)
        assert mine == theirs, (doc, projection)
        if engine._exclusion(projection) is not None:
            with fast_paths(True):
                kept = project()
            assert list(kept) == [name for name in stored if name not in projection]


def _in_order(project: Any, stored: dict[str, Any], on: bool) -> Any:
    # A projection's answer (or error) with its fields in the stored document's order.
    with fast_paths(on):
        try:
            got = project()
        except Exception as exc:
            return type(exc).__name__
    ordered = dict(sorted(got.items(), key=lambda item: list(stored).index(item[0])))
    return repr(ordered), kinds(ordered)


def test_an_exclusion_decodes_the_stored_bytes_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # The stored BSON is decoded once, as the client decodes it, and the excluded fields
    # dropped (no canonical copy projected and encoded again); a value the client cannot
    # decode fails only when it is kept (then as on the general route).
    coll, _ = collection()
    doc = {"_id": 1, "a": "x", "search_text": "t" * 50, "search_tokens": ["p", "q"], "b": 2}
    raw = codec.encode(doc)
    seen: list[bytes] = []
    real = bson.decode

    def spy(data: bytes, *args: Any, **kwargs: Any) -> Any:
        seen.append(bytes(data))
        return real(data, *args, **kwargs)

    monkeypatch.setattr(bson, "decode", spy)
    got = coll.projector({"search_text": 0, "search_tokens": 0})(raw)
    assert got == {"_id": 1, "a": "x", "b": 2}
    assert list(got) == ["_id", "a", "b"]
    assert seen == [raw]
    assert coll.projector({"_id": 0, "zz": 0})(raw) == {k: v for k, v in doc.items() if k != "_id"}
    monkeypatch.setattr(bson, "decode", real)
    bad = bson.encode({"_id": 1, "bad": Binary(b"\x01\x02", 4), "k": "v"})
    assert coll.projector({"bad": 0})(bad) == {"_id": 1, "k": "v"}
    with pytest.raises(bson.errors.InvalidBSON):
        coll.projector({"k": 0})(bad)


def test_exclusion_shapes_left_to_mongomock() -> None:
    for projection in ({}, {"a": 0, "_id": 1}, {"a.b": 0}, {"a": 0.0}, {"a": 0, "b": 1}, {"$a": 0}):
        assert engine._exclusion(projection) is None, projection
    assert engine._exclusion({"_id": 0}) == frozenset({"_id"})
    assert engine._exclusion({"a": False, "_id": 0}) == frozenset({"a", "_id"})
    assert engine._inclusion({"a": 0}) is None  # an exclusion is not read as an inclusion
