"""Consent and contactability of a lead: `/v1/leads/{id}/consent/{channel}` and more."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query

from documents.consent import Channel
from routes.deps import CurrentContext
from schemas.consent import ConsentUpdate, Contactability, ContactabilityParams
from schemas.leads import LeadRead
from service import consent

router = APIRouter(prefix="/leads", tags=["leads"])


@router.put("/{id}/consent/{channel}", response_model=LeadRead)
async def set_consent(id: UUID, channel: Channel, body: ConsentUpdate, ctx: CurrentContext) -> Any:
    """Record the lead's consent on `call`, `text` or `email` (journaled); answers the lead.

    Inbound texts that are a stop word (`STOP`, `STOPALL`, `UNSUBSCRIBE`, `CANCEL`, `END`,
    `QUIT`) and e-mail events `unsubscribed` or `spam` opt the lead out automatically.
    """
    return await consent.set_consent(ctx=ctx, id=id, channel=channel, data=body)


@router.get("/{id}/contactability", response_model=Contactability)
async def contactability(
    id: UUID, ctx: CurrentContext, params: Annotated[ContactabilityParams, Query()]
) -> Any:
    """May the lead be contacted on `channel` at `at` (default now)? With the reasons why not:
    `opted_out`, `suppressed`, `quiet_hours` (calls and texts outside the tenant's window in
    the lead's local time), `no_address`, `deleted`."""
    return await consent.contactability(ctx=ctx, id=id, channel=params.channel, at=params.at)
