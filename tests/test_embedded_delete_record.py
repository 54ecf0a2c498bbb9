"""A delete's log record is its document's `_id` element cut from the stored BSON (issue 27):
the same bytes that encoding the decoded `_id` wrote, and a replay rebuilds the same state."""

from __future__ import annotations

import contextlib
import functools
import math
import random
import uuid
from datetime import datetime
from typing import Any

import bson
import pytest
from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp
from pymongo.errors import DuplicateKeyError

from service.embedded import codec, keys, snapshot, wal, work
from service.embedded.engine import EngineClient, EngineCollection
from service.embedded.store import _id_record
from tests.support.helpers import MemoryLog, decoded_fields, engine_outcome, engine_state

pytestmark = pytest.mark.embedded_only

IDS: list[Any] = [
    uuid.UUID("0192b3c4-0000-7000-8000-000000000001"),
    Binary(b"\x00\x01", 0),
    Binary(b"", 5),
    ObjectId("65a1b2c3d4e5f60718293a4b"),
    "s",
    "",
    "a\x00b",
    "é" * 300,
    -1,
    2**31,
    2**62,
    Int64(5),
    2.5,
    -0.0,
    math.inf,
    math.nan,
    Decimal128("1.50"),
    True,
    None,
    datetime(2026, 12, 6, 0, 30, 1, 123000),
    Timestamp(1, 2),
    MinKey(),
    MaxKey(),
    {"a": 1, "b": [1, "x"], "c": {"d": None}},
    Code("function () {}"),
    Code("x", {"a": 1}),
    DBRef("c", 1),
    {"$ref": "c", "$id": 2, "$db": "d"},
]


def _logged() -> tuple[EngineClient, MemoryLog]:
    client = EngineClient()
    log = MemoryLog()
    client.recorder.log = log  # type: ignore[assignment]
    coll = client.database("db").get_collection("c")
    coll.create_index([("a", 1), ("n", 1)], name="a_n")
    coll.create_index([("tags", 1)], name="tags")
    return client, log


def test_a_delete_record_holds_the_bytes_its_decoded_id_encodes_to() -> None:
    # Each kind of `_id` (short and long, both uuid forms of binary, numbers of every type,
    # documents, MinKey/MaxKey...): the record cut from the stored BSON is the record the
    # whole decode wrote, and replaying the log rebuilds the same documents and indexes.
    client, log = _logged()
    coll = client.database("db").get_collection("c")
    for n, value in enumerate(IDS):
        coll._insert({"_id": value, "a": n % 3, "n": n, "tags": ["x", f"t{n % 4}"]})
    store = coll._store
    for n, key in enumerate(list(store.docs)):
        if n % 3 == 2:
            continue  # some documents stay
        raw = store.docs[key][0]
        expected = bson.encode({"_id": codec.to_canonical(raw)["_id"]})
        assert _id_record(raw) == expected, codec.to_canonical(raw)["_id"]
        store.delete(key)  # (what every delete and the TTL sweep call)
        assert key not in store.docs
        assert log.records[-1] == wal.encode(wal.DELETE, "db", "c", expected)
    replayed = EngineClient()
    for record, _ in wal._records(b"".join(log.records), 0):
        snapshot._apply(replayed, record)
    again = replayed.database("db").get_collection("c")._store
    assert again.docs == store.docs
    for name, index in store.indexes.items():
        assert list(again.indexes[name].entries) == list(index.entries), name
        assert again.indexes[name].by_doc == index.by_doc, name


def test_an_id_the_cut_does_not_walk_is_decoded_whole() -> None:
    # (A regular expression `_id` is refused on insert; a stored one would be decoded.)
    raw = bson.encode({"_id": Regex("^a"), "x": 1})
    assert _id_record(raw) == bson.encode({"_id": codec.to_canonical(raw)["_id"]})


def _old_delete(coll: EngineCollection, query: Any, multi: bool) -> dict[str, Any]:
    # The former `EngineCollection._delete`: every match decoded whole and kept for its `_id`.
    with work.operation(coll.name, "delete"):
        found = coll.matching(query, limit=0 if multi else 1)
    for _, doc in found:
        assert doc is not None
        coll._store.delete(keys.sort_key(doc["_id"]))
    return {"n": len(found), "ok": 1.0}


VALUES: list[Any] = [None, 0, 1, 1.0, -0.0, True, "x", "y", "", math.nan, Int64(1), 2**40]
VALUES += [datetime(2024, 1, 1), Binary(b"\x01", 0), Decimal128("2.5"), [], [1], [1, "x"]]
VALUES += [{"k": 1}, {"k": [1, 2]}, {"k": None}]


def _pair(docs: list[dict[str, Any]]) -> list[tuple[EngineCollection, MemoryLog]]:
    made = []
    for _ in range(2):
        client, log = _logged()
        coll = client.database("db").get_collection("c")
        coll.create_index([("b", 1)], unique=True, sparse=True, name="b_unique")
        coll.create_index([("c", 1)], partialFilterExpression={"n": True}, name="c_partial")
        for doc in docs:
            with contextlib.suppress(DuplicateKeyError):
                coll._insert(dict(doc))
        made.append((coll, log))
    return made


def _random_filter(rng: random.Random) -> dict[str, Any]:
    field = rng.choice(["a", "n", "b", "c", "tags", "tags.k"])
    shape = rng.randrange(6)
    if shape == 0:
        return {"_id": rng.randrange(45)}
    if shape == 1:
        return {"_id": {"$in": [rng.randrange(45) for _ in range(rng.randint(0, 6))]}}
    if shape == 2:
        return {field: rng.choice(VALUES)}
    if shape == 3:
        return {"a": rng.choice(VALUES), "n": {"$gte": rng.choice([0, 1, "x"])}}
    if shape == 4:
        return {field: {"$in": [rng.choice(VALUES) for _ in range(2)]}, "c": {"$exists": True}}
    return {"tags": {"$size": 1}} if rng.random() < 0.8 else {}  # a scan


@pytest.mark.parametrize("seed", range(12))
def test_a_delete_decoding_only_what_its_filter_reads_deletes_as_before(seed: int) -> None:
    # `_delete` reads its matches without keeping them (decoded only as far as the filter
    # reads, not at all on an exact plan) and keys them by their `_id` alone: the same
    # documents go, with the same answers, errors, indexes, log and counted work as the
    # former route of whole decoded documents.
    rng = random.Random(27700 + seed)
    docs = []
    for i in range(40):
        doc: dict[str, Any] = {"_id": i}
        for name in rng.sample(["a", "n", "b", "c", "tags"], rng.randint(0, 5)):
            doc[name] = rng.choice(VALUES)
        docs.append(doc)
    mine, theirs = _pair(docs)
    for _ in range(25):
        query = codec.canonical(_random_filter(rng))
        multi = rng.random() < 0.5
        new = engine_outcome(functools.partial(mine[0]._delete, query, multi=multi))
        old = engine_outcome(functools.partial(_old_delete, theirs[0], query, multi))
        assert repr(new) == repr(old), (query, multi)  # repr: NaN in error details
        assert engine_state(*mine) == engine_state(*theirs), (query, multi)


def test_an_exact_delete_decodes_only_the_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    coll = EngineClient().database("db").get_collection("c")
    coll.create_index([("t", 1)], name="t")
    for i in range(6):
        coll._insert({"_id": i, "t": "a" if i < 4 else "b", "big": "x" * 99, "n": i})
    decoded = decoded_fields(monkeypatch)
    assert coll._delete(codec.canonical({"t": "a"}), multi=True)["n"] == 4
    assert coll._delete(codec.canonical({"_id": 5}))["n"] == 1
    assert decoded == [["_id"]] * 5
    decoded.clear()
    assert coll._delete(codec.canonical({"t": "b", "n": {"$gte": 0}}))["n"] == 1
    assert decoded == [["t", "n"], ["_id"]]  # the fields the filter reads, then the key
    assert list(coll._store.docs) == []
