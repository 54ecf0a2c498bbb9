"""The change journal: every write of an aggregate root journals one domain event.

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

Bulk creations (`Repository.create_many_values`) write a slim outbox instead of the whole
event: a creation MARKER `{"version": 1, "id", "aggregate_id", "actor_type"}`. A creation
event carries nothing the version-1 document does not (its `changes` are the document's
fields, secrets redacted; actor and time are `created_by` and `created_at`), so
`flush_pending` / `repair_journal` rebuild it from the stored document. The marker keeps the
event's id, so the rebuilt event is the one the bulk path journals, and
`projections.oldest_pending_event` still sees it.

The package, by concern: `diff` (field-level changes of a write), `events` (building domain
events), `encoding` (documents and entries as stored, BSON-ready), `typed` (change values with
their BSON types), `outbox` (the protocol above: flush, repair, size check). One builder per
job: `new_event` (one write's event, a model) and `creation_event` (a creation's event as
stored, for the bulk path and the repair); one value encoder, `to_bson`, which
`encode_document` and `NewDocuments` (the bulk path's) go through; one change typer,
`typed.py` (`typed_changes`, and `typed_leaf` for a creation's changes in one pass, which
`NewDocuments.encode` gives the bulk path's `creation_event(typed=True)` with the stored
document, in one walk).

Import rule: code outside the package imports only the names below (`__all__`), from
`service.core.journal` (`from service.core import journal` or `from service.core.journal import X`),
never from a submodule. Tests that patch a name patch it where it is looked up (the submodule).
"""

from service.core.journal.diff import REDACTED, diff, journal_dump
from service.core.journal.encoding import (
    CommonValues,
    NewDocuments,
    as_uuid,
    encode_document,
    encode_event,
    to_bson,
)
from service.core.journal.events import (
    creation_event,
    new_event,
    pooled_uuid7,
)
from service.core.journal.outbox import (
    JOURNALED_DOCUMENT_MAX_BYTES,
    as_outbox,
    creation_marker,
    ensure_fits,
    ensure_outbox_indexes,
    flush_many,
    flush_pending,
    is_creation_marker,
    repair_journal,
)
from service.core.journal.typed import retype_journal, typed_changes, uuid_binary

__all__ = [
    "JOURNALED_DOCUMENT_MAX_BYTES",
    "REDACTED",
    "CommonValues",
    "NewDocuments",
    "as_outbox",
    "as_uuid",
    "creation_event",
    "creation_marker",
    "diff",
    "encode_document",
    "encode_event",
    "ensure_fits",
    "ensure_outbox_indexes",
    "flush_many",
    "flush_pending",
    "is_creation_marker",
    "journal_dump",
    "new_event",
    "pooled_uuid7",
    "repair_journal",
    "retype_journal",
    "to_bson",
    "typed_changes",
    "uuid_binary",
]
