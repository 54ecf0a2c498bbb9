"""API shapes of consent (`PUT /v1/leads/{id}/consent/{channel}`) and contactability."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from documents.base import ShortText, UTCDateTime
from documents.consent import Channel, ConsentStatus, Reason
from schemas.common import IgnoreTenantId


class ConsentUpdate(IgnoreTenantId):
    """`PUT /v1/leads/{id}/consent/{channel}`: the channel's new status and where it came from."""

    model_config = ConfigDict(extra="forbid")

    status: ConsentStatus = Field(examples=["opted_out"])
    source: ShortText | None = Field(
        default=None, description="Where the consent was given or withdrawn.", examples=["web"]
    )


class ChannelConsentIn(BaseModel):
    """One channel's consent at creation or import; `at` is the time of the write."""

    model_config = ConfigDict(extra="forbid")

    status: ConsentStatus
    source: ShortText | None = None


class ConsentIn(BaseModel):
    """Consent given with a new lead (channels left out stay `unknown`)."""

    model_config = ConfigDict(extra="forbid")

    call: ChannelConsentIn | None = None
    text: ChannelConsentIn | None = None
    email: ChannelConsentIn | None = None


class ChannelConsentRead(BaseModel):
    status: ConsentStatus = ConsentStatus.unknown
    source: str | None = None
    at: datetime | None = None


class ConsentRead(BaseModel):
    """A lead's consent per channel."""

    call: ChannelConsentRead = Field(default_factory=ChannelConsentRead)
    text: ChannelConsentRead = Field(default_factory=ChannelConsentRead)
    email: ChannelConsentRead = Field(default_factory=ChannelConsentRead)


class ContactabilityParams(BaseModel):
    """`GET /v1/leads/{id}/contactability` query parameters."""

    model_config = ConfigDict(extra="forbid")

    channel: Channel = Field(description="The channel to contact the lead on.")
    at: UTCDateTime | None = Field(
        default=None, description="When the contact would happen (default: now)."
    )


class Contactability(BaseModel):
    """Whether the lead may be contacted on `channel` at that time, and if not, why."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"channel": "call", "allowed": False, "reasons": ["quiet_hours"]}]
        }
    )

    channel: Channel
    allowed: bool
    reasons: list[Reason]


class ComplianceRead(BaseModel):
    """On an outbound event recorded for a lead that was not contactable."""

    allowed: bool
    reasons: list[Reason]
