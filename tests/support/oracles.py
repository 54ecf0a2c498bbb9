"""Oracles: slow, obviously right twins of the product's fast paths, which tests compare them to.

They build from Beanie documents what the bulk path builds from field values (the product's
own encoder and generic `diff`), and seed test and bench data through the product's bulk path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar
from uuid import UUID

from bson import Binary

from documents.base import RootDocument, utcnow
from service.core import journal
from service.core.observability import request_id_var
from service.core.repository import Repository

D = TypeVar("D", bound=RootDocument)


def creation_changes(doc: RootDocument) -> list[dict[str, Any]]:
    """A creation's changes as `Repository.create` journals them: the generic diff, as dicts."""
    return [c.model_dump() for c in journal.diff({}, journal.journal_dump(doc), doc.secret_fields)]


def creation_event_document(
    doc: RootDocument, *, event_id: UUID, actor_type: str, changes: list[dict[str, Any]]
) -> dict[str, Any]:
    """The version-1 `created` event of a stamped `doc` as the bulk path stores it."""
    return journal.creation_event(
        aggregate_type=doc.aggregate_type,
        stored=journal.encode_document(doc),
        event_id=Binary.from_uuid(event_id),
        actor_type=actor_type,
        changes=changes,
        request_id=request_id_var.get(),
    )


async def create_many(
    repo: Repository[D], docs: Sequence[D]
) -> tuple[list[D], dict[int, Exception]]:
    """Bulk-create Beanie documents through the product's bulk path; (created, failures).

    Each document is stamped as `Repository.create` stamps it, encoded by `encode_document`
    and its changes taken from the generic diff, then written by `create_many_values`'s own
    insert (markers, one journal insert, one marker clear). Failures are keyed by index.
    """
    now = utcnow()
    rows = []
    for doc in docs:
        repo._stamp_fields(doc, now)
        rows.append((journal.encode_document(doc), creation_changes(doc)))
    failed = await repo._insert_created(rows)
    return [doc for i, doc in enumerate(docs) if i not in failed], failed
