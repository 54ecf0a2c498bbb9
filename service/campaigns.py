"""Campaign commands and queries: polymorphic create, patch with status rules, lists, lead links.

Leads are attached through `campaign_leads` rows (never an array in the campaign). Attaching
is all-or-nothing on validity: every id must be a live lead of the tenant, else 422 naming the
offending ids, and nothing is attached. Already attached leads are skipped, not counted.

`lead_count` is the number of the campaign's LIVE leads: links whose lead is not deleted. It
is kept incrementally (issue 23: a recount reads every link of the campaign, so its cost grew
with the campaign), written through the repository (journaled) with the change: `+n` on an
attach (`campaign.leads_attached`), `-1` on a detach (`campaign.lead_detached`), `±1` when a
member is soft-deleted or restored and when a merge moves links (`campaign.lead_count_changed`).
Each link carries `counted` (whether the count includes it); every change flips it with an
update conditional on the old value and adjusts the count only when the flip happened, so a
retried or replayed change applies once. Without transactions one window remains: a crash
between a link's write and the campaign's adjustment leaves the count off by that link
(`recount_lead_count` finds it).

The members' `count=true` (issue 23) is a count of `campaign_member_state` index keys, no
lead read: each link also carries its lead's `archived` and the lead `version` it was copied
at (`sync_link_states`). Every copy is conditional on a newer version and every writer reads
the lead after writing what it changed (the archive writes the lead then copies; an attach
writes the link then reads and copies), so under a concurrent archive and attach one of them
sees the other and the newest state wins. Links written before this carry null (the count
then joins the leads) until `python -m service.cli migrate` backfills them.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from pymongo import ReturnDocument, UpdateMany, UpdateOne
from pymongo.errors import BulkWriteError

from documents.base import normalize_phone, utcnow
from documents.campaign import (
    CAMPAIGN_CLASSES,
    STATUS_TRANSITIONS,
    CampaignBase,
    CampaignLead,
    CampaignStatus,
)
from documents.integration import Integration
from documents.lead import LeadBase
from schemas.campaigns import (
    CAMPAIGN_SORT_FIELDS,
    CAMPAIGN_VIEW,
    TYPE_FIELDS,
    AnyCampaignRead,
    CampaignCreate,
    CampaignFilters,
    CampaignUpdate,
)
from service import campaign_tallies
from service.core.context import RequestContext
from service.core.errors import Conflict, NotFound, Unprocessable
from service.core.pagination import NEWEST_FIRST, PageResult, parse_sort
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import (
    Repository,
    change_event_type,
    equal_to,
    subtype_changes,
    tenant_filter,
    to_bson,
    uuid_filter,
)
from service.storage.migrations import (
    DEFAULT_BATCH_SIZE,
    Backfill,
    CollectionMigration,
    Progress,
    as_bson_id,
    register_backfill,
)

PHONE_LIST_FIELDS = ("caller_ids", "sender_numbers")
ALL_TYPE_FIELDS = frozenset().union(*TYPE_FIELDS.values())
# Lost races on the campaign's version while adjusting its lead count are retried this often.
COUNT_RETRIES = 5


POLICY: ResourcePolicy[CampaignBase] = register_policy(ResourcePolicy(model=CampaignBase))
"""Members and above write CampaignBase documents (the default roles)."""


def _normalize_phones(changes: dict[str, Any], region: str) -> None:
    for field in PHONE_LIST_FIELDS:
        if changes.get(field) is None:
            continue
        normalised = []
        for i, raw in enumerate(changes[field]):
            try:
                normalised.append(normalize_phone(raw, region))
            except ValueError as exc:
                raise Unprocessable(str(exc), loc=["body", field, i]) from None
        changes[field] = list(dict.fromkeys(normalised))


async def _check_integrations(ctx: RequestContext, refs: Sequence[Any] | None) -> None:
    """422 unless every `integration_id` names a live integration of the caller's tenant."""
    if not refs:
        return
    ids = [r["integration_id"] if isinstance(r, dict) else r.integration_id for r in refs]
    found = {i.id for i in await Repository(Integration, ctx).get_many(ids)}
    for position, integration_id in enumerate(ids):
        if integration_id not in found:
            raise Unprocessable(
                f"No integration {integration_id} in this tenant.",
                loc=["body", "integrations", position, "integration_id"],
            )


async def list_campaigns(
    *, ctx: RequestContext, filters: CampaignFilters
) -> PageResult[AnyCampaignRead]:
    """A page of the tenant's campaigns (newest first or `sort`ed), by type, status and tag."""
    query = equal_to(filters, {"type": "type", "status": "status", "tag": "tags"})
    sort = parse_sort(filters.sort, fields=CAMPAIGN_SORT_FIELDS, default=NEWEST_FIRST)
    return await Repository(CampaignBase, ctx).page_for(
        query, filters, sort=sort, view=CAMPAIGN_VIEW
    )


async def create_campaign(*, ctx: RequestContext, data: CampaignCreate) -> CampaignBase:
    """Create a campaign of `data.type` owned by the calling user."""
    POLICY.require(ctx, Action.create)
    fields = data.model_dump(exclude={"type"})
    _normalize_phones(fields, ctx.phone_region)
    await _check_integrations(ctx, fields.get("integrations"))
    doc = CAMPAIGN_CLASSES[data.type](tenant_id=ctx.tenant_id, user_id=ctx.user_id, **fields)
    return await Repository(CampaignBase, ctx).create(doc)


async def get_campaign(*, ctx: RequestContext, id: UUID) -> AnyCampaignRead:
    """One campaign of the tenant as the API shows it (404 if missing, deleted or another's)."""
    return await Repository(CampaignBase, ctx).read(id, CAMPAIGN_VIEW)


async def update_campaign(
    *,
    ctx: RequestContext,
    id: UUID,
    data: CampaignUpdate,
    expected_version: int | None = None,
) -> CampaignBase:
    """Patch a campaign: its type's fields only, status along the allowed transitions."""
    POLICY.require(ctx, Action.update)
    repo = Repository(CampaignBase, ctx)
    doc = await repo.get(id)
    changes = subtype_changes(doc, data.changes(), foreign=ALL_TYPE_FIELDS - TYPE_FIELDS[doc.type])
    _normalize_phones(changes, ctx.phone_region)
    await _check_integrations(ctx, changes.get("integrations"))
    status = changes.get("status")
    if status is not None and status != doc.status and status not in STATUS_TRANSITIONS[doc.status]:
        raise Conflict(f"A {doc.status.value} campaign cannot become {status.value}.")
    starts_at = changes.get("starts_at", doc.starts_at)
    ends_at = changes.get("ends_at", doc.ends_at)
    if starts_at and ends_at and ends_at <= starts_at:
        raise Unprocessable("ends_at must be after starts_at", loc=["body", "ends_at"])
    return await repo.update(
        doc,
        changes,
        expected_version=expected_version,
        event_type=change_event_type(changes, doc.status),
    )


async def attach_leads(*, ctx: RequestContext, id: UUID, lead_ids: Sequence[UUID]) -> int:
    """Attach live leads of the tenant to a campaign; returns how many were newly attached."""
    POLICY.require(ctx, Action.update)
    repo = Repository(CampaignBase, ctx)
    campaign = await repo.get(id)
    wanted = list(dict.fromkeys(lead_ids))
    found = {lead.id for lead in await Repository(LeadBase, ctx).get_many(wanted)}
    unknown = [i for i, lead_id in enumerate(lead_ids) if lead_id not in found]
    if unknown:
        raise Unprocessable(
            f"{len(unknown)} lead id(s) are not live leads of this tenant; nothing was attached.",
            loc=["body", "lead_ids", unknown[0]],
        )
    rows = [
        CampaignLead(
            tenant_id=ctx.tenant_id, campaign_id=campaign.id, lead_id=lead_id, added_by=ctx.actor_id
        )
        for lead_id in wanted
    ]
    added = await _insert_links(rows)
    await sync_link_states(ctx, wanted)  # read after the insert: see `sync_link_states`
    if added:
        await _adjust_lead_count(ctx, campaign.id, added, event_type="leads_attached")
        await campaign_tallies.links_attached(ctx, campaign.id, wanted)
    return added


async def detach_lead(*, ctx: RequestContext, id: UUID, lead_id: UUID) -> None:
    """Detach a lead from a campaign (404 unless both are the tenant's and linked)."""
    POLICY.require(ctx, Action.update)
    campaign = await Repository(CampaignBase, ctx).get(id)
    link = await CampaignLead.get_pymongo_collection().find_one_and_delete(
        campaign_link_filter(ctx, campaign.id) | {"lead_id": uuid_filter(lead_id)}
    )
    if link is None:
        raise NotFound(f"lead {lead_id} is not attached to campaign {id}")
    delta = -1 if await _counted(ctx, link) else 0
    await campaign_tallies.link_gone(ctx, link, was_counted=bool(delta))
    await _adjust_lead_count(ctx, campaign.id, delta, event_type="lead_detached", touch=True)


async def _counted(ctx: RequestContext, link: Mapping[str, Any]) -> bool:
    # A link written before `counted` existed is counted when its lead is live (the recount
    # that set `lead_count` then counted exactly those).
    if "counted" in link:
        return bool(link["counted"])
    lead = await Repository(LeadBase, ctx).find_one({"_id": uuid_filter(link["lead_id"])})
    return lead is not None


async def _insert_links(rows: list[CampaignLead]) -> int:
    # One unordered insert; the unique (tenant, campaign, lead) index rejects existing links.
    raw = [to_bson(row) for row in rows]
    for row in raw:
        row.pop("revision_id", None)
    collection = CampaignLead.get_pymongo_collection()
    try:
        result = await collection.insert_many(raw, ordered=False)
    except BulkWriteError as exc:
        if any(e.get("code") != 11000 for e in exc.details.get("writeErrors", [])):
            raise
        return int(exc.details.get("nInserted", 0))
    return len(result.inserted_ids)


def campaign_link_filter(ctx: RequestContext, campaign_id: UUID) -> dict[str, Any]:
    """The `campaign_leads` rows of one campaign in the caller's tenant."""
    return tenant_filter(ctx, {"campaign_id": uuid_filter(campaign_id)})


async def campaigns_of(ctx: RequestContext, lead_ids: Sequence[UUID]) -> set[UUID]:
    """The campaigns (of the tenant) these leads are linked to, in one query."""
    rows = CampaignLead.get_pymongo_collection().find(
        tenant_filter(ctx, {"lead_id": {"$in": [uuid_filter(i) for i in lead_ids]}}),
        {"campaign_id": 1, "_id": 0},
    )
    return {row["campaign_id"] async for row in rows}


async def _uncount(ctx: RequestContext, lead_ids: Sequence[UUID], live: bool) -> Counter[UUID]:
    """Set `counted` = `live` on these leads' links; the change per campaign it makes.

    Each link flips at most once per liveness change (the update is conditional on the old
    state): a retry or a replay of the same change finds nothing left to flip.
    """
    collection = CampaignLead.get_pymongo_collection()
    query = tenant_filter(ctx, {"lead_id": {"$in": [uuid_filter(i) for i in lead_ids]}})
    deltas: Counter[UUID] = Counter()
    async for link in collection.find(query | {"counted": {"$ne": live}}):
        flipped = await collection.find_one_and_update(
            tenant_filter(ctx, {"_id": link["_id"], "counted": {"$ne": live}}),
            {"$set": {"counted": live}},
            return_document=ReturnDocument.AFTER,
        )
        if flipped is not None:
            deltas[link["campaign_id"]] += 1 if live else -1
            await campaign_tallies.link_counted_flipped(ctx, flipped, live)
    return deltas


async def move_links(ctx: RequestContext, from_ids: Sequence[UUID], to_id: UUID) -> set[UUID]:
    """Move the links of leads `from_ids` to lead `to_id` and keep `lead_count` in step.

    The sources' links stop counting (each flips once, see `_uncount`), the target gains a
    counted link to each of their campaigns it is not in yet (the unique index refuses
    duplicates), then the sources' links are removed: repeating it changes nothing. Returns
    every campaign concerned.
    """
    deltas = await _uncount(ctx, from_ids, live=False)
    moved = await campaigns_of(ctx, from_ids)
    kept = await campaigns_of(ctx, [to_id])
    for campaign_id in sorted(moved - kept):
        added = await _insert_links(
            [
                CampaignLead(
                    tenant_id=ctx.tenant_id,
                    campaign_id=campaign_id,
                    lead_id=to_id,
                    added_by=ctx.actor_id,
                )
            ]
        )
        deltas[campaign_id] += added
    if moved:
        await CampaignLead.get_pymongo_collection().delete_many(
            tenant_filter(ctx, {"lead_id": {"$in": [uuid_filter(i) for i in from_ids]}})
        )
    await sync_link_states(ctx, [to_id])
    for campaign_id in sorted(moved):  # the sources' touchpoints are the target's now
        await campaign_tallies.links_attached(ctx, campaign_id, [to_id])
    await _apply(ctx, deltas)
    return moved | kept


async def sync_link_states(ctx: RequestContext, lead_ids: Sequence[UUID]) -> None:
    """Copy each lead's `is_archived` onto its links, unless a link holds a newer version.

    Called after every change of it (archive, unarchive: the lead policy's `after_archive`)
    and after links are written (attach, merge): a writer reads the lead AFTER writing its
    link, so of an archive and an attach racing, either the archive's copy sees the new link
    or the attach's read sees the archived lead; the version guard makes the newest state
    win whichever copy lands last. One bulk write for all the leads.
    """
    if not lead_ids:
        return
    leads = LeadBase.get_pymongo_collection().find(
        Repository(LeadBase, ctx).scope(
            {"_id": {"$in": [uuid_filter(i) for i in lead_ids]}}, include_deleted=True
        ),
        {"version": 1, "is_archived": 1},
    )
    writes = [
        UpdateMany(
            tenant_filter(ctx, {"lead_id": lead["_id"]})
            | {"lead_version": {"$not": {"$gte": lead["version"]}}},
            {"$set": {"archived": bool(lead.get("is_archived")), "lead_version": lead["version"]}},
        )
        async for lead in leads
    ]
    if writes:
        await CampaignLead.get_pymongo_collection().bulk_write(writes, ordered=False)


async def count_members(
    ctx: RequestContext, campaign_id: UUID, *, include_deleted: bool, include_archived: bool
) -> int | None:
    """The campaign's members counted from `campaign_member_state` keys alone (no lead read).

    None while some link of the campaign predates the copied lead state (`archived` null,
    until `migrate` has run): the caller then counts through the leads.
    """
    links = CampaignLead.get_pymongo_collection()
    scope = campaign_link_filter(ctx, campaign_id)
    if await links.count_documents(scope | {"archived": None}, limit=1):
        return None
    both = {"$in": [False, True]}
    state = {
        "archived": both if include_archived else False,
        "counted": both if include_deleted else True,
    }
    return int(await links.count_documents(scope | state))


async def lead_liveness_changed(ctx: RequestContext, lead_id: UUID, *, live: bool) -> None:
    """Count or stop counting a lead in each of its campaigns (after its delete or restore)."""
    await _apply(ctx, await _uncount(ctx, [lead_id], live))


async def _apply(ctx: RequestContext, deltas: Counter[UUID]) -> None:
    for campaign_id in sorted(deltas):
        if deltas[campaign_id]:
            await _adjust_lead_count(
                ctx, campaign_id, deltas[campaign_id], event_type="lead_count_changed"
            )


async def _adjust_lead_count(
    ctx: RequestContext, campaign_id: UUID, delta: int, *, event_type: str, touch: bool = False
) -> None:
    # Added, not recounted: the work is one campaign read and write whatever its size. The
    # links' `counted` flags make each change apply once (see `_uncount`). `touch` journals
    # a membership change even when the count stays (detaching a deleted lead). A deleted
    # campaign is kept right too, for when it is restored.
    repo = Repository(CampaignBase, ctx)
    for _ in range(COUNT_RETRIES):
        try:
            campaign = await repo.get(campaign_id, include_deleted=True)
        except NotFound:  # a link to a campaign that is not the tenant's: nothing to count
            return
        changes: dict[str, Any] = {"lead_count": max(0, campaign.lead_count + delta)}
        if touch:
            changes["leads_changed_at"] = utcnow()
        try:
            await repo.update(campaign, changes, event_type=event_type)
            return
        except Conflict:
            continue
    raise Conflict("The campaign is being changed concurrently; retry.")


async def recount_lead_count(ctx: RequestContext, campaign_id: UUID) -> int:
    """How many of the campaign's links count (offline checks and tests; reads every link)."""
    query = campaign_link_filter(ctx, campaign_id)
    n = 0
    async for link in CampaignLead.get_pymongo_collection().find(query):
        n += await _counted(ctx, link)
    return n


async def backfill_link_states(
    *, batch_size: int = DEFAULT_BATCH_SIZE, progress: Progress | None = None, dry_run: bool = False
) -> CollectionMigration:
    """Copy each lead's state onto campaign links written before the links carried it.

    Links whose `archived` is null get the lead's `is_archived` and `version` (and, when they
    have no `counted` either, whether the lead is live), so the members' `count=true` is a
    count of index keys (issue 23, `sync_link_states`). Not a shape
    change an upcaster can make (it reads the lead), so it is a step of its own: each write
    is conditional on `archived` still being null, so a live writer's copy wins and a rerun
    finds nothing left; the walk is in `_id` order, batch by batch. A step of `migrate`
    (registered below).
    """
    name = f"{CampaignLead.get_collection_name()} (lead state)"
    report = CollectionMigration(collection=name, schema_version=0)
    links = CampaignLead.get_pymongo_collection()
    leads = LeadBase.get_pymongo_collection()
    pending: dict[str, Any] = {"archived": None}
    last_id = None
    while True:
        query = pending if last_id is None else {**pending, "_id": {"$gt": last_id}}
        batch = await links.find(query).sort("_id", 1).limit(batch_size).to_list()
        if not batch:
            break
        last_id = as_bson_id(batch[-1]["_id"])
        found: dict[Any, dict[str, Any]] = {}
        for tenant in {raw["tenant_id"] for raw in batch}:
            ids = [raw["lead_id"] for raw in batch if raw["tenant_id"] == tenant]
            async for lead in leads.find(
                {"tenant_id": tenant, "_id": {"$in": ids}},
                {"version": 1, "is_archived": 1, "archived_at": 1, "is_deleted": 1},
            ):
                found[(tenant, lead["_id"])] = lead
        writes = []
        for raw in batch:
            lead = found.get((raw["tenant_id"], raw["lead_id"]), {})
            state: dict[str, Any] = {
                "archived": bool(lead.get("is_archived") or lead.get("archived_at")),
                "lead_version": int(lead.get("version", 0)),
            }
            if "counted" not in raw:
                state["counted"] = bool(lead) and not lead.get("is_deleted")
            guard = {"_id": raw["_id"], "tenant_id": raw["tenant_id"], "archived": None}
            writes.append(UpdateOne(guard, {"$set": state}))
        report.pending += len(batch)
        if not dry_run:
            result = await links.bulk_write(writes, ordered=False)
            report.migrated += result.modified_count
            report.skipped += len(writes) - result.matched_count
        if progress:
            progress(name, report.pending, report.pending)
    return report


register_backfill(Backfill(name="link_states", model=CampaignLead, run=backfill_link_states))


__all__ = [
    "CampaignStatus",
    "attach_leads",
    "backfill_link_states",
    "campaign_link_filter",
    "campaigns_of",
    "count_members",
    "create_campaign",
    "detach_lead",
    "get_campaign",
    "lead_liveness_changed",
    "list_campaigns",
    "move_links",
    "recount_lead_count",
    "sync_link_states",
    "update_campaign",
]
