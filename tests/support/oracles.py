"""Oracles: slow, obviously right twins of the product's fast paths, which tests compare them to.

They build from Beanie documents what the bulk path builds from field values (the product's
own encoder and generic `diff`), and seed test and bench data through the product's bulk path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

from bson import Binary
from pydantic_core import to_jsonable_python

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


# The walks `NewDocuments.encode` (the bulk path's one walk) is compared with: every field's
# value, its stored form by the one value encoder, its creation changes by the generic diff,
# typed by the journal's typer.


def new_full(new: journal.NewDocuments, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every field's python-mode value of a new document: `values`, else the field's default."""
    if not new.names.issuperset(values):
        raise TypeError(f"{new.model.__name__} has no fields {sorted(set(values) - new.names)}")
    out = {}
    for name, default, factory in new.defaults:
        if name in values:
            out[name] = values[name]
        else:
            out[name] = factory() if factory is not None else default
    return out


def new_stored(new: journal.NewDocuments, full: Mapping[str, Any]) -> dict[str, Any]:
    """The stored document of `full` values: each by `to_bson`, by alias, in field order."""
    out: dict[str, Any] = dict((new.class_id,)) if new.class_id else {}
    for name, alias, _ in new.fields:
        out[alias] = journal.to_bson(full[name])
    return out


def new_changes(
    new: journal.NewDocuments, full: Mapping[str, Any], secret_fields: Iterable[str] = ()
) -> list[dict[str, Any]]:
    """A creation's changes of `full` values: the generic diff of their JSON form (the
    class's derived fields left out, as `journal_dump` leaves them), as dicts."""
    derived = new.model.derived_fields
    after = to_jsonable_python({k: v for k, v in full.items() if k not in derived})
    return [c.model_dump() for c in journal.diff({}, after, secret_fields)]


def new_created_changes(
    new: journal.NewDocuments,
    full: Mapping[str, Any],
    aggregate_type: str,
    secret_fields: Iterable[str] = (),
) -> list[dict[str, Any]]:
    """The changes a creation event stores: `new_changes` typed by `typed_changes`."""
    return journal.typed_changes(aggregate_type, new_changes(new, full, secret_fields))
