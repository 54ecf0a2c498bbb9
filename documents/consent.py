"""Consent per lead and channel: `Consent` is embedded in every lead (three channels, bounded)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field

from documents.base import ShortText, SubDocument, UTCDateTime


class Channel(StrEnum):
    """The channels consent and suppression are kept for."""

    call = "call"
    text = "text"
    email = "email"


class ConsentStatus(StrEnum):
    opted_in = "opted_in"
    opted_out = "opted_out"
    unknown = "unknown"


class ChannelConsent(SubDocument):
    """One channel's consent: its status, where it came from (a form, an event id) and when."""

    status: ConsentStatus = ConsentStatus.unknown
    source: ShortText | None = None
    at: UTCDateTime | None = None


class Consent(SubDocument):
    """A lead's consent on each channel (`unknown` until recorded)."""

    call: ChannelConsent = Field(default_factory=ChannelConsent)
    text: ChannelConsent = Field(default_factory=ChannelConsent)
    email: ChannelConsent = Field(default_factory=ChannelConsent)


class Reason(StrEnum):
    """Why a lead may not be contacted on a channel now."""

    opted_out = "opted_out"
    suppressed = "suppressed"
    quiet_hours = "quiet_hours"
    no_address = "no_address"
    deleted = "deleted"


class Compliance(SubDocument):
    """Stamped on an outbound event recorded for a lead that was not contactable then."""

    allowed: bool
    reasons: list[Reason] = Field(default_factory=list, max_length=len(Reason))


__all__ = ["Channel", "ChannelConsent", "Compliance", "Consent", "ConsentStatus", "Reason"]
