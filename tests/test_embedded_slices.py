"""Large writes on the embedded backend run as slices: same answers, other calls in between.

`insert_many`, `bulk_write`, `update_many` and `delete_many` run as a chain of short engine
calls (service/embedded/aio.py, `run_sliced`), as a server yields its locks between the
write units of a batch. These tests force tiny slices (`SLICE_ITEMS`) and check that the
answers, errors, counted work and observed calls equal those of the same writes in one call,
that a call issued meanwhile runs between two slices, that a multi-update re-checks each
document at its turn, that what earlier slices wrote is durable when a later one fails, and
that the caller's time budget covers the whole chain.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pymongo import DeleteMany, DeleteOne, InsertOne, ReplaceOne, UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError, DocumentTooLarge, DuplicateKeyError, NetworkTimeout

from service.core.deadlines import deadline
from service.embedded import (
    EmbeddedDatabase,
    aio,
    codec,
    embedded_database,
    open_embedded,
    wal,
    work,
)
from tests.support.helpers import crash_image, decoded_fields

pytestmark = pytest.mark.embedded_only

BIG = "x" * (codec.MAX_BSON_SIZE // 2)


@contextmanager
def slices(items: int | None) -> Iterator[None]:
    """At most `items` documents or ops per slice; None: every write in one call."""
    saved = aio.SLICE_ITEMS, aio.SLICE_SECONDS
    aio.SLICE_ITEMS = items
    aio.SLICE_SECONDS = 3600.0 if items is None else saved[1]
    try:
        yield
    finally:
        aio.SLICE_ITEMS, aio.SLICE_SECONDS = saved


@contextmanager
def worker_held() -> Iterator[threading.Event]:
    """The engine's worker blocked until the event is set: calls queue in submission order."""
    gate = threading.Event()
    aio._WORKER.submit(gate.wait, 5)
    try:
        yield gate
    finally:
        gate.set()


def _outcome(value: Any) -> Any:
    # A comparable picture of a result or an error.
    if isinstance(value, BulkWriteError):
        return ("BulkWriteError", value.details)
    if isinstance(value, BaseException):
        return (type(value).__name__, str(value))
    for name in ("bulk_api_result", "inserted_ids", "inserted_id", "raw_result"):
        if hasattr(value, name):
            return (type(value).__name__, getattr(value, name))
    return value


async def _collect(db: EmbeddedDatabase, calls: list[Callable[[], Awaitable[Any]]]) -> Any:
    outcomes = []
    for call in calls:
        try:
            outcomes.append(_outcome(await call()))
        except Exception as exc:  # compared, not raised: both runs must fail alike
            outcomes.append(_outcome(exc))
    state = [doc async for doc in db["c"].find({}).sort("_id", 1)]
    return outcomes, state


async def _run_both(
    scenario: Callable[[EmbeddedDatabase], list[Callable[[], Awaitable[Any]]]],
    setup: Callable[[EmbeddedDatabase], Awaitable[None]] | None = None,
) -> tuple[Any, Any]:
    """The scenario's outcomes, final state, counted work and observed calls: sliced (one
    item per slice) and in one call."""
    pictures = []
    for items in (None, 1):
        db = embedded_database("slices")
        if setup is not None:
            await setup(db)
        seen: list[aio.Operation] = []
        aio.observers.append(seen.append)
        try:
            with slices(items), work.measuring() as counted:
                outcomes, state = await _collect(db, scenario(db))
        finally:
            aio.observers.remove(seen.append)
        ops = [(op.collection, op.method, op.keys_examined, op.docs_examined, op.returned)
               for op in counted.operations]  # fmt: skip
        pictures.append((outcomes, state, ops, seen))
    return pictures[0], pictures[1]


async def _indexed(db: EmbeddedDatabase) -> None:
    await db["c"].create_index("k", unique=True)
    await db["c"].create_index("g")
    await db["c"].insert_many([{"_id": i, "k": i, "g": i % 3, "v": 0} for i in range(12)])


# -- the same answers -----------------------------------------------------------------------


async def test_insert_many_answers_as_in_one_call() -> None:
    def scenario(db: EmbeddedDatabase) -> list[Callable[[], Awaitable[Any]]]:
        c = db["c"]
        return [
            lambda: c.insert_many([{"_id": 100 + i, "k": 100 + i} for i in range(7)]),
            # ordered: stops at the duplicate (index 3), the ones before it stay
            lambda: c.insert_many([{"_id": 200 + i, "k": 1 if i == 3 else 200 + i}
                                   for i in range(6)]),
            # unordered: every good one is kept, errors keyed by the original index
            lambda: c.insert_many(
                [{"_id": 300 + i, "k": 2 if i % 2 else 300 + i} for i in range(7)], ordered=False
            ),
            lambda: c.insert_many(
                [{"_id": 400, "k": 400}, {"_id": [1], "k": 402}, {"_id": 401, "k": 401}],
                ordered=False,
            ),
            # too large: refused before anything is written
            lambda: c.insert_many([{"_id": 500 + i, "k": 500 + i} for i in range(4)]
                                  + [{"b": BIG * 3}]),
        ]  # fmt: skip

    one_call, sliced = await _run_both(scenario, _indexed)
    assert sliced == one_call
    outcomes, state, _, seen = sliced
    assert outcomes[1][1]["nInserted"] == 3
    assert [e["index"] for e in outcomes[1][1]["writeErrors"]] == [3]
    assert [e["index"] for e in outcomes[2][1]["writeErrors"]] == [1, 3, 5]
    assert outcomes[2][1]["nInserted"] == 4
    assert outcomes[4][0] == "DocumentTooLarge"
    assert not [d for d in state if 500 <= d["_id"] < 600]
    assert [op.method for op in seen] == ["insert_many"] * 5 + ["find"]  # one per call


async def test_bulk_write_answers_as_in_one_call() -> None:
    def scenario(db: EmbeddedDatabase) -> list[Callable[[], Awaitable[Any]]]:
        c = db["c"]
        mixed = [
            InsertOne({"_id": 50, "k": 50}),
            UpdateOne({"_id": 1}, {"$inc": {"v": 1}}),
            UpdateOne({"_id": 60}, {"$set": {"k": 60}}, upsert=True),
            InsertOne({"_id": 51, "k": 1}),  # duplicate k
            UpdateMany({"g": 2}, {"$set": {"v": 7}}),
            ReplaceOne({"_id": 3}, {"k": 3, "r": True}),
            DeleteOne({"_id": 4}),
            InsertOne({"_id": 52, "k": 52}),
            DeleteMany({"g": 0, "_id": {"$gt": 5}}),
            UpdateOne({"_id": 61}, {"$set": {"k": 61}}, upsert=True),
        ]
        return [
            lambda: c.bulk_write(list(mixed), ordered=False),
            lambda: c.bulk_write([InsertOne({"_id": 70, "k": 70}), InsertOne({"_id": 71, "k": 2}),
                                  InsertOne({"_id": 72, "k": 72})]),  # ordered: 72 never runs
            # a request refused before anything runs
            lambda: c.bulk_write([InsertOne({"_id": 80, "k": 80}),
                                  UpdateOne({"_id": 1}, {"v": 1})]),
            lambda: c.bulk_write([UpdateOne({"_id": i}, {"$set": {"v": i}}) for i in range(12)]),
        ]  # fmt: skip

    one_call, sliced = await _run_both(scenario, _indexed)
    assert sliced == one_call
    outcomes, state, _, seen = sliced
    assert [e["index"] for e in outcomes[0][1]["writeErrors"]] == [3]
    assert outcomes[0][1]["nUpserted"] == 2
    assert [u["index"] for u in outcomes[0][1]["upserted"]] == [2, 9]
    assert outcomes[1][1]["nInserted"] == 1 and outcomes[1][1]["writeErrors"][0]["index"] == 1
    assert outcomes[2][0] == "ValueError"
    assert 80 not in [d["_id"] for d in state] and 72 not in [d["_id"] for d in state]
    assert outcomes[3][1]["nMatched"] == 9  # three of the twelve are gone
    assert [op.method for op in seen].count("bulk_write") == 4


async def test_update_many_and_delete_many_answer_as_in_one_call() -> None:
    def scenario(db: EmbeddedDatabase) -> list[Callable[[], Awaitable[Any]]]:
        c = db["c"]
        return [
            lambda: c.update_many({"g": 1}, {"$set": {"v": 1}}),
            lambda: c.update_many({"g": {"$in": [1, 2]}}, {"$set": {"v": 1}}),  # some unchanged
            lambda: c.update_many({"v": {"$gt": 0}}, {"$set": {"v": None}}),  # changes its filter
            lambda: c.update_many({"g": 9}, {"$set": {"v": 5}}, upsert=True),
            lambda: c.update_many({"g": 9}, {"$set": {"v": 6}}, upsert=True),
            lambda: c.insert_one({"_id": 99, "k": 1008, "g": 7}),
            lambda: c.update_many({"g": 2}, {"$inc": {"k": 1000}}),  # a duplicate at the third
            lambda: c.update_many({"_id": {"$lt": 6}}, [{"$set": {"p": "$k"}}]),
            lambda: c.delete_many({"g": 0}),
            lambda: c.delete_many({"nothing": 1}),
            # An outbox's clear: `_id`s by `$in` (some missing, repeated, 1.0 for 1) and one
            # more condition; then one whose `_id` condition the plan does not decide alone.
            lambda: c.update_many(
                {"_id": {"$in": [3.0, 5, 5, 404, 7, 1]}, "g": {"$in": [1, 2]}},
                {"$set": {"o": 1}},
            ),
            lambda: c.update_many({"_id": {"$in": [2, 3], "$lt": 3}}, {"$unset": {"o": ""}}),
        ]

    one_call, sliced = await _run_both(scenario, _indexed)
    for mine, theirs in zip(sliced[0], one_call[0], strict=True):
        if mine[0] == "UpdateResult" and mine[1].get("upserted") is not None:
            assert mine[1]["n"] == theirs[1]["n"] == 1  # a new ObjectId each run
        else:
            assert mine == theirs
    assert [d for d in sliced[1] if d.get("g") != 9] == [d for d in one_call[1] if d.get("g") != 9]
    assert sliced[2] == one_call[2]  # the same counted work
    assert sliced[3] == one_call[3]  # the same calls observed
    outcomes = sliced[0]
    assert outcomes[0][1]["n"] == 4 and outcomes[0][1]["nModified"] == 4
    assert outcomes[1][1]["n"] == 8 and outcomes[1][1]["nModified"] == 4
    assert outcomes[2][1]["n"] == 8
    assert outcomes[4][1]["n"] == 1 and outcomes[4][1]["nModified"] == 1
    assert outcomes[6][0] == "DuplicateKeyError"
    ks = {d["_id"]: d.get("k") for d in sliced[1]}
    assert (ks[2], ks[5], ks[8], ks[11]) == (1002, 1005, 8, 11)  # the ones before it stay
    assert outcomes[8][1]["n"] == 4 and outcomes[9][1]["n"] == 0
    assert outcomes[10][1]["n"] == 3 and outcomes[11][1]["n"] == 1


# -- other calls in between -----------------------------------------------------------------


async def test_a_call_issued_during_a_large_insert_runs_between_its_slices() -> None:
    c = embedded_database("slices")["c"]
    await c.insert_one({"_id": "first", "k": -1})
    with slices(10), worker_held() as gate:
        # Queued in this order behind the held worker: the insert's first slice, then the
        # reads and a one-document create; the insert's next slices go to the back.
        insert = asyncio.ensure_future(c.insert_many([{"k": i} for i in range(2000)]))
        await asyncio.sleep(0)
        read = asyncio.ensure_future(c.find_one({"k": -1}))
        point = asyncio.ensure_future(c.find_one({"_id": "first"}))
        create = asyncio.ensure_future(c.insert_one({"_id": "one"}))
        await asyncio.sleep(0)
        gate.set()
        assert (await read) == {"_id": "first", "k": -1}
        assert (await point) == {"_id": "first", "k": -1}
        await create
        # The insert is still running (in one engine call it would have finished first).
        assert not insert.done()
        await insert
    assert await c.count_documents({}) == 2002


async def test_a_one_call_operation_goes_before_the_next_slices_of_every_large_write() -> None:
    c = embedded_database("slices")["c"]
    await c.insert_many([{"_id": i, "g": i % 2} for i in range(200)])
    with slices(5), worker_held() as gate:
        # Queued behind the held worker: both deletes' first slices, then a count.
        evens = asyncio.ensure_future(c.delete_many({"g": 0}))
        odds = asyncio.ensure_future(c.delete_many({"g": 1}))
        await asyncio.sleep(0)
        count = asyncio.ensure_future(c.count_documents({}))
        await asyncio.sleep(0)
        gate.set()
        # Each first slice let the waiting count go first: it saw nothing deleted yet.
        assert await count == 200
        assert (await evens).deleted_count == (await odds).deleted_count == 100
    assert await c.count_documents({}) == 0


async def test_an_update_many_skips_a_document_changed_meanwhile_so_it_no_longer_matches() -> None:
    c = embedded_database("slices")["c"]
    await c.insert_many([{"_id": i, "g": 1, "v": 0} for i in range(10)])
    with slices(1), worker_held() as gate:
        update = asyncio.ensure_future(c.update_many({"g": 1}, {"$inc": {"v": 1}}))
        await asyncio.sleep(0)
        # Runs after the update's first slice (candidates fixed, document 0 updated).
        moved = asyncio.ensure_future(c.update_one({"_id": 9}, {"$set": {"g": 2}}))
        changed = asyncio.ensure_future(c.update_one({"_id": 8}, {"$set": {"w": 1}}))
        gone = asyncio.ensure_future(c.delete_one({"_id": 7}))
        await asyncio.sleep(0)
        gate.set()
        result = await update
        await asyncio.gather(moved, changed, gone)
    assert (result.matched_count, result.modified_count) == (8, 8)
    docs = {d["_id"]: d async for d in c.find({})}
    assert docs[9] == {"_id": 9, "g": 2, "v": 0}  # no longer matched at its turn: untouched
    assert docs[8] == {"_id": 8, "g": 1, "v": 1, "w": 1}  # still matched: updated as it was then
    assert 7 not in docs
    assert all(docs[i]["v"] == 1 for i in range(7))


async def test_a_delete_many_rechecks_documents_changed_meanwhile() -> None:
    c = embedded_database("slices")["c"]
    await c.insert_many([{"_id": i, "g": 1} for i in range(6)])
    with slices(1), worker_held() as gate:
        delete = asyncio.ensure_future(c.delete_many({"g": 1}))
        await asyncio.sleep(0)
        kept = asyncio.ensure_future(c.update_one({"_id": 5}, {"$set": {"g": 2}}))
        gone = asyncio.ensure_future(c.delete_one({"_id": 4}))
        await asyncio.sleep(0)
        gate.set()
        result = await delete
        await asyncio.gather(kept, gone)
    assert result.deleted_count == 4
    assert [d async for d in c.find({})] == [{"_id": 5, "g": 2}]


async def test_a_delete_many_decodes_only_the_ids_its_plan_decided(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Matches read without keeping them: an index that decides the filter leaves only each
    # match's `_id` to decode (its key); a filter the index leaves partly open reads its
    # fields first.
    c = embedded_database("slices")["c"]
    await c.create_index("t")
    await c.insert_many([{"_id": i, "t": i % 2, "n": i, "big": "x" * 99} for i in range(6)])
    decoded = decoded_fields(monkeypatch)
    with slices(1):
        assert (await c.delete_many({"t": 0})).deleted_count == 3
        assert decoded == [["_id"]] * 3
        decoded.clear()
        assert (await c.delete_many({"t": 1, "n": {"$gte": 3}})).deleted_count == 2
    assert decoded == [["t", "n"]] * 3 + [["_id"]] * 2
    monkeypatch.undo()
    assert [d["_id"] async for d in c.find({})] == [1]


async def test_the_time_budget_covers_the_whole_chain() -> None:
    c = embedded_database("slices")["c"]
    with slices(1), worker_held() as gate:
        with deadline(0.05), pytest.raises(NetworkTimeout):
            await c.insert_many([{"_id": i} for i in range(100)])
        gate.set()
    # The operation stopped at its next slice: none of it ran.
    assert await c.count_documents({}) == 0


# -- durability -----------------------------------------------------------------------------


async def test_what_earlier_slices_wrote_is_durable_when_a_later_one_fails(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data.embedded"
    db, _ = open_embedded(path, "app", interval=0)
    await db["c"].create_index("k", unique=True)
    await db["c"].insert_one({"_id": "taken", "k": 50})
    with slices(3), pytest.raises(BulkWriteError) as caught:
        await db["c"].insert_many([{"_id": i, "k": i} for i in range(100)])
    assert caught.value.details["nInserted"] == 50
    first = crash_image(path, tmp_path / "first")  # as a `kill -9` right after the answer
    # A bulk write failing in a later slice with an error that is not a write error.
    with slices(3), pytest.raises(DocumentTooLarge):
        await db["d"].bulk_write(
            [*(InsertOne({"_id": i}) for i in range(20)), InsertOne({"b": BIG * 3})]
        )
    second = crash_image(path, tmp_path / "second")
    await db.client.close()

    db, _ = open_embedded(first, "app")
    assert [d["_id"] async for d in db["c"].find({"_id": {"$type": "int"}})] == list(range(50))
    await db.client.close()
    db, _ = open_embedded(second, "app")
    assert await db["d"].count_documents({}) == 20
    await db.client.close()


async def test_an_update_many_failing_in_a_later_slice_keeps_what_it_changed_before(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data.embedded"
    db, _ = open_embedded(path, "app", interval=0)
    await db["c"].create_index("k", unique=True)
    await db["c"].insert_many([{"_id": i, "k": i} for i in range(30)])
    await db["c"].insert_one({"_id": "taken", "k": 1020})
    with slices(4), pytest.raises(DuplicateKeyError):
        await db["c"].update_many({"_id": {"$type": "int"}}, {"$inc": {"k": 1000}})
    copy = crash_image(path, tmp_path / "crashed")
    await db.client.close()

    db, _ = open_embedded(copy, "app")
    ks = {d["_id"]: d["k"] async for d in db["c"].find({"_id": {"$type": "int"}})}
    assert ks == {i: i + 1000 if i < 20 else i for i in range(30)}
    await db.client.close()


async def test_a_sliced_write_with_deferred_commits_still_reaches_the_log(tmp_path: Path) -> None:
    path = tmp_path / "data.embedded"
    db, _ = open_embedded(path, "app", interval=0)
    with slices(2), wal.deferred():
        await db["c"].insert_many([{"_id": i} for i in range(30)])
    await asyncio.sleep(0.2)  # the background commit
    copy = crash_image(path, tmp_path / "crashed")
    await db.client.close()
    db, _ = open_embedded(copy, "app")
    assert await db["c"].count_documents({}) == 30
    await db.client.close()


async def test_a_long_cursor_decodes_in_slices_and_returns_every_document() -> None:
    c = embedded_database("slices")["c"]
    await c.insert_many([{"_id": i, "v": i, "w": -i} for i in range(100)])
    with slices(7):
        assert [d["_id"] async for d in c.find({"v": {"$gte": 0}})] == list(range(100))
        projected = await c.find({}, {"w": 1}).sort("v", -1).to_list(None)
        assert projected == [{"_id": i, "w": -i} for i in reversed(range(100))]
        cursor = c.find({}).skip(5)
        assert [d["_id"] for d in await cursor.to_list(10)] == list(range(5, 15))
        assert [d["_id"] for d in await cursor.to_list(None)] == list(range(15, 100))
        assert not cursor.alive


@pytest.mark.parametrize(
    ("query", "change"),
    [
        ({"g": 1}, {"$set": {"v": 1}}),  # the engine's fast path
        ({"g": {"$in": [1, 2]}, "v": 0}, {"$inc": {"v": 2}}),  # mongomock's route
        ({"_id": {"$in": [1, 2, 4, 5, 99]}}, {"$unset": {"v": ""}}),
        ({"g": 1, "_id": {"$gt": 5}}, {"$set": {"v": 9}}),  # candidates from `g`, `_id` tested
        ({"$or": [{"g": 0}, {"_id": 4}]}, {"$set": {"v": 8}}),
        ({"nothing": 1}, {"$set": {"v": 3}}),
    ],
)
async def test_a_sliced_update_many_answers_and_counts_as_the_engine_in_one_call(
    query: dict[str, Any], change: dict[str, Any]
) -> None:
    pictures = []
    for sliced in (False, True):
        db = embedded_database("slices")
        await _indexed(db)
        c = db["c"]
        with work.measuring() as counted:
            if sliced:
                with slices(2):
                    result = (await c.update_many(query, change)).raw_result
            else:  # the engine's own update, one call (as before slicing)
                engine = c.engine
                result = await aio.run(
                    engine._update, codec.canonical(query), change, upsert=False, multi=True
                )
                result = aio._update_result(result)
        state = [d async for d in c.find({}).sort("_id", 1)]
        ops = [(o.method, o.keys_examined, o.docs_examined) for o in counted.operations]
        pictures.append((result, state, ops))
    assert pictures[1] == pictures[0]
