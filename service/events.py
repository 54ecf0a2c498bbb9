"""Touchpoint events: idempotent ingest, the lead's contact bookkeeping, lists and the timeline.

Idempotency protocol (per tenant and `Idempotency-Key`):

1. Claim the key by inserting an `IdempotencyRecord` (body hash, a pre-chosen event id). The
   unique (tenant_id, key) index makes exactly one of concurrent requests the winner.
2. The winner records the event under the pre-chosen id and stores its answer in the record.
   If it fails, it releases its claim so a retry runs again (`_release`: deleted if no event
   was stored, else left for the retry to take over with the same event id).
3. A loser with another body hash gets 409; with the same hash it polls briefly for the
   winner's answer and returns it (same id, same body). A claim left unfinished for
   `STALE_CLAIM` (the winner died) is taken over; because the event id was chosen at claim
   time, the takeover can never create a second event.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pymongo.errors import DuplicateKeyError
from pymongo.read_concern import ReadConcern
from uuid6 import uuid7

from documents.base import utcnow
from documents.campaign import CampaignBase, CampaignLead
from documents.event import EVENT_CLASSES, IdempotencyRecord, TouchpointEvent
from documents.lead import LeadBase, LeadStatus
from schemas.events import (
    EVENT_SORT_FIELDS,
    EVENT_VIEW,
    AnyEventRead,
    EventCreate,
    EventFilters,
    TimelineParams,
    to_event_read,
)
from service import campaign_tallies, consent, event_slots, recipients
from service.campaigns import campaign_link_filter
from service.core.context import RequestContext
from service.core.errors import Conflict, NotFound, PreconditionFailed, Unprocessable
from service.core.pagination import PageResult, Sort, parse_sort
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import (
    Repository,
    equal_to,
    tenant_filter,
    time_range,
    to_bson,
    uuid_filter,
)

# Touchpoints are recorded (and their status moved by provider callbacks) by members and above.
POLICY: ResourcePolicy[TouchpointEvent] = register_policy(ResourcePolicy(model=TouchpointEvent))
CLOCK_SKEW = timedelta(minutes=5)  # an `occurred_at` slightly ahead of our clock is accepted
STALE_CLAIM = timedelta(seconds=30)  # an unfinished claim this old belongs to a dead request
RELEASED = datetime(1970, 1, 1, tzinfo=UTC)  # a failed request's claim: stale at once
WAIT_FOR_WINNER = 5.0  # seconds a concurrent retry waits for the first request's answer
POLL_INTERVAL = 0.05
CLAIM_ATTEMPTS = 8  # inserts tried while the key's record flickers (a winner giving up)
CLAIM_BACKOFF = 0.01  # seconds before the second attempt, doubling (jittered, at most 0.5)
STATUS_RETRIES = 5
# Events and timelines: newest `occurred_at` first (a time range is on the same field, so one
# index serves filter, range and order).
NEWEST_OCCURRED_FIRST = Sort("occurred_at", -1)


def request_hash(body: Any) -> str:
    """SHA-256 of a body as canonical JSON (sorted keys, no whitespace)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


# -- ingest -----------------------------------------------------------------------------------


async def create_event(
    *,
    ctx: RequestContext,
    data: EventCreate,
    idempotency_key: str | None = None,
    ttl_hours: int = 48,
) -> tuple[dict[str, Any], bool]:
    """Record a touchpoint; answers its JSON view and whether it is a replay of a key's first."""
    POLICY.require(ctx, Action.create)
    digest = request_hash(data.model_dump(mode="json", exclude_unset=True))
    if data.provider is not None and data.external_id is not None:
        original = await provider_event(ctx, data.provider, data.external_id, digest)
        if original is not None:
            return _view(original), True
        # The provider's id is the natural idempotency key: concurrent creates of one pair
        # are serialised by the key's claim (one event; another body → 409).
        idempotency_key = idempotency_key or provider_key(data.provider, data.external_id)
    if idempotency_key is None:
        return _view(await _record(ctx, data, uuid7(), digest)), False
    deadline = asyncio.get_running_loop().time() + WAIT_FOR_WINNER
    while True:
        record, won = await _claim(ctx, idempotency_key, digest, ttl_hours)
        if record.request_hash != digest:
            raise Conflict("This Idempotency-Key was already used with a different body.")
        if won:
            return await _run_claimed(ctx, data, record), False
        if record.response is not None:
            return record.response, True
        if asyncio.get_running_loop().time() >= deadline:
            raise Conflict("A request with this Idempotency-Key is still in progress; retry.")
        await asyncio.sleep(POLL_INTERVAL)


async def _claim(
    ctx: RequestContext, key: str, digest: str, ttl_hours: int
) -> tuple[IdempotencyRecord, bool]:
    collection = IdempotencyRecord.get_pymongo_collection()
    # The winner's record with local read concern: right after its insert a majority read may
    # not see it yet (it is not majority-committed), and a loser would then retry at once.
    winners = collection.with_options(read_concern=ReadConcern("local"))
    key_filter = tenant_filter(ctx, {"key": key})
    for attempt in range(CLAIM_ATTEMPTS):
        now = utcnow()
        record = IdempotencyRecord(
            tenant_id=ctx.tenant_id,
            key=key,
            request_hash=digest,
            event_id=uuid7(),
            created_at=now,
            expires_at=now + timedelta(hours=ttl_hours),
        )
        try:
            await collection.insert_one(_raw(record))
            return record, True
        except DuplicateKeyError:
            pass
        raw = await winners.find_one(key_filter)
        if raw is None:  # the winner gave up meanwhile (or is not visible yet): again, later
            await asyncio.sleep(min(CLAIM_BACKOFF * 2**attempt, 0.5) * random.uniform(0.5, 1))
            continue
        existing = IdempotencyRecord.model_validate(raw)
        stale = existing.response is None and existing.created_at < now - STALE_CLAIM
        if stale and existing.request_hash == digest:
            took_over = await collection.update_one(
                {**key_filter, "response": None, "created_at": to_bson(existing.created_at)},
                {"$set": {"created_at": to_bson(now)}},
            )
            return existing, took_over.modified_count == 1
        return existing, False
    raise Conflict("A request with this Idempotency-Key is still in progress; retry.")


async def _run_claimed(
    ctx: RequestContext, data: EventCreate, record: IdempotencyRecord
) -> dict[str, Any]:
    collection = IdempotencyRecord.get_pymongo_collection()
    try:
        body = _view(await _record(ctx, data, record.event_id, record.request_hash))
    except BaseException:
        await _release(ctx, record)
        raise
    await collection.update_one(
        tenant_filter(ctx, {"_id": uuid_filter(record.id)}),
        {"$set": {"status_code": 201, "response": body}},
    )
    return body


async def _release(ctx: RequestContext, record: IdempotencyRecord) -> None:
    """Give up a failed request's claim so that a retry runs.

    Before the event was stored (a missing lead, say) the claim is deleted: the key is free,
    for a corrected body too. After (the bookkeeping failed), it is made stale at once
    instead: a retry of the same body takes it over with the same `event_id` and answers the
    stored event rather than recording a second one. If the database is gone, the claim
    stays and turns stale after `STALE_CLAIM`.
    """
    claim = tenant_filter(ctx, {"_id": uuid_filter(record.id), "response": None})
    collection = IdempotencyRecord.get_pymongo_collection()
    stored = await Repository(TouchpointEvent, ctx).find_one({"_id": uuid_filter(record.event_id)})
    if stored is None:
        await collection.delete_one(claim)
    else:
        await collection.update_one(claim, {"$set": {"created_at": to_bson(RELEASED)}})


async def _record(
    ctx: RequestContext, data: EventCreate, event_id: UUID, digest: str
) -> TouchpointEvent:
    """Check the references, store the event and update the lead's contact bookkeeping."""
    campaign = await Repository(CampaignBase, ctx).find_one({"_id": uuid_filter(data.campaign_id)})
    if campaign is None:
        raise Unprocessable("No such campaign in this tenant.", loc=["body", "campaign_id"])
    leads = Repository(LeadBase, ctx)
    lead = await leads.find_one({"_id": uuid_filter(data.lead_id)})
    if lead is None:
        raise Unprocessable("No such lead in this tenant.", loc=["body", "lead_id"])
    link = {**campaign_link_filter(ctx, campaign.id), "lead_id": uuid_filter(lead.id)}
    if await CampaignLead.get_pymongo_collection().find_one(link, {"_id": 1}) is None:
        raise Unprocessable(
            "The lead is not one of the campaign's leads (attach it first).",
            loc=["body", "lead_id"],
        )
    now = utcnow()
    occurred_at = data.occurred_at or now
    if occurred_at > now + CLOCK_SKEW:
        raise Unprocessable("occurred_at lies in the future.", loc=["body", "occurred_at"])
    fields = data.model_dump(exclude={"type", "occurred_at"})
    event = EVENT_CLASSES[data.type](
        id=event_id, tenant_id=ctx.tenant_id, user_id=ctx.user_id, occurred_at=occurred_at, **fields
    )
    event.provider_hash = digest if data.provider is not None else None
    event.compliance = await consent.compliance_of(ctx, event, lead)
    repo = Repository(TouchpointEvent, ctx)
    try:
        event = await repo.append(event)
    except DuplicateKeyError:  # a crashed earlier attempt of this key already stored it
        event = await repo.get(event_id)
    else:  # counted once: only by the attempt whose insert happened
        await campaign_tallies.event_recorded(ctx, event)
        await event_slots.event_recorded(ctx, event)
    await _after_touchpoint(ctx, event)
    await _mark_contacted(ctx, lead, event.occurred_at)
    return event


def provider_key(provider: str, external_id: str) -> str:
    """The idempotency key standing for a provider's message or call id (bounded length)."""
    return "provider:" + hashlib.sha256(f"{provider}\x00{external_id}".encode()).hexdigest()


def provider_filter(provider: str, external_id: str) -> dict[str, Any]:
    """The event of a provider id; `$type` repeats the unique index's partial filter."""
    return {"provider": provider, "external_id": {"$eq": external_id, "$type": "string"}}


async def provider_event(
    ctx: RequestContext, provider: str | None, external_id: str | None, digest: str
) -> TouchpointEvent | None:
    """The event already recorded for this provider id (None if none); 409 if another body."""
    if provider is None or external_id is None:
        return None
    original = await Repository(TouchpointEvent, ctx).find_one(
        provider_filter(provider, external_id)
    )
    if original is None:
        return None
    if original.provider_hash != digest:
        raise Conflict("This provider's external_id was already recorded with a different body.")
    return original


async def _after_touchpoint(ctx: RequestContext, event: TouchpointEvent) -> None:
    # Outreach bookkeeping of a new touchpoint: automatic opt-outs, then the recipient's
    # attempt (after the opt-out, so an opted-out recipient is not queued again).
    await consent.auto_opt_out(ctx, event)
    await recipients.record_attempt(ctx, event)


async def _mark_contacted(ctx: RequestContext, lead: LeadBase, occurred_at: Any) -> None:
    # Raise last_contacted_at atomically whatever order events arrive in (`$max`; null sorts
    # below every date). It is derived bookkeeping (recomputable from `events`), so it is
    # neither versioned nor journaled; the status change it implies is, through the repository.
    leads = Repository(LeadBase, ctx)
    await LeadBase.get_pymongo_collection().update_one(
        leads.scope({"_id": uuid_filter(lead.id)}),
        {"$max": {"last_contacted_at": to_bson(occurred_at)}},
    )
    for _ in range(STATUS_RETRIES):
        if lead.status != LeadStatus.new:
            return
        try:
            await leads.update(
                lead,
                {"status": LeadStatus.contacted},
                expected_version=lead.version,
                event_type="status_changed",
            )
            return
        except (Conflict, PreconditionFailed):
            try:
                lead = await leads.get(lead.id)
            except NotFound:  # deleted meanwhile: nothing left to mark
                return


def _view(event: TouchpointEvent) -> dict[str, Any]:
    return to_event_read(event).model_dump(mode="json")


def _raw(record: IdempotencyRecord) -> dict[str, Any]:
    data: dict[str, Any] = to_bson(record)
    data.pop("revision_id", None)
    return data


# -- queries ----------------------------------------------------------------------------------


async def get_event(*, ctx: RequestContext, id: UUID) -> AnyEventRead:
    """One event of the tenant as the API shows it (404 if missing or another tenant's)."""
    return await Repository(TouchpointEvent, ctx).read(id, EVENT_VIEW)


async def list_events(*, ctx: RequestContext, filters: EventFilters) -> PageResult[AnyEventRead]:
    """A page of the tenant's events (newest `occurred_at` first, or `sort`ed), filtered."""
    query = equal_to(
        filters,
        {"campaign_id": "campaign_id", "lead_id": "lead_id", "type": "type", "user_id": "user_id"},
    )
    window = time_range(filters.since, filters.until)
    if window:
        query["occurred_at"] = window
    sort = parse_sort(filters.sort, fields=EVENT_SORT_FIELDS, default=NEWEST_OCCURRED_FIRST)
    return await Repository(TouchpointEvent, ctx).page_for(
        query, filters, sort=sort, view=EVENT_VIEW
    )


async def list_lead_events(
    *, ctx: RequestContext, id: UUID, params: TimelineParams
) -> PageResult[AnyEventRead]:
    """A lead's timeline, newest `occurred_at` first (404 unless the tenant's live lead)."""
    lead = await Repository(LeadBase, ctx).get(id)
    return await Repository(TouchpointEvent, ctx).page_for(
        {"lead_id": uuid_filter(lead.id)}, params, sort=NEWEST_OCCURRED_FIRST, view=EVENT_VIEW
    )
