"""Lead commands: normalisation, per-tenant dedupe, create, read, patch and the bulk import.

Dedupe keys are the normalised email (trimmed, lower-cased), phone (E.164, read in the
tenant's region) and MLS id (upper-cased). They are unique among a tenant's live leads through
claims (service/leads/claims.py): every path that gives a live lead a key claims it first (a
claim held by another lead is the 409 with `existing_id`), and every path that takes one
away releases it after the write. `leads` itself carries no unique index on them: it is
sharded on `{tenant_id, _id}`, which could not prefix one (service/storage/sharding.py).

Lists, search, geography and export are in service/leads/queries.py; merging in
service/leads/merge.py.
"""

from __future__ import annotations

import contextlib
import functools
import gc
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import Enum
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin
from uuid import UUID

from pydantic import BaseModel, EmailStr, TypeAdapter, ValidationError

from documents.base import E164, normalize_phone, utcnow
from documents.consent import Consent
from documents.lead import (
    LEAD_CLASSES,
    Address,
    GeoPoint,
    LeadBase,
    LeadType,
    ListingAgent,
    lead_search_fields,
)
from documents.user import User
from schemas.common import money_to_cents
from schemas.consent import ConsentIn
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
from service import campaigns
from service.consent import stored_consent
from service.core import journal
from service.core.context import RequestContext, yield_now
from service.core.errors import Conflict, DomainError, Unprocessable, validation_errors
from service.core.journal import NewDocuments
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository, change_event_type, subtype_changes, uuid_filter
from service.leads import claims as lead_claims

DEDUPE_FIELDS = ("email", "phone", "mls_id")
# Rows per dedupe query and per insert in the bulk import: calls grow with N / BULK_CHUNK.
BULK_CHUNK = 2000
# Rows of a chunk validated, then normalised, a block at a time: a block's values are still
# in the CPU's caches when the next step reads them back (a whole chunk's are not: about
# 3 us a lead more). A multiple of 8, so that `yield_now` looks at the clock as often.
_BLOCK = 128
_lead_adapter: TypeAdapter[GenericLeadCreate | MLSLeadCreate] = TypeAdapter(LeadCreate)
# `_lead_adapter.validate_python` without its Python-level argument checks (once per row).
_validate_row: Callable[[Any], GenericLeadCreate | MLSLeadCreate] = (
    _lead_adapter.validator.validate_python
)

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


def _with_consent(given: ConsentIn | None, fields: dict[str, Any]) -> dict[str, Any]:
    """A new lead's consent as stored (stamped now)."""
    fields["consent"] = stored_consent(given, utcnow() if given is not None else None)
    return fields


def _creator_fields(ctx: RequestContext) -> dict[str, Any]:
    """What a new lead takes from the caller: its creator, who is also its assignee."""
    return {"user_id": ctx.user_id, "assignee_id": ctx.user_id}


def build_lead(ctx: RequestContext, data: GenericLeadCreate | MLSLeadCreate) -> LeadBase:
    """A new, normalised lead document of the caller's tenant (not stored yet)."""
    fields = _with_consent(
        data.consent, _normalise(data.model_dump(exclude={"type"}), ctx.phone_region)
    )
    return LEAD_CLASSES[data.type](tenant_id=ctx.tenant_id, **_creator_fields(ctx), **fields)


async def check_assignee(ctx: RequestContext, user_id: UUID, loc: list[str | int]) -> None:
    """422 unless `user_id` is an active, live user of the caller's tenant."""
    user = await Repository(User, ctx).find_one({"_id": uuid_filter(user_id)})
    if user is None or not user.is_active:
        raise Unprocessable("The assignee is not an active user of this tenant.", loc=loc)


def dedupe_keys(doc: LeadBase) -> list[tuple[str, str]]:
    """The (field, value) pairs that must be unique among the tenant's live leads."""
    return [(f, v) for f in DEDUPE_FIELDS if isinstance(v := getattr(doc, f, None), str)]


async def claim_keys(
    ctx: RequestContext, doc: LeadBase, keys: Sequence[tuple[str, str]] | None = None
) -> None:
    """Claim `keys` (default: all of `doc`'s) for `doc`; 409 with `existing_id` if taken."""
    conflict = await lead_claims.claim(ctx, doc.id, dedupe_keys(doc) if keys is None else keys)
    if conflict is not None:
        raise conflict


async def _restore_clash(ctx: RequestContext, doc: LeadBase) -> Conflict | None:
    # An erased lead is a tombstone (service/leads/privacy.py): nothing is left to bring back.
    if doc.erased_at is not None:
        return Conflict("This lead was erased: its data is gone and it cannot be restored.")
    # Claiming is the check: the restore that follows holds the keys. A restore that then
    # fails leaves claims naming a deleted lead: stale after the grace period.
    return await lead_claims.claim(ctx, doc.id, dedupe_keys(doc))


async def _released_and_uncounted(ctx: RequestContext, doc: LeadBase) -> None:
    await lead_claims.release_leads(ctx, [doc.id])  # a deleted (or erased) lead holds no key
    await campaigns.lead_liveness_changed(ctx, doc.id, live=False)


async def _count_in_campaigns(ctx: RequestContext, doc: LeadBase) -> None:
    await campaigns.lead_liveness_changed(ctx, doc.id, live=True)


async def _archive_in_campaigns(ctx: RequestContext, doc: LeadBase) -> None:
    await campaigns.sync_link_states(ctx, [doc.id])


# A lead's soft delete or restore changes the live-lead count of its campaigns and releases
# or claims its keys; restoring one whose email, phone or MLS id a live lead took meanwhile is
# the create route's 409.
POLICY: ResourcePolicy[LeadBase] = register_policy(
    ResourcePolicy(
        model=LeadBase,
        after_delete=_released_and_uncounted,
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
    await claim_keys(ctx, doc)
    # Claims are released only after a refusal (nothing written); after a crash the lead may
    # be stored, so they stay: a claim whose lead never came is stale after the grace period.
    return await Repository(LeadBase, ctx).create(doc)


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
    # Claim a changed key first, write, then release the old one (and on failure the new).
    old_keys = dedupe_keys(doc)
    new_keys: list[tuple[str, str]] = []
    if any(
        changes.get(f) is not None and changes[f] != getattr(doc, f, None) for f in DEDUPE_FIELDS
    ):  # the keys as the document stores them
        merged = type(doc).model_validate({**doc.model_dump(), **changes})
        new_keys = [k for k in dedupe_keys(merged) if k not in old_keys]
    await claim_keys(ctx, doc, new_keys)
    try:
        updated = await repo.update(
            doc,
            changes,
            expected_version=expected_version,
            event_type=change_event_type(changes, doc.status),
        )
    except DomainError:  # refused (a stale version…): nothing written, the new keys go back
        await lead_claims.release(ctx, doc.id, new_keys)
        raise
    kept = dedupe_keys(updated)
    await lead_claims.release(ctx, doc.id, [k for k in old_keys if k not in kept])
    return updated


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
    validator would. The import runs the same steps, its validation over a whole chunk first,
    the search fields as each row is encoded, and the creator's ids once for all rows.
    """
    kind, fields = _row_values(ctx, _validated(row), journal.pooled_uuid7())
    return kind, _with_search_fields(fields) | _creator_fields(ctx)


# A validated row as the import keeps it: its type, its consent, its other values (dumped).
Validated = tuple[LeadType, ConsentIn | None, dict[str, Any]]


def _validated(row: Any) -> Validated:
    # The model is dumped at once and dropped: a chunk keeps one dict a row alive, not the
    # model's objects (the young collections walked every object the chunk kept alive).
    data = _validate_row(row)
    if not _DUMPS_AS_HELD[type(data)]:
        return data.type, data.consent, data.model_dump(exclude=_TYPE)
    dumped = _dumped(data)
    del dumped["type"]
    return data.type, data.consent, dumped


def _dumped(model: BaseModel) -> dict[str, Any]:
    # `model.model_dump()` of a model whose values serialise as they are (`_dumps_as_held`):
    # its fields' values, sub-models (and those in lists, tuples and dicts) as dicts; only
    # the fields that can hold more than a scalar are looked at. A fraction of the
    # serializer's time; tests/test_leads_bulk.py compares both.
    out = dict(model.__dict__)
    kind = type(model)
    nested = _NESTED.get(kind)
    if nested is None:
        nested = _NESTED[kind] = _nested_fields(kind)
    for name in nested:
        value = out[name]
        if value is not None:
            out[name] = _dumped_value(value)
    return out


def _dumped_value(value: Any) -> Any:
    kind = type(value)
    if kind in _HELD_AS_IS:
        return value
    if isinstance(value, BaseModel):
        return _dumped(value)
    if kind is list or kind is tuple:
        if set(map(type, value)) <= _HELD_AS_IS:
            return value
        return kind(_dumped_value(v) for v in value)
    if kind is dict:
        if set(map(type, value.values())) <= _HELD_AS_IS:
            return value
        return {k: _dumped_value(v) for k, v in value.items()}
    return value


def _nested_fields(model: type[BaseModel]) -> tuple[str, ...]:
    # The fields whose values may be more than a scalar (sub-models, containers).
    return tuple(name for name, info in model.model_fields.items() if _nested(info.annotation))


def _nested(annotation: Any) -> bool:
    # Whether a value of `annotation` may hold a model (what `model_dump` would turn into a
    # dict); anything not known to be scalars, or containers of them, is looked at.
    origin = get_origin(annotation)
    if origin is Annotated:
        return _nested(get_args(annotation)[0])
    if origin is Union or origin is UnionType or origin in _CONTAINERS:
        return any(_nested(arg) for arg in get_args(annotation) if arg is not Ellipsis)
    if origin is Literal or annotation is None or annotation is type(None):
        return False
    return not (
        annotation is EmailStr
        or (isinstance(annotation, type) and issubclass(annotation, _SCALARS))
    )


_SCALARS = (str, int, float, Decimal, datetime, UUID, Enum)
_CONTAINERS = (list, tuple, dict, set, frozenset)
_NESTED: dict[type[BaseModel], tuple[str, ...]] = {}
_HELD_AS_IS = frozenset({str, int, float, bool, type(None)})


def _dumps_as_held(model: type[BaseModel]) -> bool:
    """Whether `model_dump()` (python mode) of `model` is its values as held (`_dumped`):
    no serializer but JSON-only ones, no computed or excluded fields, no extra fields."""

    def plain(node: Any) -> bool:
        if isinstance(node, list):
            return all(plain(item) for item in node)
        if not isinstance(node, dict):
            return True
        serialization = node.get("serialization")
        if serialization is not None and serialization.get("when_used") not in _JSON_ONLY:
            return False
        kind = node.get("type")
        if kind == "model" and (
            node.get("root_model") or node.get("config", {}).get("extra_fields_behavior")
        ) not in (None, False, "forbid", "ignore"):
            return False
        if kind == "model-fields" and node.get("computed_fields"):
            return False
        if kind == "model-field" and node.get("serialization_exclude"):
            return False
        return all(plain(value) for key, value in node.items() if key != "metadata")

    return plain(model.__pydantic_core_schema__)


_JSON_ONLY = frozenset({"json", "json-unless-none"})
_DUMPS_AS_HELD = {kind: _dumps_as_held(kind) for kind in (GenericLeadCreate, MLSLeadCreate)}


def _row_values(
    ctx: RequestContext, row: Validated, lead_id: UUID
) -> tuple[LeadType, dict[str, Any]]:
    # A validated row's stored values but the derived search fields and the creator's
    # (`_bulk_values`; the import gives the creator's to all its rows at once).
    kind, consent, dumped = row
    fields = _with_consent(consent, _normalise(dumped, ctx.phone_region))
    phone = fields.get("phone")
    if phone is not None and not E164.match(phone):
        raise Unprocessable("phone must be E.164", loc=["phone"])
    agent = fields.get("listing_agent")
    if agent is not None and agent.get("phone") is not None and not E164.match(agent["phone"]):
        raise Unprocessable("phone must be E.164", loc=["listing_agent", "phone"])
    fields["id"] = lead_id
    return kind, fields


def _with_search_fields(fields: dict[str, Any]) -> dict[str, Any]:
    # The derived search fields, as the document's validator computes them.
    fields["search_text"], fields["search_tokens"] = lead_search_fields(fields)
    return fields


_TYPE = {"type"}


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

    Rows go through in chunks of BULK_CHUNK — validate, one `insert_many` of the rows' key
    claims, one `create_many_values` (insert + journal + outbox clear) — so only one chunk's
    documents are alive at a time. A row repeating a key of an earlier row of the batch is a
    duplicate before any write; a row whose key another lead's claim holds (stored before,
    or a concurrent writer's) is a duplicate too, and keeps none of its claims.
    """
    POLICY.require(ctx, Action.create)
    with _young_collections_only():
        return await _bulk_import(ctx, rows)


_imports_running = 0
_thresholds: tuple[int, int, int] = (0, 0, 0)


@contextlib.contextmanager
def _young_collections_only() -> Iterator[None]:
    """No automatic full (generation 2) collections while an import runs; after the last
    running import, what it left alive is frozen out of the cyclic collector.

    An import leaves many objects alive for a while, which triggers a full collection again
    and again; each walks the whole heap, the embedded store's containers included (150-300 ms
    at 20,000 leads, every thread stopped). The young generations keep being collected
    automatically, a few hundred objects at a time: collected only by the import (once per
    chunk, or all at its end), they held everything every thread made meanwhile (the engine's
    new index entries among it), and each such collection stopped the process for up to
    120 ms. A collector someone else disabled is left alone.

    The freeze (as the lifespan freezes what start-up built): otherwise the next full
    collection walks what the import stored (137-175 ms at 20,000 leads, during the creates
    that followed) and every later one again. The young generations are collected first, so
    no garbage of theirs is frozen; an import leaves no cyclic garbage in the old one (none
    found after 20,000 leads).
    """
    global _imports_running, _thresholds
    if _imports_running == 0 and not gc.isenabled():
        yield
        return
    if _imports_running == 0:
        _thresholds = gc.get_threshold()
        gc.set_threshold(_thresholds[0], _thresholds[1], _FULL_COLLECTIONS_NEVER)
    _imports_running += 1
    try:
        yield
    finally:
        _imports_running -= 1
        if _imports_running == 0:
            gc.collect(1)
            gc.freeze()
            gc.set_threshold(*_thresholds)


# A generation-2 threshold no import reaches (CPython counts generation-1 collections).
_FULL_COLLECTIONS_NEVER = 1 << 30


async def _bulk_import(ctx: RequestContext, rows: Sequence[Any]) -> BulkOutcome:
    outcome = BulkOutcome()
    seen: set[tuple[str, str]] = set()
    repo = Repository(LeadBase, ctx)
    for start in range(0, len(rows), BULK_CHUNK):
        chunk = range(start, min(start + BULK_CHUNK, len(rows)))
        # `_bulk_values` in steps (validation, then the rest, a block of rows at a time; the
        # search fields, documents and journal entries over the chunk in
        # `create_many_values`): a step's code stays in the CPU's caches (everything row by
        # row, the same work took about a sixth longer), but the search fields are derived
        # as each row is encoded, which reads their many small strings back at once.
        candidates: list[Candidate] = []
        for block_start in range(chunk.start, chunk.stop, _BLOCK):
            block = range(block_start, min(block_start + _BLOCK, chunk.stop))
            valid: list[tuple[int, Validated]] = []
            for index in block:
                await yield_now(index)
                try:
                    valid.append((index, _validated(rows[index])))
                except ValidationError as exc:
                    outcome.failed.append({"index": index, "errors": _row_errors(exc, rows[index])})
            lead_ids = journal.pooled_uuid7.many(len(valid))  # as one a row, drawn at once
            for position, (index, data) in enumerate(valid):
                await yield_now(position)
                try:
                    kind, fields = _row_values(ctx, data, lead_ids[position])
                except Unprocessable as exc:
                    outcome.failed.append({"index": index, "errors": _row_errors(exc, rows[index])})
                    continue
                keys = _bulk_keys(fields)
                if not seen.isdisjoint(keys):
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
    # One round trip claims every row's keys (service/leads/claims.py); a row whose key
    # another lead holds (stored before, or a concurrent writer's) is a duplicate.
    wanted = [(fields["id"], keys) for _, _, fields, keys in candidates]
    refused = await lead_claims.claim_many(repo.ctx, wanted)
    # (A UUID's hash is Python code: no look-ups when nothing was refused, the usual case.)
    fresh = [c for c in candidates if c[2]["id"] not in refused] if refused else candidates
    outcome.duplicates += len(candidates) - len(fresh)
    if not fresh:
        return
    # A crash here leaves the chunk's claims: stale after the grace period for rows not stored.
    failures = await repo.create_many_values(
        [(_new_leads(kind), fields) for _, kind, fields, _ in fresh],
        _creator_fields(repo.ctx),
        _with_search_fields,
    )
    if failures:  # rows not stored hold no key
        await lead_claims.release_leads(repo.ctx, (fresh[p][2]["id"] for p in failures))
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


def _write_error(exc: Exception, position: int) -> dict[str, Any]:
    details = getattr(exc, "details", None) or {}
    return next((e for e in details.get("writeErrors", []) if e.get("index") == position), {})


__all__ = [
    "BulkOutcome",
    "assign_leads",
    "build_lead",
    "bulk_import",
    "claim_keys",
    "create_lead",
    "dedupe_keys",
    "get_lead",
    "update_lead",
]
