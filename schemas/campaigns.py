"""API shapes of campaigns: polymorphic create/read on `type`, patch, list filters, lead links."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints, model_validator

from documents.base import Email, Name, ShortText, Tag, Url, UTCDateTime
from documents.campaign import (
    DEFAULT_RETRY_MINUTES,
    MAX_INTEGRATIONS,
    MAX_SENDERS,
    CampaignStatus,
    CampaignType,
    IntegrationRef,
    SocialPlatform,
)
from schemas.common import (
    Counted,
    CountedPage,
    IgnoreTenantId,
    ListParams,
    PatchBody,
    ReadView,
    ResourceRead,
    read_shape,
)

Description = Annotated[str, StringConstraints(max_length=5000)]
Script = Annotated[str, StringConstraints(max_length=20_000)]
RawPhone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=32)]
Tags = Annotated[list[Tag], Field(max_length=50)]
Segments = Annotated[
    dict[Annotated[str, StringConstraints(max_length=64, pattern=r"^[^$.\x00]+$")], ShortText],
    Field(max_length=50),
]
Integrations = Annotated[list[IntegrationRef], Field(max_length=MAX_INTEGRATIONS)]
Senders = Annotated[list[RawPhone], Field(max_length=MAX_SENDERS)]
MAX_ATTACH = 1000

# -- type-specific fields (shared by create, patch and read) ----------------------------------


class _CallFields(BaseModel):
    script: Script | None = None
    voicemail_script: Script | None = None
    caller_ids: Senders = Field(
        default_factory=list,
        description="Phones; without a country code read in the tenant's region.",
    )
    max_attempts: int = Field(default=3, ge=1, le=20)


class _SocialFields(BaseModel):
    platforms: list[SocialPlatform] = Field(default_factory=list, max_length=len(SocialPlatform))
    post_content: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    media_urls: list[Url] = Field(default_factory=list, max_length=10)
    hashtags: list[ShortText] = Field(default_factory=list, max_length=30)


class _TextFields(BaseModel):
    message_template: Annotated[str, StringConstraints(max_length=1600)] | None = None
    sender_numbers: Senders = Field(default_factory=list)


class _EmailFields(BaseModel):
    subject: Annotated[str, StringConstraints(max_length=998)] | None = None
    template: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    from_name: ShortText | None = None
    from_email: Email | None = None
    reply_to: Email | None = None


TYPE_FIELDS: dict[CampaignType, frozenset[str]] = {
    CampaignType.call: frozenset(_CallFields.model_fields),
    CampaignType.social: frozenset(_SocialFields.model_fields),
    CampaignType.text: frozenset(_TextFields.model_fields),
    CampaignType.email: frozenset(_EmailFields.model_fields),
}
"""Which type-specific fields each campaign type accepts (others → 422 on PATCH)."""

# -- create ------------------------------------------------------------------------------------


RetryMinutes = Annotated[int, Field(ge=1, le=30 * 24 * 60)]
_RETRY = "Minutes after an unanswered attempt before the recipient is due again (default 60)."


class _CampaignCreateBase(IgnoreTenantId):
    name: Name
    description: Description | None = None
    status: CampaignStatus = CampaignStatus.draft
    tags: Tags = Field(default_factory=list)
    segments: Segments = Field(default_factory=dict)
    starts_at: UTCDateTime | None = None
    ends_at: UTCDateTime | None = None
    integrations: Integrations = Field(default_factory=list)
    retry_after_minutes: RetryMinutes = Field(default=DEFAULT_RETRY_MINUTES, description=_RETRY)

    @model_validator(mode="after")
    def _window(self) -> Any:
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            raise ValueError("ends_at must be after starts_at")
        return self


class CallCampaignCreate(_CampaignCreateBase, _CallFields):
    type: Literal[CampaignType.call]


class SocialCampaignCreate(_CampaignCreateBase, _SocialFields):
    type: Literal[CampaignType.social]


class TextCampaignCreate(_CampaignCreateBase, _TextFields):
    type: Literal[CampaignType.text]


class EmailCampaignCreate(_CampaignCreateBase, _EmailFields):
    type: Literal[CampaignType.email]


CampaignCreate = Annotated[
    CallCampaignCreate | SocialCampaignCreate | TextCampaignCreate | EmailCampaignCreate,
    Field(discriminator="type"),
]
"""`POST /v1/campaigns`: the subtype is chosen by `type` (an unknown one → 422)."""

# -- patch -------------------------------------------------------------------------------------


class CampaignUpdate(PatchBody):
    """`PATCH /v1/campaigns/{id}`: common fields plus the campaign type's own fields.

    `type` may be repeated but not changed; a field of another type → 422. `status` moves
    draft → active|completed, active ↔ paused, active|paused → completed (else 409).
    """

    nullable: ClassVar[frozenset[str]] = frozenset(
        {
            "description",
            "starts_at",
            "ends_at",
            "script",
            "voicemail_script",
            "post_content",
            "message_template",
            "subject",
            "template",
            "from_name",
            "from_email",
            "reply_to",
        }
    )

    type: CampaignType | None = None
    name: Name | None = None
    description: Description | None = None
    status: CampaignStatus | None = None
    tags: Tags | None = None
    segments: Segments | None = None
    starts_at: UTCDateTime | None = None
    ends_at: UTCDateTime | None = None
    integrations: Integrations | None = None
    retry_after_minutes: RetryMinutes | None = Field(default=None, description=_RETRY)
    # call
    script: Script | None = None
    voicemail_script: Script | None = None
    caller_ids: Senders | None = None
    max_attempts: int | None = Field(default=None, ge=1, le=20)
    # social
    platforms: list[SocialPlatform] | None = Field(default=None, max_length=len(SocialPlatform))
    post_content: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    media_urls: list[Url] | None = Field(default=None, max_length=10)
    hashtags: list[ShortText] | None = Field(default=None, max_length=30)
    # text
    message_template: Annotated[str, StringConstraints(max_length=1600)] | None = None
    sender_numbers: Senders | None = None
    # email
    subject: Annotated[str, StringConstraints(max_length=998)] | None = None
    template: Annotated[str, StringConstraints(max_length=100_000)] | None = None
    from_name: ShortText | None = None
    from_email: Email | None = None
    reply_to: Email | None = None


# -- read --------------------------------------------------------------------------------------


if TYPE_CHECKING:  # the same fields as the input model, for the type checker
    IntegrationRefRead = IntegrationRef
else:
    IntegrationRefRead = read_shape(IntegrationRef, "IntegrationRefRead")


class _CampaignReadBase(ResourceRead):
    name: str
    description: str | None = None
    status: CampaignStatus
    user_id: UUID | None = None
    tags: list[str]
    segments: dict[str, str]
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    integrations: list[IntegrationRefRead]
    lead_count: int = Field(
        description="The campaign's live leads (attached, not deleted), kept up to date."
    )
    retry_after_minutes: int = Field(default=DEFAULT_RETRY_MINUTES, description=_RETRY)


class CallCampaignRead(_CampaignReadBase, _CallFields):
    type: Literal[CampaignType.call]


class SocialCampaignRead(_CampaignReadBase, _SocialFields):
    type: Literal[CampaignType.social]


class TextCampaignRead(_CampaignReadBase, _TextFields):
    type: Literal[CampaignType.text]


class EmailCampaignRead(_CampaignReadBase, _EmailFields):
    type: Literal[CampaignType.email]


AnyCampaignRead = CallCampaignRead | SocialCampaignRead | TextCampaignRead | EmailCampaignRead
CampaignRead = Annotated[AnyCampaignRead, Field(discriminator="type")]
CAMPAIGN_VIEW: ReadView[AnyCampaignRead] = ReadView(CampaignRead)
"""Stored campaigns (raw or documents) → `CampaignRead`, one validation each."""
to_campaign_read = CAMPAIGN_VIEW.document
"""The API view of a stored campaign document."""


# -- lists and links ---------------------------------------------------------------------------

CAMPAIGN_SORT_FIELDS: dict[str, str] = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "name": "name",
    "status": "status",
    "starts_at": "starts_at",
}
"""`sort` names of `GET /v1/campaigns` → stored fields (each has its index on `campaigns`)."""

CampaignSort = Literal[
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "name",
    "-name",
    "status",
    "-status",
    "starts_at",
    "-starts_at",
]


class CampaignFilters(ListParams, Counted):
    """`GET /v1/campaigns` query parameters (also the `filters` of a saved campaign search)."""

    type: CampaignType | None = Field(default=None, description="Only campaigns of this type.")
    status: CampaignStatus | None = Field(
        default=None, description="Only campaigns in this status."
    )
    tag: Tag | None = Field(default=None, description="Only campaigns carrying this tag.")
    sort: CampaignSort | None = Field(
        default=None,
        description=(
            "Order by this field, ascending, or descending with a leading `-`; ties are "
            "broken by `id` in the same direction, missing values sort lowest, text by code "
            "point (upper case before lower case). Default: "
            "newest first."
        ),
    )


class CampaignPage(CountedPage[CampaignRead]):  # type: ignore[valid-type]
    """A page of campaigns; `total` only with `count=true`."""


class AttachLeads(IgnoreTenantId):
    """`POST /v1/campaigns/{id}/leads`: leads of the tenant to attach (at most 1000 per call)."""

    lead_ids: list[UUID] = Field(min_length=1, max_length=MAX_ATTACH)


class AttachResult(BaseModel):
    """How many of the given leads were newly attached (already attached ones are not counted)."""

    added: int
