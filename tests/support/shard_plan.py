"""The shard plan held against what the suite really sends, as the query-plan check does.

tests/support/query_plan_plugin.py hands every operation the service sends through the embedded
backend to `record`; at the end of the session `findings` checks each one on a collection the
plan shards (service/storage/sharding.py): a find, count, aggregate, update, delete or `$lookup`
(and every update or delete inside a `bulk_write`) must carry the shard key's leading field
(`tenant_id`) by equality, so mongos sends it to the shards of that tenant's range, not to
every shard; an upsert in a `bulk_write` must fix every field of the shard key. Inserts carry
the whole document and are always targeted. Exceptions are in `ALLOWED`, each with its
reason; keep it short.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from service.storage.sharding import PLAN_BY_COLLECTION
from tests.support.query_plan_allowlist import LIVE, LIVE_AUTHORED, Allowed, covering
from tests.support.query_plans import conjunction, shape_of

_WRITES = {"UpdateOne", "UpdateMany", "ReplaceOne", "DeleteOne", "DeleteMany"}


@dataclass(frozen=True, order=True)
class Routed:
    """One recorded operation on a collection: its method and filter shape (JSON)."""

    collection: str
    method: str
    filter: str

    def __str__(self) -> str:
        return f"{self.collection}.{self.method} {self.filter}"


recorded: set[Routed] = set()


def _routed(collection: str, method: str, query: Mapping[str, Any] | None) -> Routed:
    return Routed(collection, method, json.dumps(shape_of(query or {}), sort_keys=True))


def record(op: Any) -> None:
    """Keep what an operation (already known to come from the service) sends where."""
    if op.method in ("insert_one", "insert_many"):
        return
    if op.method == "bulk_write":
        for request in op.pipeline:  # the embedded backend lists {kind: filter} per request
            upsert = "+upsert" if request.get("upsert") else ""
            for kind, query in request.items():
                if kind in _WRITES:
                    recorded.add(_routed(op.collection, f"bulk:{kind}{upsert}", query))
        return
    recorded.add(_routed(op.collection, op.method, op.filter))
    for stage in op.pipeline if op.method == "aggregate" else ():
        lookup = stage.get("$lookup")
        if isinstance(lookup, Mapping) and "from" in lookup:
            # The joined collection is queried by foreignField (= each local value); a join
            # on tenant_id too needs `let`/`pipeline`, which the embedded backend lacks.
            joined = {str(lookup.get("foreignField", "_id")): "joined"}
            recorded.add(_routed(str(lookup["from"]), "$lookup", joined))


def _targets_tenant(filter_json: str, field: str) -> bool:
    """Whether the filter fixes the shard key's leading field (equality or `$in`)."""
    conj = conjunction(json.loads(filter_json))
    predicate = conj.fields.get(field)
    if predicate is not None and predicate.points:
        return True
    # An `$or` is targeted when every branch fixes it.
    return any(all(_targets_tenant(json.dumps(b), field) for b in group) for group in conj.ors)


ALLOWED: tuple[Allowed, ...] = (
    Allowed(
        collections=("blogs", "campaigns", "research", "teams"),
        methods=("aggregate",),
        filters=(LIVE, LIVE_AUTHORED, "{}"),
        why="a read model's full recompute (`rebuild`, a projector's first catch-up) folds "
        "every tenant's documents: one scatter-gather by design, not a request path",
    ),
    Allowed(
        collections=("read_*",),
        methods=("delete_many",),
        filters=(
            '{"built": {"$ne": {"=": "binData"}}}',
            '{"built": {"$ne": {"=": "binData"}}, "fence": {"$not": {"$gt": {"=": "number"}}}}',
        ),
        why="`rebuild` removes the rows it did not rewrite, across tenants: an operator batch",
    ),
    Allowed(
        collections=("*",),
        methods=("count_documents", "find"),
        filters=(
            '{"schema_version": {"$not": {"$gte": {"=": "number"}}}}',
            '{"_id": {"$gt": {"=": "binData"}}, '
            '"schema_version": {"$not": {"$gte": {"=": "number"}}}}',
        ),
        why="`migrate` walks a whole collection in `_id` order: an operator batch",
    ),
    Allowed(
        collections=("blogs", "campaigns", "events", "research", "teams"),
        methods=("find",),
        filters=(
            '{"tenant_id": {"$gte": {"=": "binData"}}}',
            '{"tenant_id": {"$gt": {"=": "binData"}}}',
        ),
        why="`rebuild` walks the tenants of a read model's sources (service/projections/"
        "runner.py `tenants_of`): one index seek per tenant, an operator batch",
    ),
    Allowed(
        collections=("lead_claims", "leads"),
        methods=("find",),
        filters=("{}", '{"_id": {"$gt": {"=": "binData"}}}'),
        why="`repair` sweeps stale lead claims and `migrate` backfills them across tenants "
        "(service/leads/claims.py): operator batches in `_id` order, not request paths",
    ),
    Allowed(
        collections=("*",),
        methods=("find",),
        filters=('{"pending_event.version": {"$exists": true}}',),
        why="journal repair finds outboxes a crash left behind in every tenant: a leased "
        "background scan of the sparse `pending_outbox` index, every JOURNAL_REPAIR_SECONDS",
    ),
    Allowed(
        collections=("*",),
        methods=("find",),
        filters=('{"_id": {"=": "binData"}, "pending_event.id": {"=": "binData"}}',),
        why="after a crash only: the next write of a document still holding a creation "
        "marker reads it back by `_id` to journal the creation (the marker has no tenant)",
    ),
    Allowed(
        collections=("webhooks",),
        methods=("find",),
        filters=('{"enabled": {"=": true}, "is_deleted": {"=": false}}',),
        why="the delivery worker lists every tenant's enabled endpoints: a leased background "
        "scan of a small collection",
    ),
    Allowed(
        collections=("leads",),
        methods=("$lookup",),
        filters=('{"_id": {"=": "string"}}',),
        why="analytics join a tenant's matched rows to their leads by `_id`: targeting needs "
        "the tenant in a `let`/`pipeline` join the embedded backend lacks; the sub-queries of "
        "one page go to the shards holding leads (bounded by the page, not the collection)",
    ),
    Allowed(
        collections=("idempotency_keys",),
        methods=("update_one", "delete_one"),
        filters=(
            '{"_id": {"=": "binData"}}',
            '{"_id": {"=": "binData"}, "response": {"=": "null"}}',
        ),
        why="the claimed record's follow-up writes (service/events.py) are by `_id`; the "
        "claim itself is by (tenant_id, key). To carry (tenant_id, key) with the claim's "
        "rework (issue 24, item 5)",
    ),
)


def allowed(routed: Routed) -> Allowed | None:
    """The entry that covers an operation, if any."""
    return covering(ALLOWED, routed)


def findings(operations: Iterable[Routed]) -> list[tuple[Routed, str]]:
    """Every operation on a sharded collection that is not targeted and not allowed."""
    out = []
    for routed in sorted(set(operations)):
        plan = PLAN_BY_COLLECTION.get(routed.collection)
        if plan is None or plan.key is None:
            continue
        key = ", ".join(f for f, _ in plan.key)
        if routed.method.endswith("+upsert"):
            # MongoDB targets (and accepts) an upsert on a sharded collection only with the
            # whole shard key fixed by its filter.
            loose = [f for f, _ in plan.key if not _targets_tenant(routed.filter, f)]
            if loose and allowed(routed) is None:
                out.append((routed, f"an upsert without {loose} (shard key {{{key}}})"))
            continue
        leading = plan.key[0][0]
        if _targets_tenant(routed.filter, leading) or allowed(routed) is not None:
            continue
        out.append((routed, f"no equality on {leading} (shard key {{{key}}}): every shard"))
    return out


def save(folder: Path, worker: str) -> None:
    """Write this process's operations for the controller (pytest-xdist)."""
    rows = [[r.collection, r.method, r.filter] for r in recorded]
    (folder / f"{worker}.shards").write_text(json.dumps(rows))


def load(folder: Path) -> set[Routed]:
    """Every worker's operations."""
    out: set[Routed] = set()
    for path in folder.glob("*.shards"):
        out |= {Routed(*row) for row in json.loads(path.read_text())}
    return out
