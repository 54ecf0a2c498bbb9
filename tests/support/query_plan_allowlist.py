"""Queries that no index serves, on purpose: each entry says why that is right.

An entry covers a recorded shape (tests/support/query_plans.py) when the collection matches its
`collections` patterns (fnmatch), the method matches, and the shape's filter is exactly one of
its `filters` (filter shapes as `Shape.filter` prints them). Exact filters, so a tenant-scoped
query that happens to contain the same fragment is still checked. Keep this short.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Protocol

from tests.support.query_plans import Shape

LIVE = '{"is_deleted": {"=": false}}'
LIVE_AUTHORED = '{"is_deleted": {"=": false}, "user_id": {"$ne": {"=": "null"}}}'
OLDER_SCHEMA = '{"schema_version": {"$not": {"$gte": {"=": "number"}}}}'


@dataclass(frozen=True)
class Allowed:
    """One justified exception."""

    collections: tuple[str, ...]
    methods: tuple[str, ...]
    filters: tuple[str, ...]
    why: str


ALLOWED: tuple[Allowed, ...] = (
    Allowed(
        collections=("blogs", "campaigns", "events", "research", "teams", "campaign_leads"),
        methods=("aggregate",),
        filters=(LIVE, LIVE_AUTHORED, "{}"),
        why="A read model's full recompute (`rebuild`, or a projector's first catch-up) folds "
        "every live document of every tenant: it reads the whole collection by design, once. "
        "Incremental updates pass the changed keys and are checked like any query.",
    ),
    Allowed(
        collections=("read_*",),
        methods=("delete_many",),
        filters=(
            '{"built": {"$ne": {"=": "binData"}}}',
            '{"built": {"$ne": {"=": "binData"}}, "fence": {"$not": {"$gt": {"=": "number"}}}}',
        ),
        why="`rebuild` swaps without an empty window: after upserting every recomputed row it "
        "deletes the rows it did not rewrite (without its generation stamp). It follows a full "
        "recompute, on a collection of one row per key; an index would only cost each write.",
    ),
    Allowed(
        collections=("*",),
        methods=("find",),
        filters=(OLDER_SCHEMA,),
        why="`python -m service.cli migrate` walks a collection once in `_id` order (the `_id` "
        "index, no count first) to rewrite documents of an older schema. A rare operator "
        "batch; an index on `schema_version` would cost every write of every document.",
    ),
    Allowed(
        collections=("campaign_leads",),
        methods=("find",),
        filters=('{"archived": {"=": "null"}}',),
        why="`migrate` backfills the lead state of links written before links carried it "
        "(service/storage/migrations.py `backfill_link_states`): one walk in `_id` order, "
        "as above.",
    ),
    Allowed(
        collections=("tenants",),
        methods=("find",),
        filters=("{}",),
        why="`python -m service.cli rebuild-counters` visits every tenant once, in `_id` order "
        "(ids only): an offline operator batch over the one collection of tenants.",
    ),
    Allowed(
        collections=("lead_claims", "leads"),
        methods=("find",),
        filters=("{}",),
        why="`repair` sweeps stale lead claims and `migrate` backfills them "
        "(service/leads/claims.py): each walks the whole collection once in `_id` order, its "
        "first batch unbounded, the next ones from the last `_id` (the `_id` index).",
    ),
)


class Recorded(Protocol):
    """What an entry is matched against: a query shape, or a routed operation (shard_plan)."""

    @property
    def collection(self) -> str: ...
    @property
    def method(self) -> str: ...
    @property
    def filter(self) -> str: ...


def covering(entries: Iterable[Allowed], recorded: Recorded) -> Allowed | None:
    """The first of `entries` that covers a recorded operation, if any."""
    for entry in entries:
        if (
            recorded.method in entry.methods
            and recorded.filter in entry.filters
            and any(fnmatchcase(recorded.collection, pattern) for pattern in entry.collections)
        ):
            return entry
    return None


def allowed(shape: Shape) -> Allowed | None:
    """The entry that covers a shape, if any."""
    return covering(ALLOWED, shape)
