"""API shapes of leads: polymorphic create/read on `type`, patch, filters and the bulk import."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, Field, SkipValidation, StringConstraints, model_validator

from documents.base import Email, ShortText, Tag, UTCDateTime
from documents.lead import (
    Address,
    Baths,
    Beds,
    DaysOnMarket,
    LeadBase,
    LeadStatus,
    LeadType,
    ListingStatus,
    LotSizeSqft,
    MlsId,
    PropertyType,
    SquareFeet,
    YearBuilt,
)
from schemas.common import (
    IgnoreTenantId,
    ListParams,
    Money,
    PatchBody,
    ProblemError,
    ResourceRead,
    cents_to_money,
)

RawPhone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=32)]
Tags = Annotated[list[Tag], Field(max_length=50)]
Segments = Annotated[
    dict[Annotated[str, StringConstraints(max_length=64, pattern=r"^[^$.\x00]+$")], ShortText],
    Field(max_length=50),
]
Notes = Annotated[str, StringConstraints(max_length=5000)]
MAX_BULK_ROWS = 10_000
MAX_QUERY_CHARS = 100


class ListingAgentIn(IgnoreTenantId):
    """The listing agent; the phone is read in the tenant's region when it has no country code."""

    name: ShortText | None = None
    email: Email | None = None
    phone: RawPhone | None = None
    brokerage: ShortText | None = None
    license_number: ShortText | None = None


class _MlsFields(BaseModel):
    mls_board: ShortText | None = None
    listing_status: ListingStatus | None = None
    property_type: PropertyType | None = None
    beds: Beds | None = None
    baths: Baths | None = None
    square_feet: SquareFeet | None = None
    lot_size_sqft: LotSizeSqft | None = None
    year_built: YearBuilt | None = None
    days_on_market: DaysOnMarket | None = None
    listed_at: UTCDateTime | None = None


class _GenericFields(BaseModel):
    company: ShortText | None = None
    job_title: ShortText | None = None


# -- create ------------------------------------------------------------------------------------


class _LeadCreateBase(IgnoreTenantId):
    status: LeadStatus = LeadStatus.new
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    email: Email | None = None
    phone: RawPhone | None = Field(
        default=None, description="Without a country code it is read in the tenant's region."
    )
    address: Address = Field(default_factory=Address)
    source: ShortText | None = None
    notes: Notes | None = None
    tags: Tags = Field(default_factory=list)
    segments: Segments = Field(default_factory=dict)


class GenericLeadCreate(_LeadCreateBase, _GenericFields):
    """A generic lead needs an `email` or a `phone`."""

    type: Literal[LeadType.generic]

    @model_validator(mode="after")
    def _reachable(self) -> Any:
        if self.email is None and self.phone is None:
            raise ValueError("a generic lead needs an email or a phone")
        return self


class MLSLeadCreate(_LeadCreateBase, _MlsFields):
    """An MLS lead needs `mls_id`; `list_price` is in major units."""

    type: Literal[LeadType.mls]
    mls_id: MlsId
    list_price: Money | None = None
    listing_agent: ListingAgentIn | None = None


LeadCreate = Annotated[GenericLeadCreate | MLSLeadCreate, Field(discriminator="type")]
"""`POST /v1/leads` (and each row of the bulk import): the subtype is chosen by `type`."""

# -- patch -------------------------------------------------------------------------------------

MLS_ONLY = frozenset({"mls_id", "list_price", "listing_agent", *_MlsFields.model_fields})
GENERIC_ONLY = frozenset(_GenericFields.model_fields)


class LeadUpdate(PatchBody):
    """`PATCH /v1/leads/{id}`: common fields plus the lead type's own; `type` cannot change."""

    nullable: ClassVar[frozenset[str]] = frozenset(
        {
            "first_name",
            "last_name",
            "email",
            "phone",
            "source",
            "notes",
            "company",
            "job_title",
            "listing_agent",
            "list_price",
            *_MlsFields.model_fields,
        }
    )

    type: LeadType | None = None
    status: LeadStatus | None = None
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    email: Email | None = None
    phone: RawPhone | None = None
    address: Address | None = None
    source: ShortText | None = None
    notes: Notes | None = None
    tags: Tags | None = None
    segments: Segments | None = None
    # generic
    company: ShortText | None = None
    job_title: ShortText | None = None
    # mls
    mls_id: MlsId | None = None
    list_price: Money | None = None
    listing_agent: ListingAgentIn | None = None
    mls_board: ShortText | None = None
    listing_status: ListingStatus | None = None
    property_type: PropertyType | None = None
    beds: Beds | None = None
    baths: Baths | None = None
    square_feet: SquareFeet | None = None
    lot_size_sqft: LotSizeSqft | None = None
    year_built: YearBuilt | None = None
    days_on_market: DaysOnMarket | None = None
    listed_at: UTCDateTime | None = None


# -- read --------------------------------------------------------------------------------------


class ListingAgentRead(BaseModel):
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    brokerage: str | None = None
    license_number: str | None = None


class _LeadReadBase(ResourceRead):
    status: LeadStatus
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = Field(default=None, description="E.164.")
    address: Address
    source: str | None = None
    notes: str | None = None
    user_id: UUID | None = None
    tags: list[str]
    segments: dict[str, str]
    last_contacted_at: datetime | None = None


class GenericLeadRead(_LeadReadBase, _GenericFields):
    type: Literal[LeadType.generic]


class MLSLeadRead(_LeadReadBase, _MlsFields):
    type: Literal[LeadType.mls]
    mls_id: str
    list_price: Money | None = None
    listing_agent: ListingAgentRead | None = None


LeadRead = Annotated[GenericLeadRead | MLSLeadRead, Field(discriminator="type")]


def to_lead_read(doc: LeadBase) -> GenericLeadRead | MLSLeadRead:
    """The API view of a stored lead (money in major units)."""
    data = doc.to_public()
    if doc.type == LeadType.mls:
        cents = data.pop("list_price_cents", None)
        data["list_price"] = None if cents is None else cents_to_money(cents)
        return MLSLeadRead.model_validate(data)
    return GenericLeadRead.model_validate(data)


# -- lists -------------------------------------------------------------------------------------

SearchText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        min_length=1,
        max_length=MAX_QUERY_CHARS,
        pattern=r"^[^\x00-\x1f]+$",  # no control characters (MongoDB refuses a NUL in a regex)
    ),
]


class CampaignLeadFilters(ListParams):
    """`GET /v1/campaigns/{id}/leads` query parameters."""

    type: LeadType | None = None
    status: LeadStatus | None = None
    tag: Tag | None = None
    q: SearchText | None = Field(
        default=None,
        description="Case-insensitive search over name, email, phone and address (≤100 chars).",
    )


class LeadFilters(CampaignLeadFilters):
    """`GET /v1/leads` query parameters (also the `filters` of a saved lead search)."""

    campaign_id: UUID | None = Field(default=None, description="Only leads of this campaign.")


# -- bulk import -------------------------------------------------------------------------------


class LeadBulkImport(IgnoreTenantId):
    """`POST /v1/leads/bulk`: up to 10,000 rows, each a `LeadCreate`, validated one by one.

    Rows are documented as `LeadCreate` but not validated here (`SkipValidation`): the service
    validates each row alone, so a bad row is reported in `failed` and the good rows are kept.
    """

    leads: list[SkipValidation[LeadCreate]] = Field(
        max_length=MAX_BULK_ROWS,
        description="Lead objects as for POST /v1/leads, each checked alone: a bad row is "
        "reported in `failed` (with its `index`) and the others are imported.",
    )


class BulkFailure(BaseModel):
    """A row that was not imported: its position in `leads` and what is wrong with it."""

    index: int
    errors: list[ProblemError]


class LeadBulkResult(BaseModel):
    """`created` rows stored, `duplicates` skipped (in the batch or already stored), `failed`."""

    created: int
    duplicates: int
    failed: list[BulkFailure]
