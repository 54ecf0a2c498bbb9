"""The tenant-scoped repository every service uses: scoping, soft delete, versioned writes, journal.

Tenancy and soft delete are applied in exactly one helper, `Repository.scope`; nothing else
builds the tenant filter. Every write bumps `version` under an optimistic-concurrency guard and
journals one domain event (the crash-safe protocol: service/core/journal/__init__.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any, Generic, TypeVar
from uuid import UUID

from bson import Binary
from pymongo.errors import BulkWriteError

from documents import migrations
from documents.base import RootDocument, utcnow
from documents.journal import DomainEvent
from service.core import journal
from service.core.context import RequestContext, yield_now
from service.core.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from service.core.journal import to_bson
from service.core.observability import request_id_var
from service.core.pagination import NEWEST_FIRST, PageResult, Sort, StoredView, paginate, stream

D = TypeVar("D", bound=RootDocument)
T = TypeVar("T")

# Every value `is_deleted` takes: "deleted or not" as an `$in` keeps the field an equality
# prefix of the `(tenant_id, is_deleted, <sort>, _id)` indexes, so a list with
# `include_deleted=true` is still served in index order (two merged ranges), where dropping
# the condition would leave no index whose prefix fits, and an in-memory sort.
ANY_DELETION_STATE = {"$in": [False, True]}
ANY_ARCHIVED_STATE = {"$in": [False, True, None]}


def uuid_filter(value: UUID) -> Binary:
    """A UUID as stored (`Binary` subtype 4), for raw filters."""
    return journal.uuid_binary(value.bytes)  # `Binary.from_uuid(value)`, without its copy


def subtype_changes(
    doc: RootDocument, changes: dict[str, Any], *, foreign: Iterable[str]
) -> dict[str, Any]:
    """A patch of a polymorphic root, checked against the stored document's `type`.

    `type` may be repeated but not changed, and fields of other subtypes (`foreign`) are
    refused: 422 naming the first offending field. Returns the changes without `type`.
    """
    current: StrEnum = getattr(doc, "type")  # noqa: B009 - polymorphic roots all have one
    noun = doc.aggregate_type
    new_type = changes.pop("type", None)
    if new_type is not None and new_type != current:
        raise Unprocessable(f"A {noun}'s type cannot change.", loc=["body", "type"])
    offending = sorted(changes.keys() & set(foreign))
    if offending:
        raise Unprocessable(
            f"{current.value} {noun}s have no field {offending[0]}.", loc=["body", offending[0]]
        )
    return changes


def equal_to(params: Any, fields: Mapping[str, str]) -> dict[str, Any]:
    """Equality conditions from a list's filter parameters (`{parameter: stored field}`).

    Parameters left unset (None) add nothing; values are encoded for a raw filter.
    """
    query: dict[str, Any] = {}
    for name, stored in fields.items():
        value = getattr(params, name)
        if value is not None:
            query[stored] = to_bson(value)
    return query


def time_range(since: datetime | None, until: datetime | None) -> dict[str, Any] | None:
    """The condition `since <= value < until` (either end optional; None when neither)."""
    window: dict[str, Any] = {}
    if since is not None:
        window["$gte"] = since
    if until is not None:
        window["$lt"] = until
    return window or None


def change_event_type(changes: Mapping[str, Any], current_status: Any) -> str:
    """`status_changed` when a patch moves `status`, else `updated` (the journal's event type)."""
    status = changes.get("status")
    return "status_changed" if status is not None and status != current_status else "updated"


def tenant_filter(ctx: RequestContext, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The caller's tenant as a raw filter, merged with an already-encoded `extra`.

    The one place the tenant condition is built: `Repository.scope` adds soft delete to it for
    aggregate roots; collections without soft delete (links, read models, idempotency keys,
    the journal) use it directly.
    """
    query: dict[str, Any] = {"tenant_id": uuid_filter(ctx.tenant_id)}
    if extra:
        query.update(extra)
    return query


class Repository(Generic[D]):
    """Data access for one aggregate root, scoped to the caller's tenant."""

    def __init__(self, model: type[D], ctx: RequestContext) -> None:
        self.model = model
        self.ctx = ctx

    # -- reading -------------------------------------------------------------------------

    def scope(
        self,
        extra: Mapping[str, Any] | None = None,
        *,
        include_deleted: bool = False,
        include_archived: bool = True,
    ) -> dict[str, Any]:
        """The tenant + soft-delete filter, merged with an already-encoded `extra` filter."""
        query = tenant_filter(self.ctx)
        query["is_deleted"] = dict(ANY_DELETION_STATE) if include_deleted else False
        if "is_archived" in self.model.model_fields:
            # An indexed equality (leads, issue 23); `null` also selects a document stored
            # before the field existed (until `migrate` has run).
            query["is_archived"] = False if not include_archived else dict(ANY_ARCHIVED_STATE)
        elif not include_archived:
            query["archived_at"] = None
        if extra:
            query.update(extra)
        return query

    async def find_one(
        self, extra: Mapping[str, Any] | None = None, *, include_deleted: bool = False
    ) -> D | None:
        """The first document matching `extra` in the tenant, or None."""
        query = self.scope(extra, include_deleted=include_deleted)
        return await self.model.find_one(query, with_children=True)

    async def get(self, id: UUID, *, include_deleted: bool = False) -> D:
        """The document with this id in the tenant; 404 if missing, deleted or another tenant's."""
        doc = await self.find_one({"_id": uuid_filter(id)}, include_deleted=include_deleted)
        if doc is None:
            raise NotFound(f"{self.model.aggregate_type or 'resource'} {id} not found")
        return doc

    async def get_many(self, ids: Sequence[UUID], *, include_deleted: bool = False) -> list[D]:
        """Live (or with `include_deleted`, all) documents of the tenant among `ids`, one query."""
        query = self.scope(
            {"_id": {"$in": [uuid_filter(i) for i in ids]}}, include_deleted=include_deleted
        )
        return await self.model.find(query, with_children=True).to_list()

    async def read(self, id: UUID, view: StoredView[T], *, include_deleted: bool = False) -> T:
        """The response object of one document (404 as `get`), validated once from storage."""
        query = self.scope({"_id": uuid_filter(id)}, include_deleted=include_deleted)
        raw = await self.model.get_pymongo_collection().find_one(query, view.projection)
        if raw is None:
            raise NotFound(f"{self.model.aggregate_type or 'resource'} {id} not found")
        return view.stored(raw)

    async def count(self, extra: Mapping[str, Any] | None = None) -> int:
        """How many live documents of the tenant match `extra`."""
        return int(await self.model.get_pymongo_collection().count_documents(self.scope(extra)))

    async def page(
        self,
        extra: Mapping[str, Any] | None = None,
        *,
        limit: int,
        cursor: str | None = None,
        include_deleted: bool = False,
        include_archived: bool = False,
        sort: Sort = NEWEST_FIRST,
        view: StoredView[T] | None = None,
        count: bool = False,
    ) -> PageResult[Any]:
        """One keyset page of the tenant's documents matching `extra`.

        Items are `view`'s response objects (the read path: one validation per document,
        see service/core/pagination.py), or Beanie documents without a view. `count=True` adds
        `total` over the same filter.
        """
        query = self.scope(
            extra, include_deleted=include_deleted, include_archived=include_archived
        )
        return await paginate(
            self.model, query, limit=limit, cursor=cursor, sort=sort, view=view, count=count
        )

    async def page_for(
        self,
        extra: Mapping[str, Any] | None,
        params: Any,
        *,
        sort: Sort = NEWEST_FIRST,
        view: StoredView[T] | None = None,
    ) -> PageResult[Any]:
        """`page` with a list endpoint's parameters: `limit`, `cursor`, and where it has
        them, `include_deleted`, `include_archived` and `count`."""
        return await self.page(
            extra,
            limit=params.limit,
            cursor=params.cursor,
            include_deleted=getattr(params, "include_deleted", False),
            include_archived=getattr(params, "include_archived", False),
            sort=sort,
            view=view,
            count=getattr(params, "count", False),
        )

    def stream(
        self,
        extra: Mapping[str, Any] | None = None,
        *,
        include_deleted: bool = False,
        include_archived: bool = False,
        sort: Sort | None = NEWEST_FIRST,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every matching stored document of the tenant, in batches (constant memory)."""
        query = self.scope(
            extra, include_deleted=include_deleted, include_archived=include_archived
        )
        return stream(self.model, query, sort=sort)

    async def aggregate(
        self,
        pipeline: Sequence[Mapping[str, Any]],
        *,
        match: Mapping[str, Any] | None = None,
        include_archived: bool = True,
    ) -> list[dict[str, Any]]:
        """Run an aggregation pipeline over the tenant's live documents matching `match`.

        The scope is prepended as the first `$match`, so a pipeline never sees another tenant's
        or a soft-deleted document (and the stage can use the tenant-prefixed indexes).
        """
        stages = [{"$match": self.scope(match, include_archived=include_archived)}, *pipeline]
        cursor = await self.model.get_pymongo_collection().aggregate(stages)
        return [dict(row) async for row in cursor]

    # -- writing -------------------------------------------------------------------------

    def _stamp_fields(self, doc: D, now: datetime) -> None:
        doc.tenant_id = self.ctx.tenant_id
        doc.created_at = doc.updated_at = now
        doc.created_by = doc.updated_by = self.ctx.actor_id
        doc.version = 1
        doc.is_deleted, doc.deleted_at, doc.pending_event = False, None, None

    def _stamp_new(self, doc: D) -> DomainEvent:
        self._stamp_fields(doc, utcnow())
        changes = journal.diff({}, journal.journal_dump(doc), doc.secret_fields)
        event = journal.new_event(doc, ctx=self.ctx, event_type="created", changes=changes)
        doc.pending_event = journal.as_outbox(event)  # type: ignore[assignment]
        journal.ensure_fits(journal.encode_document(doc))
        return event

    async def create(self, doc: D) -> D:
        """Insert a new aggregate (version 1) in the caller's tenant and journal its creation."""
        event = self._stamp_new(doc)
        await doc.insert()
        await journal.flush_pending(self.model, event)
        doc.pending_event = None
        return doc

    async def append(self, doc: D) -> D:
        """Insert an immutable fact (e.g. a touchpoint event) in the tenant, without journaling.

        The document is its own record of what happened: it stays at version 1 and is never
        updated, so a journal entry would only duplicate it.
        """
        doc.tenant_id = self.ctx.tenant_id
        doc.created_at = doc.updated_at = utcnow()
        doc.created_by = doc.updated_by = self.ctx.actor_id
        doc.version = 1
        doc.is_deleted, doc.deleted_at, doc.pending_event = False, None, None
        await doc.insert()
        return doc

    async def create_many_values(
        self,
        rows: Sequence[tuple[journal.NewDocuments, dict[str, Any]]],
        shared: Mapping[str, Any] | None = None,
        derive: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> dict[int, Exception]:
        """Insert many aggregates, given as validated field values (python mode, by name).

        Each row names its document class (`NewDocuments`, subclasses of the repository's
        model) and its values. The bulk path: no Beanie document is built, one unordered
        `insert_many` (failures, usually unique-index duplicates, are keyed by index into
        `rows`; good rows are kept), each row's outbox a creation marker (service/journal),
        one journal insert and one marker clear. What is stored and journaled is exactly
        what `create` stores for the same values (tests/test_repository.py compares it with
        tests/support/oracles.py). The caller has validated the values; the stamp (tenant,
        times, actor, version 1) wins over them. `shared`: values every row has (a bulk
        import's creator), given once and encoded once with the stamp, which wins over them.
        `derive`: completes a row's values just before it is encoded (fields derived from
        the others, a lead's search fields): made then, they are still in the CPU's caches
        when the encoder reads them back (made a chunk earlier, about 2 us a lead more).
        """
        now = utcnow()
        actor = self.ctx.actor_id
        stamp = {
            **(shared or {}),
            "tenant_id": self.ctx.tenant_id,
            "created_at": now,
            "updated_at": now,
            "created_by": actor,
            "updated_by": actor,
            "version": 1,
            "is_deleted": False,
            "deleted_at": None,
            "pending_event": None,
        }
        secrets = self.model.secret_fields
        aggregate_type = self.model.aggregate_type
        encoded: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
        commons: dict[int, journal.CommonValues] = {}  # the stamp, encoded once per class
        for position, (new, fields) in enumerate(rows):
            await yield_now(position)
            common = commons.get(id(new))
            if common is None:
                common = commons[id(new)] = new.common(stamp, aggregate_type)
            if derive is not None:
                fields = derive(fields)
            encoded.append(new.encode(fields, aggregate_type, secrets, common))
        return await self._insert_created(encoded)

    async def _insert_created(
        self, rows: Sequence[tuple[dict[str, Any], list[dict[str, Any]]]]
    ) -> dict[int, Exception]:
        # rows: (BSON-ready stored document, its creation changes). One insert with creation
        # markers, one journal insert, one marker clear (journal.flush_many).
        if not rows:
            return {}
        actor_type = self.ctx.actor_type
        aggregate_type = self.model.aggregate_type
        request_id = request_id_var.get()
        raw: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        event_ids = journal.pooled_uuid7.binaries(len(rows))
        for position, (stored, changes) in enumerate(rows):
            await yield_now(position)
            event_id = event_ids[position]
            stored["pending_event"] = journal.creation_marker(
                event_id=event_id, aggregate_id=stored["_id"], actor_type=actor_type
            )
            raw.append(stored)
            events.append(
                journal.creation_event(
                    aggregate_type=aggregate_type,
                    stored=stored,
                    event_id=event_id,
                    actor_type=actor_type,
                    changes=changes,
                    request_id=request_id,
                    typed=True,
                )
            )
        failed: dict[int, Exception] = {}
        try:
            await self.model.get_pymongo_collection().insert_many(raw, ordered=False)
        except BulkWriteError as exc:
            for err in exc.details.get("writeErrors", []):
                failed[err["index"]] = exc
        await journal.flush_many(self.model, [e for i, e in enumerate(events) if i not in failed])
        return failed

    async def update(
        self,
        doc: D,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        event_type: str = "updated",
    ) -> D:
        """Apply top-level field `changes` to `doc`, bump its version and journal the change.

        Values are re-validated by the document model. No change → no write, no new version.
        A stale `expected_version` (If-Match) → 412; losing a race to a concurrent writer → 409.
        """
        if expected_version is not None and expected_version != doc.version:
            raise PreconditionFailed(
                f"The resource is at version {doc.version}, not {expected_version}."
            )
        updated = type(doc).model_validate({**doc.model_dump(), **changes})
        field_changes = journal.diff(
            journal.journal_dump(doc), journal.journal_dump(updated), doc.secret_fields
        )
        if not field_changes:
            return doc
        if doc.pending_event is not None:  # an earlier write crashed before journaling
            await journal.flush_pending(self.model, doc.pending_event)
        updated.version = doc.version + 1
        updated.updated_at = utcnow()
        updated.updated_by = self.ctx.actor_id
        event = journal.new_event(
            updated, ctx=self.ctx, event_type=event_type, changes=field_changes
        )
        # Derived fields are not journaled but follow what they derive from: stored each time.
        touched = {c.field.split(".", 1)[0] for c in field_changes} | updated.derived_fields
        data = to_bson(updated)
        fields = {k: data[k] for k in touched | {"version", "updated_at", "updated_by"}}
        fields["pending_event"] = to_bson(journal.as_outbox(event))
        journal.ensure_fits({**data, **fields})  # a clear 422 before the server's 16 MiB limit
        # A document read in an older shape is stored whole in the current one (a partial
        # `$set` would leave a mix of shapes, see documents/migrations.py).
        update = migrations.rewrite_update(doc, {**data, **fields}) or {"$set": fields}
        result = await self.model.get_pymongo_collection().update_one(
            {
                "_id": uuid_filter(doc.id),
                "tenant_id": uuid_filter(self.ctx.tenant_id),
                "version": doc.version,
            },
            update,
        )
        if result.matched_count == 0:
            if expected_version is not None:
                # The caller's If-Match held when read but another writer got there first: the
                # precondition failed at write time, which the contract answers with 412.
                raise PreconditionFailed(
                    f"The resource changed after version {expected_version}; reload it."
                )
            raise Conflict("The resource was changed concurrently; reload it and retry.")
        await journal.flush_pending(self.model, event)
        return updated

    async def soft_delete(self, doc: D, *, expected_version: int | None = None) -> D:
        """Mark as deleted (nothing is removed from the database)."""
        return await self.update(
            doc,
            {"is_deleted": True, "deleted_at": utcnow()},
            expected_version=expected_version,
            event_type="deleted",
        )

    async def restore(self, doc: D) -> D:
        """Undo a soft delete; restoring a live document changes nothing."""
        if not doc.is_deleted:
            return doc
        return await self.update(
            doc, {"is_deleted": False, "deleted_at": None}, event_type="restored"
        )

    async def archive(self, doc: D) -> D:
        """Set `archived_at` (a no-op when already archived)."""
        if doc.archived_at is not None:
            return doc
        return await self.update(doc, {"archived_at": utcnow()}, event_type="archived")

    async def unarchive(self, doc: D) -> D:
        """Clear `archived_at` (a no-op when not archived)."""
        if doc.archived_at is None:
            return doc
        return await self.update(doc, {"archived_at": None}, event_type="unarchived")
