"""The embedded engine's shortcuts (issue 27) change its costs, never its answers or indexes."""

from __future__ import annotations

import contextlib
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
from bson import Binary, Int64
from pymongo.errors import WriteError

from service.embedded import EmbeddedCollection, codec, embedded_database
from service.embedded.engine import _touched
from service.embedded.store import CollectionStore

pytestmark = pytest.mark.embedded_only


@pytest.fixture
def coll() -> EmbeddedCollection:
    return embedded_database("t")["c"]


def _store(coll: EmbeddedCollection) -> CollectionStore:
    return coll.engine._store


def assert_indexes_consistent(store: CollectionStore) -> None:
    """Every index holds exactly the entries its documents' stored values give, computed alone."""
    for name, index in store.indexes.items():
        expected: dict[Any, tuple[Any, ...]] = {}
        for key, (raw, _) in store.docs.items():
            doc = codec.to_canonical(raw)
            expected[key] = tuple((*k, key) for k in index.keys_of(doc))
        in_order = sorted(e for es in expected.values() for e in es)
        # A multikey index holds its entries as bytes (`Index.encoded`): in the same order.
        assert index.encoded == (index.multikey and index.encodable), name
        assert [index.id_of(e) for e in index.entries] == [e[-1] for e in in_order], name
        expected = {key: index.encode(entries) for key, entries in expected.items()}
        assert index.by_doc == expected, name
        assert list(index.entries) == sorted(e for es in expected.values() for e in es), name


DOCS: list[dict[str, Any]] = [
    {"_id": 1, "a": 1, "b": {"c": "x"}, "tags": ["p", "q"], "d": None},
    {"_id": 2, "a": [3, 1, 3], "b": [{"c": "y"}, {"c": "x"}], "tags": []},
    {"_id": 3, "b": 4, "tags": [[], "p"], "d": datetime(2026, 1, 1, tzinfo=UTC)},
    {"_id": 4, "a": True, "b": {"c": [1, 2]}, "tags": "solo", "d": uuid.uuid4()},
    {"_id": 5, "a": Int64(7), "b": {}, "d": Binary(b"\x01\x02", 0), "loc": [1.5, 2.5]},
    {"_id": "s", "a": float("nan"), "b": {"c": None}, "tags": [None, 2.0]},
]


async def _indexed(coll: EmbeddedCollection) -> None:
    await coll.create_index([("a", 1), ("_id", 1)])
    await coll.create_index([("a", 1), ("b.c", -1)])
    await coll.create_index([("tags", 1), ("a", 1)])
    await coll.create_index([("b.c", 1)], sparse=True)
    await coll.create_index([("d", 1), ("a", 1)], partialFilterExpression={"a": {"$exists": True}})
    await coll.create_index([("loc", "2dsphere"), ("a", 1)])


async def test_index_keys_shared_between_indexes_are_each_index_s_own(
    coll: EmbeddedCollection,
) -> None:
    # The per-document memo (keys.field_keys) gives every index what it computes alone, for
    # scalars, arrays, nested paths, missing fields, empty arrays and geo fields.
    await _indexed(coll)
    await coll.insert_many([dict(d) for d in DOCS])
    assert_indexes_consistent(_store(coll))


@pytest.mark.parametrize(
    "update",
    [
        {"$set": {"a": 2}},
        {"$set": {"b.c": "z"}},
        {"$unset": {"a": ""}},
        {"$inc": {"a": 1}},
        {"$mul": {"a": 2}},
        {"$min": {"a": -1}},
        {"$max": {"a": 99}},
        {"$rename": {"a": "z"}},
        {"$rename": {"z": "a"}},
        {"$push": {"tags": "r"}},
        {"$addToSet": {"tags": "p"}},
        {"$pull": {"tags": "p"}},
        {"$pop": {"tags": 1}},
        {"$currentDate": {"d": True}},
        {"$set": {"a": True}},
        {"$set": {"a": 1.0}},
        {"$set": {"unindexed": 1}},
    ],
)
async def test_updates_keep_every_index_exact(coll: EmbeddedCollection, update: Any) -> None:
    # Only the indexes watching a field the update names are recomputed (`_touched`).
    await _indexed(coll)
    await coll.insert_many([{**d, "z": 5} for d in DOCS if not isinstance(d.get("a"), float)])
    # Refused for some document (mongomock raises its own Python errors for some): the
    # documents updated before it stay updated, every index exact.
    with contextlib.suppress(WriteError, ValueError, TypeError, AttributeError):
        await coll.update_many({}, update)
    assert_indexes_consistent(_store(coll))
    # And reads through the indexes answer as a collection scan does (an `$or` branch no
    # index serves makes the plan a scan).
    for value in (1, 2, True, 99, -1, None, "p", "r"):
        for field in ("a", "tags", "b.c"):
            planned = await coll.find({field: value}).to_list()
            scanned = await coll.find({"$or": [{field: value}, {"never": 1}]}).to_list()
            assert sorted(map(str, planned)) == sorted(map(str, scanned)), (field, value)


async def test_byte_entries_give_back_long_and_short_ids(coll: EmbeddedCollection) -> None:
    # A multikey index holds its entries as bytes, each ending with its id's bytes and their
    # length (`keys.id_tail`: one byte, or five past 254 bytes): ids of both forms come back
    # through inserts, updates and deletes, and queries answer as a collection scan does.
    await coll.create_index([("tags", 1), ("a", 1)])
    ids: list[Any] = ["x" * 300, "y" * 251, "z" * 252, 7, 7.5, "s", uuid.uuid4()]
    await coll.insert_many(
        [{"_id": i, "tags": ["p", f"t{n % 3}"], "a": n} for n, i in enumerate(ids)]
    )
    assert _store(coll).indexes["tags_1_a_1"].encoded
    await coll.update_many({"a": {"$gte": 3}}, {"$push": {"tags": "q"}})
    await coll.delete_one({"_id": "y" * 251})
    assert_indexes_consistent(_store(coll))
    for value in ("p", "q", "t1", "none"):
        planned = await coll.find({"tags": value}).sort("tags", 1).to_list()
        scanned = await coll.find({"$or": [{"tags": value}, {"nowhere": 1}]}).to_list()
        assert sorted(map(repr, planned)) == sorted(map(repr, scanned)), value
        assert len({repr(d["_id"]) for d in planned}) == len(planned)


def test_touched_names_the_top_level_fields_of_operator_updates() -> None:
    assert _touched({"$set": {"a.b": 1, "c": 2}, "$unset": {"d": ""}}) == {"a", "c", "d"}
    assert _touched({"$rename": {"a.x": "b.y"}}) == {"a", "b"}
    assert _touched({"$push": {"arr.$[].x": 1}}) == {"arr"}
    assert _touched({"a": 1}) is None  # a replacement: every field may change
    assert _touched([{"$set": {"a": 1}}]) is None  # a pipeline
    assert _touched({"$set": {"a": 1}, "$frob": {"b": 1}}) is None  # unknown: left to mongomock
    assert _touched({}) is None


async def test_a_bounded_walk_in_sort_order_beats_a_whole_walk_of_equal_cost(
    coll: EmbeddedCollection,
) -> None:
    # One tenant holding every document: walking its bounds costs as much as walking `_id_`
    # whole, but only the bounded walk decides the filter (no candidate decoded to check it).
    from service.embedded.planner import plan

    await coll.create_index([("tenant", 1), ("live", 1), ("_id", 1)], name="tenant_live")
    await coll.insert_many([{"_id": i, "tenant": "t", "live": True} for i in range(300)])
    query = {"tenant": "t", "live": True}
    chosen = plan(_store(coll), codec.canonical(query), [("_id", -1)], 51)
    assert (chosen.name, chosen.exact, chosen.ordered) == ("tenant_live", True, True)
    page = await coll.find(query).sort("_id", -1).limit(51).to_list()
    assert [d["_id"] for d in page] == list(range(299, 248, -1))


def test_replies_decode_exactly_as_the_driver_decodes() -> None:
    # codec.read builds UUIDs itself; the result is the driver's STANDARD decoding, types and
    # all, and what its walk does not cover goes to the driver's decoder.
    import bson
    from bson import DBRef, Regex, Timestamp
    from bson.code import Code
    from bson.errors import InvalidBSON

    ids = [uuid.uuid4() for _ in range(4)]
    docs: list[dict[str, Any]] = [
        {"_id": ids[0], "a": [ids[1], [ids[2], {"x": ids[3]}]], "b": {"c": {"d": ids[0]}}},
        {"_id": 1, "legacy": Binary(ids[0].bytes, 3), "raw": Binary(b"\x00" * 16, 0), "n": None},
        {"_id": 2, "when": datetime(2026, 5, 1, 12, 30, 1, 123000, tzinfo=UTC), "i": Int64(5)},
        {"_id": 3, "ref": DBRef("c", ids[1]), "re": Regex("^a", "i"), "ts": Timestamp(5, 1)},
        {"_id": 4, "code": Code("f()", {"u": ids[2]}), "plain": Code("g()")},
        {"_id": 5, "empty": {}, "arr": [], "odd": Binary(b"\x01" * 16, 0x80)},
    ]
    for doc in docs:
        raw = codec.encode(doc)
        ours, drivers = codec.read(raw), bson.decode(raw, codec_options=codec.READER)
        assert ours == drivers
        assert repr(ours) == repr(drivers)  # the same types throughout
    broken = codec.encode({"_id": 1, "u": Binary(b"abc", 4)})  # a UUID of 3 bytes
    with pytest.raises(InvalidBSON):
        bson.decode(broken, codec_options=codec.READER)
    with pytest.raises(InvalidBSON):
        codec.read(broken)


def test_uuid_shortcut_falls_back_where_the_raw_bytes_mislead() -> None:
    # Text that looks like a UUID element, a nested UUID under a top-level field's name,
    # and the same name twice: each still decodes exactly as the driver does.
    import bson

    ids = [uuid.uuid4() for _ in range(3)]
    lookalike = "\x05u\x00\x10\x00\x00\x00\x04" + "x" * 16
    docs: list[dict[str, Any]] = [
        {"_id": ids[0], "text": lookalike, "u": "not a uuid"},
        {"_id": ids[0], "u": ids[1], "nested": {"u": ids[2]}},
        {"_id": 1, "list": [ids[0], ids[1]], "u": Binary(ids[2].bytes, 3)},
        {"_id": ids[0], "\u00e9t\u00e9": ids[1]},
    ]
    for doc in docs:
        raw = codec.encode(doc)
        ours, drivers = codec.read(raw), bson.decode(raw, codec_options=codec.READER)
        assert repr(ours) == repr(drivers)
