"""Builders of campaigns, leads, links and touchpoints for analytics and projection tests.

They write through the same paths the services use (the repository for journaled roots, a plain
insert for the immutable touchpoints and the link rows), so the data is shaped as in production.
"""

from __future__ import annotations

from datetime import datetime
from itertools import count
from typing import Any
from uuid import UUID

from documents.campaign import CallCampaign, CampaignBase, CampaignLead, EmailCampaign
from documents.event import CallEvent, EmailEvent, SocialEvent, TextEvent, TouchpointEvent
from documents.lead import GenericLead, LeadBase
from service import campaign_tallies, event_slots
from service.core.context import RequestContext
from service.core.repository import Repository

_n = count(1)


async def campaign(ctx: RequestContext, *, kind: str = "call", **fields: Any) -> CampaignBase:
    """A campaign of the caller's tenant, owned by the caller."""
    model = {"call": CallCampaign, "email": EmailCampaign}[kind]
    doc = model(tenant_id=ctx.tenant_id, name=f"Campaign {next(_n)}", user_id=ctx.user_id)
    for key, value in fields.items():
        setattr(doc, key, value)
    return await Repository(CampaignBase, ctx).create(doc)


async def lead(ctx: RequestContext) -> LeadBase:
    """A generic lead of the caller's tenant."""
    doc = GenericLead(tenant_id=ctx.tenant_id, email=f"lead{next(_n)}@example.com")
    return await Repository(LeadBase, ctx).create(doc)


async def link(ctx: RequestContext, campaign_id: UUID, *lead_ids: UUID) -> None:
    """Attach leads to a campaign (rows in `campaign_leads`)."""
    rows = [
        CampaignLead(tenant_id=ctx.tenant_id, campaign_id=campaign_id, lead_id=i) for i in lead_ids
    ]
    await CampaignLead.insert_many(rows)
    # `lead_count` follows as attaching keeps it (a plain `$inc` here: nothing journaled).
    live = await Repository(LeadBase, ctx).get_many(list(lead_ids))
    await CampaignBase.get_pymongo_collection().update_one(
        {"_id": campaign_id}, {"$inc": {"lead_count": len(live)}}
    )
    await campaign_tallies.links_attached(ctx, campaign_id, list(lead_ids))


async def touch(
    ctx: RequestContext,
    kind: str,
    campaign_id: UUID,
    lead_id: UUID,
    at: datetime,
    *,
    user_id: UUID | None = None,
    id: UUID | None = None,
) -> TouchpointEvent:
    """One touchpoint of `kind` at `at` (events are immutable facts: a plain insert)."""
    common: dict[str, Any] = {
        "tenant_id": ctx.tenant_id,
        "campaign_id": campaign_id,
        "lead_id": lead_id,
        "occurred_at": at,
        "user_id": user_id if user_id is not None else ctx.user_id,
    }
    if id is not None:  # e.g. an id chosen long ago (an idempotent retry taking over)
        common["id"] = id
    doc: TouchpointEvent
    if kind == "call":
        doc = CallEvent(**common, outcome="answered")
    elif kind == "text":
        doc = TextEvent(**common, body="hello")
    elif kind == "social":
        doc = SocialEvent(**common, platform="facebook", action="like")
    else:
        doc = EmailEvent(**common)
    doc = await doc.insert()
    await campaign_tallies.event_recorded(ctx, doc)  # as the event service counts a new one
    await event_slots.event_recorded(ctx, doc)
    return doc
