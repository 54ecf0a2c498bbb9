"""The embedded engine's write cost per document, by kind of write, in process (no HTTP).

What an embedded import spends in the engine's worker thread (issue 27, build item 3), each
kind timed on its own with every declared index live and a write-ahead log recording (records
built, kept in memory: the encoding is counted, the disk is not):

- `insert leads`: `insert_many` of N lead documents (outbox field included);
- `insert events`: `insert_many` of their N `lead.created` journal events;
- `insert claims`: `insert_many` of the leads' dedupe claims (email, phone, MLS id: 3 per
  lead, as the bulk import claims them; timed per lead);
- `seq events`: the sequencer's `bulk_write` of N `UpdateOne({_id, seq: null}, {$set: {seq}})`;
- `unset outbox`: the outbox clear, `update_many({_id: {$in}, pending_event.version: 1},
  {$unset: {pending_event: ""}})` over the N leads, in slices as `update_many` runs it;
- `delete claims`: a chunk's claims released, `delete_many({tenant_id, lead_id: {$in}})` over
  the N leads, in slices as `delete_many` runs it (service/leads/claims.py `release_leads`;
  timed per lead);
- `read leads`: every lead found and decoded as a caller receives it (the cursor's work);
- `read events`: every event decoded as a caller receives it (what projectors read);
- `read page`: every lead found and decoded as a list page reads it, without its search
  fields (`{search_text: 0, search_tokens: 0}`: an exclusion projection);
- `read feed`: a projector's pages of the sequenced events, `find({aggregate_type: "lead",
  seq: {$gt: position, $lte: head}}, {seq, tenant_id, aggregate_type, aggregate_id})` sorted
  by `seq`, 500 a page, found and read (service/projections/runner.py);
- `find pending`: the sequencer's look-up of the unsequenced versions of a batch's aggregates,
  `find({aggregate_id: {$in}, seq: null}, {_id, aggregate_id, version})`, found and read.

Each kind is timed with the engine's calls exactly as aio.py makes them (one call for the
whole batch, as the slices would run it), `--repeat` times alternating fresh databases; the
best and median CPU µs per document (the thread's CPU time, which other processes on a busy
machine disturb less than the wall clock) are printed. `--fast-off` runs with `engine.FAST_PATHS =
False` (the general routes) for comparison.

Usage: PYTHONPATH=. .venv/bin/python bench/bench_engine_writes.py [--rows 5000] [--repeat 5]
       [--profile KIND]  (cProfile of one run of that kind, top 25 by own time)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import os
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.bench_bulk_import import journal_documents, lead_rows, raw_documents

KINDS = (
    "insert leads",
    "insert events",
    "insert claims",
    "seq events",
    "unset outbox",
    "delete claims",
    "read leads",
    "read events",
    "read page",
    "read feed",
    "find pending",
)


class _MemoryLog(list):  # type: ignore[type-arg]
    """Stands in for wal.Log: records are built and kept, nothing is written."""


def _fresh() -> Any:
    from service.database import init_models
    from service.embedded import embedded_database

    db = embedded_database("bench")
    asyncio.run(init_models(db))
    db.client.engine.recorder.log = _MemoryLog()
    return db


def _copies(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [dict(d) for d in docs]


def prepare(n: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The lead documents (with a pending outbox event each) and their journal events."""
    _fresh()  # the models bound (building a lead needs them)
    leads = raw_documents(lead_rows(n))
    events = journal_documents(leads)
    for lead, event in zip(leads, events, strict=True):
        lead["pending_event"] = {
            "id": event["_id"],
            "version": 1,
            "type": event.get("event_type"),
        }
    return leads, events


def _claims(leads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The leads' dedupe claims as `service.leads.claims` builds them (fresh ids)."""
    from datetime import UTC, datetime

    from service.core import journal

    now = datetime.now(UTC)
    return [
        {
            "_id": journal.pooled_uuid7.binary(),
            "tenant_id": lead["tenant_id"],
            "field": field,
            "value": lead[field],
            "lead_id": lead["_id"],
            "claimed_at": now,
        }
        for lead in leads
        for field in ("email", "phone", "mls_id")
        if lead.get(field)
    ]


def _reader(engine: Any, projection: dict[str, Any]) -> Callable[[bytes], dict[str, Any]]:
    """How a cursor's batch reads stored documents through a projection (an engine before
    `projector`: `read_projected` per document), for runs against an older checkout."""
    if not hasattr(type(engine), "projector"):  # (the instance answers any name: mongomock)
        return lambda raw: engine.read_projected(raw, projection)  # type: ignore[no-any-return]
    return engine.projector(projection)  # type: ignore[no-any-return]


def run_kind(
    kind: str,
    leads: list[dict[str, Any]],
    events: list[dict[str, Any]],
    profiler: cProfile.Profile | None = None,
) -> float:
    """Seconds the engine spends on one kind over all the documents (set-up untimed)."""
    from pymongo import UpdateOne

    from service.embedded import aio, codec

    db = _fresh()
    lead_engine = db["leads"].engine
    event_engine = db["domain_events"].engine
    timed: Callable[[], Any]
    if kind == "insert leads":
        docs = _copies(leads)

        def timed() -> Any:
            return lead_engine._insert_many(docs, False)

    elif kind == "insert events":
        docs = _copies(events)

        def timed() -> Any:
            return event_engine._insert_many(docs, False)

    elif kind == "insert claims":
        claims = _claims(leads)
        claim_engine = db["lead_claims"].engine

        def timed() -> Any:
            return claim_engine._insert_many(claims, False)

    elif kind == "seq events":
        event_engine._insert_many(_copies(events), False)
        requests = [
            UpdateOne({"_id": e["_id"], "seq": None}, {"$set": {"seq": n}})
            for n, e in enumerate(events, start=1)
        ]

        def timed() -> Any:
            result = {"writeErrors": [], "nMatched": 0, "nModified": 0, "upserted": []}
            for index, request in enumerate(requests):
                op, args = aio._bulk_op(request)
                aio._bulk_apply(event_engine, result, index, op, args)
            assert result["nModified"] == len(requests), result
            return result

    elif kind == "unset outbox":
        lead_engine._insert_many(_copies(leads), False)
        ids = [d["_id"] for d in leads]
        query = codec.canonical({"_id": {"$in": ids}, "pending_event.version": 1})
        change = codec.canonical({"$unset": {"pending_event": ""}})

        def timed() -> Any:
            # As `update_many` runs it: `aio._UpdateMany` in slices (each its engine batch).
            sliced = aio._UpdateMany(db["leads"], query, change, False)
            result = aio._MORE
            while result is aio._MORE:
                result = sliced.step(aio._Slice())
            assert result["nModified"] == len(ids), result
            return result

    elif kind == "delete claims":
        claims = _claims(leads)
        db["lead_claims"].engine._insert_many(claims, False)
        query = codec.canonical(
            {"tenant_id": leads[0]["tenant_id"], "lead_id": {"$in": [d["_id"] for d in leads]}}
        )

        def timed() -> Any:
            # As `delete_many` runs it: `aio._DeleteMany` in slices (each its engine batch).
            sliced = aio._DeleteMany(db["lead_claims"], query)
            result = aio._MORE
            while result is aio._MORE:
                result = sliced.step(aio._Slice())
            assert result["n"] == len(claims), result
            return result

    elif kind == "read leads":
        lead_engine._insert_many(_copies(leads), False)
        tenant = codec.canonical({"t": leads[0]["tenant_id"]})["t"]

        def timed() -> Any:
            found = lead_engine.matching({"tenant_id": tenant}, keep=False)
            out = [codec.read(raw) for raw, _ in found]
            assert len(out) == len(leads)
            return out

    elif kind == "read page":
        lead_engine._insert_many(_copies(leads), False)
        tenant = codec.canonical({"t": leads[0]["tenant_id"]})["t"]
        excluded = {"search_text": 0, "search_tokens": 0}

        def timed() -> Any:
            found = lead_engine.matching({"tenant_id": tenant}, keep=False)
            decode = _reader(lead_engine, excluded)
            out = [decode(raw) for raw, _ in found]
            assert len(out) == len(leads) and "search_text" not in out[0]
            return out

    elif kind == "read events":
        event_engine._insert_many(_copies(events), False)
        raws = [raw for raw, _ in event_engine._store.docs.values()]

        def timed() -> Any:
            return [codec.read(raw) for raw in raws]

    elif kind == "read feed":
        event_engine._insert_many(_copies(events), False)
        for n, e in enumerate(events, start=1):
            query = codec.canonical({"_id": e["_id"], "seq": None})
            event_engine._update(query, codec.canonical({"$set": {"seq": n}}))
        fields = dict.fromkeys(("seq", "tenant_id", "aggregate_type", "aggregate_id"), 1)

        def timed() -> Any:
            position, read = 0, 0
            while position < len(events):
                window = {"$gt": position, "$lte": len(events)}
                query = codec.canonical({"aggregate_type": "lead", "seq": window})
                found = event_engine.matching(query, sort=[("seq", 1)], limit=500, keep=False)
                decode = _reader(event_engine, fields)  # as a cursor's batch reads them
                page = [decode(raw) for raw, _ in found]
                read += len(page)
                position = page[-1]["seq"]
            assert read == len(events)
            return read

    elif kind == "find pending":
        event_engine._insert_many(_copies(events), False)
        ids = [e["aggregate_id"] for e in events]
        query = codec.canonical({"aggregate_id": {"$in": ids}, "seq": None})
        fields = {"_id": 1, "aggregate_id": 1, "version": 1}

        def timed() -> Any:
            found = event_engine.matching(query, keep=False)
            decode = _reader(event_engine, fields)
            out = [decode(raw) for raw, _ in found]
            assert len(out) == len(events)
            return out

    else:
        raise SystemExit(f"unknown kind {kind!r}; one of {', '.join(KINDS)}")
    # The bench's own documents (thousands of dicts) stay out of the collector's walks: what
    # is timed is the engine's work, not the garbage collector re-walking the inputs.
    gc.collect()
    gc.freeze()
    if profiler is not None:
        profiler.enable()
    start = time.thread_time()  # CPU time: other processes on the machine count less
    timed()
    seconds = time.thread_time() - start
    if profiler is not None:
        profiler.disable()
    gc.unfreeze()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--fast-off", action="store_true")
    parser.add_argument("--profile", choices=KINDS)
    parser.add_argument("--kinds", nargs="*", choices=KINDS, default=list(KINDS))
    args = parser.parse_args()
    from service.embedded import engine

    engine.FAST_PATHS = not args.fast_off
    leads, events = prepare(args.rows)
    if args.profile:
        profiler = cProfile.Profile()
        run_kind(args.profile, leads, events, profiler)
        pstats.Stats(profiler).sort_stats(os.environ.get("SORT", "tottime")).print_stats(
            int(os.environ.get("TOP", "25"))
        )
        return
    times: dict[str, list[float]] = {kind: [] for kind in args.kinds}
    for _ in range(args.repeat):
        for kind in args.kinds:  # alternated: each round runs every kind once
            times[kind].append(run_kind(kind, leads, events))
    print(f"{args.rows} documents, {args.repeat} rounds, load {os.getloadavg()[0]:.2f}")
    for kind, seconds in times.items():
        per = [s / args.rows * 1e6 for s in seconds]
        print(f"  {kind:14s} best {min(per):7.1f} µs/doc  median {statistics.median(per):7.1f}")


if __name__ == "__main__":
    main()
