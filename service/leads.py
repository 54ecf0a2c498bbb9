"""Lead commands: normalisation, per-tenant dedupe, create, read, patch and the bulk import.

Dedupe keys are the normalised email (trimmed, lower-cased), phone (E.164, read in the
tenant's region) and MLS id (upper-cased). A lookup first finds the clashing lead to answer
409 with its id; the partial unique indexes on `leads` decide races the lookup cannot see.
Each `$or` branch of the lookup repeats its index's whole partial filter (`is_deleted: false`
and `$type: string`): MongoDB uses a partial index for a branch only when the branch alone
implies the filter, so a condition outside the `$or` would leave every branch unindexed.

Lists, search, geography and export are in service/lead_queries.py; merging in
service/lead_merge.py.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import TypeAdapter, ValidationError
from pymongo.errors import DuplicateKeyError

from documents.base import E164, normalize_phone, utcnow
from documents.consent import Consent
from documents.lead import (
    LEAD_CLASSES,
    Address,
    GeoPoint,
    LeadBase,
    LeadType,
    ListingAgent,
    lead_search_text,
    lead_search_tokens,
)
from documents.user import User
from schemas.common import money_to_cents
from schemas.leads import (
    GENERIC_ONLY,
    LEAD_VIEW,
    MLS_ONLY,
    AnyLeadRead,
    GenericLeadCreate,
    LeadCreate,
    LeadUpdate,
    MLSLeadCreate,
)
from service import campaigns, journal
from service.consent import stored_consent
from service.context import RequestContext, yield_now
from service.errors import Conflict, Unprocessable, validation_errors
from service.journal import NewDocuments
from service.policy import Action, ResourcePolicy, register_policy
from service.repository import Repository, change_event_type, subtype_changes, uuid_filter

DEDUPE_FIELDS = ("email", "phone", "mls_id")
# Rows per dedupe query and per insert in the bulk import: calls grow with N / BULK_CHUNK.
BULK_CHUNK = 2000
_lead_adapter: TypeAdapter[GenericLeadCreate | MLSLeadCreate] = TypeAdapter(LeadCreate)

# -- normalisation and dedupe -----------------------------------------------------------------


def _phone(raw: str, region: str, loc: list[str | int]) -> str:
    try:
        return normalize_phone(raw, region)
    except ValueError as exc:
        raise Unprocessable(str(exc), loc=loc) from None


def _normalise(changes: dict[str, Any], region: str) -> dict[str, Any]:
    """API values → stored values: phones in E.164, price in cents."""
    if changes.get("phone") is not None:
        changes["phone"] = _phone(changes["phone"], region, ["body", "phone"])
    agent = changes.get("listing_agent")
    if agent is not None:
        agent = agent.model_dump() if hasattr(agent, "model_dump") else dict(agent)
        if agent.get("phone") is not None:
            agent["phone"] = _phone(agent["phone"], region, ["body", "listing_agent", "phone"])
        changes["listing_agent"] = agent
    if "list_price" in changes:
        price = changes.pop("list_price")
        changes["list_price_cents"] = None if price is None else money_to_cents(price)
    return changes


def _outreach_fields(ctx: RequestContext, data: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """A new lead's consent as stored (stamped now) and its assignee (the creating user)."""
    fields["consent"] = stored_consent(data.consent, utcnow())
    fields["assignee_id"] = ctx.user_id
    return fields


def build_lead(ctx: RequestContext, data: GenericLeadCreate | MLSLeadCreate) -> LeadBase:
    """A new, normalised lead document of the caller's tenant (not stored yet)."""
    fields = _normalise(data.model_dump(exclude={"type"}), ctx.phone_region)
    fields = _outreach_fields(ctx, data, fields)
    return LEAD_CLASSES[data.type](tenant_id=ctx.tenant_id, user_id=ctx.user_id, **fields)


async def check_assignee(ctx: RequestContext, user_id: UUID, loc: list[str | int]) -> None:
    """422 unless `user_id` is an active, live user of the caller's tenant."""
    user = await Repository(User, ctx).find_one({"_id": uuid_filter(user_id)})
    if user is None or not user.is_active:
        raise Unprocessable("The assignee is not an active user of this tenant.", loc=loc)


def dedupe_keys(doc: LeadBase) -> list[tuple[str, str]]:
    """The (field, value) pairs that must be unique among the tenant's live leads."""
    return [(f, v) for f in DEDUPE_FIELDS if isinstance(v := getattr(doc, f, None), str)]


def clash_filter(keys: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Live leads holding any of these keys: one `$or` branch per field.

    Each branch carries its unique index's whole partial filter (`is_deleted: false`, the
    field a string), so that each branch alone implies it and MongoDB can use the index.
    """
    by_field: dict[str, list[str]] = {}
    for name, value in keys:
        by_field.setdefault(name, []).append(value)
    return {
        "$or": [
            {"is_deleted": False, name: {"$in": values, "$type": "string"}}
            for name, values in by_field.items()
        ]
    }


async def raise_if_duplicate(
    ctx: RequestContext, doc: LeadBase, *, besides: Iterable[UUID] = ()
) -> None:
    """409 with `existing_id` and `field` when another live lead holds one of `doc`'s keys.

    `besides`: ids of other leads that do not count (a merge's sources).
    """
    clash = await duplicate_of(ctx, doc, besides=besides)
    if clash is not None:
        raise clash


async def duplicate_of(
    ctx: RequestContext, doc: LeadBase, *, besides: Iterable[UUID] = ()
) -> Conflict | None:
    """The 409 to answer when another live lead holds one of `doc`'s keys, else None."""
    keys = dedupe_keys(doc)
    if not keys:
        return None
    others = [uuid_filter(doc.id), *(uuid_filter(i) for i in besides)]
    query = {**clash_filter(keys), "_id": {"$nin": others}}
    # The live condition is in each branch (see `clash_filter`), not outside the `$or`.
    existing = await Repository(LeadBase, ctx).find_one(query, include_deleted=True)
    if existing is None:
        return None
    field = next(f for f, v in keys if getattr(existing, f, None) == v)
    return Conflict.duplicate(resource="lead", field=field, existing_id=str(existing.id))


async def _restore_clash(ctx: RequestContext, doc: LeadBase) -> Conflict | None:
    # An erased lead is a tombstone (service/privacy.py): nothing is left to bring back.
    if doc.erased_at is not None:
        return Conflict("This lead was erased: its data is gone and it cannot be restored.")
    return await duplicate_of(ctx, doc)


async def _uncount_in_campaigns(ctx: RequestContext, doc: LeadBase) -> None:
    await campaigns.lead_liveness_changed(ctx, doc.id, live=False)


async def _count_in_campaigns(ctx: RequestContext, doc: LeadBase) -> None:
    await campaigns.lead_liveness_changed(ctx, doc.id, live=True)


async def _archive_in_campaigns(ctx: RequestContext, doc: LeadBase) -> None:
    await campaigns.sync_link_states(ctx, [doc.id])


# A lead's soft delete or restore changes the live-lead count of its campaigns; restoring one
# whose email, phone or MLS id a live lead took meanwhile is the create route's 409.
POLICY: ResourcePolicy[LeadBase] = register_policy(
    ResourcePolicy(
        model=LeadBase,
        after_delete=_uncount_in_campaigns,
        after_restore=_count_in_campaigns,
        after_archive=_archive_in_campaigns,
        clash=_restore_clash,
    )
)


# -- commands ---------------------------------------------------------------------------------


async def create_lead(*, ctx: RequestContext, data: GenericLeadCreate | MLSLeadCreate) -> LeadBase:
    """Create a lead; 409 with `existing_id` when its email, phone or MLS id is taken."""
    POLICY.require(ctx, Action.create)
    doc = build_lead(ctx, data)
    await raise_if_duplicate(ctx, doc)
    try:
        return await Repository(LeadBase, ctx).create(doc)
    except DuplicateKeyError:  # a concurrent create won between our lookup and insert
        await raise_if_duplicate(ctx, doc)
        raise Conflict("A lead with the same email, phone or MLS id already exists.") from None


async def get_lead(*, ctx: RequestContext, id: UUID, include_deleted: bool = False) -> AnyLeadRead:
    """One lead of the tenant as the API shows it (404 if missing, another's, or deleted)."""
    return await Repository(LeadBase, ctx).read(id, LEAD_VIEW, include_deleted=include_deleted)


async def update_lead(
    *, ctx: RequestContext, id: UUID, data: LeadUpdate, expected_version: int | None = None
) -> LeadBase:
    """Patch a lead (its type's fields only); 409 with `existing_id` on a dedupe clash."""
    POLICY.require(ctx, Action.update)
    repo = Repository(LeadBase, ctx)
    doc = await repo.get(id)
    foreign = GENERIC_ONLY if doc.type == LeadType.mls else MLS_ONLY
    changes = subtype_changes(doc, data.changes(), foreign=foreign)
    changes = _normalise(changes, ctx.phone_region)
    if changes.get("assignee_id") is not None and changes["assignee_id"] != doc.assignee_id:
        await check_assignee(ctx, changes["assignee_id"], ["body", "assignee_id"])
    if data.address is not None:  # a partial address changes only the parts it names
        changes["address"] = {
            **doc.address.model_dump(),
            **data.address.model_dump(exclude_unset=True),
        }
    if any(
        changes.get(f) is not None and changes[f] != getattr(doc, f, None) for f in DEDUPE_FIELDS
    ):
        await raise_if_duplicate(ctx, type(doc).model_validate({**doc.model_dump(), **changes}))
    try:
        return await repo.update(
            doc,
            changes,
            expected_version=expected_version,
            event_type=change_event_type(changes, doc.status),
        )
    except DuplicateKeyError:
        raise Conflict("A lead with the same email, phone or MLS id already exists.") from None


async def assign_leads(*, ctx: RequestContext, lead_ids: Sequence[UUID], assignee_id: UUID) -> int:
    """Assign live leads of the tenant to an active user; returns how many changed (journaled).

    Ids that are not the tenant's live leads are skipped (not counted); one read for all.
    """
    POLICY.require(ctx, Action.update)
    await check_assignee(ctx, assignee_id, ["body", "assignee_id"])
    repo = Repository(LeadBase, ctx)
    updated = 0
    for doc in await repo.get_many(list(dict.fromkeys(lead_ids))):
        if doc.assignee_id == assignee_id:
            continue
        try:
            await repo.update(doc, {"assignee_id": assignee_id}, event_type="assigned")
        except Conflict:  # changed meanwhile: read it again once
            fresh = await repo.find_one({"_id": uuid_filter(doc.id)})
            if fresh is None or fresh.assignee_id == assignee_id:
                continue
            await repo.update(fresh, {"assignee_id": assignee_id}, event_type="assigned")
        updated += 1
    return updated


# -- bulk import ------------------------------------------------------------------------------


@dataclass
class BulkOutcome:
    """What a bulk import did: rows stored, duplicates skipped and rows that failed."""

    created: int = 0
    duplicates: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)


def _row_errors(exc: Exception, row: Any = None) -> list[dict[str, Any]]:
    if isinstance(exc, ValidationError):
        return validation_errors(list(exc.errors()), body=row, revalidate=_lead_adapter_errors)
    errors: list[dict[str, Any]] = getattr(exc, "extra", {}).get("errors") or [
        {"loc": [], "msg": str(exc), "type": "value_error"}
    ]
    return [{**e, "loc": [p for p in e["loc"] if p != "body"]} for e in errors]


def _lead_adapter_errors(row: Any) -> list[Any]:
    try:
        _lead_adapter.validate_python(row)
    except ValidationError as exc:
        return list(exc.errors())
    return []


@functools.cache
def _new_leads(kind: LeadType) -> NewDocuments:
    # Built on first use: Beanie must have initialised the classes.
    return NewDocuments(LEAD_CLASSES[kind])


def _bulk_values(ctx: RequestContext, row: Any) -> tuple[LeadType, dict[str, Any]]:
    """One import row → its lead type and the new lead's field values, validated once.

    The API schema already enforces every rule the document does (same field types and
    bounds; extra fields refused), and `_normalise` produces the stored forms, so the values
    are stored as they are (`Repository.create_many_values`) instead of being validated a
    second time by the document (email syntax and phone parsing were most of a row's cost).
    Phones, the only values the two sides type differently (raw in the API, E.164 in the
    document), are checked here, and the derived `search_text` is computed as the document's
    validator would.
    """
    data = _lead_adapter.validate_python(row)
    fields = _normalise(data.model_dump(exclude={"type"}), ctx.phone_region)
    fields = _outreach_fields(ctx, data, fields)
    for loc, phone in (
        (["phone"], fields.get("phone")),
        (["listing_agent", "phone"], (fields.get("listing_agent") or {}).get("phone")),
    ):
        if phone is not None and not E164.match(phone):
            raise Unprocessable("phone must be E.164", loc=loc)
    fields["search_text"] = lead_search_text(fields)
    fields["search_tokens"] = lead_search_tokens(fields)
    fields["id"] = journal.pooled_uuid7()
    fields["user_id"] = ctx.user_id
    return data.type, fields


def _bulk_document(ctx: RequestContext, row: Any) -> LeadBase:
    """`_bulk_values` as a (not stored) lead document, for tests and benchmarks."""
    kind, fields = _bulk_values(ctx, row)
    fields["address"] = Address.model_construct(**fields.get("address") or {})
    agent = fields.get("listing_agent")
    if agent is not None:
        fields["listing_agent"] = ListingAgent.model_construct(**agent)
    location = fields.get("location")
    if location is not None:
        fields["location"] = GeoPoint.model_construct(**location)
    fields["consent"] = Consent.model_validate(fields["consent"])
    now = utcnow()
    return LEAD_CLASSES[kind].model_construct(
        created_at=now, updated_at=now, tenant_id=ctx.tenant_id, **fields
    )


def _bulk_keys(fields: dict[str, Any]) -> list[tuple[str, str]]:
    # `dedupe_keys` of the values a row will store.
    return [(f, v) for f in DEDUPE_FIELDS if isinstance(v := fields.get(f), str)]


Candidate = tuple[int, LeadType, dict[str, Any], list[tuple[str, str]]]


async def bulk_import(*, ctx: RequestContext, rows: Sequence[Any]) -> BulkOutcome:
    """Validate each row alone, drop duplicates (in the batch and stored), insert in chunks.

    Rows go through in chunks of BULK_CHUNK — validate, one dedupe query, one
    `create_many_values` (insert + journal + outbox clear) — so only one chunk's documents
    are alive at a time. A row repeating a key of an earlier row of the batch is a duplicate
    before any query; so a chunk's dedupe query can only find leads stored before the
    import. A row losing a race to a concurrent writer counts as a duplicate.
    """
    POLICY.require(ctx, Action.create)
    with _young_collections_only():
        return await _bulk_import(ctx, rows)


_full_collections_held = 0


@contextlib.contextmanager
def _young_collections_only() -> Iterator[None]:
    """No automatic full (generation 2) collections while an import runs.

    An import leaves many objects alive for a while, which triggers a full collection again
    and again; each walks the whole heap, the embedded store's containers included (150-300 ms
    at 20,000 leads, every thread stopped). Young generations are still collected at each
    chunk (`_collect_young`); the next automatic full collection comes after the import.
    """
    global _full_collections_held
    if _full_collections_held == 0 and not gc.isenabled():
        yield  # someone else manages the collector
        return
    _full_collections_held += 1
    gc.disable()
    try:
        yield
    finally:
        _full_collections_held -= 1
        if _full_collections_held == 0:
            gc.enable()


def _collect_young() -> None:
    if _full_collections_held:
        gc.collect(1)  # the chunk's garbage cycles; cost follows the young objects only


async def _bulk_import(ctx: RequestContext, rows: Sequence[Any]) -> BulkOutcome:
    outcome = BulkOutcome()
    seen: set[tuple[str, str]] = set()
    repo = Repository(LeadBase, ctx)
    for start in range(0, len(rows), BULK_CHUNK):
        _collect_young()
        candidates: list[Candidate] = []
        for index in range(start, min(start + BULK_CHUNK, len(rows))):
            await yield_now(index)
            try:
                kind, fields = _bulk_values(ctx, rows[index])
            except (ValidationError, Unprocessable) as exc:
                outcome.failed.append({"index": index, "errors": _row_errors(exc, rows[index])})
                continue
            keys = _bulk_keys(fields)
            if seen.intersection(keys):
                outcome.duplicates += 1
                continue
            seen.update(keys)
            candidates.append((index, kind, fields, keys))
        await _insert_chunk(repo, candidates, outcome)
    outcome.failed.sort(key=lambda f: f["index"])
    return outcome


async def _insert_chunk(
    repo: Repository[LeadBase], candidates: list[Candidate], outcome: BulkOutcome
) -> None:
    keys = [k for *_, doc_keys in candidates for k in doc_keys]
    stored = await _stored_keys(repo, keys) if keys else set()
    fresh = [c for c in candidates if not stored.intersection(c[3])]
    outcome.duplicates += len(candidates) - len(fresh)
    if not fresh:
        return
    failures = await repo.create_many_values(
        [(_new_leads(kind), fields) for _, kind, fields, _ in fresh]
    )
    outcome.created += len(fresh) - len(failures)
    for position, failure in sorted(failures.items()):
        error = _write_error(failure, position)
        if error.get("code") == 11000:
            outcome.duplicates += 1
        else:
            message = str(error.get("errmsg", "the database refused this row"))
            outcome.failed.append(
                {
                    "index": fresh[position][0],
                    "errors": [{"loc": [], "msg": message, "type": "write_error"}],
                }
            )


async def _stored_keys(repo: Repository[LeadBase], keys: list[tuple[str, str]]) -> set[Any]:
    projection = dict.fromkeys(DEDUPE_FIELDS, 1)
    # Live leads only: the condition is in each `$or` branch (see `clash_filter`).
    cursor = repo.model.get_pymongo_collection().find(
        repo.scope(clash_filter(keys), include_deleted=True), projection | {"_id": 0}
    )
    return {(f, raw[f]) async for raw in cursor for f in DEDUPE_FIELDS if raw.get(f) is not None}


def _write_error(exc: Exception, position: int) -> dict[str, Any]:
    details = getattr(exc, "details", None) or {}
    return next((e for e in details.get("writeErrors", []) if e.get("index") == position), {})


__all__ = [
    "BulkOutcome",
    "assign_leads",
    "build_lead",
    "bulk_import",
    "clash_filter",
    "create_lead",
    "dedupe_keys",
    "get_lead",
    "raise_if_duplicate",
    "update_lead",
]
