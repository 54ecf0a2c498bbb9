"""Lead commands and queries: normalisation, per-tenant dedupe, search, sorts, geography, merge,
export and the bulk import.

Dedupe keys are the normalised email (trimmed, lower-cased), phone (E.164, read in the
tenant's region) and MLS id (upper-cased). A lookup first finds the clashing lead to answer
409 with its id; the partial unique indexes on `leads` decide races the lookup cannot see.
Each `$or` branch of the lookup repeats its index's whole partial filter (`is_deleted: false`
and `$type: string`): MongoDB uses a partial index for a branch only when the branch alone
implies the filter, so a condition outside the `$or` would leave every branch unindexed.

Search (`q`). Agents type fragments: part of an email, a phone as they read it aloud, a
street. Each lead stores `search_text` (documents/lead.py): its names, email, phone digits,
company, MLS id and address parts, case-folded without accents, separated by a control
character no term can contain. `q` becomes ONE case-sensitive regular expression over it: the
folded term, and for a phone-like term its digits (and, typed with a national trunk `0`,
without it). Why not `$text`: a text index matches whole stemmed words, never "part of an
email" or phone digits, and Atlas Search is not available to a self-run replica set. A
case-sensitive unanchored regex cannot seek in an index, but MongoDB applies it to the index
keys of `(tenant_id, is_deleted, search_text)` without fetching documents, so a search costs
a key scan of the tenant's live leads; the planner may instead walk the list's sort index
when matches are frequent. The embedded backend answers the same regex the same way. The
term is at most 100 characters and `re.escape`d, so it is never an operator or a costly
pattern.

Geography (`near`, `within_km`). Without `sort`, leads are returned nearest first with
`$nearSphere` (2dsphere index, tenant-prefixed). `$nearSphere` orders by distance, so its
pages cannot use the usual `(field, _id)` seek: the cursor holds the last item's distance and
id, computed here with the same great-circle formula on MongoDB's sphere; the next query asks
for `$minDistance` just below that distance and drops what is not after the cursor in
`(distance, _id)` order. Because the server's distances may differ from ours in the last
digits and ties come back in any order, documents within `NEAR_MARGIN_M` of the farthest one
fetched are held back unless the batch reached the end (they might be out of order with ones
not yet fetched); a short batch is fetched again, larger. With `sort`, `near` is a radius
filter (`$geoWithin` `$centerSphere`), which any sort and cursor combine with; `count=true`
always counts with `$geoWithin` (a server refuses `$nearSphere` in a count).
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from pydantic import TypeAdapter, ValidationError
from pymongo.errors import DuplicateKeyError
from uuid6 import uuid7

from documents.base import E164, normalize_phone, utcnow
from documents.campaign import CampaignBase, CampaignLead
from documents.event import TouchpointEvent
from documents.lead import (
    LEAD_CLASSES,
    Address,
    GeoPoint,
    LeadBase,
    LeadStatus,
    LeadType,
    ListingAgent,
    fold,
    lead_search_text,
)
from schemas.common import money_to_cents
from schemas.leads import (
    GENERIC_ONLY,
    LEAD_SORT_FIELDS,
    LEAD_VIEW,
    MLS_ONLY,
    AnyLeadRead,
    CampaignLeadFilters,
    GenericLeadCreate,
    LeadCreate,
    LeadExportParams,
    LeadFilters,
    LeadUpdate,
    MLSLeadCreate,
)
from service import campaigns
from service.context import RequestContext, Role, yield_now
from service.embedded.geo import EARTH_RADIUS_M, great_circle_m, point_of
from service.errors import Conflict, Unprocessable, validation_errors
from service.pagination import (
    BATCH_SIZE,
    NEWEST_FIRST,
    FieldKind,
    PageResult,
    Position,
    Sort,
    after,
    decode_cursor,
    encode_cursor,
    field_kind,
    parse_sort,
    read_cursor,
    with_condition,
)
from service.repository import (
    Repository,
    change_event_type,
    equal_to,
    subtype_changes,
    tenant_filter,
    uuid_filter,
)

DEDUPE_FIELDS = ("email", "phone", "mls_id")
# Rows per dedupe query and per insert in the bulk import: calls grow with N / BULK_CHUNK.
BULK_CHUNK = 2000
# `near` paging (see the module docstring): the safety band in metres, and how many more
# documents than a page a `$nearSphere` batch asks for.
NEAR_MARGIN_M = 1.0
NEAR_SLACK = 8
DISTANCE = FieldKind(float)
_lead_adapter: TypeAdapter[GenericLeadCreate | MLSLeadCreate] = TypeAdapter(LeadCreate)
_PHONE_LIKE = re.compile(r"^[\d\s()+\-./]+$")


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


async def _raise_if_duplicate(
    ctx: RequestContext, doc: LeadBase, *, besides: Iterable[UUID] = ()
) -> None:
    keys = dedupe_keys(doc)
    if not keys:
        return
    others = [uuid_filter(doc.id), *(uuid_filter(i) for i in besides)]
    query = {**clash_filter(keys), "_id": {"$nin": others}}
    # The live condition is in each branch (see `clash_filter`), not outside the `$or`.
    existing = await Repository(LeadBase, ctx).find_one(query, include_deleted=True)
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


async def get_lead(*, ctx: RequestContext, id: UUID) -> AnyLeadRead:
    """One lead of the tenant as the API shows it (404 if missing, deleted or another's)."""
    return await Repository(LeadBase, ctx).read(id, LEAD_VIEW)


async def update_lead(
    *, ctx: RequestContext, id: UUID, data: LeadUpdate, expected_version: int | None = None
) -> LeadBase:
    """Patch a lead (its type's fields only); 409 with `existing_id` on a dedupe clash."""
    ctx.require(Role.member)
    repo = Repository(LeadBase, ctx)
    doc = await repo.get(id)
    foreign = GENERIC_ONLY if doc.type == LeadType.mls else MLS_ONLY
    changes = subtype_changes(doc, data.changes(), foreign=foreign)
    changes = _normalise(changes, ctx.phone_region)
    if data.address is not None:  # a partial address changes only the parts it names
        changes["address"] = {
            **doc.address.model_dump(),
            **data.address.model_dump(exclude_unset=True),
        }
    if any(
        changes.get(f) is not None and changes[f] != getattr(doc, f, None) for f in DEDUPE_FIELDS
    ):
        await _raise_if_duplicate(ctx, type(doc).model_validate({**doc.model_dump(), **changes}))
    try:
        return await repo.update(
            doc,
            changes,
            expected_version=expected_version,
            event_type=change_event_type(changes, doc.status),
        )
    except DuplicateKeyError:
        raise Conflict("A lead with the same email, phone or MLS id already exists.") from None


# -- merge ------------------------------------------------------------------------------------

# Fields a merge never copies: identity, bookkeeping and what the merge itself decides.
_NOT_MERGED = frozenset(
    {
        "id",
        "type",
        "tenant_id",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
        "is_deleted",
        "deleted_at",
        "archived_at",
        "version",
        "schema_version",
        "pending_event",
        "revision_id",
        "status",
        "last_contacted_at",
        "merged_into",
        "search_text",
    }
)
MAX_TAGS = 50
MAX_SEGMENTS = 50


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def merged_values(target: LeadBase, sources: Sequence[LeadBase]) -> dict[str, Any]:
    """The changes that give `target` the sources' values where it has none.

    Scalars and sub-documents are filled when empty on the target, the first source (in the
    order given) holding a value winning; the address is filled part by part; tags are
    united and segments gain the keys the target lacks (both within their bounds). Only the
    target type's fields are filled. `last_contacted_at` becomes the latest of all, and a
    `new` target that has now been contacted becomes `contacted`, as an event would make it.
    """
    current = target.model_dump()
    changes: dict[str, Any] = {}
    names = [n for n in type(target).model_fields if n not in _NOT_MERGED]
    dumps = [source.model_dump() for source in sources]
    for name in names:
        mine: Any = current.get(name)
        theirs = [d[name] for d in dumps if name in d and not _empty(d[name])]
        if not theirs:
            continue
        if name == "address":
            address = dict(mine)
            for part, value in address.items():
                if _empty(value):
                    address[part] = next((a[part] for a in theirs if not _empty(a[part])), value)
            if address != mine:
                changes[name] = address
        elif name == "tags":
            tags = list(dict.fromkeys([*mine, *(t for tags in theirs for t in tags)]))[:MAX_TAGS]
            if tags != mine:
                changes[name] = tags
        elif name == "segments":
            segments = dict(mine)
            for other in theirs:
                for key, value in other.items():
                    if key not in segments and len(segments) < MAX_SEGMENTS:
                        segments[key] = value
            if segments != mine:
                changes[name] = segments
        elif _empty(mine):
            changes[name] = theirs[0]
    contacted = [
        d for d in (target.last_contacted_at, *(s.last_contacted_at for s in sources)) if d
    ]
    if contacted and max(contacted) != target.last_contacted_at:
        changes["last_contacted_at"] = max(contacted)
    if contacted and target.status == LeadStatus.new:
        changes["status"] = LeadStatus.contacted
    return changes


async def _merge_sources(
    ctx: RequestContext, target: LeadBase, source_ids: Sequence[UUID]
) -> list[LeadBase]:
    # Live leads of the tenant, or leads an earlier attempt of this merge already merged into
    # this target (a retry); anything else (missing, another tenant's, deleted) is a 422.
    wanted = list(dict.fromkeys(source_ids))
    for position, source_id in enumerate(source_ids):
        if source_id == target.id:
            raise Unprocessable(
                "A lead cannot be merged into itself.", loc=["body", "source_ids", position]
            )
    found = {
        doc.id: doc
        for doc in await Repository(LeadBase, ctx).get_many(wanted, include_deleted=True)
    }
    for position, source_id in enumerate(source_ids):
        doc = found.get(source_id)
        if doc is None or (doc.is_deleted and doc.merged_into != target.id):
            raise Unprocessable(
                "Not a live lead of this tenant; nothing was merged.",
                loc=["body", "source_ids", position],
            )
    return [found[i] for i in wanted]


async def merge_leads(*, ctx: RequestContext, id: UUID, source_ids: Sequence[UUID]) -> LeadBase:
    """Merge leads into lead `id`: it keeps its values and gains theirs where it has none.

    Steps, each safe to run again, in an order that makes any prefix of them a state the
    same request completes when retried (there are no multi-document transactions):

    1. Check everything before writing: the target is a live lead of the tenant (else 404);
       each source is a live lead of the tenant other than the target, or one this merge
       already merged into it (else 422); the filled-in target clashes with no other live
       lead (else 409 with `existing_id` and `field`, as on create).
    2. Soft-delete each source with `merged_into` = the target (journaled `lead.merged`; it
       frees the source's dedupe keys). This records the merge durably first: a retry
       recognises these sources by `merged_into` and carries on.
    3. Move the sources' touchpoint events to the target (`lead_id`; a no-op when repeated).
    4. Move the sources' campaign links to the target (links it already has are not
       duplicated), then drop the sources' links.
    5. Fill the target from the sources (journaled `lead.merged`; no change, no new version).
    6. Recount `lead_count` of every campaign the target or a source belongs or belonged to.

    A crash after any step leaves sources deleted and pointing at the target; the same
    request, retried, finds them accepted in step 1 and completes steps 3-6 (idempotent).
    Not prevented without transactions: two concurrent merges of the same pair in opposite
    directions can both delete their source; restoring one undoes that.
    """
    ctx.require(Role.member)
    repo = Repository(LeadBase, ctx)
    target = await repo.get(id)
    sources = await _merge_sources(ctx, target, source_ids)
    changes = merged_values(target, sources)
    filled = type(target).model_validate({**target.model_dump(), **changes})
    await _raise_if_duplicate(ctx, filled, besides=[s.id for s in sources])
    now = utcnow()
    for source in sources:
        if not source.is_deleted:
            await repo.update(
                source,
                {"is_deleted": True, "deleted_at": now, "merged_into": target.id},
                event_type="merged",
            )
    moved_from = [uuid_filter(s.id) for s in sources]
    await TouchpointEvent.get_pymongo_collection().update_many(
        tenant_filter(ctx, {"lead_id": {"$in": moved_from}}),
        {"$set": {"lead_id": uuid_filter(target.id)}},
    )
    affected = await campaigns.move_links(ctx, [s.id for s in sources], target.id)
    try:
        target = await repo.update(target, changes, event_type="merged")
    except DuplicateKeyError:  # a lead created meanwhile took a key the merge would fill in
        await _raise_if_duplicate(ctx, filled, besides=[s.id for s in sources])
        raise Conflict("A lead with the same email, phone or MLS id already exists.") from None
    await campaigns.refresh_lead_counts(ctx, affected)
    return target


# -- queries ----------------------------------------------------------------------------------


def search_filter(q: str) -> dict[str, Any]:
    """The condition on `search_text` for a search term (see the module docstring)."""
    patterns = [re.escape(fold(q))]
    digits = re.sub(r"\D", "", q)
    if len(digits) >= 3 and _PHONE_LIKE.match(q):
        patterns.append(digits)
        national = digits.lstrip("0")  # "020 7183 8750": E.164 drops the trunk prefix
        if national != digits and len(national) >= 3:
            patterns.append(national)
    return {"search_text": {"$regex": "|".join(dict.fromkeys(patterns))}}


def _lead_query(filters: CampaignLeadFilters | LeadExportParams) -> dict[str, Any]:
    query = equal_to(filters, {"type": "type", "status": "status", "tag": "tags"})
    if filters.q is not None:
        query.update(search_filter(filters.q))
    return query


def _lead_sort(filters: CampaignLeadFilters | LeadExportParams) -> Sort:
    return parse_sort(filters.sort, fields=LEAD_SORT_FIELDS, default=NEWEST_FIRST)


def _geo_point(point: tuple[float, float]) -> dict[str, Any]:
    return {"type": "Point", "coordinates": list(point)}


def _max_distance_m(within_km: float | None) -> float:
    # No radius: half the earth's circumference (every point is at most that far).
    return (within_km * 1000) if within_km is not None else EARTH_RADIUS_M * math.pi


def _within(point: tuple[float, float], within_km: float | None) -> dict[str, Any]:
    radians = _max_distance_m(within_km) / EARTH_RADIUS_M
    return {"location": {"$geoWithin": {"$centerSphere": [list(point), radians]}}}


def _nearest(point: tuple[float, float], within_km: float | None, min_m: float) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "$geometry": _geo_point(point),
        "$maxDistance": _max_distance_m(within_km),
    }
    if min_m > 0:
        spec["$minDistance"] = min_m
    return {"location": {"$nearSphere": spec}}


async def list_leads(*, ctx: RequestContext, filters: LeadFilters) -> PageResult[AnyLeadRead]:
    """A page of the tenant's leads (newest first, `sort`ed, or nearest first with `near`)."""
    if filters.campaign_id is not None:
        return await _campaign_members(ctx, filters.campaign_id, filters)
    repo = Repository(LeadBase, ctx)
    query = _lead_query(filters)
    point = filters.point
    if point is not None and filters.sort is None:
        return await _nearest_page(repo, query, filters, point)
    if point is not None:
        query.update(_within(point, filters.within_km))
    return await repo.page_for(query, filters, sort=_lead_sort(filters), view=LEAD_VIEW)


def _nearest_sort(point: tuple[float, float]) -> Sort:
    # The cursor of a nearest-first page belongs to its centre: another `near` refuses it.
    return Sort(f"_distance@{point[0]},{point[1]}", 1)


async def _nearest_page(
    repo: Repository[LeadBase],
    query: dict[str, Any],
    filters: LeadFilters,
    point: tuple[float, float],
) -> PageResult[AnyLeadRead]:
    """One page nearest first, keyed by (distance, id) — see the module docstring."""
    sort = _nearest_sort(point)
    position = read_cursor(filters.cursor, sort, DISTANCE) if filters.cursor else None
    min_m = max(0.0, position.value - NEAR_MARGIN_M) if position is not None else 0.0
    scope = repo.scope(
        {**query, **_nearest(point, filters.within_km, min_m)},
        include_deleted=filters.include_deleted,
        include_archived=filters.include_archived,
    )
    collection = LeadBase.get_pymongo_collection()
    want = filters.limit + 1
    fetch = want + NEAR_SLACK
    while True:
        raws = await collection.find(scope, limit=fetch).to_list()
        measured = list(_by_distance(raws, point))
        rows = sorted((r for r in measured if _is_after(r, position)), key=lambda r: r[:2])
        if len(raws) < fetch:  # the whole remainder is here: nothing can come before it
            break
        horizon = max(r[0] for r in measured) - NEAR_MARGIN_M
        safe = [r for r in rows if r[0] < horizon]
        if len(safe) >= want:
            rows = safe
            break
        fetch *= 4
    items = [LEAD_VIEW.stored(raw) for _, _, raw in rows[: filters.limit]]
    total = None
    if filters.count:
        counted = repo.scope(
            {**query, **_within(point, filters.within_km)},
            include_deleted=filters.include_deleted,
            include_archived=filters.include_archived,
        )
        total = await collection.count_documents(counted)
    if len(rows) <= filters.limit:
        return PageResult(items=items, next_cursor=None, total=total)
    distance, last_id, _ = rows[filters.limit - 1]
    return PageResult(items=items, next_cursor=encode_cursor(sort, distance, last_id), total=total)


def _by_distance(
    raws: list[dict[str, Any]], point: tuple[float, float]
) -> Iterable[tuple[float, UUID, dict[str, Any]]]:
    for raw in raws:
        where = point_of(raw.get("location"))
        if where is not None:
            yield great_circle_m(point, where), raw["_id"], raw


def _is_after(row: tuple[float, UUID, Any], position: Position | None) -> bool:
    if position is None:
        return True
    return (row[0], row[1]) > (position.value, position.last_id.as_uuid())


async def list_campaign_leads(
    *, ctx: RequestContext, id: UUID, filters: CampaignLeadFilters
) -> PageResult[AnyLeadRead]:
    """A page of one campaign's leads, newest lead first (404 unless the tenant's campaign)."""
    campaign = await Repository(CampaignBase, ctx).get(id)
    return await _campaign_members(ctx, campaign.id, filters)


_JOIN_LEADS: list[dict[str, Any]] = [
    {"$lookup": {"from": "leads", "localField": "lead_id", "foreignField": "_id", "as": "l"}},
    {"$unwind": "$l"},
    {"$replaceRoot": {"newRoot": "$l"}},
]


def _members_pipeline(
    ctx: RequestContext,
    campaign_id: UUID,
    filters: CampaignLeadFilters | LeadExportParams,
    *,
    cursor: str | None = None,
    limit: int | None = None,
    counting: bool = False,
) -> list[dict[str, Any]]:
    """One aggregation over a campaign's links, joined to its leads, filtered and ordered.

    Newest lead first, the links' unique index serves match + sort and the cursor seeks in
    it (lead ids are UUIDv7), so a page reads about `limit` links. Another order sorts the
    campaign's joined, matching leads (the sort is bounded by the campaign's size).
    `counting`: the matching members counted instead (`{"n": ...}`, no row when none).
    """
    links = campaigns.campaign_link_filter(ctx, campaign_id)
    scope = Repository(LeadBase, ctx).scope(
        _lead_query(filters),
        include_deleted=filters.include_deleted,
        include_archived=filters.include_archived,
    )
    if counting:
        return [{"$match": links}, *_JOIN_LEADS, {"$match": scope}, {"$count": "n"}]
    sort = _lead_sort(filters)
    if sort == NEWEST_FIRST:
        if cursor:
            links["lead_id"] = decode_cursor(cursor, sort)["_id"]
        stages = [{"$match": links}, {"$sort": {"lead_id": -1}}, *_JOIN_LEADS, {"$match": scope}]
    else:
        if cursor:
            kind = field_kind(LeadBase, sort.field)
            scope = with_condition(
                scope, after(sort, read_cursor(cursor, sort, kind), nullable=kind.nullable)
            )
        stages = [{"$match": links}, *_JOIN_LEADS, {"$match": scope}, {"$sort": dict(sort.order())}]
    if limit is not None:
        stages.append({"$limit": limit})
    return stages


async def _campaign_members(
    ctx: RequestContext, campaign_id: UUID, filters: CampaignLeadFilters
) -> PageResult[AnyLeadRead]:
    collection = CampaignLead.get_pymongo_collection()
    pipeline = _members_pipeline(
        ctx, campaign_id, filters, cursor=filters.cursor, limit=filters.limit + 1
    )
    raws = await (await collection.aggregate(pipeline)).to_list()
    total = None
    if filters.count:
        counting = _members_pipeline(ctx, campaign_id, filters, counting=True)
        rows = await (await collection.aggregate(counting)).to_list()
        total = rows[0]["n"] if rows else 0
    items = [LEAD_VIEW.stored(raw) for raw in raws[: filters.limit]]
    if len(raws) <= filters.limit:
        return PageResult(items=items, next_cursor=None, total=total)
    sort, last = _lead_sort(filters), raws[filters.limit - 1]
    value = last["_id"] if sort.field == "_id" else last.get(sort.field)
    return PageResult(items=items, next_cursor=encode_cursor(sort, value, last["_id"]), total=total)


async def export_leads(
    *, ctx: RequestContext, params: LeadExportParams
) -> AsyncIterator[AnyLeadRead]:
    """Every lead matching the list filters, in the list's order, one at a time.

    Everything that can fail on the request (an unknown campaign: 404) fails here, before
    the first item. Documents are then read in batches and each is validated into its
    response shape and dropped after use, so memory stays flat however many leads match.
    With `campaign_id`, the campaign's members come from one aggregation (a server streams
    it in batches; the embedded backend computes an aggregation's rows at once).
    """
    if params.campaign_id is not None:
        campaign = await Repository(CampaignBase, ctx).get(params.campaign_id)
        pipeline = _members_pipeline(ctx, campaign.id, params)
        return _validated(
            await CampaignLead.get_pymongo_collection().aggregate(pipeline, batchSize=BATCH_SIZE)
        )
    query = _lead_query(params)
    point = params.point
    sort: Sort | None = _lead_sort(params)
    if point is not None and params.sort is None:
        query.update(_nearest(point, params.within_km, 0.0))
        sort = None  # `$nearSphere` orders by distance; a sort would override it
    elif point is not None:
        query.update(_within(point, params.within_km))
    rows = Repository(LeadBase, ctx).stream(
        query,
        include_deleted=params.include_deleted,
        include_archived=params.include_archived,
        sort=sort,
    )
    return _validated(rows)


async def _validated(rows: AsyncIterator[dict[str, Any]]) -> AsyncIterator[AnyLeadRead]:
    async for raw in rows:
        yield LEAD_VIEW.stored(raw)


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
    two sides type differently (raw in the API, E.164 in the document), are checked here,
    and the derived `search_text` is computed as the document's validator would.
    """
    data = _lead_adapter.validate_python(row)
    fields = _normalise(data.model_dump(exclude={"type"}), ctx.phone_region)
    for loc, phone in (
        (["phone"], fields.get("phone")),
        (["listing_agent", "phone"], (fields.get("listing_agent") or {}).get("phone")),
    ):
        if phone is not None and not E164.match(phone):
            raise Unprocessable("phone must be E.164", loc=loc)
    fields["search_text"] = lead_search_text(fields)
    fields["address"] = Address.model_construct(**fields.get("address") or {})
    agent = fields.get("listing_agent")
    if agent is not None:
        fields["listing_agent"] = ListingAgent.model_construct(**agent)
    location = fields.get("location")
    if location is not None:
        fields["location"] = GeoPoint.model_construct(**location)
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
    "build_lead",
    "bulk_import",
    "clash_filter",
    "create_lead",
    "dedupe_keys",
    "export_leads",
    "get_lead",
    "list_campaign_leads",
    "list_leads",
    "merge_leads",
    "merged_values",
    "search_filter",
    "update_lead",
]
