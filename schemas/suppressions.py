"""API shapes of the suppression (do-not-contact) list: `/v1/suppressions`."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StringConstraints

from documents.base import ShortText
from documents.consent import Channel
from schemas.common import Counted, CountedPage, IgnoreTenantId, ListParams, ReadView, ResourceRead

RawValue = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=320)]


class SuppressionCreate(IgnoreTenantId):
    """`POST /v1/suppressions`: a phone (`call`, `text`) or an e-mail (`email`) not to contact."""

    channel: Channel = Field(examples=["text"])
    value: RawValue = Field(
        description="A phone (read in the tenant's region without a country code) or an "
        "e-mail; stored normalised (E.164, lower case).",
        examples=["(415) 555-0100"],
    )
    reason: ShortText | None = Field(default=None, examples=["asked not to be texted"])


class SuppressionRead(ResourceRead):
    channel: Channel
    value: str = Field(description="Normalised: E.164 phone or lower-case e-mail.")
    reason: str | None = None


SUPPRESSION_VIEW: ReadView[SuppressionRead] = ReadView(SuppressionRead)
to_suppression_read = SUPPRESSION_VIEW.document


class SuppressionFilters(ListParams, Counted):
    """`GET /v1/suppressions` query parameters."""

    channel: Channel | None = Field(default=None, description="Only this channel's entries.")
    value: RawValue | None = Field(
        default=None, description="Only this phone or e-mail (normalised as on create)."
    )


class SuppressionPage(CountedPage[SuppressionRead]):
    """A page of suppressions, newest first."""
