"""Every `_id` MongoDB accepts (any BSON type but arrays, regular expressions and undefined)
on the embedded backend: stored, found, updated, deleted and replayed from the log; compared
as the server compares it when an update must leave it unchanged; and code sorted where the
server's `canonicalizeBSONType` puts it: after regular expressions, code with scope after
code, both before MaxKey.

An acknowledged insert of a code or DBRef `_id` once made the database unreadable at the next
start (its key had no BSON order): a write lost, and every other with it. An `_id` holding NaN
was "altered" by every update (Python's NaN is unequal to itself; BSON's equals itself).
"""

from __future__ import annotations

import random
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from pymongo import DeleteOne, InsertOne, UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

from service.embedded import embedded_database, open_embedded

pytestmark = pytest.mark.embedded_only

IDS: list[Any] = [
    Code("function () { return 1 }"),
    Code("x", {"a": 1}),
    Code("x", {}),
    DBRef("leads", 1),
    DBRef("leads", 2, "other"),
    {"$ref": "leads", "$id": 3},  # stored as a DBRef is: an embedded document
    {"a": {"$ref": "leads", "$id": 4}},
]


@pytest.mark.parametrize("value", IDS, ids=repr)
async def test_an_acknowledged_write_of_any_id_survives_a_restart(
    value: Any, tmp_path: Path
) -> None:
    path = tmp_path / "db"
    db, _ = open_embedded(path, "t", fsync=False)
    c = db["c"]
    await c.insert_one({"_id": value, "v": 1})
    await c.insert_one({"_id": 7, "v": 1})
    assert (await c.find_one({"_id": value}))["v"] == 1  # type: ignore[index]
    assert (await c.update_one({"_id": value}, {"$set": {"v": 2}})).modified_count == 1
    await db.client.close()

    db, _ = open_embedded(path, "t", fsync=False)
    c = db["c"]
    found = await c.find_one({"_id": value})
    assert found is not None and found["v"] == 2
    assert found["_id"] == (await c.find_one({"v": 2}))["_id"]  # type: ignore[index]
    assert (await c.delete_one({"_id": value})).deleted_count == 1
    await db.client.close()

    db, _ = open_embedded(path, "t", fsync=False)
    assert [d["_id"] async for d in db["c"].find({})] == [7]
    await db.client.close()


@pytest.mark.parametrize("indexed", [False, True])
async def test_code_sorts_after_regular_expressions_and_before_max_key(indexed: bool) -> None:
    c = embedded_database("code")["c"]
    if indexed:
        await c.create_index("v")
    values: list[Any] = [
        MaxKey(),
        Code("b", {"s": 1}),
        Code("b"),
        Code("a", {"s": 2}),
        Code("a", {"s": 1}),
        Code("a"),
        Regex("^z"),
        DBRef("c", 1),
        "z",
        MinKey(),
    ]
    await c.insert_many([{"_id": n, "v": v} for n, v in enumerate(values)])
    ascending = [d["_id"] async for d in c.find({}).sort("v", 1)]
    # MinKey, the string, the DBRef (an embedded document), the regex, code by its text,
    # code with scope by its text then its scope, MaxKey.
    assert ascending == [9, 8, 7, 6, 5, 2, 4, 3, 1, 0]
    assert [d["_id"] async for d in c.find({}).sort("v", -1)] == ascending[::-1]
    assert [d["_id"] async for d in c.find({"v": Code("a", {"s": 1})})] == [4]
    assert [d["_id"] async for d in c.find({"v": Code("a")})] == [5]
    # A DBRef's shape in a filter is an equality with the document, not operators.
    assert [d["_id"] async for d in c.find({"v": {"$ref": "c", "$id": 1}})] == [7]


@pytest.mark.parametrize("value", [float("nan"), {"k": [1, {"z": float("nan")}]}], ids=repr)
async def test_an_id_holding_nan_is_unchanged_by_an_update(value: Any) -> None:
    c = embedded_database("ids")["c"]
    await c.insert_one({"_id": value, "n": 1, "a": 1})
    # `$set` of MinKey and `$inc` take mongomock's general route, which checks the `_id`.
    assert (await c.update_one({"n": 1}, {"$set": {"a": MinKey()}})).modified_count == 1
    assert (await c.update_many({"n": 1}, {"$inc": {"n": 1}})).modified_count == 1
    assert (await c.find_one({}))["n"] == 2  # type: ignore[index]


async def test_an_update_altering_the_id_is_refused_and_one_keeping_its_value_is_not() -> None:
    c = embedded_database("ids")["c"]
    await c.insert_many([{"_id": {"k": 1, "j": 1}, "n": 1}, {"_id": 2, "n": 2}])
    with pytest.raises(WriteError) as refused:
        await c.update_one({"n": 1}, {"$set": {"_id.k": 2}})
    assert refused.value.code == 66
    with pytest.raises(WriteError):  # field order is part of a document's value
        await c.update_one({"n": 1}, {"$set": {"_id": {"j": 1, "k": 1}}})
    assert (await c.find_one({"n": 1}))["_id"] == {"k": 1, "j": 1}  # type: ignore[index]
    # 2.0 compares equal to 2 in BSON: the server takes it (the check is a comparison).
    assert (await c.update_one({"n": 2}, {"$set": {"_id": 2.0, "m": 1}})).matched_count == 1
    assert (await c.find_one({"_id": 2}))["m"] == 1  # type: ignore[index]


@pytest.mark.parametrize("value", [None, 0, "", float("nan"), 1], ids=repr)
async def test_a_replacement_keeps_the_stored_id(value: Any) -> None:
    c = embedded_database("ids")["c"]
    await c.insert_one({"_id": value, "n": 1})
    assert (await c.replace_one({"n": 1}, {"n": 2, "m": 1})).modified_count == 1
    assert (await c.replace_one({"n": 2}, {})).modified_count == 1
    [stored] = [d async for d in c.find({})]
    assert list(stored) == ["_id"] and type(stored["_id"]) is type(value)
    # By a filter's equal but other-typed `_id`: the stored one stays (1, not 1.0).
    assert (await c.replace_one({"_id": 1.0}, {"n": 3})).matched_count == (value == 1)
    assert [type(d["_id"]) async for d in c.find({})] == [type(value)]


async def test_a_replacement_altering_the_id_is_refused() -> None:
    c = embedded_database("ids")["c"]
    await c.insert_one({"_id": 1, "n": 1})
    with pytest.raises(WriteError) as refused:
        await c.replace_one({"_id": 1}, {"_id": 2, "n": 2})
    assert refused.value.code == 66
    assert await c.find_one({}) == {"_id": 1, "n": 1}
    # An `_id` comparing equal (2.0 and 2 alike in BSON) is the server's to take.
    assert (await c.replace_one({"_id": 1}, {"_id": 1.0, "n": 3})).modified_count == 1
    assert await c.find_one({}) == {"_id": 1.0, "n": 3}


def _any_value(rng: random.Random, depth: int = 0) -> Any:
    # A value of any BSON type (an array or a regex too: refused as an `_id`, kept elsewhere).
    scalars: list[Any] = [
        None, True, 0, -1, 2**40, Int64(7), 1.5, float("nan"), -0.0, Decimal128("1.50"),
        Decimal128("NaN"), "", "a\x00b", "é", ObjectId("65a1b2c3d4e5f60718293a4b"),
        Binary(b"\x01", 0), Binary(b"\x02" * 16, 4), uuid.UUID(int=5), Timestamp(1, 2),
        datetime(2026, 12, 6, 1, 0, 0, 123000), MinKey(), MaxKey(), Regex("^a", "i"),
        Code("f()"), Code("g()", {"s": 1}),
    ]  # fmt: skip
    pick = rng.randrange(6 if depth < 2 else 4)
    if pick < 3:
        return rng.choice(scalars)
    if pick == 3:
        return DBRef("c", rng.choice(scalars[:6]))
    if pick == 4:
        return [_any_value(rng, depth + 1) for _ in range(rng.randint(0, 2))]
    return {f"k{n}": _any_value(rng, depth + 1) for n in range(rng.randint(0, 2))}


@pytest.mark.parametrize("seed", range(4))
async def test_acknowledged_writes_of_every_type_survive_a_restart(
    seed: int, tmp_path: Path
) -> None:
    # Inserts, updates (the fast route and mongomock's), replacements, bulk writes and
    # deletes over values of every type: refused or acknowledged, and what was acknowledged
    # is what the log gives back after a restart, byte for byte.
    rng = random.Random(4200 + seed)
    db, _ = open_embedded(tmp_path / "db", "t", fsync=False)
    c = db["c"]
    await c.create_index("a")
    await c.create_index([("b", 1), ("a", -1)])
    await c.create_index("u", unique=True, sparse=True)
    codes: set[int | None] = set()
    for _ in range(300):
        n = rng.randrange(30)
        choice = rng.random()
        try:
            if choice < 0.5:
                doc = {"_id": _any_value(rng), "a": _any_value(rng), "b": _any_value(rng), "n": n}
                if rng.random() < 0.3:
                    doc["u"] = _any_value(rng)
                await c.insert_one(doc)
            elif choice < 0.7:
                change = rng.choice(
                    [{"$set": {"a": _any_value(rng)}}, {"$inc": {"n": 1}}, {"$unset": {"b": ""}},
                     {"$push": {"l": _any_value(rng)}}, {"$max": {"a": _any_value(rng)}}]
                )  # fmt: skip
                await (c.update_one if rng.random() < 0.5 else c.update_many)({"n": n}, change)
            elif choice < 0.8:
                await c.delete_many({"n": n})
            elif choice < 0.9:
                ops = [UpdateOne({"n": n}, {"$set": {"b": _any_value(rng)}}), DeleteOne({"n": n})]
                await c.bulk_write(
                    [*ops, InsertOne({"n": 99, "a": _any_value(rng)})], ordered=False
                )
            else:
                await c.replace_one({"n": n}, {"n": 50, "a": _any_value(rng)})
        except (DuplicateKeyError, BulkWriteError):
            pass
        except WriteError as exc:  # arrays and regexes as `_id` only
            codes.add(exc.code)
    before = sorted(raw for raw, _ in c.engine._store.docs.values())
    await db.client.close()
    db, _ = open_embedded(tmp_path / "db", "t", fsync=False)
    after = sorted(raw for raw, _ in db["c"].engine._store.docs.values())
    await db.client.close()
    assert codes <= {2}  # BadValue: an array or a regex as `_id`
    assert len(before) > 30 and after == before
