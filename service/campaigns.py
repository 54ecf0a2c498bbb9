"""Campaign commands and queries: polymorphic create, patch with status rules, lists, lead links.

Leads are attached through `campaign_leads` rows (never an array in the campaign). Attaching
is all-or-nothing on validity: every id must be a live lead of the tenant, else 422 naming the
offending ids, and nothing is attached. Already attached leads are skipped, not counted.
The campaign's `lead_count` is then re-counted from `campaign_leads` and written through the
repository, so each attach that changed something is one journaled `campaign.leads_attached`.
"""

from __future__ import annotations

from collections.abc import Sequence
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
from schemas.campaigns import TYPE_FIELDS, CampaignCreate, CampaignFilters, CampaignUpdate
from service.context import RequestContext
from service.errors import Conflict, Unprocessable
from service.pagination import PageResult
from service.policy import Action, policy_for
from service.repository import Repository, tenant_filter, to_bson, uuid_filter

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
) -> PageResult[CampaignBase]:
    """A page of the tenant's campaigns, newest first, filtered by type, status and tag."""
    query: dict[str, Any] = {}
    if filters.type is not None:
        query["type"] = filters.type.value
    if filters.status is not None:
        query["status"] = filters.status.value
    if filters.tag is not None:
        query["tags"] = filters.tag
    return await Repository(CampaignBase, ctx).page(
        query,
        limit=filters.limit,
        cursor=filters.cursor,
        include_deleted=filters.include_deleted,
        include_archived=filters.include_archived,
    )


async def create_campaign(*, ctx: RequestContext, data: CampaignCreate) -> CampaignBase:
    """Create a campaign of `data.type` owned by the calling user."""
    policy_for(CampaignBase).require(ctx, Action.create)
    fields = data.model_dump(exclude={"type"})
    _normalize_phones(fields, ctx.phone_region)
    await _check_integrations(ctx, fields.get("integrations"))
    doc = CAMPAIGN_CLASSES[data.type](tenant_id=ctx.tenant_id, user_id=ctx.user_id, **fields)
    return await Repository(CampaignBase, ctx).create(doc)


async def get_campaign(*, ctx: RequestContext, id: UUID) -> CampaignBase:
    """One campaign of the tenant (404 if missing, deleted or another tenant's)."""
    return await Repository(CampaignBase, ctx).get(id)


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
    changes = data.changes()
    new_type = changes.pop("type", None)
    if new_type is not None and new_type != doc.type:
        raise Unprocessable("A campaign's type cannot change.", loc=["body", "type"])
    foreign = sorted((changes.keys() & ALL_TYPE_FIELDS) - TYPE_FIELDS[doc.type])
    if foreign:
        raise Unprocessable(
            f"{doc.type.value} campaigns have no field {foreign[0]}.", loc=["body", foreign[0]]
        )
    _normalize_phones(changes, ctx.phone_region)
    await _check_integrations(ctx, changes.get("integrations"))
    status = changes.get("status")
    if status is not None and status != doc.status and status not in STATUS_TRANSITIONS[doc.status]:
        raise Conflict(f"A {doc.status.value} campaign cannot become {status.value}.")
    starts_at = changes.get("starts_at", doc.starts_at)
    ends_at = changes.get("ends_at", doc.ends_at)
    if starts_at and ends_at and ends_at <= starts_at:
        raise Unprocessable("ends_at must be after starts_at", loc=["body", "ends_at"])
    event_type = "status_changed" if status is not None and status != doc.status else "updated"
    return await repo.update(doc, changes, expected_version=expected_version, event_type=event_type)


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
        await _refresh_lead_count(ctx, campaign)
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


async def _refresh_lead_count(ctx: RequestContext, campaign: CampaignBase) -> None:
    # Re-count instead of adding: concurrent attaches and retries can never make it drift.
    repo = Repository(CampaignBase, ctx)
    collection = CampaignLead.get_pymongo_collection()
    for _ in range(COUNT_RETRIES):
        count = await collection.count_documents(campaign_link_filter(ctx, campaign.id))
        try:
            await repo.update(campaign, {"lead_count": count}, event_type="leads_attached")
            return
        except Conflict:
            campaign = await repo.get(campaign.id)
    raise Conflict("The campaign is being changed concurrently; retry.")


__all__ = [
    "CampaignStatus",
    "attach_leads",
    "campaign_link_filter",
    "create_campaign",
    "get_campaign",
    "list_campaigns",
    "update_campaign",
]
