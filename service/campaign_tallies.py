"""Campaign analytics counters kept incrementally (issue 23): one `CampaignTally` row each.

`GET /v1/analytics/campaigns/{id}` grouped every event of the campaign and looked up each
contacted lead on every request; now it reads one row. The row is changed by `$inc` only:

* an event, when its insert happened (a retried request finds the event stored and adds
  nothing): `events_total`, `by_type.<type>` and `violations` (`compliance.allowed` false);
* `leads_contacted` counts the links that are `counted` (a live lead) and `contacted` (the lead
  has a touchpoint in the campaign). Each flag flips with a single-document update conditional
  on its old value, and the count moves only with the flip that happened, so a retry or a
  concurrent change applies once: the event sets `contacted` (counting it when the link was
  `counted` at that instant), a lead's delete/restore/merge flips `counted` (counting the
  link when it was `contacted` at that instant), attach sets `contacted` for a lead that
  already has touchpoints in the campaign, detach removes a link that counted.

Without transactions one window remains, as for `lead_count`: a crash between a write and its
`$inc` leaves the row off by that one change; `recount` (the pipeline of
service/pipelines.py `campaign_analytics`) finds it and `rebuild` replaces the row.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from uuid import UUID

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from documents.campaign import CampaignLead
from documents.event import TouchpointEvent
from documents.read_models import CampaignTally
from service import pipelines
from service.core.context import RequestContext
from service.core.repository import Repository, tenant_filter, uuid_filter
from service.pipelines import CHANNELS

REBUILD_CHUNK = 1000  # lead ids per `$in` when `rebuild` sets the links' flags


def _key(ctx: RequestContext, campaign_id: UUID) -> dict[str, Any]:
    return tenant_filter(ctx, {"_id": uuid_filter(campaign_id)})


async def _inc(ctx: RequestContext, campaign_id: UUID, amounts: Mapping[str, int]) -> None:
    # One atomic upsert: the row appears with the campaign's first counted change.
    changes = {field: n for field, n in amounts.items() if n}
    if not changes:
        return
    try:
        await CampaignTally.get_pymongo_collection().update_one(
            _key(ctx, campaign_id), {"$inc": changes}, upsert=True
        )
    except DuplicateKeyError:  # the id is another tenant's campaign: nothing of ours to count
        return


async def event_recorded(ctx: RequestContext, event: TouchpointEvent) -> None:
    """Count a newly inserted touchpoint (call only when the insert happened)."""
    violation = event.compliance is not None and event.compliance.allowed is False
    await _inc(
        ctx,
        event.campaign_id,
        {"events_total": 1, f"by_type.{event.type}": 1, "violations": int(violation)},
    )
    await _set_contacted(ctx, event.campaign_id, [event.lead_id])


async def _set_contacted(ctx: RequestContext, campaign_id: UUID, lead_ids: Sequence[UUID]) -> None:
    # Flip `contacted` on these leads' links of the campaign; count each flip of a counted link.
    collection = CampaignLead.get_pymongo_collection()
    gained = 0
    for lead_id in lead_ids:
        before = await collection.find_one_and_update(
            tenant_filter(
                ctx,
                {
                    "campaign_id": uuid_filter(campaign_id),
                    "lead_id": uuid_filter(lead_id),
                    "contacted": {"$ne": True},
                },
            ),
            {"$set": {"contacted": True}},
            return_document=ReturnDocument.BEFORE,
        )
        if before is not None and before.get("counted", True):
            gained += 1
    await _inc(ctx, campaign_id, {"leads_contacted": gained})


async def links_attached(ctx: RequestContext, campaign_id: UUID, lead_ids: Sequence[UUID]) -> None:
    """Mark newly attached leads that already have touchpoints in the campaign (re-attach).

    One `find_one` per lead on `events.tenant_lead_timeline`: bounded by the lead's own
    touchpoints and the request's leads, never by the campaign.
    """
    events = Repository(TouchpointEvent, ctx)
    touched = [
        lead_id
        for lead_id in lead_ids
        if await events.find_one(
            {"lead_id": uuid_filter(lead_id), "campaign_id": uuid_filter(campaign_id)}
        )
        is not None
    ]
    await _set_contacted(ctx, campaign_id, touched)


async def link_gone(ctx: RequestContext, link: Mapping[str, Any], *, was_counted: bool) -> None:
    """A removed (detached) link stops counting as contacted if it did."""
    if was_counted and link.get("contacted"):
        await _inc(ctx, link["campaign_id"], {"leads_contacted": -1})


async def link_counted_flipped(ctx: RequestContext, link: Mapping[str, Any], live: bool) -> None:
    """A link's `counted` flipped to `live` (`link` as it is after the flip)."""
    if link.get("contacted"):
        await _inc(ctx, link["campaign_id"], {"leads_contacted": 1 if live else -1})


def _figures(totals: Mapping[str, Any], by_type: Mapping[str, Any]) -> dict[str, Any]:
    """The counters in the shape analytics answer (zero where a source has no value)."""
    return {
        "events_total": totals.get("events_total", 0),
        "events_by_type": {c: by_type.get(c, 0) for c in CHANNELS},
        "leads_contacted": totals.get("leads_contacted", 0),
        "violations": totals.get("violations", 0),
    }


async def read(ctx: RequestContext, campaign_id: UUID) -> dict[str, Any]:
    """The campaign's counters: one row by key (zeros before its first touchpoint)."""
    row = await CampaignTally.get_pymongo_collection().find_one(_key(ctx, campaign_id))
    row = row or {}
    return _figures(row, row.get("by_type", {}))


async def recount(ctx: RequestContext, campaign_id: UUID) -> dict[str, Any]:
    """The same counters recomputed by the pipeline (offline checks; reads every event)."""
    rows = await Repository(TouchpointEvent, ctx).aggregate(
        pipelines.campaign_analytics(tenant_id=ctx.tenant_id, campaign_id=campaign_id),
        match={"campaign_id": uuid_filter(campaign_id)},
    )
    touched = rows[0] if rows else {}
    return _figures(touched, touched)  # the pipeline counts each channel at the top level


async def rebuild(ctx: RequestContext, campaign_id: UUID) -> dict[str, Any]:
    """Set the links' `contacted` flags and the row from the events (offline; reads them all).

    For data written before the counters existed (or imported around the event service), and
    to repair the crash window above. Not for requests: its work grows with the campaign.
    """
    touched = await Repository(TouchpointEvent, ctx).aggregate(
        pipelines.touched_leads(), match={"campaign_id": uuid_filter(campaign_id)}
    )
    lead_ids = [row["_id"] for row in touched]
    links = CampaignLead.get_pymongo_collection()
    campaign_filter = tenant_filter(ctx, {"campaign_id": uuid_filter(campaign_id)})
    for start in range(0, len(lead_ids), REBUILD_CHUNK):
        chunk = lead_ids[start : start + REBUILD_CHUNK]
        await links.update_many(
            campaign_filter | {"lead_id": {"$in": chunk}},
            {"$set": {"contacted": True}},
        )
    figures = await recount(ctx, campaign_id)
    row = {
        "events_total": figures["events_total"],
        "by_type": figures["events_by_type"],
        "leads_contacted": figures["leads_contacted"],
        "violations": figures["violations"],
    }
    await CampaignTally.get_pymongo_collection().update_one(
        _key(ctx, campaign_id), {"$set": row}, upsert=True
    )
    return figures


__all__ = [
    "event_recorded",
    "link_counted_flipped",
    "link_gone",
    "links_attached",
    "read",
    "rebuild",
    "recount",
]
