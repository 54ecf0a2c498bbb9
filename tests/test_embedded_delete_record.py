"""A delete's log record is its document's `_id` element cut from the stored BSON (issue 27):
the same bytes that encoding the decoded `_id` wrote, and a replay rebuilds the same state."""

from __future__ import annotations

import math
import uuid
from datetime import datetime
from typing import Any

import bson
import pytest
from bson import Binary, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

from service.embedded import codec, snapshot, wal
from service.embedded.engine import EngineClient
from service.embedded.store import _id_record

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
]


class Log:
    """A stand-in write-ahead log: the records, in order."""

    def __init__(self) -> None:
        self.records: list[bytes] = []

    def append(self, record: bytes) -> None:
        self.records.append(record)


def _logged() -> tuple[EngineClient, Log]:
    client = EngineClient()
    log = Log()
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
