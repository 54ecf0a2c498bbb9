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

from pathlib import Path
from typing import Any

import pytest
from bson import Code, DBRef, MaxKey, MinKey, Regex
from pymongo.errors import WriteError

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
