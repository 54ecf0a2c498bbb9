"""Lead commands and queries: normalisation, per-tenant dedupe, search, campaign members, import.

Dedupe keys are the normalised email (trimmed, lower-cased), phone (E.164, read in the
tenant's region) and MLS id (upper-cased). A lookup first finds the clashing lead to answer
409 with its id; the partial unique indexes on `leads` decide races the lookup cannot see.

Search (`q`) trade-off: email and MLS id are matched as anchored prefixes of the normalised
value (an index on the field can serve those), names and address parts as case-insensitive
substrings, phone as a digit substring. The substring clauses cannot use an index, so they are
evaluated on the tenant's documents selected by the tenant-prefixed index; the term is
`re.escape`d and at most 100 characters, so it is never an operator or a costly pattern.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from beanie.odm.utils.parsing import parse_obj
from pydantic import TypeAdapter, ValidationError
from pymongo.errors import DuplicateKeyError
from uuid6 import uuid7

from documents.base import _E164, normalize_phone, utcnow
from documents.campaign import CampaignBase, CampaignLead
from documents.lead import LEAD_CLASSES, Address, LeadBase, LeadType, ListingAgent
from schemas.common import money_to_cents
from schemas.leads import (
    GENERIC_ONLY,
    MLS_ONLY,
    CampaignLeadFilters,
    GenericLeadCreate,
    LeadCreate,
    LeadFilters,
    LeadUpdate,
    MLSLeadCreate,
)
from service.campaigns import campaign_link_filter
from service.context import RequestContext, Role, yield_now
from service.errors import Conflict, Unprocessable, validation_errors
from service.pagination import NEWEST_FIRST, PageResult, decode_cursor, encode_cursor
from service.repository import Repository, uuid_filter

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


def build_lead(ctx: RequestContext, data: GenericLeadCreate | MLSLeadCreate) -> LeadBase:
    """A new, normalised lead document of the caller's tenant (not stored yet)."""
    fields = _normalise(data.model_dump(exclude={"type"}), ctx.phone_region)
    return LEAD_CLASSES[data.type](tenant_id=ctx.tenant_id, user_id=ctx.user_id, **fields)


def dedupe_keys(doc: LeadBase) -> list[tuple[str, str]]:
    """The (field, value) pairs that must be unique among the tenant's live leads."""
    return [(f, v) for f in DEDUPE_FIELDS if isinstance(v := getattr(doc, f, None), str)]


def _clash_filter(keys: Iterable[tuple[str, str]]) -> dict[str, Any]:
    by_field: dict[str, list[str]] = {}
    for name, value in keys:
        by_field.setdefault(name, []).append(value)
    # `$type` repeats the partial unique indexes' filter so that MongoDB can use them here.
    return {
        "$or": [{name: {"$in": values, "$type": "string"}} for name, values in by_field.items()]
    }


async def _raise_if_duplicate(ctx: RequestContext, doc: LeadBase) -> None:
    keys = dedupe_keys(doc)
    if not keys:
        return
    query = {**_clash_filter(keys), "_id": {"$ne": uuid_filter(doc.id)}}
    existing = await Repository(LeadBase, ctx).find_one(query)
    if existing is not None:
        clash = next(f for f, v in keys if getattr(existing, f, None) == v)
        raise Conflict(
            f"A lead with the same {clash} already exists.",
            existing_id=str(existing.id),
            field=clash,
        )


# -- commands ---------------------------------------------------------------------------------


async def create_lead(*, ctx: RequestContext, data: GenericLeadCreate | MLSLeadCreate) -> LeadBase:
    """Create a lead; 409 with `existing_id` when its email, phone or MLS id is taken."""
    ctx.require(Role.member)
    doc = build_lead(ctx, data)
    await _raise_if_duplicate(ctx, doc)
    try:
        return await Repository(LeadBase, ctx).create(doc)
    except DuplicateKeyError:  # a concurrent create won between our lookup and insert
        await _raise_if_duplicate(ctx, doc)
        raise Conflict("A lead with the same email, phone or MLS id already exists.") from None


async def get_lead(*, ctx: RequestContext, id: UUID) -> LeadBase:
    """One lead of the tenant (404 if missing, deleted or another tenant's)."""
    return await Repository(LeadBase, ctx).get(id)


async def update_lead(
    *, ctx: RequestContext, id: UUID, data: LeadUpdate, expected_version: int | None = None
) -> LeadBase:
    """Patch a lead (its type's fields only); 409 with `existing_id` on a dedupe clash."""
    ctx.require(Role.member)
    repo = Repository(LeadBase, ctx)
    doc = await repo.get(id)
    changes = data.changes()
    new_type = changes.pop("type", None)
    if new_type is not None and new_type != doc.type:
        raise Unprocessable("A lead's type cannot change.", loc=["body", "type"])
    foreign = sorted(changes.keys() & (GENERIC_ONLY if doc.type == LeadType.mls else MLS_ONLY))
    if foreign:
        raise Unprocessable(
            f"{doc.type.value} leads have no field {foreign[0]}.", loc=["body", foreign[0]]
        )
    changes = _normalise(changes, ctx.phone_region)
    if data.address is not None:  # a partial address changes only the parts it names
        changes["address"] = {
            **doc.address.model_dump(),
            **data.address.model_dump(exclude_unset=True),
        }
    status = changes.get("status")
    event_type = "status_changed" if status is not None and status != doc.status else "updated"
    if any(
        changes.get(f) is not None and changes[f] != getattr(doc, f, None) for f in DEDUPE_FIELDS
    ):
        await _raise_if_duplicate(ctx, type(doc).model_validate({**doc.model_dump(), **changes}))
    try:
        return await repo.update(
            doc, changes, expected_version=expected_version, event_type=event_type
        )
    except DuplicateKeyError:
        raise Conflict("A lead with the same email, phone or MLS id already exists.") from None


# -- queries ----------------------------------------------------------------------------------


def search_filter(q: str) -> dict[str, Any]:
    """The `$or` of per-field matches for a search term (see the module docstring)."""
    term = re.escape(q)
    contains = {"$regex": term, "$options": "i"}
    clauses: list[dict[str, Any]] = [
        {"email": {"$regex": "^" + re.escape(q.lower())}},
        {"mls_id": {"$regex": "^" + re.escape(q.upper())}},
        {"first_name": contains},
        {"last_name": contains},
        {"address.line1": contains},
        {"address.city": contains},
        {"address.state": contains},
        {"address.postal_code": contains},
    ]
    digits = re.sub(r"\D", "", q)
    if len(digits) >= 3:
        clauses.append({"phone": {"$regex": re.escape(digits)}})
    first, _, rest = q.partition(" ")
    if rest.strip():  # "ana silva": first and last name together
        clauses.append(
            {
                "first_name": {"$regex": "^" + re.escape(first), "$options": "i"},
                "last_name": {"$regex": "^" + re.escape(rest.strip()), "$options": "i"},
            }
        )
    return {"$or": clauses}


def _lead_query(filters: CampaignLeadFilters) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if filters.type is not None:
        query["type"] = filters.type.value
    if filters.status is not None:
        query["status"] = filters.status.value
    if filters.tag is not None:
        query["tags"] = filters.tag
    if filters.q is not None:
        query.update(search_filter(filters.q))
    return query


async def list_leads(*, ctx: RequestContext, filters: LeadFilters) -> PageResult[LeadBase]:
    """A page of the tenant's leads, newest first; `campaign_id` limits it to that campaign."""
    if filters.campaign_id is not None:
        return await _campaign_members(ctx, filters.campaign_id, filters)
    return await Repository(LeadBase, ctx).page(
        _lead_query(filters),
        limit=filters.limit,
        cursor=filters.cursor,
        include_deleted=filters.include_deleted,
        include_archived=filters.include_archived,
    )


async def list_campaign_leads(
    *, ctx: RequestContext, id: UUID, filters: CampaignLeadFilters
) -> PageResult[LeadBase]:
    """A page of one campaign's leads, newest lead first (404 unless the tenant's campaign)."""
    campaign = await Repository(CampaignBase, ctx).get(id)
    return await _campaign_members(ctx, campaign.id, filters)


async def _campaign_members(
    ctx: RequestContext, campaign_id: UUID, filters: CampaignLeadFilters
) -> PageResult[LeadBase]:
    # One aggregation: walk the campaign's links newest lead first (the unique link index
    # serves match + sort), join each lead, keep those passing the tenant scope and filters.
    # The cursor is the last lead's id, the same shape as the plain lead list's cursor.
    links = campaign_link_filter(ctx, campaign_id)
    if filters.cursor:
        links["lead_id"] = decode_cursor(filters.cursor, NEWEST_FIRST)["_id"]
    scope = Repository(LeadBase, ctx).scope(
        _lead_query(filters),
        include_deleted=filters.include_deleted,
        include_archived=filters.include_archived,
    )
    pipeline: list[dict[str, Any]] = [
        {"$match": links},
        {"$sort": {"lead_id": -1}},
        {"$lookup": {"from": "leads", "localField": "lead_id", "foreignField": "_id", "as": "l"}},
        {"$unwind": "$l"},
        {"$replaceRoot": {"newRoot": "$l"}},
        {"$match": scope},
        {"$limit": filters.limit + 1},
    ]
    cursor = await CampaignLead.get_pymongo_collection().aggregate(pipeline)
    docs: list[LeadBase] = [parse_obj(LeadBase, raw) async for raw in cursor]  # type: ignore[misc]
    if len(docs) <= filters.limit:
        return PageResult(items=docs, next_cursor=None)
    last = docs[filters.limit - 1]
    return PageResult(
        items=docs[: filters.limit], next_cursor=encode_cursor(NEWEST_FIRST, last.id, last.id)
    )


# -- bulk import ------------------------------------------------------------------------------


@dataclass
class BulkOutcome:
    """What a bulk import did: rows stored, duplicates skipped and rows that failed."""

    created: int = 0
    duplicates: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)


def _row_errors(exc: Exception) -> list[dict[str, Any]]:
    if isinstance(exc, ValidationError):
        return validation_errors(list(exc.errors()))
    errors: list[dict[str, Any]] = getattr(exc, "extra", {}).get("errors") or [
        {"loc": [], "msg": str(exc), "type": "value_error"}
    ]
    return [{**e, "loc": [p for p in e["loc"] if p != "body"]} for e in errors]


def _bulk_document(ctx: RequestContext, row: Any) -> LeadBase:
    """One import row → a new lead document, validated once (by the API schema).

    The API schema already enforces every rule the document does (same field types and
    bounds; extra fields refused), and `_normalise` produces the stored forms, so the
    document is constructed from those values instead of being validated a second time
    (email syntax and phone parsing were most of a row's cost). Phones, the only values the
    two sides type differently (raw in the API, E.164 in the document), are checked here.
    """
    data = _lead_adapter.validate_python(row)
    fields = _normalise(data.model_dump(exclude={"type"}), ctx.phone_region)
    for loc, phone in (
        (["phone"], fields.get("phone")),
        (["listing_agent", "phone"], (fields.get("listing_agent") or {}).get("phone")),
    ):
        if phone is not None and not _E164.match(phone):
            raise Unprocessable("phone must be E.164", loc=loc)
    fields["address"] = Address.model_construct(**fields.get("address") or {})
    agent = fields.get("listing_agent")
    if agent is not None:
        fields["listing_agent"] = ListingAgent.model_construct(**agent)
    # Every field with a default factory is passed: `model_construct` inspects a factory's
    # signature on each call, which would cost more than the rest of the construction.
    now = utcnow()
    return LEAD_CLASSES[data.type].model_construct(
        id=uuid7(),
        created_at=now,
        updated_at=now,
        tenant_id=ctx.tenant_id,
        user_id=ctx.user_id,
        **fields,
    )


async def bulk_import(*, ctx: RequestContext, rows: Sequence[Any]) -> BulkOutcome:
    """Validate each row alone, drop duplicates (in the batch and stored), insert in chunks.

    Rows go through in chunks of BULK_CHUNK — validate, one dedupe query, one `create_many`
    (insert + journal + outbox clear) — so only one chunk's documents are alive at a time.
    A row repeating a key of an earlier row of the batch is a duplicate before any query;
    so a chunk's dedupe query can only find leads stored before the import. A row losing a
    race to a concurrent writer counts as a duplicate.
    """
    ctx.require(Role.member)
    outcome = BulkOutcome()
    seen: set[tuple[str, str]] = set()
    repo = Repository(LeadBase, ctx)
    for start in range(0, len(rows), BULK_CHUNK):
        candidates: list[tuple[int, LeadBase, list[tuple[str, str]]]] = []
        for index in range(start, min(start + BULK_CHUNK, len(rows))):
            await yield_now(index)
            try:
                doc = _bulk_document(ctx, rows[index])
            except (ValidationError, Unprocessable) as exc:
                outcome.failed.append({"index": index, "errors": _row_errors(exc)})
                continue
            keys = dedupe_keys(doc)
            if seen.intersection(keys):
                outcome.duplicates += 1
                continue
            seen.update(keys)
            candidates.append((index, doc, keys))
        await _insert_chunk(repo, candidates, outcome)
    outcome.failed.sort(key=lambda f: f["index"])
    return outcome


async def _insert_chunk(
    repo: Repository[LeadBase],
    candidates: list[tuple[int, LeadBase, list[tuple[str, str]]]],
    outcome: BulkOutcome,
) -> None:
    keys = [k for _, _, doc_keys in candidates for k in doc_keys]
    stored = await _stored_keys(repo, keys) if keys else set()
    fresh = [(index, doc) for index, doc, keys in candidates if not stored.intersection(keys)]
    outcome.duplicates += len(candidates) - len(fresh)
    if not fresh:
        return
    created, failures = await repo.create_many([doc for _, doc in fresh])
    outcome.created += len(created)
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
    projection = {f: 1 for f in DEDUPE_FIELDS}
    cursor = repo.model.get_pymongo_collection().find(
        repo.scope(_clash_filter(keys)), projection | {"_id": 0}
    )
    return {(f, raw[f]) async for raw in cursor for f in DEDUPE_FIELDS if raw.get(f) is not None}


def _write_error(exc: Exception, position: int) -> dict[str, Any]:
    details = getattr(exc, "details", None) or {}
    return next((e for e in details.get("writeErrors", []) if e.get("index") == position), {})


__all__ = [
    "BulkOutcome",
    "build_lead",
    "bulk_import",
    "create_lead",
    "dedupe_keys",
    "get_lead",
    "list_campaign_leads",
    "list_leads",
    "search_filter",
    "update_lead",
]
