"""Rewrite stored documents in their current shape: the `migrate` command's engine.

Reads already upcast old documents (documents/migrations.py); migrating stores the result, so
that queries, indexes and pipelines (which see stored shapes) and the Mongo shell see the
current shape too. For each versioned collection it walks the documents below the current
`schema_version` in `_id` order, `batch_size` at a time, and replaces each with its upcast,
re-validated form in one unordered `bulk_write` per batch.

- **Idempotent and resumable**: only documents below the current version are selected, and a
  rewritten one no longer is; a run that stops (crash, Ctrl-C) is finished by running it
  again, and a run with nothing to do changes nothing.
- **Safe next to live writers**: each replacement is conditioned on the `version` and
  `schema_version` it read. A document changed meanwhile is left alone (`skipped`); the
  repository already stored it whole in the current shape, or the next run takes it.
- **Journals nothing, bumps no `version`**: a shape change is not a business change. The
  journal records what users and services changed, one event per `version`; a rewrite adds
  no fact, so it gets neither an event nor a version (a version without its event would break
  the journal's invariant, and clients' `ETag`s would go stale for nothing). History and
  `versions/{n}` stay readable: they rebuild from the journal through the same upcasters.
- A document that does not validate even after upcasting is reported (`failed`, with its id
  and the first error) and left as it is; the run goes on.
- **Dry run** (`dry_run=True`): the same walk, upcasting and validation, without writing: the
  report says what is pending and which documents would fail; `migrated` stays 0.
- **Backfills**: data a domain derives from other documents, which no upcaster can make (a
  lead's dedupe claims, its state copied onto campaign links), is filled in by steps the
  domain modules register (`register_backfill`, as they register their policy); `migrate` runs
  those whose collection it migrates, after the rewrites. A step is idempotent and reports
  either a `CollectionMigration` (listed with the collections) or its own report
  (`MigrationReport.backfills`, by the step's name).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from beanie import Document
from beanie.odm.utils.parsing import parse_obj
from bson import Binary
from pydantic import ValidationError
from pymongo import ReplaceOne

from documents import ALL_DOCUMENTS
from documents.migrations import Versioned, current_schema_version, upcast
from service.core.journal import encode_document

Progress = Callable[[str, int, int], None]
"""`progress(collection, done, total)`: called as each batch is written (and once at 0)."""

DEFAULT_BATCH_SIZE = 500


@dataclass
class CollectionMigration:
    """What `migrate` did to one collection."""

    collection: str
    schema_version: int
    pending: int = 0  # documents found below the current version by the run's walk
    migrated: int = 0
    skipped: int = 0  # changed by a live writer during the run
    failed: list[tuple[str, str]] = field(default_factory=list)  # (id, first error)


@dataclass
class MigrationReport:
    """What `migrate` did, per collection."""

    collections: list[CollectionMigration] = field(default_factory=list)
    backfills: dict[str, Any] = field(default_factory=dict)  # other steps' reports, by name

    @property
    def migrated(self) -> int:
        """Documents rewritten in their current shape."""
        return sum(c.migrated for c in self.collections)

    @property
    def failed(self) -> int:
        """Documents that could not be upcast into a valid current document."""
        return sum(len(c.failed) for c in self.collections)


@dataclass(frozen=True, kw_only=True)
class Backfill:
    """A domain's data step of `migrate`, run when `model`'s collection is migrated.

    `run(batch_size=, progress=, dry_run=)` returns a `CollectionMigration`, its own report,
    or None (nothing to report, e.g. in a dry run).
    """

    name: str
    model: type[Document]
    run: Callable[..., Awaitable[Any]]


_BACKFILLS: dict[str, Backfill] = {}


def register_backfill(step: Backfill) -> Backfill:
    """Make `migrate` run `step` (an error if another step has its name)."""
    existing = _BACKFILLS.get(step.name)
    if existing is not None and existing is not step:
        raise RuntimeError(f"a backfill named {step.name!r} exists already")
    _BACKFILLS[step.name] = step
    return step


def versioned_models() -> list[type[Document]]:
    """One model per versioned collection (the collection's root class), in registry order."""
    seen: set[str] = set()
    models: list[type[Document]] = []
    for model in ALL_DOCUMENTS:
        if not (issubclass(model, Versioned) and issubclass(model, Document)):
            continue
        name = str(model.Settings.name)  # known before binding
        if name not in seen:
            seen.add(name)
            models.append(model)
    return models


def as_bson_id(value: Any) -> Any:
    """An `_id` as stored (UUIDs as `Binary` subtype 4), to resume a walk after it."""
    return Binary.from_uuid(value) if isinstance(value, UUID) else value


def rewritten(model: type[Document], raw: dict[str, Any]) -> dict[str, Any]:
    """A stored document in the current shape, as the current model stores it.

    The outbox (`pending_event`) is carried over untouched: it belongs to the journal's crash
    repair, not to the document's shape.
    """
    doc = parse_obj(model, upcast(model, raw))  # the subclass by `_class_id`, upcast, validated
    assert isinstance(doc, Document)
    new = encode_document(doc)
    new.pop("pending_event", None)
    for kept in ("pending_event", "revision_id"):
        if raw.get(kept) is not None:
            new[kept] = raw[kept]
    return new


async def _migrate_collection(
    model: type[Document], batch_size: int, progress: Progress | None, dry_run: bool
) -> CollectionMigration:
    name = model.get_collection_name()
    current = current_schema_version(model)
    report = CollectionMigration(collection=name, schema_version=current)
    if current == 1:  # no older shape exists
        return report
    collection = model.get_pymongo_collection()
    # `$not $gte` rather than `$lt`: it also selects documents stored before their class
    # was versioned, which carry no `schema_version` at all (campaign links, issue 25).
    pending: dict[str, Any] = {"schema_version": {"$not": {"$gte": current}}}
    # No count first: nothing indexes `schema_version`, so a count would read the whole
    # collection once more before the walk reads it (issue 23). Progress is shown against
    # the collection's size from its metadata, an upper bound.
    total = await collection.estimated_document_count()
    if progress:
        progress(name, 0, total)
    done, last_id = 0, None
    while True:
        # `_id` order from where the last batch ended: served by the `_id` index.
        query = pending if last_id is None else {**pending, "_id": {"$gt": last_id}}
        batch = await collection.find(query).sort("_id", 1).limit(batch_size).to_list()
        if not batch:
            break
        last_id = as_bson_id(batch[-1]["_id"])
        writes = []
        for raw in batch:
            try:
                new = rewritten(model, raw)
            except (ValidationError, ValueError, KeyError, TypeError) as exc:
                detail = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
                report.failed.append((str(raw.get("_id")), detail))
                continue
            guard = {
                "_id": as_bson_id(raw["_id"]),
                "schema_version": raw.get("schema_version"),  # None: stored unversioned
                "version": raw.get("version"),
            }
            if "tenant_id" in raw:  # targeted on a sharded collection
                guard["tenant_id"] = raw["tenant_id"]
            if "version" not in raw:  # no version to guard on (links): the whole document is
                guard = {**raw, **guard}
            writes.append(ReplaceOne(guard, new))
        if writes and not dry_run:
            result = await collection.bulk_write(writes, ordered=False)
            report.migrated += result.matched_count
            report.skipped += len(writes) - result.matched_count
        done += len(batch)
        report.pending = done
        if progress:
            progress(name, min(done, total), max(total, done))
    if progress:
        progress(name, done, done)  # the walk is over: the pending documents were all
    return report


async def migrate(
    *,
    models: Sequence[type[Document]] | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress | None = None,
    dry_run: bool = False,
) -> MigrationReport:
    """Rewrite every stored document below its model's current `schema_version` (Beanie bound).

    `models` defaults to every versioned collection; pass the collection's root class for a
    polymorphic collection. Nothing is journaled and no `version` changes (module docstring).
    With `dry_run` nothing is written: pending documents are counted and validated only.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = MigrationReport()
    chosen = models if models is not None else versioned_models()
    for model in chosen:
        report.collections.append(await _migrate_collection(model, batch_size, progress, dry_run))
    names = None if models is None else {m.get_collection_name() for m in models}
    for step in _BACKFILLS.values():
        if names is not None and step.model.get_collection_name() not in names:
            continue
        result = await step.run(batch_size=batch_size, progress=progress, dry_run=dry_run)
        if isinstance(result, CollectionMigration):
            report.collections.append(result)
        elif result is not None:
            report.backfills[step.name] = result
    return report
