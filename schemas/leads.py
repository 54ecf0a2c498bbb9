"""API shapes of leads: polymorphic create/read on `type`, patch, merge, filters, sorts, export."""

from __future__ import annotations

import math
import re
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    SkipValidation,
    StringConstraints,
    field_validator,
    model_validator,
)

from documents.base import Email, ShortText, Tag
from documents.lead import (
    Address,
    GenericFields,
    GeoPoint,
    LeadStatus,
    LeadType,
    MlsId,
    MlsListing,
    with_outreach_defaults,
)
from documents.tenant import TimeZoneName
from schemas.common import (
    Counted,
    CountedPage,
    IgnoreTenantId,
    ListParams,
    Money,
    PatchBody,
    ProblemError,
    ReadView,
    ResourceRead,
    cents_to_money,
    read_shape,
)
from schemas.consent import ConsentIn, ConsentRead
from schemas.export import CsvExport

RawPhone = Annotated[str, StringConstraints(strip_whitespace=True, min_length=3, max_length=32)]
Tags = Annotated[list[Tag], Field(max_length=50)]
Segments = Annotated[
    dict[Annotated[str, StringConstraints(max_length=64, pattern=r"^[^$.\x00]+$")], ShortText],
    Field(max_length=50),
]
Notes = Annotated[str, StringConstraints(max_length=5000)]
MAX_BULK_ROWS = 10_000
MAX_QUERY_CHARS = 100
MAX_MERGE_SOURCES = 20
MAX_ASSIGN = 500


class ListingAgentIn(IgnoreTenantId):
    """The listing agent; the phone is read in the tenant's region when it has no country code."""

    name: ShortText | None = None
    email: Email | None = None
    phone: RawPhone | None = None
    brokerage: ShortText | None = None
    license_number: ShortText | None = None


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
    consent: ConsentIn | None = Field(
        default=None,
        description="Consent per channel (others stay `unknown`).",
        examples=[{"text": {"status": "opted_in", "source": "web form"}}],
    )
    time_zone: TimeZoneName | None = Field(
        default=None, description="The lead's IANA zone (else its phone number's zones)."
    )


class GenericLeadCreate(_LeadCreateBase, GenericFields):
    """A generic lead needs an `email` or a `phone`."""

    type: Literal[LeadType.generic]

    @model_validator(mode="after")
    def _reachable(self) -> Any:
        if self.email is None and self.phone is None:
            raise ValueError("a generic lead needs an email or a phone")
        return self


class MLSLeadCreate(_LeadCreateBase, MlsListing):
    """An MLS lead needs `mls_id`; `list_price` is in major units."""

    type: Literal[LeadType.mls]
    mls_id: MlsId
    list_price: Money | None = None
    listing_agent: ListingAgentIn | None = None


LeadCreate = Annotated[GenericLeadCreate | MLSLeadCreate, Field(discriminator="type")]
"""`POST /v1/leads` (and each row of the bulk import): the subtype is chosen by `type`."""

# -- patch -------------------------------------------------------------------------------------

MLS_ONLY = frozenset({"mls_id", "list_price", "listing_agent", *MlsListing.model_fields})
GENERIC_ONLY = frozenset(GenericFields.model_fields)


class LeadUpdate(PatchBody, GenericFields, MlsListing):
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
            "time_zone",
            *MlsListing.model_fields,
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
    # mls (the listing facts come from MlsListing, the generic fields from GenericFields)
    mls_id: MlsId | None = None
    list_price: Money | None = None
    listing_agent: ListingAgentIn | None = None
    assignee_id: UUID | None = Field(
        default=None, description="An active user of the tenant (else 422)."
    )
    time_zone: TimeZoneName | None = None


# -- read --------------------------------------------------------------------------------------


class ListingAgentRead(BaseModel):
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    brokerage: str | None = None
    license_number: str | None = None


if TYPE_CHECKING:  # the same fields as the input models, for the type checker
    AddressRead = Address
    GeoPointRead = GeoPoint
else:
    AddressRead = read_shape(Address, "AddressRead")
    GeoPointRead = read_shape(GeoPoint, "GeoPointRead")


class _LeadReadBase(ResourceRead):
    status: LeadStatus
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = Field(default=None, description="E.164.")
    address: AddressRead
    source: str | None = None
    notes: str | None = None
    user_id: UUID | None = None
    tags: list[str]
    segments: dict[str, str]
    last_contacted_at: datetime | None = None
    merged_into: UUID | None = Field(
        default=None, description="The lead this one was merged into (it is then deleted)."
    )
    erased_at: datetime | None = Field(
        default=None, description="When the person's data was erased (the lead is a tombstone)."
    )
    consent: ConsentRead = Field(default_factory=ConsentRead)
    assignee_id: UUID | None = Field(default=None, description="The agent the lead belongs to.")
    time_zone: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _upcast_stored(cls, data: Any) -> Any:
        # The read path validates stored documents directly: a lead stored before consent
        # existed is upcast here (keyed on the field, not a version number).
        if isinstance(data, dict) and "consent" not in data:
            return with_outreach_defaults(data)
        return data


class GenericLeadRead(_LeadReadBase, GenericFields):
    type: Literal[LeadType.generic]


def _from_cents(value: Any) -> Any:
    return (
        cents_to_money(value) if isinstance(value, int) and not isinstance(value, bool) else value
    )


class MLSLeadRead(_LeadReadBase, MlsListing):
    type: Literal[LeadType.mls]
    mls_id: str
    # Stored as integer cents (`list_price_cents`), answered in major units.
    list_price: Annotated[Money, BeforeValidator(_from_cents)] | None = Field(
        default=None, validation_alias="list_price_cents"
    )
    listing_agent: ListingAgentRead | None = None
    location: GeoPointRead | None = Field(
        default=None,
        description="The property's position, a GeoJSON Point [longitude, latitude].",
    )


AnyLeadRead = GenericLeadRead | MLSLeadRead
LeadRead = Annotated[AnyLeadRead, Field(discriminator="type")]
LEAD_VIEW: ReadView[AnyLeadRead] = ReadView(
    LeadRead, unread=("search_text", "search_tokens", "pending_event")
)
"""Stored leads (raw or documents) → `LeadRead`, one validation each (money in major units)."""
to_lead_read = LEAD_VIEW.document
"""The API view of a stored lead document."""


LEAD_CSV = CsvExport([GenericLeadRead, MLSLeadRead])
"""The CSV shape of `GET /v1/leads/export`: every field of both lead types, flattened."""


class LeadMerge(IgnoreTenantId):
    """`POST /v1/leads/{id}/merge`: leads of the tenant to merge into this one."""

    source_ids: list[UUID] = Field(
        min_length=1,
        max_length=MAX_MERGE_SOURCES,
        description="Live leads of the tenant (not the target itself) to merge into it.",
    )


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

LEAD_SORT_FIELDS: dict[str, str] = {
    "created_at": "created_at",
    "updated_at": "updated_at",
    "last_name": "last_name",
    "list_price": "list_price_cents",
    "status": "status",
    "last_contacted_at": "last_contacted_at",
}
"""`sort` names of the lead lists → stored fields (each has its index on `leads`)."""

LeadSort = Literal[
    "created_at",
    "-created_at",
    "updated_at",
    "-updated_at",
    "last_name",
    "-last_name",
    "list_price",
    "-list_price",
    "status",
    "-status",
    "last_contacted_at",
    "-last_contacted_at",
]

_SORT_DOC = (
    "Order by this field, ascending, or descending with a leading `-`; ties are broken by "
    "`id` in the same direction, missing values sort lowest, and text by code point (no "
    "collation: upper case before lower case). Default: newest first "
    "(nearest first with `near`)."
)
_LONGITUDE = r"-?(?:180(?:\.0+)?|(?:1[0-7]\d|\d{1,2})(?:\.\d+)?)"
_LATITUDE = r"-?(?:90(?:\.0+)?|[1-8]?\d(?:\.\d+)?)"
POINT_PATTERN = rf"^\s*({_LONGITUDE})\s*,\s*({_LATITUDE})\s*$"
_POINT = re.compile(POINT_PATTERN)
EARTH_HALF_CIRCUMFERENCE_KM = 20_038.0


class _LeadCriteria(BaseModel):
    """What selects and orders leads, shared by the lists and the export."""

    model_config = ConfigDict(extra="forbid")

    type: LeadType | None = Field(default=None, description="Only leads of this type.")
    status: LeadStatus | None = Field(default=None, description="Only leads in this status.")
    tag: Tag | None = Field(default=None, description="Only leads carrying this tag.")
    q: SearchText | None = Field(
        default=None,
        description=(
            "Search (≤100 chars): matches any part of the name (first, last, or both), email, "
            "company, MLS id and address, ignoring case and accents; digits also match any "
            "part of the phone number however it is typed (`(415) 555-01`)."
        ),
    )
    sort: LeadSort | None = Field(default=None, description=_SORT_DOC)
    assignee_id: UUID | Literal["me"] | None = Field(
        default=None, description="Only leads assigned to this user (`me`: the caller)."
    )


def _point_problem(value: str) -> str:
    """Why `value` is not `<longitude>,<latitude>`, in plain words."""
    form = "`near` is `<longitude>,<latitude>` in degrees, longitude first (-122.42,37.77)"
    parts = value.split(",")
    try:
        lng, lat = (float(p) for p in parts)
    except ValueError:
        return f"{form}: two numbers separated by a comma."
    if not (math.isfinite(lng) and math.isfinite(lat)):
        return f"{form}: two finite numbers."
    if not -90 <= lat <= 90 and -90 <= lng <= 90 and -180 <= lat <= 180:
        return f"{form}; the latitude {lat:g} is beyond ±90: are the two swapped?"
    if not -90 <= lat <= 90:
        return f"{form}; the latitude must be between -90 and 90."
    return f"{form}; the longitude must be between -180 and 180."


class _Nearby(BaseModel):
    """`near`/`within_km`: leads with a location around a point, nearest first."""

    near: str | None = Field(
        default=None,
        max_length=64,
        # Documented, and checked by `_point` (which explains what is wrong in plain words).
        json_schema_extra={"pattern": POINT_PATTERN},
        examples=["-122.4194,37.7749"],
        description=(
            "`<longitude>,<latitude>` in degrees: only leads with a `location`, nearest first "
            "(unless `sort` is given). Not combined with `campaign_id`."
        ),
    )
    within_km: float | None = Field(
        default=None,
        gt=0,
        le=EARTH_HALF_CIRCUMFERENCE_KM,
        allow_inf_nan=False,
        description="With `near`: only leads at most this far away (great-circle distance).",
    )

    @field_validator("near")
    @classmethod
    def _point(cls, value: str | None) -> str | None:
        if value is None:
            return None
        match = _POINT.match(value)
        if match is None:
            raise ValueError(_point_problem(value))
        lng, lat = float(match.group(1)), float(match.group(2))
        return f"{lng},{lat}"

    @model_validator(mode="after")
    def _radius_needs_point(self) -> Any:
        if self.within_km is not None and self.near is None:
            raise ValueError("within_km needs near")
        # A campaign's leads are read through its links, which a geo search cannot walk.
        if self.near is not None and getattr(self, "campaign_id", None) is not None:
            raise ValueError("near cannot be combined with campaign_id")
        return self

    @property
    def point(self) -> tuple[float, float] | None:
        """`near` as (longitude, latitude)."""
        if self.near is None:
            return None
        lng, lat = self.near.split(",")
        return float(lng), float(lat)


class CampaignLeadFilters(ListParams, Counted, _LeadCriteria):
    """`GET /v1/campaigns/{id}/leads` query parameters."""


class LeadPage(CountedPage[LeadRead]):  # type: ignore[valid-type]
    """A page of leads; `total` only with `count=true`."""


class LeadFilters(CampaignLeadFilters, _Nearby):
    """`GET /v1/leads` query parameters (also the `filters` of a saved lead search)."""

    campaign_id: UUID | None = Field(default=None, description="Only leads of this campaign.")


class ExportFormat(StrEnum):
    csv = "csv"
    ndjson = "ndjson"


class LeadExportParams(_LeadCriteria, _Nearby):
    """`GET /v1/leads/export`: the list filters and sort (no paging), and the format."""

    format: ExportFormat = Field(
        default=ExportFormat.csv,
        description="`csv` (a header row, nested fields as `address.city`) or `ndjson`.",
    )
    campaign_id: UUID | None = Field(default=None, description="Only leads of this campaign.")
    include_deleted: bool = Field(default=False, description="Include soft-deleted leads.")
    include_archived: bool = Field(default=False, description="Include archived leads.")


# -- bulk import -------------------------------------------------------------------------------


class _AnyRow:
    """JSON Schema of a bulk row: a `LeadCreate` is expected, any value is taken.

    The request accepts every row (a bad one is a 200 whose `failed` names it, the contract),
    so its schema says so: `anyOf: [LeadCreate, {}]`. A generated client still offers the lead
    types, and a fuzzer does not expect a 422 for a row that breaks `LeadCreate`.
    """

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: Any, handler: GetJsonSchemaHandler
    ) -> dict[str, Any]:
        return {
            "anyOf": [handler(core_schema), {}],
            "description": "A lead as for `POST /v1/leads` (`LeadCreate`). Any other value is "
            "taken too and reported in `failed` with its index.",
        }


class LeadBulkImport(IgnoreTenantId):
    """`POST /v1/leads/bulk`: up to 10,000 rows, each a `LeadCreate`, validated one by one.

    Rows are documented as `LeadCreate` but not validated here (`SkipValidation`): the service
    validates each row alone, so a bad row is reported in `failed` and the good rows are kept.
    """

    leads: list[Annotated[SkipValidation[LeadCreate], _AnyRow]] = Field(
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


class LeadAssign(IgnoreTenantId):
    """`POST /v1/leads/assign`: give these leads to an active user of the tenant."""

    lead_ids: list[UUID] = Field(min_length=1, max_length=MAX_ASSIGN, description="Lead ids.")
    assignee_id: UUID = Field(description="An active user of the tenant (else 422).")


class LeadAssignResult(BaseModel):
    """How many leads changed hands (already assigned and unknown ids are not counted)."""

    updated: int
