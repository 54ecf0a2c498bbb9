"""Campaign commands and queries: polymorphic create, patch with status rules, lists, lead links.

Leads are attached through `campaign_leads` rows (never an array in the campaign). Attaching
is all-or-nothing on validity: every id must be a live lead of the tenant, else 422 naming the
offending ids, and nothing is attached. Already attached leads are skipped, not counted.

`lead_count` is the number of the campaign's LIVE leads: links whose lead is not deleted. It
is recounted (never incremented, so retries and races cannot make it drift) from
`campaign_leads` joined to `leads`, and written through the repository (journaled), after
every change of membership or liveness: an attach (`campaign.leads_attached`), a lead merge
(links moved), and a lead's soft delete or restore (`refresh_lead_counts_for`, to be called
after each; `campaign.lead_count_changed`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from pymongo.errors import BulkWriteError

from documents.base import normalize_phone
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
from service.context import RequestContext
from service.errors import Conflict, NotFound, Unprocessable
from service.pagination import NEWEST_FIRST, PageResult, parse_sort
from service.policy import Action, policy_for
from service.repository import (
    Repository,
    change_event_type,
    equal_to,
    subtype_changes,
    tenant_filter,
    to_bson,
    uuid_filter,
)

PHONE_LIST_FIELDS = ("caller_ids", "sender_numbers")
ALL_TYPE_FIELDS = frozenset().union(*TYPE_FIELDS.values())
# Lost races on the campaign's version while re-counting its leads are retried this often.
COUNT_RETRIES = 5


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
    policy_for(CampaignBase).require(ctx, Action.create)
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
    policy_for(CampaignBase).require(ctx, Action.update)
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
    policy_for(CampaignBase).require(ctx, Action.update)
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
    if added:
        await _refresh_lead_count(ctx, campaign.id, event_type="leads_attached")
    return added


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


async def move_links(ctx: RequestContext, from_ids: Sequence[UUID], to_id: UUID) -> set[UUID]:
    """Move the links of leads `from_ids` to lead `to_id`; returns every campaign concerned.

    The target gains a link to each of their campaigns it is not in yet (the unique index
    refuses duplicates), then their links are removed: repeating it changes nothing. The
    caller recounts the returned campaigns (`refresh_lead_counts`).
    """
    moved = await campaigns_of(ctx, from_ids)
    kept = await campaigns_of(ctx, [to_id])
    if moved - kept:
        await _insert_links(
            [
                CampaignLead(
                    tenant_id=ctx.tenant_id,
                    campaign_id=campaign_id,
                    lead_id=to_id,
                    added_by=ctx.actor_id,
                )
                for campaign_id in sorted(moved - kept)
            ]
        )
    if moved:
        await CampaignLead.get_pymongo_collection().delete_many(
            tenant_filter(ctx, {"lead_id": {"$in": [uuid_filter(i) for i in from_ids]}})
        )
    return moved | kept


async def refresh_lead_counts_for(ctx: RequestContext, lead_id: UUID) -> None:
    """Recount `lead_count` of every campaign of a lead (after its soft delete or restore)."""
    await refresh_lead_counts(ctx, await campaigns_of(ctx, [lead_id]))


async def refresh_lead_counts(ctx: RequestContext, campaign_ids: Iterable[UUID]) -> None:
    """Recount `lead_count` of these campaigns of the tenant from their live leads."""
    for campaign_id in sorted(set(campaign_ids)):
        await _refresh_lead_count(ctx, campaign_id, event_type="lead_count_changed")


async def live_lead_count(ctx: RequestContext, campaign_id: UUID) -> int:
    """How many of the campaign's linked leads are live (one aggregation)."""
    pipeline: list[dict[str, Any]] = [
        {"$match": campaign_link_filter(ctx, campaign_id)},
        {"$lookup": {"from": "leads", "localField": "lead_id", "foreignField": "_id", "as": "l"}},
        {"$unwind": "$l"},
        {"$match": {"l.is_deleted": False}},
        {"$count": "n"},
    ]
    rows = await (await CampaignLead.get_pymongo_collection().aggregate(pipeline)).to_list()
    return int(rows[0]["n"]) if rows else 0


async def _refresh_lead_count(ctx: RequestContext, campaign_id: UUID, *, event_type: str) -> None:
    # Recount instead of adding: concurrent changes and retries can never make it drift. A
    # deleted campaign is kept right too, for when it is restored.
    repo = Repository(CampaignBase, ctx)
    for _ in range(COUNT_RETRIES):
        try:
            campaign = await repo.get(campaign_id, include_deleted=True)
        except NotFound:  # a link to a campaign that is not the tenant's: nothing to count
            return
        count = await live_lead_count(ctx, campaign_id)
        try:
            await repo.update(campaign, {"lead_count": count}, event_type=event_type)
            return
        except Conflict:
            continue
    raise Conflict("The campaign is being changed concurrently; retry.")


__all__ = [
    "CampaignStatus",
    "attach_leads",
    "campaign_link_filter",
    "campaigns_of",
    "create_campaign",
    "get_campaign",
    "list_campaigns",
    "live_lead_count",
    "move_links",
    "refresh_lead_counts",
    "refresh_lead_counts_for",
    "update_campaign",
]
