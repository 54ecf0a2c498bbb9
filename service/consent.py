"""Consent per lead and channel, and the one contactability rule every check uses.

`contact_reasons` is THE rule: the contactability endpoint, the compliance stamp on outbound
events and the recipient claims all call it, so they can never disagree. A lead may be
contacted on a channel when none of these holds:

- `deleted`: the lead is soft-deleted;
- `no_address`: it has no phone (calls, texts) or no e-mail;
- `opted_out`: its consent on the channel is `opted_out`;
- `suppressed`: its phone or e-mail is on the tenant's suppression list for the channel;
- `quiet_hours` (calls and texts): the time is outside the tenant's window in the lead's
  local time: its `time_zone`, else every zone of its phone number (allowed in all), else
  the tenant's zone (UTC without one). The window is [start, end): 08:00 is in, 21:00 out.

Consent changes are journaled writes of the lead (`consent_changed`); automatic opt-outs
(stop words, unsubscribes) record the event id as their `source`.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import phonenumbers
from phonenumbers import timezone as phone_zones

from documents.base import utcnow
from documents.consent import Channel, Compliance, ConsentStatus
from documents.event import (
    CallEvent,
    Direction,
    EmailEvent,
    EmailStatus,
    TextEvent,
    TouchpointEvent,
)
from documents.lead import LeadBase
from documents.tenant import QuietHours, Tenant, tenant_zone
from schemas.consent import ConsentIn, ConsentUpdate, Contactability, Reason
from schemas.leads import AnyLeadRead, to_lead_read
from service.core.context import RequestContext
from service.core.errors import Conflict, NotFound, PreconditionFailed
from service.core.policy import Action, policy_for
from service.core.repository import Repository
from service.suppressions import suppressed_values
from service.tenant import load_tenant

STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
"""Inbound text bodies (trimmed, any case) that opt the lead out of texts (CTIA)."""
CONSENT_RETRIES = 5
UNKNOWN_ZONE = "Etc/Unknown"  # what phonenumbers answers for a number it cannot place
VOICE_CHANNELS = frozenset({Channel.call, Channel.text})


def is_stop_word(body: str | None) -> bool:
    """Whether an inbound text is an opt-out keyword (`STOP`, ` stop `, `Quit`...)."""
    return body is not None and body.strip().upper() in STOP_WORDS


def stored_consent(given: ConsentIn | None, at: datetime | None) -> dict[str, Any]:
    """A new lead's consent as stored: what was sent (stamped `at`), `unknown` elsewhere.

    Plain data (statuses as strings), not a model: the bulk import stores and journals it
    as it is. `at` matters only when consent is given (the bulk path reads the clock only
    then). Without consent it is one shared mapping, never to be changed: the bulk import's
    encoder reuses the encoding of the object the previous row had.
    """
    if given is None:  # most new leads: `unknown` everywhere
        return _NO_CONSENT
    stored: dict[str, Any] = {}
    for channel in _CHANNELS:
        value = getattr(given, channel)
        if value is None:
            stored[channel] = {"status": _UNKNOWN, "source": None, "at": None}
        else:
            stored[channel] = {"status": value.status.value, "source": value.source, "at": at}
    return stored


_CHANNELS = tuple(channel.value for channel in Channel)  # enum iteration is slow per row
_UNKNOWN = ConsentStatus.unknown.value  # plain strings: stored and journaled as they are
_NO_CONSENT: dict[str, Any] = {
    channel: {"status": _UNKNOWN, "source": None, "at": None} for channel in _CHANNELS
}


# -- the rule -----------------------------------------------------------------------------------


@lru_cache(maxsize=4096)
def phone_time_zones(phone: str) -> tuple[str, ...]:
    """The IANA zones a phone number may be in (none when the number says nothing)."""
    try:
        parsed = phonenumbers.parse(phone, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = phone_zones.time_zones_for_number(parsed)
    return tuple(z for z in zones if z != UNKNOWN_ZONE)


def lead_time_zones(lead: LeadBase, fallback: str) -> tuple[str, ...]:
    """Where the lead may be: its `time_zone`, else its phone's zones, else `fallback`."""
    if lead.time_zone:
        return (lead.time_zone,)
    zones = phone_time_zones(lead.phone) if lead.phone else ()
    return zones or (fallback,)


def within_window(at: datetime, zone: str, window: QuietHours) -> bool:
    """Whether `at` falls in [start, end) of the wall clock in `zone`."""
    local = at.astimezone(ZoneInfo(zone)).strftime("%H:%M")
    return window.start <= local < window.end


def address_of(lead: LeadBase, channel: Channel) -> str | None:
    """The value a channel reaches the lead at: its phone (calls, texts) or e-mail."""
    return lead.email if channel == Channel.email else lead.phone


def contact_reasons(
    lead: LeadBase,
    channel: Channel,
    at: datetime,
    *,
    tenant: Tenant,
    suppressed: bool,
) -> list[Reason]:
    """Why `lead` may not be contacted on `channel` at `at` (empty: it may). THE rule."""
    reasons: list[Reason] = []
    if lead.is_deleted:
        reasons.append(Reason.deleted)
    address = address_of(lead, channel)
    if address is None:
        reasons.append(Reason.no_address)
    if getattr(lead.consent, channel.value).status == ConsentStatus.opted_out:
        reasons.append(Reason.opted_out)
    if suppressed:
        reasons.append(Reason.suppressed)
    if channel in VOICE_CHANNELS and address is not None:
        zones = lead_time_zones(lead, tenant_zone(tenant))
        if not all(within_window(at, zone, tenant.quiet_hours) for zone in zones):
            reasons.append(Reason.quiet_hours)
    return reasons


async def reasons_for(
    ctx: RequestContext,
    lead: LeadBase,
    channel: Channel,
    at: datetime,
    tenant: Tenant | None = None,
) -> list[Reason]:
    """`contact_reasons` of one lead, with the tenant and the suppression lookup done here."""
    tenant = tenant or await load_tenant(ctx)
    address = address_of(lead, channel)
    suppressed = bool(address and await suppressed_values(ctx, channel, [address]))
    return contact_reasons(lead, channel, at, tenant=tenant, suppressed=suppressed)


async def contactability(
    *, ctx: RequestContext, id: UUID, channel: Channel, at: datetime | None
) -> Contactability:
    """May the tenant's lead `id` be contacted on `channel` at `at` (default now)?

    A soft-deleted lead answers `deleted` (not 404): a dialer asking about it must hear no.
    """
    lead = await Repository(LeadBase, ctx).get(id, include_deleted=True)
    reasons = await reasons_for(ctx, lead, channel, at or utcnow())
    return Contactability(channel=channel, allowed=not reasons, reasons=reasons)


def event_channel(event: TouchpointEvent) -> Channel | None:
    """The channel an OUTBOUND touchpoint used (None: inbound, or social)."""
    if isinstance(event, CallEvent | TextEvent):
        if event.direction != Direction.outbound:
            return None
        return Channel.call if isinstance(event, CallEvent) else Channel.text
    return Channel.email if isinstance(event, EmailEvent) else None


async def compliance_of(
    ctx: RequestContext, event: TouchpointEvent, lead: LeadBase
) -> Compliance | None:
    """The stamp of an outbound touchpoint made when the lead was not contactable, else None."""
    channel = event_channel(event)
    if channel is None:
        return None
    reasons = await reasons_for(ctx, lead, channel, event.occurred_at)
    return Compliance(allowed=False, reasons=reasons) if reasons else None


OPT_OUT_EMAIL_STATUSES = frozenset({EmailStatus.unsubscribed, EmailStatus.spam})


async def auto_opt_out(ctx: RequestContext, event: TouchpointEvent) -> None:
    """Opt the lead out after an inbound stop word or an e-mail unsubscribe/spam report."""
    if (
        isinstance(event, TextEvent)
        and event.direction == Direction.inbound
        and is_stop_word(event.body)
    ):
        await opt_out(ctx, event.lead_id, Channel.text, source=str(event.id))
    elif isinstance(event, EmailEvent) and event.status in OPT_OUT_EMAIL_STATUSES:
        await opt_out(ctx, event.lead_id, Channel.email, source=str(event.id))


# -- consent writes -----------------------------------------------------------------------------


async def set_consent(
    *, ctx: RequestContext, id: UUID, channel: Channel, data: ConsentUpdate
) -> AnyLeadRead:
    """Record the lead's consent on a channel (member; journaled as `consent_changed`)."""
    policy_for(LeadBase).require(ctx, Action.update)
    lead = await Repository(LeadBase, ctx).get(id)
    lead = await _write_consent(ctx, lead, channel, data.status, data.source)
    return to_lead_read(lead)


async def opt_out(ctx: RequestContext, lead_id: UUID, channel: Channel, *, source: str) -> None:
    """The automatic opt-out of an inbound stop word or an unsubscribe/spam report."""
    try:
        lead = await Repository(LeadBase, ctx).get(lead_id)
    except NotFound:  # deleted meanwhile: nothing to record
        return
    await _write_consent(ctx, lead, channel, ConsentStatus.opted_out, source)


async def _write_consent(
    ctx: RequestContext,
    lead: LeadBase,
    channel: Channel,
    status: ConsentStatus,
    source: str | None,
) -> LeadBase:
    repo = Repository(LeadBase, ctx)
    for _ in range(CONSENT_RETRIES):
        current = getattr(lead.consent, channel.value)
        if current.status == status and current.source == source:
            return lead  # the same fact again: no new version
        consent = lead.consent.model_dump()
        consent[channel.value] = {"status": status, "source": source, "at": utcnow()}
        try:
            return await repo.update(
                lead,
                {"consent": consent},
                expected_version=lead.version,
                event_type="consent_changed",
            )
        except (Conflict, PreconditionFailed):  # a concurrent write: re-read and apply again
            lead = await repo.get(lead.id)
    raise Conflict("The lead is being changed concurrently; retry.")


__all__ = [
    "STOP_WORDS",
    "auto_opt_out",
    "compliance_of",
    "contact_reasons",
    "contactability",
    "is_stop_word",
    "opt_out",
    "reasons_for",
    "set_consent",
    "stored_consent",
]
