"""Building domain events: one write's event (`new_event`), a creation's event as stored
(`creation_event`, bulk path and repair), and the bulk paths' event and document ids."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any
from uuid import UUID, SafeUUID

import uuid6
from bson import Binary

from documents.base import RootDocument
from documents.journal import DomainEvent, FieldChange
from service.core.context import RequestContext
from service.core.journal.typed import typed_changes, uuid_binary
from service.core.observability import request_id_var


def new_event(
    doc: RootDocument,
    *,
    ctx: RequestContext | None,
    event_type: str,
    changes: list[FieldChange],
) -> DomainEvent:
    """The domain event of one write of `doc`, at its (already bumped) version."""
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


def creation_event(
    *,
    aggregate_type: str,
    stored: Mapping[str, Any],
    event_id: Binary,
    actor_type: str,
    changes: list[dict[str, Any]],
    request_id: str | None,
    typed: bool = False,
) -> dict[str, Any]:
    """The `created` event of a new document, as stored, from the document's stored form.

    The bulk path's and the repair's one builder (neither has a `DomainEvent`): field for
    field what `encode_event(new_event(doc, event_type="created", ...))` stores for the
    same document (tests/test_repository.py checks it). `changes` are JSON-mode dicts, or
    already BSON-typed ones with `typed` (`NewDocuments.encode`).
    """
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
        "changes": changes if typed else typed_changes(aggregate_type, changes),
        "request_id": request_id,
        "seq": None,  # assigned by the sequencer once visible (service/feeds/sequencer.py)
    }


class Uuid7Pool:
    """`uuid6.uuid7` (same clock rule and state), its randomness drawn 500 ids at a time.

    Each `os.urandom` (uuid7 calls one per id) releases the GIL, and on the event loop every
    release can wait a whole switch interval behind the embedded backend's busy worker
    thread (per row of an import: most of its time on a loaded machine).
    """

    def __init__(self) -> None:
        self._random: list[int] = []  # 76 random bits per id, the next one last

    def __call__(self) -> UUID:
        return _uuid7(self._draw(1)[0])

    def many(self, count: int) -> list[UUID]:
        """`count` ids as `self()` makes them one after another (a bulk chunk's rows)."""
        return [_uuid7(bits) for bits in self._draw(count)]

    def binary(self) -> Binary:
        """`Binary.from_uuid(self())` without the UUID object (a bulk chunk's claim ids)."""
        return _binary7(self._draw(1)[0])

    def binaries(self, count: int) -> list[Binary]:
        """`count` ids as `binary()` makes them one after another (a bulk chunk's claims)."""
        return [_binary7(bits) for bits in self._draw(count)]

    def _draw(self, count: int) -> list[int]:
        """The next `count` ids' 128 bits before their variant and version are set.

        uuid7's rule: an id's millisecond is the clock's, or the one after the last id's. The
        clock is read once for them all: ids made faster than one a millisecond never see it
        move (each after the first takes the next millisecond anyway), so reading it once
        changes none of their timestamps.
        """
        random = self._random
        stamp = time.time_ns() // 1_000_000
        last: int | None = _UUID6_STATE.get("_last_v7_timestamp")
        drawn: list[int] = []
        for _ in range(count):
            if not random:
                self._refill()
            if last is not None and stamp <= last:
                stamp = last + 1
            last = stamp
            drawn.append(((stamp & 0xFFFFFFFFFFFF) << 80) | random.pop())
        if drawn:
            _UUID6_STATE["_last_v7_timestamp"] = last
        return drawn

    def _refill(self) -> None:
        # 500 ids' randomness (76 bits each) from one `os.urandom`.
        entropy = os.urandom(5000)
        bits = [int.from_bytes(entropy[i : i + 10], "big") >> 4 for i in range(0, 5000, 10)]
        self._random += bits


_UUID6_STATE = vars(uuid6)  # uuid7's own clock: ids of both stay ordered
_VARIANT_VERSION_CLEAR = ~((0xC000 << 48) | (0xF000 << 64))
_VARIANT_VERSION_7 = (0x8000 << 48) | (7 << 76)


def uuid7_of(value: int) -> UUID:
    """`uuid6.UUID(int=value, version=7)`, without its two Python-level initialisers.

    The same steps (the RFC 4122 variant and version 7 set in the 128 bits, then the slots
    `uuid.UUID.__init__` sets); tests/test_fast_paths.py compares both.
    """
    if not 0 <= value < 1 << 128:
        raise ValueError("int is out of range (need a 128-bit value)")
    return _uuid7(value)


def binary7_of(value: int) -> Binary:
    """`Binary.from_uuid(uuid7_of(value))`: the id as stored, straight from its bits."""
    if not 0 <= value < 1 << 128:
        raise ValueError("int is out of range (need a 128-bit value)")
    return _binary7(value)


def _uuid7(value: int) -> UUID:
    # `uuid7_of` of bits known to be in range (the pool's). The two slots `UUID.__init__`
    # sets, through their descriptors (`object.__setattr__` looks each one up: 2.5x slower).
    made = _new(_UUID7)
    _set_int(made, (value & _VARIANT_VERSION_CLEAR) | _VARIANT_VERSION_7)
    _set_is_safe(made, _UNKNOWN)
    return made


_new = object.__new__
_UUID7 = uuid6.UUID
_set_int = UUID.__dict__["int"].__set__
_set_is_safe = UUID.__dict__["is_safe"].__set__
_UNKNOWN = SafeUUID.unknown


def _binary7(value: int) -> Binary:
    # `binary7_of` of bits known to be in range (the pool's).
    bits = (value & _VARIANT_VERSION_CLEAR) | _VARIANT_VERSION_7
    return uuid_binary(bits.to_bytes(16, "big"))


pooled_uuid7 = Uuid7Pool()
"""A new UUIDv7 as `uuid6.uuid7` makes it, without a GIL release per id (bulk paths)."""
