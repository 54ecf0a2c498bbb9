"""The projector runner: checkpoints, catch-up, rebuild and the leases that make them safe.

What it guarantees, with any number of service processes:

* **One owner per projector.** Every catch-up and rebuild of a projector runs under the lease
  `projector:<name>` (service/leases.py, taken and renewed by conditional updates), so two
  processes never interleave their writes to one read model. Each process runs a background
  loop per projector (service/background.py); the lease holder does the work.
* **No missed entry, no settle window.** A checkpoint is a feed position `seq`
  (service/sequencer.py): entries at or below the feed's published head never change and no
  new one can appear there, so reading `position < seq <= head` in `seq` order and storing
  the last `seq` handled skips nothing, even when an entry became visible long after entries
  with larger ids (a late outbox flush, an idempotent takeover, a retry across an election).
  After a scan that found nothing more the position moves to the head: idle feeds are not
  rescanned.
* **Idempotent writes.** A batch's keys are recomputed from the sources and written with
  upserts keyed by the row's `_id` (or natural key) AND `tenant_id`, then rows of keys that no
  longer exist are deleted: computing, upserting and deleting again gives the same rows, so a
  checkpoint may be at-least-once. Readers never see a row missing in between (upsert first,
  delete stale after).
* **Rebuild without an empty window.** `rebuild` recomputes every row, upserts them over the
  current ones and then deletes the rows it did not write (`computed_at` older than the
  rebuild's start), under the same lease, and sets the checkpoints to the heads it started
  from: readers see the old rows until each is replaced, never an empty or partial model.

Reads catch their projector up before answering (`catch_up`, bounded by `max_batches`): in
the process holding the lease, inline; otherwise they wait briefly (`READ_WAIT`) for the
holder's progress and then answer with what is there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from beanie.odm.utils.encoder import Encoder
from pymongo import UpdateOne

from documents.base import utcnow
from documents.read_models import ProjectionCheckpoint
from service import leases, sequencer, workers
from service.projections.definitions import PROJECTORS, Key, Projector

log = logging.getLogger(__name__)

BATCH_SIZE = 500
LEASE_TTL = timedelta(seconds=30)
READ_WAIT = 2.0  # seconds a read waits for another process's projector before answering


def lease_name(name: str) -> str:
    """The lease guarding projector `name`."""
    return f"projector:{name}"


# -- writing rows ---------------------------------------------------------------------------


def _write_ops(projector: Projector, docs: Sequence[Any]) -> list[UpdateOne]:
    encoder = Encoder()
    ops = []
    for doc in docs:
        raw = encoder.encode(doc)
        raw.pop("revision_id", None)
        key = projector.write_filter(doc)
        doc_id = raw.pop("_id")
        update: dict[str, Any] = {"$set": raw}
        if "_id" not in key:
            update["$setOnInsert"] = {"_id": doc_id}
        ops.append(UpdateOne(key, update, upsert=True))
    return ops


async def _upsert(projector: Projector, docs: Sequence[Any]) -> None:
    ops = _write_ops(projector, docs)
    if ops:
        await projector.model.get_pymongo_collection().bulk_write(ops, ordered=False)


async def apply(projector: Projector, keys: set[Key]) -> int:
    """Recompute `keys` and store them (idempotent); returns how many rows were written."""
    if not keys:
        return 0
    docs = await projector.compute(keys)
    await _upsert(projector, docs)
    gone = keys - {projector.key_of(d) for d in docs}
    if gone:  # keys whose source disappeared (a deleted campaign, a user without blogs…)
        await projector.model.get_pymongo_collection().delete_many(projector.rows_of(gone))
    return len(docs)


# -- checkpoints ----------------------------------------------------------------------------


def checkpoint_id(projector: Projector, feed: str) -> str:
    """The `_id` of a projector's checkpoint in one feed."""
    return f"{projector.name}:{feed}"


async def positions(projector: Projector) -> dict[str, int]:
    """The stored position of each of a projector's feeds (0 when it never ran)."""
    ids = {checkpoint_id(projector, feed): feed for feed in projector.feeds}
    cursor = ProjectionCheckpoint.get_pymongo_collection().find(
        {"_id": {"$in": list(ids)}}, {"position": 1}
    )
    found = {row["_id"]: row.get("position") async for row in cursor}
    # A checkpoint of the former id-based format (a UUID) restarts from 0: re-applying is safe.
    return {feed: found[cp] if isinstance(found.get(cp), int) else 0 for cp, feed in ids.items()}


async def _save(projector: Projector, feed: str, position: int, seen: int) -> None:
    await ProjectionCheckpoint.get_pymongo_collection().update_one(
        {"_id": checkpoint_id(projector, feed)},
        {
            "$set": {
                "projector": projector.name,
                "feed": feed,
                "position": position,
                "updated_at": utcnow(),
            },
            "$inc": {"rows_seen": seen},
        },
        upsert=True,
    )


async def caught_up(projector: Projector) -> bool:
    """Whether every feed of the projector is applied up to its head."""
    heads = await sequencer.heads(projector.feeds)
    done = await positions(projector)
    return all(done[feed] >= heads[feed] for feed in projector.feeds)


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
) -> tuple[int, bool]:
    """Apply `position < seq <= head` of one feed; returns (entries applied, more waiting)."""
    fields = dict.fromkeys(("seq", *projector.feed_fields.get(feed, ())), 1)
    applied, batches, start = 0, 0, position
    while position < head:
        if max_batches is not None and batches >= max_batches:
            break
        if held is not None and not held.valid:  # the lease may be gone: stop writing
            break
        query = {**projector.feed_filters.get(feed, {}), "seq": {"$gt": position, "$lte": head}}
        rows = (
            await sequencer.collection(feed)
            .find(query, fields)
            .sort("seq", 1)
            .limit(batch_size)
            .to_list(batch_size)
        )
        if rows:
            await apply(projector, await projector.keys_from(feed, rows))
            applied += len(rows)
        batches += 1
        # A short batch means nothing else up to the head: jump there (no rescans).
        position = rows[-1]["seq"] if len(rows) == batch_size else head
    if position != start:
        await _save(projector, feed, position, applied)
    return applied, position < head


async def catch_up_projector(
    projector: Projector,
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int | None = None,
    held: leases.Held | None = None,
) -> tuple[int, bool]:
    """Apply every feed's new entries (call under the projector's lease); (applied, more)."""
    heads = await sequencer.heads(projector.feeds)
    done = await positions(projector)
    applied, more = 0, False
    for feed in projector.feeds:
        n, rest = await _catch_up_feed(
            projector,
            feed,
            position=done[feed],
            head=heads[feed],
            batch_size=batch_size,
            max_batches=max_batches,
            held=held,
        )
        applied, more = applied + n, more or rest
    return applied, more


async def sync_feeds(*, patience: float = READ_WAIT) -> bool:
    """Sequence what is visible now (inline when this process may), so reads include it.

    When another process holds the sequencer lease, waits up to `patience` seconds for it;
    returns whether every feed was fully sequenced.
    """
    async with workers.leased(sequencer.LEASE, ttl=LEASE_TTL) as held:
        if held is not None:
            while await sequencer.sequence_all():
                pass
            return True

    async def nothing_pending() -> bool:
        return not any([await sequencer.unsequenced(f) for f in sequencer.FEEDS])

    workers.poke(sequencer.LEASE)
    return await workers.wait_for(nothing_pending, patience=patience)


async def catch_up(
    names: Iterable[str] | None = None,
    *,
    batch_size: int = BATCH_SIZE,
    max_batches: int | None = None,
    patience: float = READ_WAIT,
) -> dict[str, int]:
    """Catch projectors up with everything written so far; returns entries applied by name.

    Runs each projector inline when this process may hold its lease; otherwise waits up to
    `patience` seconds for the holder to get there (and reports 0 for it).
    """
    await sync_feeds(patience=patience)
    done: dict[str, int] = {}
    for name in names or PROJECTORS:
        projector = PROJECTORS[name]
        async with workers.leased(lease_name(name), ttl=LEASE_TTL) as held:
            if held is not None:
                done[name], _ = await catch_up_projector(
                    projector, batch_size=batch_size, max_batches=max_batches, held=held
                )
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
            result.append(await _rebuild(projector))
            return True

    if not await workers.wait_for(attempt, patience=patience, every=0.5):
        raise TimeoutError(f"projector {name} is held by another process; try again")
    log.info("rebuilt read model %s: %d rows", name, result[0])
    return result[0]


async def _rebuild(projector: Projector) -> int:
    heads = await sequencer.heads(projector.feeds)
    started = utcnow()
    docs = await projector.compute(None)
    await _upsert(projector, docs)
    # Rows not rewritten above belong to keys that no longer exist (each row written carries
    # `computed_at` >= `started`).
    await projector.model.get_pymongo_collection().delete_many({"computed_at": {"$lt": started}})
    for feed, head in heads.items():
        await _save(projector, feed, head, 0)
    return len(docs)


__all__ = [
    "BATCH_SIZE",
    "LEASE_TTL",
    "READ_WAIT",
    "apply",
    "catch_up",
    "catch_up_projector",
    "caught_up",
    "checkpoint_id",
    "lease_name",
    "positions",
    "rebuild",
    "sync_feeds",
]
