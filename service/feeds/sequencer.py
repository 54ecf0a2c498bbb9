"""The sequencer: one total order over each feed that consumers can store a position in.

The problem. Feed entries (journal events in `domain_events`, touchpoints in `events`, links
in `campaign_leads`) have UUIDv7 `_id`s, roughly their creation time — but an entry can become
VISIBLE long after entries with larger ids: an outbox flushed by a later write or by repair
keeps its original event id, an idempotent retry that takes over a dead claim inserts the id
chosen 30 s earlier, writers on different app servers have skewed clocks, and on a replica set
two inserts commit in any order. A consumer that remembers "I have read up to id X" therefore
skips whatever appears later below X. Waiting a settle window only makes that rarer.

The design. Every feed entry is written without a position (`seq` null or absent). One process
at a time — the holder of the lease "sequencer" (service/feeds/leases.py) — repeatedly:

1. reads the feed's published **head** H (documents/journal.py `FeedHead`) and its highest
   assigned `seq` M (index `seq_unique`); if M > H the last pass stopped between assigning and
   publishing: a gap-free range (H, M] is published, anything else in it is reset to null;
2. reads a batch of entries with `seq: null` (index `seq_pending`), in `_id` order — for the
   journal also every unsequenced lower version of the same aggregates, and orders each
   aggregate's versions ascending so that per-aggregate order always holds;
3. assigns them M+1, M+2, … with ONE ordered bulk write of conditional updates
   (`{_id, seq: null} → {seq: k}`), against a UNIQUE index on `seq`;
4. checks that every update applied, and only then moves the head to the last value
   (`$max`, so it never moves back).

The guarantee: **every entry with `seq <= head` exists, and no entry ever gets a `seq <= head`
later.** Published ranges are gap-free (step 4 checks it), and `seq` is unique, so a value at
or below the head is taken; a late writer — even a sequencer paused past its lease that wakes
up and writes a stale assignment — fails on the unique index. Consumers (projectors,
`GET /v1/changes`, webhook delivery) read `seq > position AND seq <= head` in `seq` order and
store the last `seq` they handled (or the head, after a short page): they never skip an entry
and never read one twice. Readers never see a range while it is being written, because the
head moves only after the writes are acknowledged (with majority write concern on a replica
set, so a failover cannot roll them back; reads use majority read concern, service/database.py).

Costs and trade-offs. A new entry is visible to consumers after the next pass: passes run when
a write in this process pokes the sequencer, on a read that wants fresh data (inline, see
`sync`) and every `WORKER_POLL_SECONDS` otherwise, so latency is milliseconds in-process and at
most the poll interval across processes. A pass costs a few indexed reads and one bulk write
per feed, whatever the batch size. The only double-fault left: a sequencer paused beyond its
lease in the middle of the reset in step 1 may reset entries that a newer sequencer has just
published; they are then sequenced again — a consumer sees them twice (at-least-once), never
zero times. Rules for writers: feed entries are never removed (a removed entry could leave a
gap below the head), and `seq` is written only here. On a replica set a change stream could
trigger passes instead of polling; the order would still come from this sequencer, so the
embedded backend (which has no change streams) and MongoDB behave the same.
"""

from __future__ import annotations

import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable
from typing import Any

from pymongo import AsyncMongoClient, IndexModel, UpdateOne
from pymongo.errors import BulkWriteError, OperationFailure

from documents.base import utcnow
from documents.campaign import CampaignLead
from documents.event import TouchpointEvent
from documents.journal import DomainEvent, FeedHead

log = logging.getLogger(__name__)

JOURNAL = DomainEvent.Settings.name
EVENTS = TouchpointEvent.Settings.name
CAMPAIGN_LEADS = CampaignLead.Settings.name
FEEDS: tuple[str, ...] = (JOURNAL, EVENTS, CAMPAIGN_LEADS)
"""The collections read by position: the journal, the touchpoints, the campaign links."""

BATCH = 2000
FIRST_VERSION = 1  # an aggregate's first journal event (`DomainEvent.version` is >= 1)
LEASE = "sequencer"

# Created on every feed at start-up (here, not in each document's Settings, because the
# sequencer is one mechanism shared by the feeds, as the journal outbox index is):
SEQ_INDEXES = [
    # Unsequenced entries (`seq` null or missing sort first) in `_id` order, and ranges of
    # `seq` across tenants (projectors of touchpoints and links).
    IndexModel([("seq", 1), ("_id", 1)], name="seq_pending"),
    # The fence: one entry per position. Partial, so the many unsequenced nulls do not clash.
    IndexModel(
        [("seq", 1)], unique=True, partialFilterExpression={"seq": {"$gt": 0}}, name="seq_unique"
    ),
]


def collection(feed: str) -> Any:
    """The feed's collection (bound to the database the documents are)."""
    return DomainEvent.get_pymongo_collection().database.get_collection(feed)


async def ensure_feed_indexes() -> None:
    """Create the sequencing indexes on every feed (idempotent).

    On a SHARDED feed MongoDB refuses a unique index not prefixed by the shard key, so
    `seq_unique` cannot exist there: the sequencer then runs fenced by its lease alone (a
    sequencer paused past its lease could write a stale position). Keep the three feeds
    unsharded, or move to per-tenant positions (unique `(tenant_id, seq)`) before sharding
    them; see docs/deployment.md.
    """
    for feed in FEEDS:
        await collection(feed).create_indexes(SEQ_INDEXES[:1])
        try:
            await collection(feed).create_indexes(SEQ_INDEXES[1:])
        except OperationFailure as exc:
            log.error("sequencer: no unique seq index on %s (%s): lease-only fencing", feed, exc)


@contextlib.asynccontextmanager
async def feed_session() -> AsyncIterator[Any]:
    """A causally consistent session for reading a head and then its range (None embedded).

    On a replica set a read after a failover may come from a majority snapshot older than a
    head read a moment before; in one causally consistent session the range read waits until
    it sees at least what the head read saw. The embedded backend has one consistent store
    (no snapshots, no sessions): nothing to do there.
    """
    client: Any = DomainEvent.get_pymongo_collection().database.client
    if not isinstance(client, AsyncMongoClient):
        yield None
        return
    async with client.start_session(causal_consistency=True) as session:
        yield session


async def head(feed: str, *, session: Any = None) -> int:
    """The published head of a feed: every entry with `seq <= head` is final."""
    found = await FeedHead.get_pymongo_collection().find_one(
        {"_id": feed}, {"head": 1}, session=session
    )
    return int(found["head"]) if found else 0


async def heads(feeds: Iterable[str] = FEEDS, *, session: Any = None) -> dict[str, int]:
    """The heads of several feeds, in one query."""
    names = list(feeds)
    cursor = FeedHead.get_pymongo_collection().find(
        {"_id": {"$in": names}}, {"head": 1}, session=session
    )
    found = {row["_id"]: int(row["head"]) async for row in cursor}
    return {name: found.get(name, 0) for name in names}


async def visible_top(feed: str, position: int, head: int, session: Any = None) -> int:
    """The highest `seq` in `(position, head]` this read sees (`position` if none).

    Published positions are gap-free, so every entry below the one returned is visible to the
    same read: a reader may store this position after a short page, never more (one indexed
    key on `seq_unique`).
    """
    top = await collection(feed).find_one(
        {"seq": {"$gt": position, "$lte": head}}, {"seq": 1}, sort=[("seq", -1)], session=session
    )
    return int(top["seq"]) if top else position


async def _highest(feed: str) -> int:
    top = await collection(feed).find_one({"seq": {"$gt": 0}}, {"seq": 1}, sort=[("seq", -1)])
    return int(top["seq"]) if top else 0


async def _publish(feed: str, value: int) -> None:
    await FeedHead.get_pymongo_collection().update_one(
        {"_id": feed}, {"$max": {"head": value}, "$set": {"updated_at": utcnow()}}, upsert=True
    )


async def _settle_tail(feed: str, published: int) -> int:
    """Publish an assigned-but-unpublished gap-free tail, or reset a broken one; the new top."""
    top = await _highest(feed)
    if top <= published:
        return published
    assigned = await collection(feed).count_documents({"seq": {"$gt": published}})
    if assigned == top - published:  # (published, top] is whole: a pass died before step 4
        await _publish(feed, top)
        return top
    log.warning(
        "sequencer: %s has a gap above %d (a concurrent pass?); resequencing", feed, published
    )
    await collection(feed).update_many({"seq": {"$gt": published}}, {"$set": {"seq": None}})
    return published


async def _pending(feed: str, batch: int) -> list[dict[str, Any]]:
    fields = {"_id": 1, "aggregate_id": 1, "version": 1} if feed == JOURNAL else {"_id": 1}
    rows: list[dict[str, Any]] = (
        await collection(feed)
        .find({"seq": None}, fields)
        .sort([("seq", 1), ("_id", 1)])
        .to_list(batch)
    )
    if feed != JOURNAL or not rows:
        return rows
    # Lower versions of the same aggregates outside the batch (a skewed clock gave them larger
    # ids) go first: an aggregate's versions are always sequenced in version order. Only an
    # aggregate whose lowest version here is above the first can have one (an import's
    # creations have none: no `$in` over thousands of aggregates for nothing).
    lowest: dict[Any, int] = {}
    for row in rows:
        aggregate = row["aggregate_id"]
        lowest[aggregate] = min(row["version"], lowest.get(aggregate, row["version"]))
    ids = [aggregate for aggregate, version in lowest.items() if version > FIRST_VERSION]
    if ids:
        seen = {row["_id"] for row in rows}
        extra = collection(feed).find({"aggregate_id": {"$in": ids}, "seq": None}, fields)
        rows += [row async for row in extra if row["_id"] not in seen]
    return _versions_in_order(rows)


def _versions_in_order(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows in `_id` order, except that each aggregate's rows take its slots in version order."""
    rows.sort(key=lambda r: r["_id"])
    slots: dict[Any, list[int]] = defaultdict(list)
    for position, row in enumerate(rows):
        slots[row["aggregate_id"]].append(position)
    ordered: list[dict[str, Any]] = list(rows)
    for aggregate, positions in slots.items():
        versions = sorted((rows[p] for p in positions), key=lambda r: r["version"])
        for position, row in zip(positions, versions, strict=True):
            ordered[position] = row
        del aggregate
    return ordered


async def sequence(feed: str, *, batch: int = BATCH) -> int:
    """One pass over one feed (call it only while holding the sequencer lease); entries done."""
    published = await _settle_tail(feed, await head(feed))
    rows = await _pending(feed, batch)
    if not rows:
        return 0
    ops = [
        UpdateOne({"_id": row["_id"], "seq": None}, {"$set": {"seq": published + n}})
        for n, row in enumerate(rows, start=1)
    ]
    try:
        result = await collection(feed).bulk_write(ops, ordered=True)
        done: int = result.modified_count
    except BulkWriteError as exc:  # a duplicate `seq`: another sequencer is writing
        log.warning("sequencer: %s pass lost a race: %s", feed, exc.details.get("writeErrors"))
        return 0
    if done != len(ops):  # some entry was sequenced by someone else: leave it to the next pass
        log.warning("sequencer: %s pass applied %d of %d", feed, done, len(ops))
        return 0
    await _publish(feed, published + done)
    return done


async def sequence_all(*, batch: int = BATCH) -> int:
    """One pass over every feed; returns how many entries were sequenced."""
    total = 0
    for feed in FEEDS:
        total += await sequence(feed, batch=batch)
    return total


async def unsequenced(feed: str) -> bool:
    """Whether the feed has an entry without a position yet (one indexed probe)."""
    return await collection(feed).find_one({"seq": None}, {"_id": 1}) is not None


__all__ = [
    "CAMPAIGN_LEADS",
    "EVENTS",
    "FEEDS",
    "JOURNAL",
    "LEASE",
    "collection",
    "ensure_feed_indexes",
    "feed_session",
    "head",
    "heads",
    "sequence",
    "sequence_all",
    "unsequenced",
    "visible_top",
]
