"""The crash-safe outbox: size check, flush of one or many outboxes, and crash repair."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any, ParamSpec, TypeVar, cast

from beanie.odm.utils.parsing import parse_obj
from bson import Binary
from bson import encode as bson_encode
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from pymongo.errors import BulkWriteError, DuplicateKeyError

from documents.base import RootDocument
from documents.journal import DomainEvent
from service.core.errors import Unprocessable
from service.core.journal.diff import diff, journal_dump
from service.core.journal.encoding import as_uuid, encode_document, encode_event
from service.core.journal.events import creation_event
from service.embedded import wal
from service.feeds import workers

log = logging.getLogger(__name__)


SEQUENCER = "sequencer"  # the sequencer's worker (service/feeds/sequencer.py), woken after inserts


JOURNALED_DOCUMENT_MAX_BYTES = 15 * 1024 * 1024
"""A journaled document with its outbox (the change's old and new values): MongoDB's 16 MiB
document limit less room for the update itself. A change that would pass it is refused with 422,
not a 500 from the server (a 5 MiB field replaced holds ~15 MiB: itself, old and new values)."""


_SIZE_CODEC: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=UuidRepresentation.STANDARD, tz_aware=True
)


def ensure_fits(stored: Mapping[str, Any]) -> None:
    """Refuse (422) a document that, with its outbox, would pass the stated size limit."""
    size = len(bson_encode(stored, codec_options=_SIZE_CODEC))
    if size > JOURNALED_DOCUMENT_MAX_BYTES:
        limit = JOURNALED_DOCUMENT_MAX_BYTES // (1024 * 1024)
        raise Unprocessable(
            f"The resource would take {size / 1048576:.1f} MiB with its journal entry (the "
            f"change's old and new values); the limit is {limit} MiB. Send smaller values."
        )


def as_outbox(event: DomainEvent) -> dict[str, Any]:
    """The event in the shape stored in an aggregate's `pending_event` field."""
    return event.model_dump(mode="python")


def creation_marker(*, event_id: Binary, aggregate_id: Binary, actor_type: str) -> dict[str, Any]:
    """The slim outbox of a bulk creation (BSON-ready ids in): enough to rebuild its event."""
    return {
        "version": 1,
        "id": event_id,
        "aggregate_id": aggregate_id,
        "actor_type": actor_type,
    }


def is_creation_marker(pending: Mapping[str, Any]) -> bool:
    """True when an outbox is a creation marker (no event body) rather than a whole event."""
    return "event_type" not in pending and pending.get("version") == 1


P = ParamSpec("P")
R = TypeVar("R")


def _follow_up(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
    # An outbox's follow-ups (event insert, outbox clear) are redone from the outbox, which
    # the aggregate's own write made durable: on the embedded backend they need not wait for
    # their own fsync (one fsync per journaled write instead of three).
    @functools.wraps(fn)
    async def run(*args: P.args, **kwargs: P.kwargs) -> R:
        with wal.deferred():
            return await fn(*args, **kwargs)

    return run


@_follow_up
async def flush_pending(
    model: type[RootDocument],
    pending: Mapping[str, Any] | Any,
    *,
    stored: Mapping[str, Any] | None = None,
) -> None:
    """Copy an outbox event into the journal (idempotent) and clear the outbox.

    A creation marker is expanded from the stored document (`stored`, or read by its id).
    """
    data = pending.model_dump() if hasattr(pending, "model_dump") else dict(pending)
    if is_creation_marker(data):
        await _flush_marker(model, data, stored)
        return
    event = DomainEvent.model_validate(data)
    with suppress(DuplicateKeyError):  # already journaled by an earlier attempt
        await DomainEvent.get_pymongo_collection().insert_one(encode_event(event))
    workers.poke(SEQUENCER)
    await model.get_pymongo_collection().update_one(
        _scoped(
            model,
            {"_id": Binary.from_uuid(event.aggregate_id), "pending_event.version": event.version},
            Binary.from_uuid(event.tenant_id),
        ),
        {"$unset": {"pending_event": ""}},
    )


def _scoped(model: type[RootDocument], query: dict[str, Any], tenant_id: Any) -> dict[str, Any]:
    """`query` with the document's tenant: a write on a sharded collection is then targeted."""
    if tenant_id is not None and "tenant_id" in model.model_fields:
        return {**query, "tenant_id": tenant_id}
    return query


async def _flush_marker(
    model: type[RootDocument], marker: Mapping[str, Any], stored: Mapping[str, Any] | None
) -> None:
    aggregate_id = Binary.from_uuid(as_uuid(marker["aggregate_id"]))
    # Only the outbox still holding this marker: once cleared or replaced by a later write's
    # event (writes flush first), version 1 is journaled already.
    guard = {"_id": aggregate_id, "pending_event.id": Binary.from_uuid(as_uuid(marker["id"]))}
    collection = model.get_pymongo_collection()
    if stored is None:
        stored = await collection.find_one(guard)
        if stored is None:
            return
    event = _marker_event(model, stored, marker)
    with suppress(DuplicateKeyError):  # the bulk path got that far before the crash
        await DomainEvent.get_pymongo_collection().insert_one(event)
    workers.poke(SEQUENCER)
    await collection.update_one(
        _scoped(model, guard, stored.get("tenant_id")), {"$unset": {"pending_event": ""}}
    )


def _marker_event(
    model: type[RootDocument], stored: Mapping[str, Any], marker: Mapping[str, Any]
) -> dict[str, Any]:
    """The `created` event a creation marker stands for, rebuilt from the stored document."""
    doc = cast(RootDocument, parse_obj(model, dict(stored)))  # the subclass by `_class_id`
    changes = diff({}, journal_dump(doc), doc.secret_fields)
    return creation_event(
        aggregate_type=doc.aggregate_type,
        stored=encode_document(doc),  # BSON-typed as the bulk path's input, however read
        event_id=Binary.from_uuid(as_uuid(marker["id"])),
        actor_type=marker.get("actor_type", "system"),
        changes=[c.model_dump() for c in changes],
        request_id=None,  # not the request that happens to flush it
    )


@_follow_up
async def flush_many(
    model: type[RootDocument], events: Sequence[DomainEvent | Mapping[str, Any]]
) -> None:
    """Journal a batch of outbox events in one insert and clear their outboxes.

    `events` are `DomainEvent`s or already-encoded event documents (`creation_event`).
    One update per version clears the outboxes, by `_id` and only where they still hold that
    version: a concurrent update may already have put its own (not yet journaled) event
    there, which must survive until flushed.
    """
    if not events:
        return
    raw = [e if isinstance(e, Mapping) else encode_event(e) for e in events]
    try:
        # Inserted as given: the documents are not used afterwards, so no defensive copy.
        await DomainEvent.get_pymongo_collection().insert_many(raw, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise
    workers.poke(SEQUENCER)
    by_version: dict[tuple[Any, int], list[Binary]] = {}
    for e in raw:  # per tenant too: a sharded collection's update is then targeted
        by_version.setdefault((e.get("tenant_id"), e["version"]), []).append(e["aggregate_id"])
    for (tenant_id, version), ids in by_version.items():
        await model.get_pymongo_collection().update_many(
            _scoped(model, {"_id": {"$in": ids}, "pending_event.version": version}, tenant_id),
            {"$unset": {"pending_event": ""}},
        )


REPAIR_CHUNK = 1000


async def repair_journal(
    models: Iterable[type[RootDocument]], *, older_than: datetime | None = None
) -> int:
    """Flush every outbox left behind by a crash; returns how many events were journaled.

    `older_than` leaves alone outboxes of documents changed after that time: writes in flight
    flush their own outbox a few milliseconds later (flushing twice is harmless, but useless).
    The periodic repair passes it; start-up and the CLI flush everything.
    """
    repaired = 0
    for model in models:
        # Whole documents: a creation marker's event is rebuilt from the document itself.
        cursor = model.get_pymongo_collection().find({"pending_event.version": {"$exists": True}})
        markers: list[dict[str, Any]] = []
        async for raw in cursor:
            changed = raw.get("updated_at")
            if older_than is not None and changed is not None and _utc(changed) > older_than:
                continue
            pending = raw["pending_event"]
            if is_creation_marker(pending):
                # A crashed bulk import is journaled as it would have been: in chunks.
                markers.append(_marker_event(model, raw, pending))
                if len(markers) >= REPAIR_CHUNK:
                    await flush_many(model, markers)
                    markers = []
            else:
                await flush_pending(model, pending, stored=raw)
            repaired += 1
        await flush_many(model, markers)
    if repaired:
        log.warning("journal repair: flushed %d pending event(s)", repaired)
    return repaired


async def ensure_outbox_indexes(models: Iterable[type[RootDocument]]) -> None:
    """A sparse index on every root's outbox, so the repair sweep reads only pending documents.

    Created here rather than in each document's `Settings.indexes` because the outbox is the
    journal's mechanism, shared by every aggregate root.
    """
    for model in models:
        await model.get_pymongo_collection().create_index(
            [("pending_event.version", 1)], sparse=True, name="pending_outbox"
        )


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
