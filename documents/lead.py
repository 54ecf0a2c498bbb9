"""Leads: one polymorphic root in `leads` (`mls` real-estate listing leads, `generic` contacts).

Dedupe keys (email, phone, MLS id) are normalised before they are stored (services normalise
phones with the tenant's region) and are unique per tenant through PARTIAL unique indexes
that only cover live documents holding the key as a string: soft-deleted leads and leads
without that key never collide. The indexes are the last word; services look up first only to
answer 409 with the existing lead's id.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator
from pymongo import IndexModel

from documents.base import (
    Cents,
    Email,
    Embedded,
    Phone,
    PostalAddress,
    RootDocument,
    Segmented,
    ShortText,
    UTCDateTime,
)

MlsId = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_upper=True,
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    ),
]
"""An MLS listing number, stored trimmed and upper-cased (boards print them either way)."""


class LeadType(StrEnum):
    """The readable discriminator stored in `type`."""

    mls = "mls"
    generic = "generic"


class LeadStatus(StrEnum):
    new = "new"
    contacted = "contacted"
    qualified = "qualified"
    converted = "converted"
    lost = "lost"


class ListingStatus(StrEnum):
    active = "active"
    coming_soon = "coming_soon"
    pending = "pending"
    sold = "sold"
    expired = "expired"
    withdrawn = "withdrawn"
    off_market = "off_market"


class PropertyType(StrEnum):
    single_family = "single_family"
    condo = "condo"
    townhouse = "townhouse"
    multi_family = "multi_family"
    land = "land"
    commercial = "commercial"
    mobile = "mobile"
    other = "other"


class Address(PostalAddress):
    """The property's postal address (searched by `q`)."""


class ListingAgent(Embedded):
    """The agent who lists the property."""

    name: ShortText | None = None
    email: Email | None = None
    phone: Phone | None = None
    brokerage: ShortText | None = None
    license_number: ShortText | None = None


def _live_with(field: str) -> dict[str, object]:
    # `$type: string` rather than `$exists`: a field stored as null must not collide either.
    return {"is_deleted": False, field: {"$type": "string"}}


class LeadBase(RootDocument, Segmented):
    """Fields every lead has; `last_contacted_at` is raised by touchpoint events."""

    aggregate_type: ClassVar[str] = "lead"

    type: LeadType
    status: LeadStatus = LeadStatus.new
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    email: Email | None = None
    phone: Phone | None = None
    address: Address = Field(default_factory=Address)
    source: ShortText | None = None
    user_id: UUID | None = None  # the agent the lead is assigned to
    notes: Annotated[str, StringConstraints(max_length=5000)] | None = None
    last_contacted_at: UTCDateTime | None = None

    class Settings:
        name = "leads"
        is_root = True
        indexes = [
            IndexModel([("tenant_id", 1), ("is_deleted", 1), ("_id", -1)], name="tenant_list"),
            IndexModel([("tenant_id", 1), ("type", 1), ("_id", -1)], name="tenant_type"),
            IndexModel([("tenant_id", 1), ("status", 1), ("_id", -1)], name="tenant_status"),
            IndexModel([("tenant_id", 1), ("tags", 1), ("_id", -1)], name="tenant_tag"),
            IndexModel(
                [("tenant_id", 1), ("email", 1)],
                unique=True,
                partialFilterExpression=_live_with("email"),
                name="tenant_email_unique",
            ),
            IndexModel(
                [("tenant_id", 1), ("phone", 1)],
                unique=True,
                partialFilterExpression=_live_with("phone"),
                name="tenant_phone_unique",
            ),
            IndexModel(
                [("tenant_id", 1), ("mls_id", 1)],
                unique=True,
                partialFilterExpression=_live_with("mls_id"),
                name="tenant_mls_unique",
            ),
        ]


class GenericLead(LeadBase):
    """A contact from any source; needs an email or a phone (checked at the API edge)."""

    type: Literal[LeadType.generic] = LeadType.generic  # type: ignore[assignment]
    company: ShortText | None = None
    job_title: ShortText | None = None

    @model_validator(mode="after")
    def _reachable(self) -> GenericLead:
        # Without either there is nothing to contact and nothing to dedupe on.
        if self.email is None and self.phone is None:
            raise ValueError("a generic lead needs an email or a phone")
        return self


# Property facts, bounded once here and shared by the API schemas (the bulk import builds
# documents from schema-validated rows without validating again, so the bounds must not drift).
Beds = Annotated[int, Field(ge=0, le=100)]
Baths = Annotated[float, Field(ge=0, le=100, multiple_of=0.25)]
SquareFeet = Annotated[int, Field(ge=0, le=10_000_000)]
LotSizeSqft = Annotated[int, Field(ge=0, le=1_000_000_000)]
YearBuilt = Annotated[int, Field(ge=1600, le=2100)]
DaysOnMarket = Annotated[int, Field(ge=0, le=100_000)]


class MLSRealEstateLead(LeadBase):
    """A lead from an MLS listing: the property's facts and its listing agent."""

    type: Literal[LeadType.mls] = LeadType.mls  # type: ignore[assignment]
    mls_id: MlsId
    mls_board: ShortText | None = None
    listing_status: ListingStatus | None = None
    list_price_cents: Cents | None = None
    property_type: PropertyType | None = None
    beds: Beds | None = None
    baths: Baths | None = None
    square_feet: SquareFeet | None = None
    lot_size_sqft: LotSizeSqft | None = None
    year_built: YearBuilt | None = None
    days_on_market: DaysOnMarket | None = None
    listed_at: UTCDateTime | None = None
    listing_agent: ListingAgent | None = None


LEAD_CLASSES: dict[LeadType, type[LeadBase]] = {
    LeadType.mls: MLSRealEstateLead,
    LeadType.generic: GenericLead,
}

__all__ = [
    "LEAD_CLASSES",
    "Address",
    "GenericLead",
    "LeadBase",
    "LeadStatus",
    "LeadType",
    "ListingAgent",
    "ListingStatus",
    "MLSRealEstateLead",
    "MlsId",
    "PropertyType",
]
