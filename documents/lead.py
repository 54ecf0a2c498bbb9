"""Leads: one polymorphic root in `leads` (`mls` real-estate listing leads, `generic` contacts).

Dedupe keys (email, phone, MLS id) are normalised before they are stored (services normalise
phones with the tenant's region) and are unique among a tenant's live leads through claims in
`lead_claims` (documents/lead_claim.py, service/leads/claims.py), not through indexes here:
`leads` is sharded on `{tenant_id, _id}`, and MongoDB refuses a unique index on a sharded
collection that its shard key does not prefix. No query looks leads up by these keys.

Search: `search_text` is derived from the searchable fields (names, email, phone digits,
company, MLS id, address), folded to lower case without accents, the parts separated by a
control character no search term can contain; `q` is one regular expression over it (see
service/leads/queries.py for why this rather than a `$text` index). A merged lead is
soft-deleted with `merged_into` naming the lead it lives on in.

Geography: an MLS lead may carry `location`, a GeoJSON Point `[longitude, latitude]`, indexed
`2dsphere` (tenant-prefixed) for "nearest first" and radius searches.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints, model_validator
from pymongo import GEOSPHERE, IndexModel

from documents.base import (
    Cents,
    Email,
    Phone,
    PostalAddress,
    RootDocument,
    Segmented,
    ShortText,
    SubDocument,
    UTCDateTime,
)
from documents.consent import Consent
from documents.indexes import list_indexes
from documents.migrations import Upcaster
from documents.tenant import TimeZoneName

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


class ListingAgent(SubDocument):
    """The agent who lists the property."""

    name: ShortText | None = None
    email: Email | None = None
    phone: Phone | None = None
    brokerage: ShortText | None = None
    license_number: ShortText | None = None


Longitude = Annotated[float, Field(ge=-180, le=180, strict=True, allow_inf_nan=False)]
Latitude = Annotated[float, Field(ge=-90, le=90, strict=True, allow_inf_nan=False)]


class GeoPoint(SubDocument):
    """A GeoJSON Point: `coordinates` are `[longitude, latitude]` in degrees (WGS 84)."""

    type: Literal["Point"] = "Point"
    # `items` beside the tuple's `prefixItems`, for OpenAPI tools that predate JSON Schema 2020-12.
    coordinates: tuple[Longitude, Latitude] = Field(
        json_schema_extra={"items": {"type": "number", "minimum": -180, "maximum": 180}}
    )


SEARCH_SEPARATOR = "\x1f"  # between the parts of `search_text`; refused in a search term


def fold(text: str) -> str:
    """Text as search compares it: case-folded, accents removed, spaces collapsed."""
    if text.isascii():  # the common case: NFKD and combining marks change nothing in ASCII
        return " ".join(text.lower().split())
    # Other text is folded character by character (a few microseconds): once per distinct
    # value while it is remembered (an import's names, cities and companies repeat).
    folded = _FOLDED.get(text)
    if folded is None:
        decomposed = unicodedata.normalize("NFKD", text.casefold())
        plain = "".join(c for c in decomposed if not unicodedata.combining(c))
        folded = " ".join(plain.split())
        if len(_FOLDED) >= _FOLDED_MAX:
            _FOLDED.clear()
        _FOLDED[str(text)] = folded
    return folded


_FOLDED: dict[str, str] = {}  # non-ASCII text → `fold`'s result
_FOLDED_MAX = 4096


_ADDRESS_PARTS = ("line1", "line2", "city", "state", "postal_code", "country")


def lead_search_text(fields: Mapping[str, Any]) -> str:
    """The folded, searchable text of a lead's fields (a stored document, or its fields).

    A pure function of the stored document, so it also serves as the upcaster that gives
    leads stored before `search_text` existed their value (`with_search_text`).
    """
    return lead_search_fields(fields)[0]


def with_search_text(stored: dict[str, Any]) -> dict[str, Any]:
    """Upcaster: a stored lead (raw) with `search_text` derived from its fields."""
    return {**stored, "search_text": lead_search_text(stored)}


# `q` through an index (issue 23). What a lead is found by, each matched from its START
# (a prefix of a token): every word of its names, company, MLS id and address parts; its
# email whole, its local part, its domain and their words; the digits of its phone (E.164
# without `+`) and every suffix of them of at least `PHONE_SUFFIX_MIN` digits. Words are
# folded (lower case, no accents) and split at spaces and `SEARCH_PUNCTUATION`.
SEARCH_PUNCTUATION = r"\s.,;:@_\-()/+'\"&#!?"
_WORD_SPLIT = re.compile(f"[{SEARCH_PUNCTUATION}]+")
# ASCII text splits the same with str methods (`\s` and `str.split()` agree on ASCII space);
# the punctuation becomes spaces by a bytes table (`str.translate` looks each character up).
_PUNCTUATION = b".,;:@_-()/+'\"&#!?"
_PUNCTUATION_TO_SPACE = bytes.maketrans(_PUNCTUATION, b" " * len(_PUNCTUATION))
_NOT_DIGITS = re.compile(r"\D")
PHONE_SUFFIX_MIN = 4
MAX_SEARCH_TOKENS = 120  # a lead's fields are bounded; this bounds the array outright


def search_words(text: str) -> list[str]:
    """The folded words of a text (what a term is split into too)."""
    return [w for w in _WORD_SPLIT.split(fold(text)) if w]


def lead_search_tokens(fields: Mapping[str, Any]) -> list[str]:
    """The tokens `q` matches a lead by (a stored document or its fields); see above."""
    return lead_search_fields(fields)[1]


def _fold_part(part: str, text: list[str]) -> str:
    """`part` folded, and onto the text when it has text after `strip` (for ASCII, folded
    inline, that is when it folds to something)."""
    if part.isascii():
        folded = " ".join(part.lower().split())
        if folded:
            text.append(folded)
        return folded
    folded = fold(part)
    if part.strip():
        text.append(folded)
    return folded


def lead_search_fields(fields: Mapping[str, Any]) -> tuple[str, list[str]]:
    """`search_text` and `search_tokens` of a lead's fields, each part folded once.

    The one derivation of both (the document's validator, the bulk import, the upcasters):
    a part's folded form gives its piece of the text and its words.
    """
    get = fields.get
    address = get("address") or {}
    if type(address) is not dict and not isinstance(address, Mapping):
        address = address.model_dump()
    first, last = get("first_name"), get("last_name")
    email, phone = get("email"), get("phone")
    others = (get("company"), get("mls_id"), *map(address.get, _ADDRESS_PARTS))
    try:  # (a part neither text nor falsy is no str to join: not text, skipped below)
        all_ascii = "".join(filter(None, (first, last, email, *others))).isascii()
    except TypeError:
        all_ascii = False
    if all_ascii:
        return _ascii_search_fields(first, last, email, phone, others)
    text: list[str] = []
    words: list[str] = []
    f_first = _fold_part(first, text) if isinstance(first, str) else None
    f_last = _fold_part(last, text) if isinstance(last, str) else None
    words += filter(None, (f_first, f_last))
    ascii_names = all(not isinstance(n, str) or n.isascii() for n in (first, last))
    # The text: first, last, "first last", email, phone digits, company, MLS id, address.
    if first and last:
        if f_first is not None and f_last is not None and ascii_names:
            # For ASCII, folding the joined names is joining their folded words (and it has
            # text after `strip` when either has).
            if f_first and f_last:
                text.append(f"{f_first} {f_last}")
            elif f_first or f_last:
                text.append(f_first or f_last)
        else:
            both = f"{first} {last}"
            if both.strip():
                text.append(fold(both))
    f_email = _fold_part(email, text) if isinstance(email, str) else None
    digits = _phone_part(phone, text)
    # The words of the names, company, MLS id and address parts (their folded forms joined
    # by a space: the split gives each part's words in order).
    for part in others:
        if isinstance(part, str) and (folded := _fold_part(part, text)):
            words.append(folded)
    tokens = _split_words(" ".join(words)) if words else []
    # The email whole, its local part, its domain and their words; the phone's digits and
    # their suffixes.
    if f_email:
        local, _, domain = f_email.partition("@")
        # `fold` is idempotent on ASCII only (U+210C folds to H): words fold the folded email.
        again = f_email if email.isascii() else fold(f_email)  # type: ignore[union-attr]
        tokens += (f_email, local, domain, *_split_words(again))
    return SEARCH_SEPARATOR.join(text), _tokens(tokens, digits)


def _ascii_search_fields(
    first: Any, last: Any, email: Any, phone: Any, others: tuple[Any, ...]
) -> tuple[str, list[str]]:
    # `lead_search_fields` when every text part but the phone is ASCII (most leads; parts
    # that are not text are skipped as there), without a call per part: a part folds to
    # `" ".join(part.lower().split())`, and the words of the names, company, MLS id and
    # address are those of their folded forms joined at once.
    text: list[str] = []
    sources: list[str] = []  # the folded parts whose words are tokens
    f_first = " ".join(first.lower().split()) if isinstance(first, str) else ""
    f_last = " ".join(last.lower().split()) if isinstance(last, str) else ""
    if f_first:
        text.append(f_first)
        sources.append(f_first)
    if f_last:
        text.append(f_last)
        sources.append(f_last)
    if first and last and (f_first or f_last):
        text.append(f"{f_first} {f_last}" if f_first and f_last else f_first or f_last)
    f_email = " ".join(email.lower().split()) if isinstance(email, str) else ""
    if f_email:
        text.append(f_email)
    digits = _phone_part(phone, text)
    for part in others:
        if isinstance(part, str) and (folded := " ".join(part.lower().split())):
            text.append(folded)
            sources.append(folded)
    tokens = " ".join(sources).encode().translate(_PUNCTUATION_TO_SPACE).decode().split()
    if f_email:
        local, _, domain = f_email.partition("@")
        tokens += (f_email, local, domain)
        tokens += f_email.encode().translate(_PUNCTUATION_TO_SPACE).decode().split()
    return SEARCH_SEPARATOR.join(text), _tokens(tokens, digits)


def _phone_part(phone: Any, text: list[str]) -> str | None:
    # A phone's piece of the text (appended to `text`) and its digits, or None.
    if not isinstance(phone, str):
        return None
    plain = phone.lstrip("+")  # E.164 (stored phones): its digits after the `+`
    if plain.isascii() and plain.isdecimal():
        text.append(plain)  # folds to itself
        return plain
    if plain.strip():
        text.append(fold(plain))
    return _NOT_DIGITS.sub("", phone)


def _tokens(tokens: list[str], digits: str | None) -> list[str]:
    # The words with the phone's digits and their suffixes, each once, none empty, capped.
    if digits is not None:
        # (A loop: a comprehension is a call of its own in CPython 3.11, a sixth of this.)
        if len(digits) > PHONE_SUFFIX_MIN:
            for start in range(len(digits) - PHONE_SUFFIX_MIN + 1):
                tokens.append(digits[start:])
        else:
            tokens.append(digits)
    unique = dict.fromkeys(tokens)
    unique.pop("", None)
    found = list(unique)
    return found if len(found) <= MAX_SEARCH_TOKENS else found[:MAX_SEARCH_TOKENS]


def _split_words(text: str) -> list[str]:
    # `_WORD_SPLIT.split(text)` but for empty words (which the tokens drop).
    if text.isascii():
        return text.encode().translate(_PUNCTUATION_TO_SPACE).decode().split()
    return _WORD_SPLIT.split(text)


def with_search_tokens(stored: dict[str, Any]) -> dict[str, Any]:
    """Upcaster 1 → 2: `search_tokens` and `is_archived` derived from the stored fields."""
    return {
        **stored,
        "search_tokens": lead_search_tokens(stored),
        "is_archived": stored.get("archived_at") is not None,
    }


def with_outreach_defaults(stored: dict[str, Any]) -> dict[str, Any]:
    """Upcaster 2 → 3: `unknown` consent on every channel, the creator as assignee."""
    upcast = dict(stored)
    upcast.setdefault("consent", Consent().model_dump())
    if upcast.get("assignee_id") is None:
        upcast["assignee_id"] = stored.get("user_id")
    return upcast


class GenericFields(BaseModel):
    """The fields only generic leads have (shared by the document and the API schemas)."""

    company: ShortText | None = None
    job_title: ShortText | None = None


class LeadBase(RootDocument, Segmented):
    """Fields every lead has; `last_contacted_at` is raised by touchpoint events."""

    aggregate_type: ClassVar[str] = "lead"
    derived_fields: ClassVar[frozenset[str]] = frozenset({"search_text", "search_tokens"})

    type: LeadType
    status: LeadStatus = LeadStatus.new
    first_name: ShortText | None = None
    last_name: ShortText | None = None
    email: Email | None = None
    phone: Phone | None = None
    address: Address = Field(default_factory=Address)
    source: ShortText | None = None
    user_id: UUID | None = None  # the user who created the lead
    notes: Annotated[str, StringConstraints(max_length=5000)] | None = None
    last_contacted_at: UTCDateTime | None = None
    merged_into: UUID | None = None  # set on a lead merged into another (and soft-deleted)
    # Set when the person's data was erased (service/leads/privacy.py): the lead is a tombstone.
    erased_at: UTCDateTime | None = None
    # Outreach (issue 25): consent per channel, the owning agent, the lead's local zone.
    consent: Consent = Field(default_factory=Consent)
    assignee_id: UUID | None = None  # the agent the lead is assigned to (creator by default)
    time_zone: TimeZoneName | None = None  # else the phone number's zones decide quiet hours
    # For `q` only: derived from the other fields on every validation (never sent by clients).
    search_text: str = ""
    search_tokens: list[str] = Field(default_factory=list, max_length=MAX_SEARCH_TOKENS)
    # `archived_at is not None`, kept by the validator: lists select on it by equality.
    is_archived: bool = False

    schema_version: int = 3
    upcasters: ClassVar[dict[int, Upcaster]] = {
        1: with_search_tokens,
        2: with_outreach_defaults,
    }

    @model_validator(mode="after")
    def _derive_search_text(self) -> LeadBase:
        self.search_text, self.search_tokens = lead_search_fields(self.__dict__)
        self.is_archived = self.archived_at is not None
        return self

    class Settings:
        name = "leads"
        is_root = True
        indexes = [
            # `GET /v1/leads`: its filters and its `sort` fields.
            *list_indexes(
                archived=True,
                filters=("type", "status", "tags"),
                sorts=(
                    "status",
                    "created_at",
                    "updated_at",
                    "last_name",
                    "list_price_cents",
                    "last_contacted_at",
                ),
            ),
            # "My leads" (`assignee_id=`), newest first (other sorts use their sort index).
            IndexModel(
                [("tenant_id", 1), ("is_deleted", 1), ("assignee_id", 1), ("_id", -1)],
                name="tenant_live_assignee_id",
            ),
            # `q`: an anchored prefix of one of the term's words bounds a range of this
            # multikey index (service/leads/queries.py `search_filter`).
            IndexModel(
                [("tenant_id", 1), ("is_deleted", 1), ("search_tokens", 1), ("_id", 1)],
                name="tenant_search_tokens",
            ),
            # `near=`: leads with a location (2dsphere indexes skip documents without one).
            IndexModel(
                [("tenant_id", 1), ("is_deleted", 1), ("location", GEOSPHERE)],
                name="tenant_location",
            ),
        ]


class GenericLead(LeadBase, GenericFields):
    """A contact from any source; needs an email or a phone (checked at the API edge)."""

    type: Literal[LeadType.generic] = LeadType.generic  # type: ignore[assignment]

    @model_validator(mode="after")
    def _reachable(self) -> GenericLead:
        # Without either there is nothing to contact and nothing to dedupe on.
        # An erased lead (a tombstone) keeps neither.
        if self.email is None and self.phone is None and self.erased_at is None:
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


class MlsListing(BaseModel):
    """The property facts of an MLS listing, written once for the document and the API schemas."""

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
    location: GeoPoint | None = Field(
        default=None,
        description="The property's position, a GeoJSON Point [longitude, latitude].",
    )


class MLSRealEstateLead(LeadBase, MlsListing):
    """A lead from an MLS listing: the property's facts and its listing agent."""

    type: Literal[LeadType.mls] = LeadType.mls  # type: ignore[assignment]
    mls_id: MlsId
    list_price_cents: Cents | None = None
    listing_agent: ListingAgent | None = None


LEAD_CLASSES: dict[LeadType, type[LeadBase]] = {
    LeadType.mls: MLSRealEstateLead,
    LeadType.generic: GenericLead,
}

__all__ = [
    "LEAD_CLASSES",
    "SEARCH_SEPARATOR",
    "Address",
    "GenericFields",
    "GenericLead",
    "GeoPoint",
    "LeadBase",
    "LeadStatus",
    "LeadType",
    "ListingAgent",
    "ListingStatus",
    "MLSRealEstateLead",
    "MlsId",
    "MlsListing",
    "PropertyType",
    "fold",
    "lead_search_fields",
    "lead_search_text",
    "lead_search_tokens",
    "search_words",
    "with_search_text",
    "with_search_tokens",
]
