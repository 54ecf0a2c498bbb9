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

Bulk creations (`Repository.create_many`) write a slim outbox instead of the whole event: a
creation MARKER `{"version": 1, "id", "aggregate_id", "actor_type"}`. A creation
event carries nothing the version-1 document does not (its `changes` are the document's
fields, secrets redacted; actor and time are `created_by` and `created_at`), so
`flush_pending` / `repair_journal` rebuild it from the stored document. The marker keeps the
event's id, so the rebuilt event is the one the bulk path journals, and
`projections.oldest_pending_event` still sees it.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from enum import Enum
from typing import Any, ParamSpec, TypeVar, cast
from uuid import UUID

import uuid6
from beanie import Document
from beanie.odm.utils.parsing import parse_obj
from bson import Binary, Decimal128, ObjectId
from bson import encode as bson_encode
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from pydantic_core import PydanticUndefined, to_jsonable_python
from pymongo.errors import BulkWriteError, DuplicateKeyError

from documents.base import RootDocument, utcnow
from documents.journal import DomainEvent, FieldChange
from service import workers
from service.context import RequestContext
from service.embedded import wal
from service.errors import Unprocessable
from service.observability import request_id_var

log = logging.getLogger(__name__)

REDACTED = "***"
SEQUENCER = "sequencer"  # the sequencer's worker (service/sequencer.py), woken after inserts
# Bookkeeping fields that every change touches: the event itself records who/when/version.
UNJOURNALED = frozenset(
    {"version", "updated_at", "updated_by", "pending_event", "revision_id", "schema_version"}
)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    # The root is always walked: an empty root (a creation's "before") has no leaves, where
    # an empty nested mapping is a leaf value of its own.
    if isinstance(value, Mapping) and (value or not prefix):
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
        if _is_secret(field, secrets):
            a, b = (REDACTED if a is not None else None), (REDACTED if b is not None else None)
        changes.append(FieldChange(field=field, old=a, new=b))
    changes.extend(_vanished_subdocuments(old, new, secrets, {c.field for c in changes}))
    changes.sort(key=lambda c: c.field)
    return changes


def _is_secret(field: str, secrets: tuple[str, ...]) -> bool:
    return any(field == s or field.startswith(f"{s}.") for s in secrets)


def _parents(flat: Mapping[str, Any]) -> set[str]:
    return {key.rsplit(".", n)[0] for key in flat for n in range(1, key.count(".") + 1)}


def _vanished_subdocuments(
    old: Mapping[str, Any], new: Mapping[str, Any], secrets: tuple[str, ...], recorded: set[str]
) -> list[FieldChange]:
    """Changes for sub-documents that stop being sub-documents, at their own path.

    When a sub-document becomes null (`posted: {...} → null`) or leaves a map (a kanban task
    removed), its leaves alone say "each leaf became null", which a sub-document full of
    nulls says too; the change at its own path (old: the sub-document, new: null or its new
    value) is what lets a state be rebuilt exactly (service/lifecycle.py `state_at`). Only
    the outermost vanished path is recorded, and none where the leaf loop already did.
    """
    vanished = _parents(old) - _parents(new)
    out = []
    for path in sorted(vanished):
        if path in recorded or any(path.startswith(f"{p}.") for p in vanished):
            continue
        prefix = f"{path}."
        subtree: dict[str, Any] = {}
        for key, value in old.items():
            if key.startswith(prefix):
                _set_path(subtree, key[len(prefix) :].split("."), value)
        before: Any = REDACTED if _is_secret(path, secrets) else _redacted(subtree, path, secrets)
        after = new.get(path)
        if _is_secret(path, secrets) and after is not None:
            after = REDACTED
        out.append(FieldChange(field=path, old=before, new=after))
    return out


def _set_path(target: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def _redacted(subtree: dict[str, Any], path: str, secrets: tuple[str, ...]) -> dict[str, Any]:
    # Secret leaves inside a vanished sub-document stay out of the journal as everywhere.
    out: dict[str, Any] = {}
    for key, value in subtree.items():
        inner = f"{path}.{key}"
        if _is_secret(inner, secrets):
            out[key] = REDACTED if value is not None else None
        elif isinstance(value, dict) and value:
            out[key] = _redacted(value, inner, secrets)
        else:
            out[key] = value
    return out


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
        request_id=request_id_var.get(),
    )


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


def creation_changes(
    data: Mapping[str, Any], secret_fields: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """A creation event's changes from a JSON-mode dump: `diff({}, data)` without the models.

    Every non-null leaf (flattened as `diff` does, sorted by path) becomes `old: None`, `new:
    value`; secret paths are redacted. Null top-level fields (most of a new document's) are
    dropped before flattening: this runs once per row of a bulk import.
    """
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if value is None or key in UNJOURNALED:
            continue
        if isinstance(value, Mapping) and value:
            _flatten(value, key, flat)
        else:
            flat[key] = value
    return _creation_changes_of(flat, secret_fields)


def _creation_changes_of(
    flat: dict[str, Any], secret_fields: Iterable[str]
) -> list[dict[str, Any]]:
    secrets = tuple(secret_fields)
    changes = []
    for field in sorted(flat):
        value = flat[field]
        if value is None:  # `diff` skips fields equal on both sides: absent (None) → None
            continue
        if secrets and any(field == s or field.startswith(f"{s}.") for s in secrets):
            value = REDACTED
        changes.append({"field": field, "old": None, "new": value})
    return changes


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


def creation_event_document(
    doc: RootDocument, *, event_id: UUID, actor_type: str, changes: list[dict[str, Any]]
) -> dict[str, Any]:
    """The version-1 `created` event of a stamped `doc`, BSON-ready (`encode_document` shape).

    Built directly rather than through a `DomainEvent` and the encoder: field for field what
    `encode_document(new_event(doc, event_type="created", ...))` stores (a test checks it).
    """
    return creation_event_raw(
        aggregate_type=doc.aggregate_type,
        stored=encode_document(doc),
        event_id=Binary.from_uuid(event_id),
        actor_type=actor_type,
        changes=changes,
    )


def creation_event_raw(
    *,
    aggregate_type: str,
    stored: Mapping[str, Any],
    event_id: Binary,
    actor_type: str,
    changes: list[dict[str, Any]],
) -> dict[str, Any]:
    """`creation_event_document` from the BSON-ready stored form of the new document."""
    return {
        "_id": event_id,
        "tenant_id": stored["tenant_id"],
        "aggregate_type": aggregate_type,
        "aggregate_id": stored["_id"],
        "version": 1,
        "event_type": f"{aggregate_type}.created",
        "actor_id": stored["created_by"],
        "actor_type": actor_type,
        "occurred_at": stored["updated_at"],
        "changes": typed_changes(aggregate_type, changes),
        "request_id": request_id_var.get(),
        "seq": None,  # assigned by the sequencer once visible (service/sequencer.py)
    }


class NewDocuments:
    """New documents of one class built from already-validated field values, without Beanie.

    `full(values)` completes python-mode field values (by field name) with the class's
    defaults, in the order of the class's fields; `stored(full)` is then exactly what
    `encode_document(model.model_construct(**full))` gives, and `creation_changes(full)`
    what `creation_changes(journal_dump(...))` gives (tests compare both). For bulk writes
    of values the caller has validated: no model instance, no second validation, no Beanie
    encoder.
    """

    def __init__(self, model: type[RootDocument]) -> None:
        settings = model.get_settings()
        if settings.union_doc is not None or model.get_link_fields():
            raise TypeError(f"{model.__name__}: union documents and links need Beanie's encoder")
        self.model = model
        self.class_id: tuple[str, str] | None = (
            (settings.class_id, model._class_id) if model._class_id else None
        )
        self.fields = [
            (name, info.alias or name, info)
            for name, info in model.model_fields.items()
            if name != "revision_id"
        ]
        self.names = frozenset(name for name, _, _ in self.fields)
        self._shared: dict[UUID, Binary] = {}
        # Defaults worked out once: constants as they are, factories called per document.
        self.defaults: list[tuple[str, Any, Callable[[], Any] | None]] = []
        for name, _, info in self.fields:
            factory = info.default_factory
            if factory is None and info.default is PydanticUndefined:
                self.defaults.append((name, None, _required(model, name)))
            elif factory is None and not isinstance(info.default, _IMMUTABLE):
                self.defaults.append((name, None, functools.partial(info.get_default)))
            else:
                self.defaults.append((name, info.default, factory))  # type: ignore[arg-type]

    def full(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Every field's python-mode value: `values`, else the field's default."""
        if not self.names.issuperset(values):
            raise TypeError(
                f"{self.model.__name__} has no fields {sorted(set(values) - self.names)}"
            )
        return {
            name: values[name] if name in values else (factory() if factory else default)
            for name, default, factory in self.defaults
        }

    def stored(self, full: Mapping[str, Any]) -> dict[str, Any]:
        """The BSON-ready stored document (`encode_document`'s output) of `full` values."""
        out: dict[str, Any] = dict((self.class_id,)) if self.class_id else {}
        shared = self._shared
        for name, alias, _ in self.fields:
            value = full[name]
            kind = type(value)
            if kind in _BSON_EXACT:
                out[alias] = value
            elif kind is UUID:
                # The tenant and actor ids repeat on every document of a batch: encoded once.
                binary = shared.get(value)
                if binary is None:
                    binary = Binary.from_uuid(value)
                    if name in _REPEATED_IDS:
                        if len(shared) > 16:
                            shared.clear()
                        shared[value] = binary
                out[alias] = binary
            elif kind is dict:
                out[alias] = {
                    k if isinstance(k, Enum) else str(k): v
                    if type(v) in _BSON_EXACT
                    else _bson_value(v)
                    for k, v in value.items()
                }
            else:
                out[alias] = _bson_value(value)
        return out

    def creation_changes(
        self, full: Mapping[str, Any], secret_fields: Iterable[str] = ()
    ) -> list[dict[str, Any]]:
        """`creation_changes(journal_dump(doc))` of the document with `full` values.

        Straight from the python-mode values: plain scalars as they are, anything else
        converted to JSON mode by pydantic-core as `journal_dump` would.
        """
        flat: dict[str, Any] = {}
        for key, value in full.items():
            if value is None or key in UNJOURNALED:
                continue
            kind = type(value)
            if kind is str or kind is int or kind is float or kind is bool:
                flat[key] = value
            elif kind is dict and value:
                _flatten(to_jsonable_python(value), key, flat)
            else:
                flat[key] = to_jsonable_python(value)
        return _creation_changes_of(flat, secret_fields)


def creation_event_from_stored(
    model: type[RootDocument], stored: Mapping[str, Any], marker: Mapping[str, Any]
) -> DomainEvent:
    """Rebuild the `created` event a creation marker stands for from the stored document."""
    doc = cast(RootDocument, parse_obj(model, dict(stored)))  # the subclass by `_class_id`
    return DomainEvent(
        id=_as_uuid(marker["id"]),
        tenant_id=doc.tenant_id,
        aggregate_type=doc.aggregate_type,
        aggregate_id=doc.id,
        version=1,
        event_type=f"{doc.aggregate_type}.created",
        actor_id=doc.created_by,
        actor_type=marker.get("actor_type", "system"),
        occurred_at=doc.updated_at,
        changes=[
            FieldChange.model_validate(c)
            for c in creation_changes(journal_dump(doc), doc.secret_fields)
        ],
    )


def _as_uuid(value: Any) -> UUID:
    # Outbox values read back raw are `Binary`; through Beanie/Motor they are already UUIDs.
    return value.as_uuid() if isinstance(value, Binary) else UUID(str(value))


class Uuid7Pool:
    """`uuid6.uuid7` (same clock rule and state), its randomness drawn 500 ids at a time.

    Each `os.urandom` (uuid7 calls one per id) releases the GIL, and on the event loop every
    release can wait a whole switch interval behind the embedded backend's busy worker
    thread (per row of an import: most of its time on a loaded machine).
    """

    def __init__(self) -> None:
        self._entropy = b""
        self._at = 0

    def __call__(self) -> UUID:
        if self._at + 10 > len(self._entropy):
            self._entropy, self._at = os.urandom(5000), 0
        rand = int.from_bytes(self._entropy[self._at : self._at + 10], "big") >> 4  # 76 bits
        self._at += 10
        stamp = time.time_ns() // 1_000_000
        state = vars(uuid6)  # uuid7's own clock: ids of both stay ordered
        last: int | None = state.get("_last_v7_timestamp")
        if last is not None and stamp <= last:
            stamp = last + 1
        state["_last_v7_timestamp"] = stamp
        return uuid6.UUID(int=((stamp & 0xFFFFFFFFFFFF) << 80) | rand, version=7)


pooled_uuid7 = Uuid7Pool()
"""A new UUIDv7 as `uuid6.uuid7` makes it, without a GIL release per id (bulk paths)."""


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
        await DomainEvent.get_pymongo_collection().insert_one(_encode(event))
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
    aggregate_id = Binary.from_uuid(_as_uuid(marker["aggregate_id"]))
    # Only the outbox still holding this marker: once cleared or replaced by a later write's
    # event (writes flush first), version 1 is journaled already.
    guard = {"_id": aggregate_id, "pending_event.id": Binary.from_uuid(_as_uuid(marker["id"]))}
    collection = model.get_pymongo_collection()
    if stored is None:
        stored = await collection.find_one(guard)
        if stored is None:
            return
    event = creation_event_from_stored(model, stored, marker)
    with suppress(DuplicateKeyError):  # the bulk path got that far before the crash
        await DomainEvent.get_pymongo_collection().insert_one(_encode(event))
    workers.poke(SEQUENCER)
    await collection.update_one(
        _scoped(model, guard, stored.get("tenant_id")), {"$unset": {"pending_event": ""}}
    )


@_follow_up
async def flush_many(
    model: type[RootDocument], events: Sequence[DomainEvent | Mapping[str, Any]]
) -> None:
    """Journal a batch of outbox events in one insert and clear their outboxes.

    `events` are `DomainEvent`s or already-encoded event documents (`creation_event_document`).
    One update per version clears the outboxes, by `_id` and only where they still hold that
    version: a concurrent update may already have put its own (not yet journaled) event
    there, which must survive until flushed.
    """
    if not events:
        return
    raw = [e if isinstance(e, Mapping) else _encode(e) for e in events]
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
        markers: list[DomainEvent] = []
        async for raw in cursor:
            changed = raw.get("updated_at")
            if older_than is not None and changed is not None and _utc(changed) > older_than:
                continue
            pending = raw["pending_event"]
            if is_creation_marker(pending):
                # A crashed bulk import is journaled as it would have been: in chunks.
                markers.append(creation_event_from_stored(model, raw, pending))
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


def _encode(event: DomainEvent) -> dict[str, Any]:
    return encode_event(event)


def encode_event(event: DomainEvent) -> dict[str, Any]:
    """A journal entry as stored: `encode_document` with its change values BSON-typed."""
    data = encode_document(event)
    data["changes"] = typed_changes(event.aggregate_type, data["changes"])
    return data


# -- journal values with their BSON types -----------------------------------------------------
#
# Changes are computed and replayed in JSON mode (`journal_dump`), but stored typed: a field
# whose schema says date-time is a BSON date, a UUID a BSON UUID (money is integer cents in
# both), so pipelines over the journal compare dates and join ids without parsing strings.
# `FieldChange` turns them back into JSON mode when an entry is read through the model.

_Node = Mapping[str, Any]
_PATHS: dict[tuple[str, str], list[tuple[_Node, _Node]]] = {}


def _classes(aggregate_type: str) -> list[type[RootDocument]]:
    from documents import AGGREGATE_ROOTS

    out: list[type[RootDocument]] = []
    for root in AGGREGATE_ROOTS:
        if root.aggregate_type != aggregate_type:
            continue
        pending: list[type[RootDocument]] = [root]
        while pending:
            cls = pending.pop()
            out.append(cls)
            pending.extend(cls.__subclasses__())
    return out


@functools.cache
def _schema_of(cls: type[RootDocument]) -> _Node:
    return cls.model_json_schema(by_alias=False, mode="serialization")


def _branches(root: _Node, node: Any) -> list[_Node]:
    """The schema nodes a value may match at `node` ($ref resolved, anyOf/oneOf spread)."""
    if not isinstance(node, Mapping):
        return []
    if "$ref" in node:
        target: Any = root
        for part in str(node["$ref"]).lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        return _branches(root, target)
    alternatives = node.get("anyOf") or node.get("oneOf") or node.get("allOf")
    if alternatives:
        return [b for alt in alternatives for b in _branches(root, alt)]
    return [node]


def _child(root: _Node, node: _Node, key: str) -> list[_Node]:
    out: list[_Node] = []
    for branch in _branches(root, node):
        props = branch.get("properties")
        if isinstance(props, Mapping) and key in props:
            out.append(props[key])
        elif isinstance(branch.get("additionalProperties"), Mapping):
            out.append(branch["additionalProperties"])
    return out


def _nodes(aggregate_type: str, field: str) -> list[tuple[_Node, _Node]]:
    """(schema root, node) pairs of a journal path in every class of the aggregate type."""
    key = (aggregate_type, field)
    found = _PATHS.get(key)
    if found is None:
        found = []
        for cls in _classes(aggregate_type):
            root = _schema_of(cls)
            nodes: list[_Node] = [root]
            for part in field.split("."):
                nodes = [c for n in nodes for c in _child(root, n, part)]
            found.extend((root, n) for n in nodes)
        _PATHS[key] = found
    return found


def _typed(root: _Node, node: _Node, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    branches = _branches(root, node)
    if isinstance(value, str):
        formats = {b.get("format") for b in branches}
        if "date-time" in formats:
            with suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
        if "uuid" in formats:
            with suppress(ValueError):
                return Binary.from_uuid(UUID(value))
        return value
    if isinstance(value, list):
        items = [b["items"] for b in branches if isinstance(b.get("items"), Mapping)]
        if not items:
            return value
        return [_typed(root, items[0], v) for v in value]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            children = [c for b in branches for c in _child(root, b, str(k))]
            out[k] = _typed(root, children[0], v) if children else v
        return out
    return value


def typed_changes(
    aggregate_type: str, changes: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Changes with their values BSON-typed by the aggregate's schema (idempotent).

    A string at a date-time path becomes a date, at a UUID path a BSON UUID (in lists and
    sub-documents too); anything else (redacted secrets, free text, numbers) stays.
    """
    out = []
    for change in changes:
        item = dict(change)
        field = str(item.get("field", ""))
        old, new = item.get("old"), item.get("new")
        if isinstance(old, _UNTYPED) and isinstance(new, _UNTYPED):
            pass  # numbers, booleans and nulls are stored as they are
        elif (isinstance(old, str) or old is None) and (isinstance(new, str) or new is None):
            # The common case (a bulk import's thousands of string leaves): by path alone.
            kind = _string_kind(aggregate_type, field)
            if kind is not None:
                item["old"], item["new"] = kind(old), kind(new)
        elif old is None and type(new) is list and all(type(v) is str for v in new):
            # A new list of strings (tags, search tokens): its items' kind by path alone.
            typed = _list_kind(aggregate_type, field)
            if typed is not None:
                item["new"] = typed(new)
        elif not isinstance(old, _NESTED) and not isinstance(new, _NESTED):
            pass  # other scalars (dates already typed…) are stored as they are
        else:
            nodes = _nodes(aggregate_type, field)
            if nodes:
                root, node = nodes[0]
                item["old"], item["new"] = _typed(root, node, old), _typed(root, node, new)
        out.append(item)
    return out


async def retype_journal(
    *, batch_size: int = 500, progress: Callable[[int], None] | None = None
) -> tuple[int, int]:
    """Migrate journal entries stored with JSON-string values to BSON types; (seen, changed).

    Pages through `domain_events` by `_id` (its primary index) and rewrites only the
    `changes` of entries whose typed form differs, guarded by the value it read (an entry
    is otherwise immutable, so the guard only matters against a concurrent erasure). Safe
    to run next to live servers, idempotent, resumable.
    """
    collection = DomainEvent.get_pymongo_collection()
    seen = changed = 0
    after: Any = None
    while True:
        query = {"_id": {"$gt": after}} if after is not None else {"_id": {"$gte": _MIN_ID}}
        page = (
            await collection.find(query, {"aggregate_type": 1, "changes": 1})
            .sort("_id", 1)
            .limit(batch_size)
            .to_list(None)
        )
        for entry in page:
            stored = entry.get("changes") or []
            typed = typed_changes(str(entry.get("aggregate_type")), stored)
            if typed != stored:
                result = await collection.update_one(
                    {"_id": entry["_id"], "changes": stored}, {"$set": {"changes": typed}}
                )
                changed += result.modified_count
        seen += len(page)
        if progress is not None:
            progress(len(page))
        if len(page) < batch_size:
            return seen, changed
        after = page[-1]["_id"]


_MIN_ID = Binary.from_uuid(UUID(int=0))
_KINDS: dict[tuple[str, str], Callable[[Any], Any] | None] = {}
_UNTYPED = (bool, int, float, type(None))


def _string_kind(aggregate_type: str, field: str) -> Callable[[Any], Any] | None:
    """How a string at this path is typed (None: it stays a string)."""
    key = (aggregate_type, field)
    if key not in _KINDS:
        nodes = _nodes(aggregate_type, field)
        formats = {b.get("format") for root, n in nodes[:1] for b in _branches(root, n)}
        kind: Callable[[Any], Any] | None = None
        if "date-time" in formats:
            kind = _as_date
        elif "uuid" in formats:
            kind = _as_uuid_value
        _KINDS[key] = kind
    return _KINDS[key]


_NESTED = (str, list, Mapping)
_LIST_KINDS: dict[tuple[str, str], Callable[[list[str]], list[Any]] | None] = {}


def _list_kind(aggregate_type: str, field: str) -> Callable[[list[str]], list[Any]] | None:
    """How a list of strings at this path is typed (None: it stays as it is); `_typed`'s rule."""
    key = (aggregate_type, field)
    if key not in _LIST_KINDS:
        nodes = _nodes(aggregate_type, field)
        typed: Callable[[list[str]], list[Any]] | None = None
        if nodes:
            root, node = nodes[0]
            items = [
                b["items"] for b in _branches(root, node) if isinstance(b.get("items"), Mapping)
            ]
            if items:
                formats = {b.get("format") for b in _branches(root, items[0])}
                if "date-time" in formats or "uuid" in formats:
                    item = items[0]
                    typed = functools.partial(_typed_items, root, item)
                else:
                    typed = list  # a copy, as `_typed` makes
        _LIST_KINDS[key] = typed
    return _LIST_KINDS[key]


def _typed_items(root: _Node, node: _Node, values: list[str]) -> list[Any]:
    return [_typed(root, node, v) for v in values]


def _as_date(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # a redacted secret or a value of an older shape: left as it is
        return value


def _as_uuid_value(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return Binary.from_uuid(UUID(value))
    except ValueError:
        return value


# Values stored as they are (str covers str-valued enums, which Beanie also keeps as they are).
_BSON_AS_IS = (str, int, float, type(None), datetime, Binary, Decimal128, ObjectId)
_IMMUTABLE = (str, int, float, type(None), Enum, frozenset)  # str/int cover their enums


def _required(model: type[RootDocument], name: str) -> Callable[[], Any]:
    def missing() -> Any:
        raise TypeError(f"{model.__name__}.{name} is required")

    return missing


_REPEATED_IDS = frozenset({"tenant_id", "created_by", "updated_by", "user_id"})
_BSON_EXACT = frozenset({str, int, float, bool, type(None), datetime, Binary})  # a `type` check


def _bson_value(value: Any) -> Any:
    if isinstance(value, _BSON_AS_IS):
        return value
    if isinstance(value, UUID):
        return Binary.from_uuid(value)
    if isinstance(value, Mapping):
        return {
            key if isinstance(key, Enum) else str(key): _bson_value(inner)
            for key, inner in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [_bson_value(inner) for inner in value]
    from beanie.odm.utils.encoder import Encoder

    return Encoder().encode(value)  # rarer types (Decimal, other enums, dates…): Beanie's rules


def encode_document(doc: Document) -> dict[str, Any]:
    """A document as Beanie's Encoder stores it (without `revision_id`), for raw bulk writes.

    Same output as `Encoder().encode(doc)` (tests/test_core_documents.py checks it), about ten
    times faster: one pydantic-core dump, then only UUIDs and containers are converted.
    """
    settings = doc.get_settings()
    if settings.union_doc is not None or doc.get_link_fields():
        from beanie.odm.utils.encoder import Encoder

        data: dict[str, Any] = Encoder().encode(doc)
        data.pop("revision_id", None)
        return data
    dumped = doc.model_dump(by_alias=True, exclude={"revision_id"}, warnings=False)
    out: dict[str, Any] = {settings.class_id: doc._class_id} if doc._class_id else {}
    for key, value in dumped.items():
        out[key] = _bson_value(value)
    return out


__all__ = [
    "REDACTED",
    "NewDocuments",
    "as_outbox",
    "creation_changes",
    "creation_event_document",
    "creation_event_from_stored",
    "creation_event_raw",
    "creation_marker",
    "diff",
    "encode_document",
    "encode_event",
    "ensure_outbox_indexes",
    "flush_many",
    "flush_pending",
    "is_creation_marker",
    "journal_dump",
    "new_event",
    "repair_journal",
    "retype_journal",
    "typed_changes",
    "utcnow",
]
