"""Bulk lead import: `POST /v1/leads/bulk` with N leads vs the raw driver making the same writes.

Everything runs on the embedded backend (service/embedded/), in one process, in one run:

- service: the bulk endpoint through the ASGI app (auth, body parsing, per-row validation and
  normalisation, dedupe, `Repository.create_many_values`);
- raw: the driver's `insert_many` of exactly the lead documents the service stores (built
  ahead of time by the service's own code), for reference;
- floor: the raw driver making the writes of a journaled import with pre-built documents —
  per chunk the rows' dedupe-key claims (`lead_claims`, its unique index kept, as the
  service's), the leads with their creation marker, their `lead.created` events, the marker
  clear — the floor a deduplicated, journaled import cannot go below;
- stripped-down app: bench/floor_bulk_app.py, a FastAPI app with only this endpoint doing
  the same work and the same writes by the plainest code (no auth, repository or generic
  encoder, no turns for other requests), checked to store the same documents and journal
  the same changes (ids and times aside): what this work costs written plainly with the
  same libraries.

Targets (issue 27; issue 18 had 2.0x and 100 us): service <= 1.3x the floor, and <= 50 us of
Python work per lead outside database calls ((service time - time awaiting database calls) /
N). The event loop thread's CPU time per lead is printed too: on a loaded machine wall time
minus database time swings with the load, thread CPU time much less. Database calls must grow
with N / chunk (<= 2*ceil(N/1000) + 10).

The framework's own floor per lead is printed last: the body's JSON parse and the rows'
validation by the API schema in one call, what any FastAPI service accepting these rows pays
before doing anything with them (and the BSON encode a server's driver adds).

Secondary indexes are dropped on both sides before timing (as the earlier measurements did)
and background workers are off: the sequencer would otherwise number the new events while
the import runs, in the same process and on the same worker thread, which the floor does not
do (a real deployment runs it anywhere, against a server's indexes).

Usage: .venv/bin/python bench/bench_bulk_import.py [--rows 10000] [--rounds 5] [--profile]
[--mix distinct|realistic]
(`--profile` runs one more service round under cProfile and prints where its time goes, and
one more stubbed round, printed as shares per step of a row.)
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import cProfile
import itertools
import json
import math
import os
import pstats
import statistics
import sys
import time
from collections import Counter
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx
from beanie.odm.utils.parsing import parse_obj
from pydantic import TypeAdapter
from uuid6 import uuid7

from service.auth import register_owner
from service.core import journal, security
from service.core.settings import Settings
from service.database import embedded_database
from service.leads.commands import _young_collections_only
from service.main import create_app
from tests.support.dbcalls import count_db_calls

_seq = itertools.count()


def lead_rows(n: int, mix: str = "distinct") -> list[dict[str, Any]]:
    """N distinct leads, half generic and half MLS, as a client would send them.

    `mix="realistic"`: names, cities and companies drawn from small pools (accented ones
    among them, so repeated values), optional fields given or not, phones in several
    shapes, consent on some rows; emails, phones and MLS ids still distinct.
    """
    if mix == "realistic":
        return realistic_rows(n)
    rows: list[dict[str, Any]] = []
    for i in range(n):
        common = {
            "first_name": f"First{i}",
            "last_name": f"Last{i}",
            "email": f"Lead{i}@Example.com",
            "phone": f"+1 (415) {200 + i // 10000:03d}-{i % 10000:04d}",
            "tags": ["import"],
            "address": {"line1": f"{i} Main St", "city": "Springfield"},
        }
        if i % 2:
            rows.append({"type": "generic", **common, "company": "Acme"})
        else:
            rows.append(
                {"type": "mls", **common, "mls_id": f"ML{i}", "list_price": 350000.25, "beds": 3}
            )
    return rows


_FIRST = ["James", "Mary", "José", "Zoë", "Robert", "Linda", "Søren", "Aiko", "Chloé", "Ali"]
_LAST = ["Smith", "García", "Müller", "Nguyen", "O'Brien", "Johnson", "Brown", "Łukasz", "Lee"]
_CITIES = [("Springfield", "IL"), ("Austin", "TX"), ("San José", "CA"), ("Denver", "CO")]
_COMPANIES = ["Acme", "Globex Corp.", "Initech", None, None]


def realistic_rows(n: int) -> list[dict[str, Any]]:
    """`lead_rows(n, "realistic")`: repeated names, cities and companies; varied shapes."""
    rows: list[dict[str, Any]] = []
    for i in range(n):
        first, last = _FIRST[i % len(_FIRST)], _LAST[(i // 3) % len(_LAST)]
        city, state = _CITIES[(i // 7) % len(_CITIES)]
        number = f"{200 + i // 10000:03d}{i % 10000:04d}"
        phone = [f"+1 (415) {number[:3]}-{number[3:]}", f"415.{number[:3]}.{number[3:]}"][i % 2]
        row: dict[str, Any] = {
            "first_name": first,
            "last_name": last,
            "email": f"{first[0]}.{last.encode('ascii', 'ignore').decode()}{i}@example.com",
            "tags": ["import", "spring"] if i % 3 else ["import"],
            "address": {"line1": f"{i} Main St", "city": city, "state": state, "country": "US"},
        }
        if i % 5:  # a fifth of the rows come without a phone
            row["phone"] = phone
        if i % 10 == 0:
            row["consent"] = {"email": {"status": "opted_in", "source": "web form"}}
        if i % 2:
            row |= {"type": "generic", "company": _COMPANIES[i % len(_COMPANIES)]}
        else:
            row |= {"type": "mls", "mls_id": f"ML{i}", "list_price": 350000.25, "beds": 3}
            if i % 4 == 0:
                row["listing_agent"] = {"name": "Al Agent", "email": "al@realty.example"}
        rows.append(row)
    return rows


def raw_documents(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Exactly the lead documents the service stores for `rows` (outbox aside), BSON-ready.

    Built with the service's own normalisation and encoder, outside any timing, so the raw
    driver inserts the same fields (every optional one too) with the same values.
    """
    from uuid6 import uuid7

    from documents.base import utcnow
    from schemas.leads import LeadCreate
    from service.core.context import RequestContext, Role
    from service.core.journal import encode_document
    from service.leads.commands import build_lead

    ctx = RequestContext(tenant_id=uuid7(), actor_id=uuid7(), role=Role.owner)
    adapter: TypeAdapter[Any] = TypeAdapter(LeadCreate)
    now = utcnow()
    docs = []
    for row in rows:
        doc = build_lead(ctx, adapter.validate_python(row))
        doc.created_at = doc.updated_at = now
        doc.created_by = doc.updated_by = ctx.actor_id
        docs.append(encode_document(doc))
    return docs


def journal_documents(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `lead.created` events of `docs` as the service journals them (built untimed)."""
    from documents.lead import LeadBase
    from tests.support import oracles

    events = []
    for raw in docs:
        doc = parse_obj(LeadBase, raw)
        changes = oracles.creation_changes(doc)
        events.append(
            oracles.creation_event_document(
                doc, event_id=uuid7(), actor_type="user", changes=changes
            )
        )
    return events


async def drop_secondary_indexes(db: Any, *names: str) -> None:
    """Drop every index but `_id` (both sides run without secondary indexes)."""
    for name in names:
        await db[name].drop_indexes()


async def service_round(
    settings: Settings, rows: list[dict[str, Any]], profiler: cProfile.Profile | None = None
) -> tuple[float, float, Counter[str], Counter[str]]:
    """Time one `POST /v1/leads/bulk` of `rows` on a fresh database (optionally profiled).

    Returns the wall time, the event loop thread's CPU time (the service's Python work: the
    embedded engine runs on its own worker thread), the database calls and their seconds.
    The body is encoded before timing: the client's JSON encoding is not the service's work.
    """
    body = json.dumps({"leads": rows}).encode()
    db = embedded_database(f"bench_service_{next(_seq)}")
    app = create_app(settings=settings, database=db)
    async with app.router.lifespan_context(app):
        n = next(_seq)
        user = await register_owner(
            settings=settings,
            username=f"bench{n}",
            email=f"bench{n}@example.com",
            password="bench-password-123",
            organization_name=None,
        )
        token, _ = security.create_access_token(
            settings, user_id=user.id, tenant_id=user.tenant_id, role=user.role
        )
        await drop_secondary_indexes(db, "leads", "domain_events")
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://bench",
            timeout=600,
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        ) as client:
            with count_db_calls() as (calls, seconds):
                if profiler is not None:
                    profiler.enable()
                start, cpu = time.perf_counter(), time.thread_time()
                response = await client.post("/v1/leads/bulk", content=body)
                elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
                if profiler is not None:
                    profiler.disable()
        body = response.json()
        assert response.status_code == 200, response.text
        assert body["created"] == len(rows), body
        return elapsed, cpu, calls, seconds


async def raw_round(docs: list[dict[str, Any]]) -> float:
    """Time the raw driver's `insert_many` of the equivalent documents on a fresh database."""
    db = embedded_database(f"bench_raw_{next(_seq)}")
    docs = copy.deepcopy(docs)  # untimed: each round inserts its own objects
    with _young_collections_only():  # as `raw_same_writes_round`
        start = time.perf_counter()
        await db["leads"].insert_many(docs, ordered=False)
        return time.perf_counter() - start


async def raw_same_writes_round(
    docs: list[dict[str, Any]],
    events: list[dict[str, Any]],
    chunk: int,
    *,
    db: Any | None = None,
    sequence: bool = False,
) -> float:
    """Time the raw driver making the writes the service's protocol makes, per chunk.

    The rows' dedupe-key claims (into `lead_claims` with its unique index, as the service
    keeps it), leads with their creation marker, the journal entries, then the marker clear:
    the floor a deduplicated, journaled import cannot go below on this backend. Timed under
    the collector policy the service's imports run under (no full collection: one walking
    the bench's own rows and copies, 0.35-0.45 s at 10,000, fell inside the floor's timing or
    not by the heap's size alone). `db` (already indexed) replaces the fresh in-memory
    database; with `sequence`, each chunk's events also get their feed positions as the
    sequencer gives them (one ordered bulk of conditional `$set seq` by `_id`, then the
    published head).
    """
    from documents.lead import LeadBase
    from documents.lead_claim import LeadClaim
    from service.leads.commands import dedupe_keys

    if db is None:
        db = embedded_database(f"bench_raw_{next(_seq)}")
        await db["lead_claims"].create_indexes(LeadClaim.Settings.indexes)
    docs, events = copy.deepcopy(docs), copy.deepcopy(events)
    claims: list[list[dict[str, Any]]] = []
    for doc, event in zip(docs, events, strict=True):
        doc["pending_event"] = journal.creation_marker(
            event_id=event["_id"], aggregate_id=doc["_id"], actor_type="user"
        )
        lead = parse_obj(LeadBase, doc)
        claims.append(
            [
                {"_id": uuid7(), "tenant_id": doc["tenant_id"], "field": field, "value": value}
                | {"lead_id": doc["_id"], "claimed_at": doc["created_at"]}
                for field, value in dedupe_keys(lead)
            ]
        )
    heads = db["feed_heads"]
    published = ((await heads.find_one({"_id": "domain_events"})) or {}).get("head", 0)
    with _young_collections_only():  # the service's collector policy during an import
        return await _same_writes(db, docs, events, claims, chunk, published, sequence)


async def _same_writes(
    db: Any,
    docs: list[dict[str, Any]],
    events: list[dict[str, Any]],
    claims: list[list[dict[str, Any]]],
    chunk: int,
    published: int,
    sequence: bool,
) -> float:
    from pymongo import UpdateOne

    heads = db["feed_heads"]
    start = time.perf_counter()
    for i in range(0, len(docs), chunk):
        part = docs[i : i + chunk]
        chunk_claims = [c for per_lead in claims[i : i + chunk] for c in per_lead]
        await db["lead_claims"].insert_many(chunk_claims, ordered=False)
        await db["leads"].insert_many(part, ordered=False)
        await db["domain_events"].insert_many(events[i : i + chunk], ordered=False)
        await db["leads"].update_many(
            {"_id": {"$in": [d["_id"] for d in part]}, "pending_event.version": 1},
            {"$unset": {"pending_event": ""}},
        )
        if sequence:
            ops = [
                UpdateOne({"_id": e["_id"], "seq": None}, {"$set": {"seq": published + i + n}})
                for n, e in enumerate(events[i : i + chunk], start=1)
            ]
            await db["domain_events"].bulk_write(ops, ordered=True)
            head = published + i + len(ops)
            await heads.update_one({"_id": "domain_events"}, {"$max": {"head": head}}, upsert=True)
    return time.perf_counter() - start


async def floor_app_round(
    rows: list[dict[str, Any]], docs: list[dict[str, Any]], events: list[dict[str, Any]]
) -> tuple[float, float, float]:
    """Time the stripped-down app's `POST /v1/leads/bulk` of `rows` (bench/floor_bulk_app.py).

    Its database as the service's (in memory, `lead_claims` indexed, no secondary index on
    leads or events). Returns wall time, event-loop CPU, time in database calls; checks
    first that it stored what the service stores (`docs`, `events`, for a lead of each
    type: the same fields and values, the same changes; ids and times aside).
    """
    from bench.floor_bulk_app import create_floor_app
    from documents.lead_claim import LeadClaim

    db = embedded_database(f"bench_app_{next(_seq)}")
    await db["lead_claims"].create_indexes(LeadClaim.Settings.indexes)
    app = create_floor_app(db, tenant_id=uuid7(), actor_id=uuid7())
    body = json.dumps({"leads": rows}).encode()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://bench", timeout=600
    ) as client:
        with _young_collections_only(), count_db_calls() as (_, seconds):
            start, cpu = time.perf_counter(), time.thread_time()
            response = await client.post(
                "/v1/leads/bulk", content=body, headers={"Content-Type": "application/json"}
            )
            elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
    assert response.status_code == 200 and response.json()["created"] == len(rows), response.text
    for position in _one_of_each_type(docs):
        await _assert_stored_as_service(db, docs[position], events[position])
    return elapsed, cpu, sum(seconds.values())


def _one_of_each_type(docs: list[dict[str, Any]]) -> list[int]:
    # The position of the first lead of each type (the rows mix generic and MLS leads).
    first: dict[str, int] = {}
    for position, doc in enumerate(docs):
        first.setdefault(doc["type"], position)
    return list(first.values())


# Values that differ between two imports of the same rows: ids, times, the caller.
_PER_IMPORT = frozenset(
    {"_id", "id", "tenant_id", "created_at", "updated_at", "created_by", "updated_by"}
    | {"user_id", "assignee_id", "pending_event"}
)


async def _assert_stored_as_service(db: Any, doc: dict[str, Any], event: dict[str, Any]) -> None:
    """The stripped-down app stored `doc` and journaled `event` as the service does: the
    same fields with the same values, the same changes (ids and times aside)."""
    stored = await db["leads"].find_one({"email": doc["email"]})
    entry = await db["domain_events"].find_one({"aggregate_id": stored["_id"]})

    def same(value: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in value.items() if k not in _PER_IMPORT}

    assert set(stored) | {"pending_event"} == set(doc), (list(stored), list(doc))
    assert same(stored) == same(doc), (same(stored), same(doc))
    changes = [(c["field"], c["new"]) for c in entry["changes"] if c["field"] not in _PER_IMPORT]
    expected = [(c["field"], c["new"]) for c in event["changes"] if c["field"] not in _PER_IMPORT]
    assert changes == expected, (changes, expected)


def framework_floor_us(
    rows: list[dict[str, Any]],
    docs: list[dict[str, Any]],
    events: list[dict[str, Any]],
    rounds: int,
) -> tuple[float, float, float]:
    """What any FastAPI + PyMongo service pays per lead, stripped of the service (thread CPU).

    Three parts, each the best of `rounds`, in µs per lead: the body parsed (`json.loads`, as
    FastAPI does); the rows validated in one call by the API's own union schema; each stored
    lead and its journal entry encoded to BSON (what a driver does before sending them; on
    the embedded backend the engine's thread does it, inside the database time). No
    normalisation, ids, dedupe, search tokens or journal diff.
    """
    from bson import encode

    from schemas.leads import LeadCreate

    body = json.dumps({"leads": rows}).encode()
    adapter: TypeAdapter[Any] = TypeAdapter(list[LeadCreate])
    parsed = json.loads(body)["leads"]

    def encode_all() -> None:
        for doc, event in zip(docs, events, strict=True):
            encode(doc)
            encode(event)

    def best(step: Any) -> float:
        times = []
        for _ in range(rounds):
            start = time.thread_time()
            step()
            times.append(time.thread_time() - start)
        return min(times) / len(rows) * 1e6

    return (
        best(lambda: json.loads(body)),
        best(lambda: adapter.validate_python(parsed)),
        best(encode_all),
    )


class YoungCollections:
    """The cyclic collector's runs during the timed stubbed rounds: how many, how long.

    Their number follows what a lead allocates and keeps (not the machine's load): a
    load-independent measure of allocation work, and their time is part of a lead's cost.
    """

    def __init__(self) -> None:
        self.count = 0
        self.seconds = 0.0
        self.timing = False
        self._started = 0.0

    def __call__(self, phase: str, _info: dict[str, int]) -> None:
        """`gc.callbacks` entry: counts the collections made while `timing`."""
        if not self.timing:
            return
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.count += 1
            self.seconds += time.thread_time() - self._started


async def python_only_rounds(
    settings: Settings,
    n_rows: int,
    rounds: int,
    profiler: cProfile.Profile | None = None,
    mix: str = "distinct",
    collections: YoungCollections | None = None,
) -> list[float]:
    """The service's bulk path per lead with every database call stubbed (thread CPU time).

    `leads.bulk_import` called directly (no HTTP, no body parsing), claims, inserts and the
    journal flush replaced by no-ops, the phone cache cleared per round: what a lead costs
    the service's own Python, steadier under load than wall time minus database time.
    Runs last: the stubs stay in place. With `profiler`, one more round runs under it; with
    `collections`, the collector's runs during the timed rounds are counted there.
    """
    import gc
    from unittest.mock import patch

    from uuid6 import uuid7

    from documents.base import normalize_phone
    from documents.lead import LeadBase
    from service.core.context import RequestContext, Role
    from service.leads import commands

    await service_round(settings, lead_rows(200))  # Beanie initialised, everything imported

    class Discard:
        async def insert_many(self, *_: Any, **__: Any) -> None:
            return None

    async def no_claims(*_: Any, **__: Any) -> dict[Any, Any]:
        return {}

    async def no_flush(*_: Any, **__: Any) -> None:
        return None

    times = []
    with (
        patch.object(commands.lead_claims, "claim_many", no_claims),
        patch.object(journal, "flush_many", no_flush),
        patch.object(LeadBase, "get_pymongo_collection", lambda: Discard()),
    ):
        for round_ in range(rounds + (profiler is not None)):
            rows = lead_rows(n_rows, mix)
            normalize_phone.cache_clear()
            ctx = RequestContext(tenant_id=uuid7(), actor_id=uuid7(), role=Role.owner)
            profiled = profiler is not None and round_ == rounds
            if profiled:
                profiler.enable()  # type: ignore[union-attr]
            if collections is not None and not profiled:
                gc.callbacks.append(collections)
                collections.timing = True
            cpu = time.thread_time()
            outcome = await commands.bulk_import(ctx=ctx, rows=rows)
            if profiled:
                profiler.disable()  # type: ignore[union-attr]
            else:
                times.append(time.thread_time() - cpu)
            if collections is not None and collections.timing:
                collections.timing = False
                gc.callbacks.remove(collections)
            assert outcome.created == n_rows, outcome
    return times


# Where the stubbed bulk path's time goes: the steps of a row, each by the functions that do
# it (file, names; cumulative time, less the steps listed last, which run inside it).
STEPS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("schema validation (pydantic)", "service/leads/commands.py", "_validated", ()),
    ("phone normalisation", "documents/base.py", "normalize_phone", ()),
    ("search text and tokens", "documents/lead.py", "lead_search_*", ()),
    (
        "ids (pooled uuid7, lead and event)",
        "service/core/journal/events.py",
        "__call__|binar*|many",
        (),
    ),
    (
        "API values -> document values",
        "service/leads/commands.py",
        "_row_values",
        ("phone normalisation", "ids (pooled uuid7, lead and event)"),
    ),
    ("stored document + creation changes", "service/core/journal/encoding.py", "encode", ()),
    (
        "journal entry + marker",
        "service/core/repository.py",
        "_insert_created",
        ("ids (pooled uuid7, lead and event)",),
    ),
]


def print_step_shares(profiler: cProfile.Profile) -> None:
    """The stubbed path's profile as shares of `bulk_import` per step of a row."""
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]

    def cumulative(path: str, names: str, within: str | None = None) -> float:
        # `a|b`: either function; `lead_search_*`: any whose name starts so. `within`: only
        # the calls made from that function (by name), for a step counted inside another.
        def matches(fn: str) -> bool:
            return any(
                fn == name or (name.endswith("*") and fn.startswith(name[:-1]))
                for name in names.split("|")
            )

        total = 0.0
        for (file, _, fn), row in stats.items():
            if not (matches(fn) and file.endswith(path)):
                continue
            if within is None:
                total += row[3]
            else:
                total += sum(c[3] for (_, _, caller), c in row[4].items() if caller == within)
        return total

    total = cumulative("service/leads/commands.py", "bulk_import")
    where = {label: (path, name) for label, path, name, _ in STEPS}
    spent: dict[str, float] = {}
    for label, path, name, inside in STEPS:
        spent[label] = cumulative(path, name)
        for other in inside:  # the part of `other` spent under this step's function
            other_path, other_name = where[other]
            spent[label] -= cumulative(other_path, other_name, within=name)
    print("\n--- bulk path, db stubbed: shares of bulk_import (cProfile inflates small calls) ---")
    for label, _, _, _ in STEPS:
        print(f"  {spent[label] / total:6.1%}  {label}")
    rest = 1 - sum(spent.values()) / total
    print(f"  {rest:6.1%}  the rest (row loop, dedupe, chunks, collections between them)")


def print_profile(profiler: cProfile.Profile, top: int = 30) -> None:
    """The profiled request's hot spots: cumulative first (where), then own time (what)."""
    stats = pstats.Stats(profiler)
    print("\n--- profile of one service round (cProfile; absolute times inflated) ---")
    # Cumulative: the service's own steps and the backend's entry points, not the ASGI stack.
    ours = r"(/service/|/documents/|/schemas/|phonenumberutil\.py|email_validator)"
    stats.sort_stats("cumulative").print_stats(ours, top)
    stats.sort_stats("tottime").print_stats(top)


async def main(n_rows: int, rounds: int, profile: bool, mix: str = "distinct") -> None:
    from service.leads.commands import BULK_CHUNK

    settings = Settings(
        app_env="test",
        jwt_secret="bench-secret-" + "x" * 40,
        fernet_key="yQ8hR3Hh6p4VbYdG0o8tYgq1w9H2sM3bGk7Zr8cXw5E=",
        auth_cache_seconds=0,
        log_level="WARNING",
        background_workers=False,
        embedded_db_path="",
    )
    rows = lead_rows(n_rows, mix)
    await service_round(settings, rows[:500])  # warm-up: imports, validators, first requests
    docs = raw_documents(rows)  # after the warm-up: the models need Beanie initialised
    events = journal_documents(docs)
    await raw_round(docs[:500])
    service_times, raw_times, floor_times, cpu_times = [], [], [], []
    app_rounds: list[tuple[float, float, float]] = []
    calls: Counter[str] = Counter()
    call_seconds: dict[str, list[float]] = {}
    for _ in range(rounds):
        raw_times.append(await raw_round(docs))
        floor_times.append(await raw_same_writes_round(docs, events, BULK_CHUNK))
        app_rounds.append(await floor_app_round(rows, docs, events))
        elapsed, cpu, calls, seconds = await service_round(settings, rows)
        service_times.append(elapsed)
        cpu_times.append(cpu)
        for name, spent in seconds.items():
            call_seconds.setdefault(name, []).append(spent)
    service, raw = statistics.median(service_times), statistics.median(raw_times)
    floor = statistics.median(floor_times)
    in_db = sum(statistics.median(v) for v in call_seconds.values())
    python_us = (service - in_db) / n_rows * 1e6
    total_calls = sum(calls.values())
    budget = 2 * math.ceil(n_rows / 1000) + 10
    load = os.getloadavg()
    print(f"rows={n_rows} ({mix}) rounds={rounds} (median after warm-up; no secondary indexes)")
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} / {load[1]:.1f} (1 / 5 min)")
    print(f"service POST /v1/leads/bulk : {service:8.3f} s  ({n_rows / service:,.0f} rows/s)")
    print(f"floor: raw, same writes     : {floor:8.3f} s  (claims + leads + journal + clear)")
    print(f"raw insert_many of the leads: {raw:8.3f} s")
    print(f"ratio service / floor       : {service / floor:8.2f}x  (target <= 1.30x)")
    print(f"ratio floor / raw           : {floor / raw:8.2f}x  (what journaling costs)")
    print(f"service time in db calls    : {in_db:8.3f} s  ({in_db / floor:.2f}x the floor)")
    print(f"Python work per lead        : {python_us:8.1f} us  (target <= 50 us; wall - db)")
    cpu_us = statistics.median(cpu_times) / n_rows * 1e6
    print(f"  event loop CPU per lead   : {cpu_us:8.1f} us  (thread CPU time: less load-bound)")
    app_wall, app_cpu, app_db = (statistics.median(r[i] for r in app_rounds) for i in range(3))
    print(
        f"stripped-down app (same writes): {app_wall:5.3f} s, Python work per lead"
        f" {(app_wall - app_db) / n_rows * 1e6:.1f} us, event loop CPU per lead"
        f" {app_cpu / n_rows * 1e6:.1f} us (bench/floor_bulk_app.py)"
    )
    print(f"ratio service / stripped app: {service / app_wall:8.2f}x")
    print(f"database calls              : {total_calls} (budget 2*ceil(N/1000)+10 = {budget})")
    for name, count in sorted(calls.items()):
        spent = statistics.median(call_seconds.get(name, [0.0]))
        print(f"    {name:32s} {count:3d}  {spent:7.3f} s")
    if profile:
        profiler = cProfile.Profile()
        await service_round(settings, rows, profiler)
        print_profile(profiler)
    stubbed_profile = cProfile.Profile() if profile else None
    young = YoungCollections()
    stubbed_times = await python_only_rounds(settings, n_rows, rounds, stubbed_profile, mix, young)
    stubbed = statistics.median(stubbed_times)
    print(f"  bulk path, db stubbed     : {stubbed / n_rows * 1e6:8.1f} us  (thread CPU, no HTTP)")
    leads = n_rows * len(stubbed_times)
    print(
        f"    young collections       : {young.count * 1000 / leads:8.1f} per 1000 leads"
        f"  ({young.seconds / leads * 1e6:.1f} us a lead; the count follows allocations, not load)"
    )
    parse, validate, bson = framework_floor_us(rows, docs, events, max(rounds, 3))
    print(
        f"  framework floor per lead  : {parse + validate:8.1f} us  (JSON parse {parse:.1f} +"
        f" validation {validate:.1f}; BSON encode {bson:.1f} more on a server's driver)"
    )
    if stubbed_profile is not None:
        print_step_shares(stubbed_profile)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--profile", action="store_true", help="profile one more service round")
    parser.add_argument(
        "--mix",
        choices=("distinct", "realistic"),
        default="distinct",
        help="rows of distinct values (the default), or `realistic_rows`' repeated ones",
    )
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.rounds, args.profile, args.mix))
