"""The projector runner: checkpoints, catch-up, rebuild and the leases that make them safe.

What it guarantees, with any number of service processes:

* **One owner per projector.** Every catch-up and rebuild of a projector runs under the lease
  `projector:<name>` (service/feeds/leases.py, taken and renewed by conditional updates), so two
  processes never interleave their writes to one read model. Each process runs a background
  loop per projector (service/background.py); the lease holder does the work.
* **No missed entry, no settle window.** A checkpoint is a feed position `seq`
  (service/feeds/sequencer.py): entries at or below the feed's published head never change and no
  new one can appear there, so reading `position < seq <= head` in `seq` order and storing
  the last `seq` handled skips nothing, even when an entry became visible long after entries
  with larger ids (a late outbox flush, an idempotent takeover, a retry across an election).
  After a scan that found nothing more the position moves to the head: idle feeds are not
  rescanned.
* **Idempotent writes.** A batch's keys are recomputed from the sources and written with
  upserts keyed by the row's `_id` (or natural key) AND `tenant_id`, then rows of keys that no
  longer exist are marked gone: computing, upserting and deleting again gives the same rows, so a
  checkpoint may be at-least-once. Readers never see a row missing in between (upsert first,
  delete stale after).
* **Rebuild without an empty window, streamed per tenant.** `rebuild` walks the tenants that
  have rows in the projector's `sources` (one index seek per tenant, `tenants_of`), computes
  one tenant's rows at a time (`Projector.compute_tenant`) and upserts them over the current
  ones in batches of `BATCH_SIZE`, so its memory is bounded by the largest tenant, not the
  database; then it deletes the rows it did not write (every row it writes carries its
  generation, `built`: the others are rows of vanished keys and tenants), under the same
  lease and fence, and sets the
  checkpoints to the heads it started from: readers see the old rows until each is replaced,
  never an empty or partial model.
* **A new projector on an old database is rebuilt, not replayed.** A projector with no
  checkpoint for a feed whose head is past `INLINE_REPLAY_MAX` (a read model deployed onto
  existing data, or checkpoints lost) is bootstrapped by the offline per-tenant rebuild,
  run by the background worker (any catch-up without a request budget, under the lease),
  which stores the heads. A request's inline catch-up never replays such a feed from 0: it
  answers from the rows that exist and pokes the worker. A young database (every feed head
  within `INLINE_REPLAY_MAX`) is simply caught up from 0: that is one batch.

* **Fenced writes.** A lease bounds how often two holders overlap; it cannot stop a holder
  that paused between computing and writing (a GC pause, a frozen VM) from writing after its
  lease moved on. So every row, checkpoint and prune carries the writer's lease `fence` (a
  number that grows with each hand-over, service/feeds/leases.py) and is written only where the
  stored `fence` is not larger: a paused writer can never overwrite what a newer holder wrote.
  An upsert that meets a newer row misses its filter and fails on the unique key; that
  duplicate key is the fence saying no (retried once, since two first inserts of one key
  also collide on a real server) and never reaches a reader as a 500. Rows of keys that no
  longer exist become tombstones (`gone`, fenced like any row) rather than being deleted, so
  a paused writer cannot resurrect them either; readers skip them, `rebuild` removes them.
* **Contiguous positions.** A position is stored only up to entries the reader has seen in
  one read: after a short page it moves to the highest entry visible in that read (every
  lower one is visible too: positions are published gap-free), not blindly to the head it
  read before. On a real server the head and the range are read in one causally consistent
  session (`sequencer.feed_session`), so a read after a failover cannot be older than the
  head it follows.

Reads catch their projector up before answering (`catch_up`), inline when this process holds
the lease, within the inline budget (`INLINE`: `INLINE_FEED_BATCHES` batches and
`INLINE_FEED_BUDGET_MS` per request, service/core/settings.py; the background worker does the
rest); otherwise they wait briefly (`READ_WAIT`) for the holder's progress and then answer
with what is there.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from beanie.odm.utils.encoder import Encoder
from bson import Binary
from pymongo import UpdateOne
from pymongo.errors import BulkWriteError, DuplicateKeyError

from documents.base import utcnow
from documents.read_models import ProjectionCheckpoint
from service.core.deadlines import unbounded
from service.feeds import leases, sequencer, workers
from service.projections.definitions import PROJECTORS, Key, Projector, uuid_of

log = logging.getLogger(__name__)

BATCH_SIZE = 500
INLINE_REPLAY_MAX = BATCH_SIZE  # a checkpoint-less feed longer than this is rebuilt, not replayed
LEASE_TTL = timedelta(seconds=30)
READ_WAIT = 2.0  # seconds a read waits for another process's projector before answering


DUPLICATE_KEY = 11000
FENCE = "fence"  # the stored field: the lease fence of the row's last writer
GONE = "gone"  # the stored field: the row's key no longer exists (a tombstone, see `apply`)
BUILT = "built"  # the stored field: the generation of the rebuild that last wrote the row
LIVE = {GONE: {"$ne": True}}
"""The condition every read of a read model adds: tombstones are not rows."""


@dataclass
class InlineBudget:
    """How much feed work a request may do inline before answering (the rest is background)."""

    batches: int = 4  # batches per projector feed (and sequencer passes)
    seconds: float = 0.25  # wall time over all of a request's inline feed work

    def deadline(self) -> float:
        """The monotonic time at which a request's inline work stops."""
        return time.monotonic() + self.seconds


INLINE = InlineBudget()
"""The process's inline budget (set from the settings at start-up, `configure_inline`)."""


def configure_inline(*, batches: int, seconds: float) -> None:
    """Set the process's inline feed budget (INLINE_FEED_BATCHES, INLINE_FEED_BUDGET_MS)."""
    INLINE.batches, INLINE.seconds = batches, seconds


def lease_name(name: str) -> str:
    """The lease guarding projector `name`."""
    return f"projector:{name}"


# -- writing rows ---------------------------------------------------------------------------


def fenced(fence: int | None) -> dict[str, Any]:
    """The condition that lets a writer holding `fence` change a row: no newer writer did."""
    return {} if fence is None else {FENCE: {"$not": {"$gt": fence}}}


def _write_ops(
    projector: Projector, docs: Sequence[Any], fence: int | None, built: Binary | None
) -> list[UpdateOne]:
    encoder = Encoder()
    ops = []
    for doc in docs:
        raw = encoder.encode(doc)
        raw.pop("revision_id", None)
        key = {**projector.write_filter(doc), **fenced(fence)}
        doc_id = raw.pop("_id")
        if fence is not None:
            raw[FENCE] = fence
        if built is not None:
            raw[BUILT] = built
        update: dict[str, Any] = {"$set": raw, "$unset": {GONE: ""}}
        if "_id" not in key:
            update["$setOnInsert"] = {"_id": doc_id}
        ops.append(UpdateOne(key, update, upsert=True))
    return ops


def _duplicates(exc: BulkWriteError) -> tuple[list[int], list[dict[str, Any]]]:
    """The indexes of the ops that failed on a unique key, and the other errors."""
    errors = exc.details.get("writeErrors") or []
    dup = [e["index"] for e in errors if e.get("code") == DUPLICATE_KEY]
    return dup, [e for e in errors if e.get("code") != DUPLICATE_KEY]


async def _upsert(
    projector: Projector, docs: Sequence[Any], fence: int | None = None, built: Binary | None = None
) -> int:
    """Upsert computed rows under the fence (stamped with a rebuild's generation `built`);
    returns how many a newer writer kept."""
    ops = _write_ops(projector, docs, fence, built)
    collection = projector.model.get_pymongo_collection()
    for attempt in range(2):
        if not ops:
            return 0
        try:
            await collection.bulk_write(ops, ordered=False)
            return 0
        except BulkWriteError as exc:
            dup, other = _duplicates(exc)
            if other:
                raise
            # A newer writer's row (its fence is larger), or a first insert that raced another
            # one (a real server only): once more, and what still collides is the newer row's.
            ops = [ops[i] for i in dup]
            if attempt:
                log.warning(
                    "projector %s: %d rows kept by a newer writer", projector.name, len(ops)
                )
                return len(ops)
    return 0


async def apply(projector: Projector, keys: set[Key], *, fence: int | None = None) -> int:
    """Recompute `keys` and store them (idempotent, fenced); returns how many rows were written.

    `fence` is the writer's lease fence (None: unfenced, for tools and tests): rows a writer
    with a larger fence wrote are left as they are.
    """
    if not keys:
        return 0
    docs = await projector.compute(keys)
    await _upsert(projector, docs, fence)
    gone = keys - {projector.key_of(d) for d in docs}
    if gone:  # keys whose source disappeared (a deleted campaign, a user without blogs…)
        # Marked, not deleted: the tombstone keeps this writer's fence, so a paused older
        # writer cannot bring the row back by upserting what it computed before. Readers skip
        # tombstones (`LIVE`); `rebuild` removes them.
        mark: dict[str, Any] = {GONE: True, "computed_at": utcnow()}
        if fence is not None:
            mark[FENCE] = fence
        collection = projector.model.get_pymongo_collection()
        await collection.update_many({**projector.rows_of(gone), **fenced(fence)}, {"$set": mark})
        await _plant_tombstones(projector, gone, mark)
    return len(docs)


async def _plant_tombstones(projector: Projector, gone: set[Key], mark: dict[str, Any]) -> None:
    # A key gone before any row of it was stored gets a tombstone too: otherwise an older
    # writer, paused between computing the row (while its source lived) and writing it, would
    # upsert it after this writer's decision, with nothing there to hold its fence back.
    # Where a row is stored (marked above, or a newer writer's) the insert is a duplicate.
    planted = [{**t, **mark} for key in gone if (t := projector.tombstone(key)) is not None]
    if not planted:
        return
    try:
        await projector.model.get_pymongo_collection().insert_many(planted, ordered=False)
    except BulkWriteError as exc:
        if _duplicates(exc)[1]:
            raise


# -- checkpoints ----------------------------------------------------------------------------


def checkpoint_id(projector: Projector, feed: str) -> str:
    """The `_id` of a projector's checkpoint in one feed."""
    return f"{projector.name}:{feed}"


async def positions(projector: Projector) -> dict[str, int | None]:
    """The stored position of each of a projector's feeds (None when it has no checkpoint)."""
    ids = {checkpoint_id(projector, feed): feed for feed in projector.feeds}
    cursor = ProjectionCheckpoint.get_pymongo_collection().find(
        {"_id": {"$in": list(ids)}}, {"position": 1}
    )
    found = {row["_id"]: row.get("position") async for row in cursor}
    # A checkpoint of the former id-based format (a UUID) counts as none: it is rebuilt.
    return {feed: found[cp] if isinstance(found.get(cp), int) else None for cp, feed in ids.items()}


async def _save(
    projector: Projector, feed: str, position: int, seen: int, fence: int | None = None
) -> bool:
    """Store a checkpoint (fenced); False when a newer holder's checkpoint is there."""
    try:
        await ProjectionCheckpoint.get_pymongo_collection().update_one(
            {"_id": checkpoint_id(projector, feed), **fenced(fence)},
            {
                "$set": {
                    "projector": projector.name,
                    "feed": feed,
                    "position": position,
                    "updated_at": utcnow(),
                    **({FENCE: fence} if fence is not None else {}),
                },
                "$inc": {"rows_seen": seen},
            },
            upsert=True,
        )
    except DuplicateKeyError:
        log.warning("projector %s: checkpoint of %s kept by a newer holder", projector.name, feed)
        return False
    return True


async def caught_up(projector: Projector) -> bool:
    """Whether every feed of the projector is applied up to its head."""
    heads = await sequencer.heads(projector.feeds)
    done = await positions(projector)
    return all((done[feed] or 0) >= heads[feed] for feed in projector.feeds)


# -- catching up ----------------------------------------------------------------------------


async def _catch_up_feed(
    projector: Projector,
    feed: str,
    *,
    position: int,
    head: int,
    batch_size: int,
    max_batches: int | None,
    held: leases.Held | None,
    deadline: float | None = None,
    session: Any = None,
) -> tuple[int, bool]:
    """Apply `position < seq <= head` of one feed; returns (entries applied, more waiting)."""
    fields = dict.fromkeys(("seq", *projector.feed_fields.get(feed, ())), 1)
    fence = held.fence if held is not None else None
    applied, batches, start = 0, 0, position
    while position < head:
        if max_batches is not None and batches >= max_batches:
            break
        if deadline is not None and batches and time.monotonic() >= deadline:
            break
        if held is not None and not held.valid:  # the lease may be gone: stop writing
            break
        query = {**projector.feed_filters.get(feed, {}), "seq": {"$gt": position, "$lte": head}}
        rows = (
            await sequencer.collection(feed)
            .find(query, fields, session=session)
            .sort("seq", 1)
            .limit(batch_size)
            .to_list(batch_size)
        )
        if rows:
            await apply(projector, await projector.keys_from(feed, rows), fence=fence)
            applied += len(rows)
        batches += 1
        if len(rows) == batch_size:
            position = rows[-1]["seq"]
        else:
            # A short page: everything visible up to the head was returned. Move only as far
            # as this read proves entries visible (a stale read must not skip the rest).
            seen = rows[-1]["seq"] if rows else position
            position = max(seen, await sequencer.visible_top(feed, position, head, session))
            if position < head:
                break  # the rest is not visible to this read yet: the next pass takes it
    if position != start:
        await _save(projector, feed, position, applied, fence)
    return applied, position < head


async def catch_up_projector(
    projector: Projector,
    *,
    batch_size: int | None = None,
    max_batches: int | None = None,
    held: leases.Held | None = None,
    deadline: float | None = None,
    inline: bool = False,
) -> tuple[int, bool]:
    """Apply every feed's new entries (call under the projector's lease); (applied, more).

    A feed without a checkpoint and past `INLINE_REPLAY_MAX` is not replayed: `inline` (a
    request) leaves it to the worker (more=True); otherwise the projector is rebuilt.
    """
    async with sequencer.feed_session() as session:
        heads = await sequencer.heads(projector.feeds, session=session)
        done = await positions(projector)
        if any(done[f] is None and heads[f] > INLINE_REPLAY_MAX for f in projector.feeds):
            if inline:
                return 0, True
            return await _rebuild(projector, held), False
        applied, more = 0, False
        for feed in projector.feeds:
            n, rest = await _catch_up_feed(
                projector,
                feed,
                position=done[feed] or 0,
                head=heads[feed],
                batch_size=batch_size or BATCH_SIZE,
                max_batches=max_batches,
                held=held,
                deadline=deadline,
                session=session,
            )
            applied, more = applied + n, more or rest
    return applied, more


async def sync_feeds(
    *,
    patience: float = READ_WAIT,
    max_passes: int | None = None,
    deadline: float | None = None,
) -> bool:
    """Sequence what is visible now (inline when this process may), so reads include it.

    Inline, at most `max_passes` sequencer passes and until `deadline` (monotonic), after the
    first pass (the background sequencer does the rest). When another process holds the
    sequencer lease, waits up to `patience` seconds for it; returns whether every feed was
    fully sequenced.
    """
    async with workers.leased(sequencer.LEASE, ttl=LEASE_TTL) as held:
        if held is not None:
            passes = 0
            while await sequencer.sequence_all():
                passes += 1
                if (max_passes is not None and passes >= max_passes) or (
                    deadline is not None and time.monotonic() >= deadline
                ):
                    workers.poke(sequencer.LEASE)  # the background worker carries on
                    return False
            return True

    async def nothing_pending() -> bool:
        return not any([await sequencer.unsequenced(f) for f in sequencer.FEEDS])

    workers.poke(sequencer.LEASE)
    return await workers.wait_for(nothing_pending, patience=patience)


async def catch_up(
    names: Iterable[str] | None = None,
    *,
    batch_size: int | None = None,
    max_batches: int | None = None,
    patience: float = READ_WAIT,
    budget: InlineBudget | None = None,
) -> dict[str, int]:
    """Catch projectors up with everything written so far; returns entries applied by name.

    Runs each projector inline when this process may hold its lease; otherwise waits up to
    `patience` seconds for the holder to get there (and reports 0 for it). With a `budget`
    (a request's inline work), at most its batches per feed and its time overall; whatever
    is left is poked to the background worker.
    """
    deadline = budget.deadline() if budget is not None else None
    passes = budget.batches if budget is not None else None
    await sync_feeds(patience=patience, max_passes=passes, deadline=deadline)
    if budget is not None:
        max_batches = min(max_batches or budget.batches, budget.batches)
    done: dict[str, int] = {}
    for name in names or PROJECTORS:
        projector = PROJECTORS[name]
        async with workers.leased(lease_name(name), ttl=LEASE_TTL) as held:
            if held is not None:
                done[name], more = await catch_up_projector(
                    projector,
                    batch_size=batch_size,
                    max_batches=max_batches,
                    held=held,
                    deadline=deadline,
                    inline=budget is not None,
                )
                if more:
                    workers.poke(lease_name(name))
                continue
        done[name] = 0
        workers.poke(lease_name(name))

        async def finished(p: Projector = projector) -> bool:
            return await caught_up(p)

        await workers.wait_for(finished, patience=patience)
    return done


# -- rebuilding -----------------------------------------------------------------------------


async def rebuild(name: str, *, patience: float = LEASE_TTL.total_seconds() * 2) -> int:
    """Recompute a read model from its sources in place; returns how many rows it has.

    Waits up to `patience` seconds for the projector's lease (another process may hold it).
    """
    projector = PROJECTORS[name]
    await sync_feeds()
    result: list[int] = []

    async def attempt() -> bool:
        async with workers.leased(lease_name(name), ttl=LEASE_TTL) as held:
            if held is None:
                return False
            result.append(await _rebuild(projector, held))
            return True

    if not await workers.wait_for(attempt, patience=patience, every=0.5):
        raise TimeoutError(f"projector {name} is held by another process; try again")
    log.info("rebuilt read model %s: %d rows", name, result[0])
    return result[0]


async def tenants_of(projector: Projector) -> list[UUID]:
    """The tenants with documents in the projector's sources, ascending.

    A skip scan of each source's tenant-prefixed index (one seek per tenant): the sources,
    not the `tenants` collection, say whose rows exist (an import or a test may write a
    tenant's data without its `Tenant` document). Held in memory: one id per tenant.
    """
    found: set[UUID] = set()
    for name in projector.sources:
        source = sequencer.collection(name)
        query: dict[str, Any] = {"tenant_id": {"$gte": Binary.from_uuid(UUID(int=0))}}
        while (row := await source.find_one(query, {"tenant_id": 1}, sort=[("tenant_id", 1)])) and (
            tenant := uuid_of(row.get("tenant_id"))
        ):
            found.add(tenant)
            query = {"tenant_id": {"$gt": row["tenant_id"]}}  # the next seek skips past it
    return sorted(found)


async def _rebuild(projector: Projector, held: leases.Held | None = None) -> int:
    # Batch work (service/core/deadlines.py): a background step's budget would cut a long
    # rebuild every time, and the projector would be retried from scratch for ever.
    with unbounded():
        return await _rebuild_all(projector, held)


async def _rebuild_all(projector: Projector, held: leases.Held | None) -> int:
    fence = held.fence if held is not None else None
    heads = await sequencer.heads(projector.feeds)
    # Rows are told apart by this rebuild's own stamp, not by time: a clock stepped back
    # mid-rebuild (or another host's clock ahead, for rows it wrote) would prune fresh rows
    # or keep stale ones.
    generation = Binary.from_uuid(uuid4())
    written = 0
    for tenant in await tenants_of(projector):
        # A rebuild outlasts a lease's TTL: renew it between tenants, and stop (no prune, no
        # checkpoint: the next holder rebuilds) once it is lost.
        renewed = held is None or held.fresh() or (held.valid and await leases.renew(held))
        if not renewed:
            raise TimeoutError(f"projector {projector.name}: lease lost during the rebuild")
        # One tenant's rows at a time, written in batches: memory is bounded by a tenant.
        docs = await projector.compute_tenant(tenant)
        for start in range(0, len(docs), BATCH_SIZE):
            await _upsert(projector, docs[start : start + BATCH_SIZE], fence, generation)
        written += len(docs)
        del docs
    # Rows not rewritten above belong to keys (or tenants) that no longer exist, or are
    # tombstones; rows a newer holder wrote (a larger fence) are its to keep.
    prune = {BUILT: {"$ne": generation}, **fenced(fence)}
    await projector.model.get_pymongo_collection().delete_many(prune)
    for feed, head in heads.items():
        await _save(projector, feed, head, 0, fence)
    return written


__all__ = [
    "BATCH_SIZE",
    "BUILT",
    "FENCE",
    "GONE",
    "INLINE",
    "INLINE_REPLAY_MAX",
    "LEASE_TTL",
    "LIVE",
    "READ_WAIT",
    "InlineBudget",
    "apply",
    "catch_up",
    "catch_up_projector",
    "caught_up",
    "checkpoint_id",
    "configure_inline",
    "fenced",
    "lease_name",
    "positions",
    "rebuild",
    "sync_feeds",
    "tenants_of",
]
