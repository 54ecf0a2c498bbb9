"""A campaign's recipient queue: the state of each attached lead, atomic claims, attempts.

Each `campaign_leads` link is a recipient: `queued` until claimed; `claimed` (with a lease,
`claimed_until`) by a dialer or sender; after a recorded touchpoint `attempted` (due again
`retry_after_minutes` later), `reached`, or `exhausted` at the campaign's `max_attempts`;
`opted_out` once the lead withdrew consent or is suppressed. Detaching removes the link, and
with it the recipient.

**Claims** are correct under concurrency on a real server and on the embedded backend: the
candidates are read, checked with the one contactability rule (service/consent.py), and each
is taken with a conditional `find_one_and_update` that matches only while it is still due,
so of concurrent claimers exactly one wins each recipient; losers read the next candidates.
A lease that runs out makes the recipient due again (the due filter accepts an expired
claim), so a claimer that died gives its recipients back without any sweeper.

Links stored before the queue existed have no `state`/`attempts`: the filters accept a
missing value as `queued`/0 until `migrate` has rewritten them.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from pymongo import ReturnDocument

from documents.base import as_utc, utcnow
from documents.campaign import (
    CampaignBase,
    CampaignLead,
    CampaignType,
    RecipientState,
)
from documents.consent import Channel, Reason
from documents.event import (
    CallEvent,
    CallOutcome,
    DeliveryStatus,
    Direction,
    EmailEvent,
    EmailStatus,
    TextEvent,
    TouchpointEvent,
)
from documents.lead import LeadBase
from schemas.leads import to_lead_read
from schemas.recipients import ClaimedRecipient, ClaimRequest, RecipientFilters, RecipientRead
from service import consent
from service.campaigns import POLICY as CAMPAIGN_POLICY
from service.core.context import RequestContext
from service.core.errors import Conflict
from service.core.journal import to_bson
from service.core.pagination import NEWEST_FIRST, PageResult, encode_cursor, read_cursor
from service.core.policy import Action
from service.core.repository import Repository, tenant_filter, uuid_filter
from service.suppressions import suppressed_values
from service.tenant import load_tenant

DEFAULT_MAX_ATTEMPTS = 3  # campaigns without `max_attempts` (only call campaigns have one)
CAMPAIGN_CHANNELS = {
    CampaignType.call: Channel.call,
    CampaignType.text: Channel.text,
    CampaignType.email: Channel.email,
}
DUE_STATES = [RecipientState.queued.value, RecipientState.attempted.value, None]
STOPPED = frozenset({RecipientState.reached, RecipientState.opted_out, RecipientState.exhausted})
ATTEMPT_RETRIES = 10
CANDIDATE_FACTOR = 2  # candidates read per claimed recipient wanted
MAX_CANDIDATES = 400
REFUSED = frozenset({Reason.opted_out, Reason.suppressed})


def max_attempts_of(campaign: CampaignBase) -> int:
    """The campaign's `max_attempts` (only call campaigns set one; the others use 3)."""
    return int(getattr(campaign, "max_attempts", DEFAULT_MAX_ATTEMPTS))


def due_filter(
    ctx: RequestContext, campaign_id: UUID, now: datetime, max_attempts: int
) -> dict[str, Any]:
    """Recipients that may be claimed now: queued or attempted and due, or an expired claim.

    Both `$or` branches bound `(tenant_id, campaign_id, state)` of the `recipient_state` index.
    """
    moment = to_bson(now)
    return tenant_filter(
        ctx,
        {
            "campaign_id": uuid_filter(campaign_id),
            "attempts": {"$not": {"$gte": max_attempts}},
            "$or": [
                {"state": {"$in": DUE_STATES}, "next_attempt_at": {"$not": {"$gt": moment}}},
                {"state": RecipientState.claimed.value, "claimed_until": {"$lte": moment}},
            ],
        },
    )


# -- reading ------------------------------------------------------------------------------------


async def list_recipients(
    *, ctx: RequestContext, id: UUID, filters: RecipientFilters
) -> PageResult[RecipientRead]:
    """A page of the campaign's recipients, newest lead first (404 unless the tenant's)."""
    campaign = await Repository(CampaignBase, ctx).get(id)
    query = tenant_filter(ctx, {"campaign_id": uuid_filter(campaign.id)})
    if filters.state is not None:
        query["state"] = filters.state.value
    if filters.cursor:
        query["lead_id"] = {"$lt": read_cursor(filters.cursor, NEWEST_FIRST).last_id}
    cursor = (
        CampaignLead.get_pymongo_collection()
        .find(query)
        .sort([("lead_id", -1)])
        .limit(filters.limit + 1)
    )
    rows = await cursor.to_list()
    items = [RecipientRead.model_validate(row) for row in rows[: filters.limit]]
    more = len(rows) > filters.limit
    next_cursor = encode_cursor(NEWEST_FIRST, None, items[-1].lead_id) if more else None
    return PageResult(items=items, next_cursor=next_cursor)


# -- claims -------------------------------------------------------------------------------------


async def claim(*, ctx: RequestContext, id: UUID, data: ClaimRequest) -> list[ClaimedRecipient]:
    """Claim up to `limit` due, contactable recipients for `lease_seconds` (member).

    Recipients found opted out or suppressed move to `opted_out`; others not contactable now
    (quiet hours, no address, a deleted lead) stay where they are and are skipped.
    """
    CAMPAIGN_POLICY.require(ctx, Action.update)  # claims move the campaign's recipients
    campaign = await Repository(CampaignBase, ctx).get(id)
    channel = CAMPAIGN_CHANNELS.get(campaign.type)
    if channel is None:
        raise Conflict("A social campaign has no recipients to contact.")
    tenant = await load_tenant(ctx)
    max_attempts = max_attempts_of(campaign)
    now = utcnow()
    until = now + timedelta(seconds=data.lease_seconds)
    collection = CampaignLead.get_pymongo_collection()
    claimed: list[ClaimedRecipient] = []
    skipped: list[Any] = []  # lead ids not contactable now: not read again in this call
    while len(claimed) < data.limit:
        query = due_filter(ctx, campaign.id, now, max_attempts)
        if skipped:
            query["lead_id"] = {"$nin": skipped}
        window = min(data.limit * CANDIDATE_FACTOR, MAX_CANDIDATES)
        batch = await collection.find(query, {"lead_id": 1}).limit(window).to_list()
        if not batch:
            break
        lead_ids: list[UUID] = [row["lead_id"] for row in batch]
        # Concurrent claimers read the same first candidates: each tries them in its own
        # order, so they mostly take different ones instead of racing for the same few.
        random.shuffle(lead_ids)
        leads = {lead.id: lead for lead in await Repository(LeadBase, ctx).get_many(lead_ids)}
        addresses = [a for lead in leads.values() if (a := consent.address_of(lead, channel))]
        suppressed = await suppressed_values(ctx, channel, addresses)
        for lead_id in lead_ids:
            if len(claimed) >= data.limit:
                break
            lead = leads.get(lead_id)
            if lead is None:  # deleted (or merged) meanwhile: not contactable
                skipped.append(uuid_filter(lead_id))
                continue
            address = consent.address_of(lead, channel)
            reasons = consent.contact_reasons(
                lead, channel, now, tenant=tenant, suppressed=address in suppressed
            )
            if reasons:
                skipped.append(uuid_filter(lead_id))
                if REFUSED.intersection(reasons):
                    await _set_state(ctx, campaign.id, lead_id, RecipientState.opted_out)
                continue
            won = await collection.find_one_and_update(
                {
                    **due_filter(ctx, campaign.id, now, max_attempts),
                    "lead_id": uuid_filter(lead_id),
                },
                {
                    "$set": {
                        "state": RecipientState.claimed.value,
                        "claimed_until": to_bson(until),
                        "claimed_by": uuid_filter(ctx.actor_id),
                    }
                },
                return_document=ReturnDocument.AFTER,
            )
            if won is None:  # another claimer took it first
                continue
            claimed.append(
                ClaimedRecipient(
                    lead_id=lead_id,
                    attempts=int(won.get("attempts", 0)),
                    claimed_until=until,
                    lead=to_lead_read(lead),
                )
            )
    return claimed


async def _set_state(
    ctx: RequestContext, campaign_id: UUID, lead_id: UUID, state: RecipientState
) -> None:
    await CampaignLead.get_pymongo_collection().update_one(
        tenant_filter(
            ctx, {"campaign_id": uuid_filter(campaign_id), "lead_id": uuid_filter(lead_id)}
        ),
        {"$set": {"state": state.value, "claimed_until": None, "claimed_by": None}},
    )


# -- transitions driven by touchpoints ----------------------------------------------------------


def is_reached(event: TouchpointEvent) -> bool:
    """Whether a touchpoint reached the person: answered, delivered/replied, opened/clicked."""
    if isinstance(event, CallEvent):
        return event.outcome == CallOutcome.answered
    if isinstance(event, TextEvent):
        if event.direction == Direction.inbound:  # the lead wrote back
            return not consent.is_stop_word(event.body)
        return event.delivery_status == DeliveryStatus.delivered
    if isinstance(event, EmailEvent):
        return event.status in REACHED_EMAIL
    return False


REACHED_EMAIL = frozenset({EmailStatus.opened, EmailStatus.clicked, EmailStatus.replied})


def is_refusal(event: TouchpointEvent) -> bool:
    """Whether a touchpoint withdrew consent (a stop word, an unsubscribe or spam report)."""
    if isinstance(event, TextEvent):
        return event.direction == Direction.inbound and consent.is_stop_word(event.body)
    return isinstance(event, EmailEvent) and event.status in consent.OPT_OUT_EMAIL_STATUSES


async def record_attempt(ctx: RequestContext, event: TouchpointEvent) -> None:
    """A new touchpoint of the (campaign, lead) pair: one more attempt, and the next state."""
    await _transition(ctx, event, count=True)


async def record_outcome(ctx: RequestContext, event: TouchpointEvent) -> None:
    """A provider callback changed an event's status: reached or opted out, no new attempt."""
    await _transition(ctx, event, count=False)


async def _transition(ctx: RequestContext, event: TouchpointEvent, *, count: bool) -> None:
    campaign = await Repository(CampaignBase, ctx).find_one({"_id": uuid_filter(event.campaign_id)})
    if campaign is None or campaign.type not in CAMPAIGN_CHANNELS:
        return
    collection = CampaignLead.get_pymongo_collection()
    pair = tenant_filter(
        ctx, {"campaign_id": uuid_filter(campaign.id), "lead_id": uuid_filter(event.lead_id)}
    )
    inbound = getattr(event, "direction", Direction.outbound) == Direction.inbound
    for _ in range(ATTEMPT_RETRIES):
        link = await collection.find_one(pair)
        if link is None:  # detached meanwhile
            return
        state = RecipientState(link.get("state") or RecipientState.queued)
        attempts = int(link.get("attempts") or 0)
        changes: dict[str, Any] = {}
        counts = count and not inbound
        if counts:
            changes["attempts"] = attempts + 1
            last = link.get("last_attempt_at")  # late events never move it back
            when = event.occurred_at if last is None else max(event.occurred_at, as_utc(last))
            changes["last_attempt_at"] = to_bson(when)
        new_state = _next_state(event, campaign, state, attempts + (1 if counts else 0), counts)
        if new_state is not None:
            changes["state"] = new_state.value
            changes["claimed_until"] = changes["claimed_by"] = None
            if new_state == RecipientState.attempted:
                retry = timedelta(minutes=campaign.retry_after_minutes)
                changes["next_attempt_at"] = to_bson(event.occurred_at + retry)
        if not changes:
            return
        guard = tenant_filter(
            ctx, {"_id": link["_id"], "state": link.get("state"), "attempts": link.get("attempts")}
        )
        result = await collection.update_one(guard, {"$set": changes})
        if result.matched_count:
            return
    raise Conflict("The recipient is being updated concurrently; retry.")


def _next_state(
    event: TouchpointEvent,
    campaign: CampaignBase,
    state: RecipientState,
    attempts: int,
    counted: bool,
) -> RecipientState | None:
    if state == RecipientState.opted_out:
        return None  # only a new opt-in and a re-queue could bring it back
    if is_refusal(event):
        return RecipientState.opted_out
    if is_reached(event):
        return RecipientState.reached
    if not counted or state in STOPPED:
        return None
    if attempts >= max_attempts_of(campaign):
        return RecipientState.exhausted
    return RecipientState.attempted


__all__ = [
    "claim",
    "due_filter",
    "is_reached",
    "list_recipients",
    "record_attempt",
    "record_outcome",
]
