"""Journal writes, history reads and crash repair.

Write protocol (no transactions needed, correct on a standalone MongoDB):

1. The state change and its domain event are written in ONE single-document update: the event
   rides along in the aggregate's `pending_event` field (a transactional outbox), guarded by
   the expected `version` so concurrent writers of the same version cannot both win.
2. The event is then inserted into `domain_events` (unique on `(aggregate_id, version)`).
3. The outbox is cleared, conditioned on the same version.

A crash after step 1 leaves the event in the outbox; `flush_pending` (run before the next write
of that aggregate, by `repair_journal` at start-up and by `python -m service.cli repair`) copies
it into the journal. Inserting an event that is already there is a no-op, so every step can be
retried. The journal therefore never misses a version and an aggregate's `version` always
equals its last event's once pending outboxes are flushed.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any
from uuid import UUID

from bson import Binary
from pymongo.errors import BulkWriteError, DuplicateKeyError

from documents.base import RootDocument, utcnow
from documents.journal import DomainEvent, FieldChange
from service.context import RequestContext

log = logging.getLogger(__name__)

REDACTED = "***"
# Bookkeeping fields that every change touches: the event itself records who/when/version.
UNJOURNALED = frozenset(
    {"version", "updated_at", "updated_by", "pending_event", "revision_id", "schema_version"}
)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping) and value:
        for key, inner in value.items():
            _flatten(inner, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def diff(
    before: Mapping[str, Any], after: Mapping[str, Any], secret_fields: Iterable[str] = ()
) -> list[FieldChange]:
    """Field-level changes between two JSON-mode dumps; secret paths are redacted."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    _flatten({k: v for k, v in before.items() if k not in UNJOURNALED}, "", old)
    _flatten({k: v for k, v in after.items() if k not in UNJOURNALED}, "", new)
    secrets = tuple(secret_fields)
    changes = []
    for field in sorted(old.keys() | new.keys()):
        a, b = old.get(field), new.get(field)
        if a == b:
            continue
        if any(field == s or field.startswith(f"{s}.") for s in secrets):
            a, b = (REDACTED if a is not None else None), (REDACTED if b is not None else None)
        changes.append(FieldChange(field=field, old=a, new=b))
    return changes


def journal_dump(doc: RootDocument) -> dict[str, Any]:
    """The part of a document the journal compares (JSON mode)."""
    return doc.model_dump(mode="json", exclude=set(UNJOURNALED))


def new_event(
    doc: RootDocument,
    *,
    ctx: RequestContext | None,
    event_type: str,
    changes: list[FieldChange],
) -> DomainEvent:
    """The domain event describing `doc` at its (already bumped) version."""
    return DomainEvent(
        tenant_id=doc.tenant_id,
        aggregate_type=doc.aggregate_type,
        aggregate_id=doc.id,
        version=doc.version,
        event_type=f"{doc.aggregate_type}.{event_type}",
        actor_id=ctx.actor_id if ctx else None,
        actor_type=ctx.actor_type if ctx else "system",
        occurred_at=doc.updated_at,
        changes=changes,
    )


def as_outbox(event: DomainEvent) -> dict[str, Any]:
    """The event in the shape stored in an aggregate's `pending_event` field."""
    return event.model_dump(mode="python")


async def flush_pending(model: type[RootDocument], pending: Mapping[str, Any] | Any) -> None:
    """Copy an outbox event into the journal (idempotent) and clear the outbox."""
    data = pending.model_dump() if hasattr(pending, "model_dump") else dict(pending)
    event = DomainEvent.model_validate(data)
    try:
        await DomainEvent.get_motor_collection().insert_one(_encode(event))
    except DuplicateKeyError:
        pass  # already journaled by an earlier attempt
    await model.get_motor_collection().update_one(
        {"_id": Binary.from_uuid(event.aggregate_id), "pending_event.version": event.version},
        {"$unset": {"pending_event": ""}},
    )


async def flush_many(model: type[RootDocument], events: list[DomainEvent]) -> None:
    """Journal a batch of outbox events in one insert and clear their outboxes in one update."""
    if not events:
        return
    try:
        await DomainEvent.get_motor_collection().insert_many(
            [_encode(e) for e in events], ordered=False
        )
    except BulkWriteError as exc:
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise
    await model.get_motor_collection().update_many(
        {"_id": {"$in": [Binary.from_uuid(e.aggregate_id) for e in events]}},
        {"$unset": {"pending_event": ""}},
    )


async def repair_journal(models: Iterable[type[RootDocument]]) -> int:
    """Flush every outbox left behind by a crash; returns how many events were journaled."""
    repaired = 0
    for model in models:
        cursor = model.get_motor_collection().find(
            {"pending_event": {"$ne": None}}, {"pending_event": 1}
        )
        async for raw in cursor:
            await flush_pending(model, raw["pending_event"])
            repaired += 1
    if repaired:
        log.warning("journal repair: flushed %d pending event(s)", repaired)
    return repaired


def _encode(event: DomainEvent) -> dict[str, Any]:
    from beanie.odm.utils.encoder import Encoder

    data: dict[str, Any] = Encoder().encode(event)
    data.pop("revision_id", None)
    return data


def history_filter(ctx: RequestContext, aggregate_type: str, aggregate_id: UUID) -> dict[str, Any]:
    """The journal query for one aggregate's history, tenant-scoped."""
    return {
        "tenant_id": Binary.from_uuid(ctx.tenant_id),
        "aggregate_type": aggregate_type,
        "aggregate_id": Binary.from_uuid(aggregate_id),
    }


__all__ = [
    "REDACTED",
    "as_outbox",
    "diff",
    "flush_many",
    "flush_pending",
    "history_filter",
    "journal_dump",
    "new_event",
    "repair_journal",
    "utcnow",
]
