"""Building domain events: one write's event, and a bulk creation's event as stored."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any, cast
from uuid import UUID

import uuid6
from beanie.odm.utils.parsing import parse_obj
from bson import Binary

from documents.base import RootDocument
from documents.journal import DomainEvent, FieldChange
from service.context import RequestContext
from service.journal.diff import creation_changes, journal_dump
from service.journal.encoding import as_uuid, encode_document
from service.journal.typed import typed_changes
from service.observability import request_id_var


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


def creation_event_from_stored(
    model: type[RootDocument], stored: Mapping[str, Any], marker: Mapping[str, Any]
) -> DomainEvent:
    """Rebuild the `created` event a creation marker stands for from the stored document."""
    doc = cast(RootDocument, parse_obj(model, dict(stored)))  # the subclass by `_class_id`
    return DomainEvent(
        id=as_uuid(marker["id"]),
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
