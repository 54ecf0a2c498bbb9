"""Lead queries: lists (filters, sorts, counts), search, geography, campaign members, export.

Search (`q`). Agents type fragments: a name, part of an email, a phone as they read it aloud,
a street. Each lead stores `search_tokens` (documents/lead.py `lead_search_tokens`): the folded
words of its names, company, MLS id and address; its email whole, its local part, its domain
and their words; its phone digits and their suffixes of 4 or more digits. A term is folded and
split into words the same way, and a lead matches when EVERY word of the term starts one of
its tokens (an anchored prefix: "silv" finds Silva, "@example.org" finds any address at
example.org, "555-0100" and "(415) 555-01" find +1 415 555 0100; "ilv" finds nothing, as no
word starts with it). A phone-like term also matches by its digits (and, typed with a
national trunk `0`, without it). The longest word bounds a range of the multikey index
`(tenant_id, is_deleted, search_tokens, _id)`, so a search reads the leads having a token with
that prefix and no others, at any tenant size (issue 23; the unanchored regex on `search_text`
before read every live lead key of the tenant). A term without a word (only punctuation)
matches nothing. The term is at most 100 characters and each word is `re.escape`d.

Geography (`near`, `within_km`). Without `sort`, leads are returned nearest first with
`$nearSphere` (2dsphere index, tenant-prefixed). `$nearSphere` orders by distance, so its
pages cannot use the usual `(field, _id)` seek: the cursor holds the last item's distance and
id, computed here with the same great-circle formula on MongoDB's sphere; the next query asks
for `$minDistance` just below that distance and drops what is not after the cursor in
`(distance, _id)` order. Because the server's distances may differ from ours in the last
digits and ties come back in any order, documents within `NEAR_MARGIN_M` of the farthest one
fetched are held back unless the batch reached the end (they might be out of order with ones
not yet fetched); when that leaves the page short, the rest is asked for from where the safe
part ends (`$minDistance` again), not refetched from the start, so a page reads about
`limit` leads plus the tie cluster at its end (issue 23: the batch was multiplied and
refetched until a dense cluster of equal distances came whole). The embedded backend walks
its 2dsphere index outward in rings (service/embedded/geo.py), as MongoDB's does.
With `sort`, `near` is a radius filter (`$geoWithin` `$centerSphere`), which any sort and
cursor combine with; `count=true` always counts with `$geoWithin` (a server refuses
`$nearSphere` in a count).
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Iterable
from typing import Any
from uuid import UUID

from documents.campaign import CampaignBase, CampaignLead
from documents.lead import LeadBase, search_words
from schemas.leads import (
    LEAD_SORT_FIELDS,
    LEAD_VIEW,
    AnyLeadRead,
    CampaignLeadFilters,
    LeadExportParams,
    LeadFilters,
)
from service import campaigns, pipelines
from service.core.context import RequestContext
from service.core.geo import EARTH_RADIUS_M, great_circle_m, point_of
from service.core.journal import to_bson
from service.core.pagination import (
    BATCH_SIZE,
    NEWEST_FIRST,
    FieldKind,
    PageResult,
    Position,
    Sort,
    StoredPage,
    after,
    decode_cursor,
    encode_cursor,
    field_kind,
    parse_sort,
    read_cursor,
    with_condition,
)
from service.core.repository import Repository, equal_to, uuid_filter

# `near` paging (see the module docstring): the safety band in metres, and how many more
# documents than a page a `$nearSphere` batch asks for.
NEAR_MARGIN_M = 1.0
NEAR_SLACK = 8
DISTANCE = FieldKind(float)
_PHONE_LIKE = re.compile(r"^[\d\s()+\-./]+$")

# -- lists and search ------------------------------------------------------------------------------


def search_filter(q: str) -> dict[str, Any]:
    """The condition on `search_tokens` for a search term (see the module docstring)."""
    alternatives = [search_words(q)]
    digits = re.sub(r"\D", "", q)
    if len(digits) >= 3 and _PHONE_LIKE.match(q):
        alternatives.append([digits])
        national = digits.lstrip("0")  # "020 7183 8750": E.164 drops the trunk prefix
        if national != digits and len(national) >= 3:
            alternatives.append([national])
    branches = [_all_prefixes(words) for words in alternatives if words]
    unique = [b for i, b in enumerate(branches) if b not in branches[:i]]
    if not unique:
        return {"search_tokens": {"$in": []}}  # nothing searchable typed: nothing matches
    return unique[0] if len(unique) == 1 else {"$or": unique}


def _all_prefixes(words: list[str]) -> dict[str, Any]:
    # Every word must start a token; the longest (the most selective, usually) bounds the
    # index range, the others are checked on the candidates it selects.
    # (`$elemMatch` keeps each of them to one token and out of the bounds' intersection.)
    ordered = sorted(dict.fromkeys(words), key=len, reverse=True)
    condition: dict[str, Any] = {"search_tokens": {"$regex": "^" + re.escape(ordered[0])}}
    if len(ordered) > 1:
        condition["$and"] = [
            {"search_tokens": {"$elemMatch": {"$regex": "^" + re.escape(w)}}} for w in ordered[1:]
        ]
    return condition


def _lead_query(
    filters: CampaignLeadFilters | LeadExportParams, ctx: RequestContext
) -> dict[str, Any]:
    query = equal_to(filters, {"type": "type", "status": "status", "tag": "tags"})
    if filters.assignee_id is not None:  # `me`: the calling user (an API key has no leads)
        me = filters.assignee_id == "me"
        query["assignee_id"] = to_bson(ctx.user_id if me else filters.assignee_id)
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
    query = _lead_query(filters, ctx)
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
    # `floor`: every lead nearer than it is in `rows` already (or before the cursor).
    floor = position.value if position is not None else 0.0
    collection = LeadBase.get_pymongo_collection()
    want = filters.limit + 1
    fetch = want + NEAR_SLACK
    rows: list[tuple[float, UUID, dict[str, Any]]] = []
    while True:
        scope = repo.scope(
            {**query, **_nearest(point, filters.within_km, max(0.0, floor - NEAR_MARGIN_M))},
            include_deleted=filters.include_deleted,
            include_archived=filters.include_archived,
        )
        raws = await collection.find(scope, limit=fetch).to_list()
        measured = [r for r in _by_distance(raws, point) if r[0] >= floor]
        fresh = sorted((r for r in measured if _is_after(r, position)), key=lambda r: r[:2])
        if len(raws) < fetch:  # the whole remainder is here: nothing can come before it
            rows += fresh
            break
        # The batch's far end may be out of order with leads not fetched yet: it is asked
        # for again from `horizon`, with room for what was held back (a tie cluster larger
        # than that doubles the batch), until the page and its look-ahead are safe.
        horizon = max(r[0] for r in measured) - NEAR_MARGIN_M if measured else floor
        safe = [r for r in fresh if r[0] < horizon]
        rows += safe
        if len(rows) >= want:
            break
        held = sum(1 for r in measured if r[0] >= horizon)
        fetch = fetch * 2 if not safe else want - len(rows) + held + NEAR_SLACK
        floor = max(floor, horizon)
    raws = [raw for _, _, raw in rows[: filters.limit]]
    total = None
    if filters.count:
        counted = repo.scope(
            {**query, **_within(point, filters.within_km)},
            include_deleted=filters.include_deleted,
            include_archived=filters.include_archived,
        )
        total = await collection.count_documents(counted)
    if len(rows) <= filters.limit:
        return StoredPage(raws, LEAD_VIEW, None, total)
    distance, last_id, _ = rows[filters.limit - 1]
    return StoredPage(raws, LEAD_VIEW, encode_cursor(sort, distance, last_id), total)


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
    pipelines.join_leads("lead_id", into="l"),
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
        _lead_query(filters, ctx),
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
    # In growing batches from an index in the list's order, each batch joined in one query,
    # until the page (and its look-ahead) is full: a page reads about `limit` links and
    # leads when most members match, however large the campaign (issue 23; the pipeline
    # before joined every link when the embedded backend evaluated it).
    sort = _lead_sort(filters)
    scope = Repository(LeadBase, ctx).scope(
        _lead_query(filters, ctx),
        include_deleted=filters.include_deleted,
        include_archived=filters.include_archived,
    )
    if sort == NEWEST_FIRST:
        raws = await _members_by_link(ctx, campaign_id, scope, filters)
    else:
        raws = await _members_by_lead(ctx, campaign_id, scope, sort, filters)
    total = None
    if filters.count:
        total = await _count_members(ctx, campaign_id, filters)
    if len(raws) <= filters.limit:
        return StoredPage(raws, LEAD_VIEW, None, total)
    last = raws[filters.limit - 1]
    value = last["_id"] if sort.field == "_id" else last.get(sort.field)
    next_cursor = encode_cursor(sort, value, last["_id"])
    return StoredPage(raws[: filters.limit], LEAD_VIEW, next_cursor, total)


async def _count_members(
    ctx: RequestContext, campaign_id: UUID, filters: CampaignLeadFilters
) -> int:
    # Without lead filters the links' copied lead state answers from index keys alone (issue
    # 23: the join read every member); a filter on the leads counts through the join, whose
    # work grows with the campaign.
    plain = _lead_query(filters, ctx) == {}
    if plain:
        total = await campaigns.count_members(
            ctx,
            campaign_id,
            include_deleted=filters.include_deleted,
            include_archived=filters.include_archived,
        )
        if total is not None:
            return total
    counting = _members_pipeline(ctx, campaign_id, filters, counting=True)
    rows = await (await CampaignLead.get_pymongo_collection().aggregate(counting)).to_list()
    return int(rows[0]["n"]) if rows else 0


async def _members_by_link(
    ctx: RequestContext, campaign_id: UUID, scope: dict[str, Any], filters: CampaignLeadFilters
) -> list[dict[str, Any]]:
    """Newest lead first: the links' unique index in lead_id order (UUIDv7), then the leads."""
    links = campaigns.campaign_link_filter(ctx, campaign_id)
    if filters.cursor:
        links["lead_id"] = decode_cursor(filters.cursor, NEWEST_FIRST)["_id"]
    want, found = filters.limit + 1, []
    leads = LeadBase.get_pymongo_collection()
    size = max(want, 16)
    while True:
        rows = await (
            CampaignLead.get_pymongo_collection()
            .find(links, {"lead_id": 1, "_id": 0}, sort=[("lead_id", -1)], limit=size)
            .to_list()
        )
        ids = [uuid_filter(row["lead_id"]) for row in rows]
        if ids:
            query = with_condition(scope, {"_id": {"$in": ids}})
            by_id = {raw["_id"]: raw async for raw in leads.find(query)}
            found += [by_id[row["lead_id"]] for row in rows if row["lead_id"] in by_id]
        if len(found) >= want or len(rows) < size:
            return found[:want]
        links["lead_id"] = {"$lt": ids[-1]}
        size = min(size * 2, BATCH_SIZE)


async def _members_by_lead(
    ctx: RequestContext,
    campaign_id: UUID,
    scope: dict[str, Any],
    sort: Sort,
    filters: CampaignLeadFilters,
) -> list[dict[str, Any]]:
    """Another order: the leads' list index in that order, keeping the campaign's members.

    Reads about `limit` leads divided by the share of the tenant's matching leads that are
    members: bounded by the page for a campaign holding most of them, as a large one does.
    """
    kind = field_kind(LeadBase, sort.field)
    query = scope
    if filters.cursor:
        query = with_condition(scope, decode_cursor(filters.cursor, sort, kind))
    want, found = filters.limit + 1, []
    links = CampaignLead.get_pymongo_collection()
    size = max(want, 16)
    while True:
        rows = (
            await LeadBase.get_pymongo_collection()
            .find(query, sort=sort.order(), limit=size)
            .to_list()
        )
        if rows:
            linked = campaigns.campaign_link_filter(ctx, campaign_id)
            linked["lead_id"] = {"$in": [uuid_filter(row["_id"]) for row in rows]}
            members = {row["lead_id"] async for row in links.find(linked, {"lead_id": 1})}
            found += [row for row in rows if row["_id"] in members]
        if len(found) >= want or len(rows) < size:
            return found[:want]
        last = rows[-1]
        value = last["_id"] if sort.field == "_id" else last.get(sort.field)
        position = read_cursor(encode_cursor(sort, value, last["_id"]), sort, kind)
        query = with_condition(scope, after(sort, position, nullable=kind.nullable))
        size = min(size * 2, BATCH_SIZE)


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
    query = _lead_query(params, ctx)
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


__all__ = [
    "export_leads",
    "list_campaign_leads",
    "list_leads",
    "search_filter",
]
