"""Shared shapes: the aggregate-root base document, UTC times, money, phones, emails."""

from __future__ import annotations

import functools
import re
from datetime import UTC, datetime
from types import UnionType
from typing import Annotated, Any, ClassVar, Union, get_args, get_origin
from uuid import UUID

import phonenumbers
from beanie import Document, Insert, Replace, before_event
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    WrapValidator,
    model_validator,
)
from uuid6 import uuid7

from documents.migrations import Versioned
from documents.phones import nanp_e164


def utcnow() -> datetime:
    """Current time, timezone-aware UTC, truncated to BSON's millisecond precision."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def as_utc(value: datetime) -> datetime:
    """`value` as aware UTC (naive values are read as UTC, as BSON dates are).

    ValueError when UTC cannot hold it: years 1..9999 with an offset can fall outside
    (`0001-01-01T00:00:00+01:00`), which Python reports as an OverflowError. Raising ValueError
    makes every validator (and cursor decoding) answer 422 instead of 500.
    """
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("date-time out of range once converted to UTC") from None


def _representable_in_utc(value: datetime) -> datetime:
    as_utc(value)  # raises ValueError when out of range
    return value


_NUMBER = re.compile(r"\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*")


def _not_a_timestamp(value: Any) -> Any:
    # Pydantic reads numbers (and numeric strings) as Unix timestamps; the API speaks ISO 8601.
    if isinstance(value, bool | int | float) or (
        isinstance(value, str) and _NUMBER.fullmatch(value)
    ):
        raise ValueError("expected an ISO 8601 date-time, not a number")
    return value


ISODateTime = Annotated[
    datetime, BeforeValidator(_not_a_timestamp), AfterValidator(_representable_in_utc)
]
"""A datetime given as ISO 8601 text (numbers, which pydantic reads as Unix time, are refused).

Its offset is kept, but it must be representable in UTC (years 1..9999 once converted).
"""

UTCDateTime = Annotated[ISODateTime, AfterValidator(as_utc)]
"""A datetime normalised to aware UTC on the way in (naive values are read as UTC)."""

_PLAIN_EMAIL = re.compile(
    r"(?P<local>[A-Za-z0-9_+'-]+(?:\.[A-Za-z0-9_+'-]+)*)"
    r"@(?P<domain>(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?P<tld>[A-Za-z]{2,63}))"
)  # labels of at most 63 characters (the TLD's too), by the pattern itself
# The local part: letters, digits and `_+'-` (names like O'Brien), which email_validator
# keeps as they are; its other `atext` characters are rare and left to it.
_SPECIAL_USE_TLDS = frozenset({"arpa", "invalid", "local", "localhost", "onion", "test"})


def _plain_email(value: Any, handler: Any) -> Any:
    """The common address (ASCII dot-atom at a letters-TLD hostname) without email_validator.

    Only addresses email_validator certainly accepts unchanged but for case take this path
    (label and length limits, no `--`, no special-use TLD); anything else goes to EmailStr,
    whose answer is then trimmed and lower-cased (the fast path's is already: one validator
    a value, not two). email_validator's domain checks are most of a bulk-import row's
    validation time. tests/test_fast_paths.py compares both on generated addresses.
    """
    if type(value) is str and len(value) <= 254 and "--" not in value:
        match = _PLAIN_EMAIL.fullmatch(value)
        if (
            match is not None
            and match.end("local") <= 64
            and match["tld"].lower() not in _SPECIAL_USE_TLDS
        ):
            return value.lower()
    return handler(value).strip().lower()


Email = Annotated[EmailStr, WrapValidator(_plain_email)]
"""A syntactically valid email, stored trimmed and lower-cased."""

NOT_BLANK = {"pattern": r"[^\t\n\v\f\r \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"}
"""JSON Schema for "has a non-space character": stripped text must stay at least 1 long.

Documentation only (`Field(json_schema_extra=NOT_BLANK)`); the stripping does the check. The
class lists exactly what the validator strips (Unicode White_Space), which differs from ECMA
whitespace (NEL U+0085 is stripped, BOM U+FEFF is not).
"""

ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Name = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    Field(json_schema_extra=NOT_BLANK),
]
LongText = Annotated[str, StringConstraints(max_length=100_000)]
Url = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2048)]
"""A link (http(s) or other scheme), trimmed, at most 2048 characters."""

Tag = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=64),
    Field(json_schema_extra=NOT_BLANK),
]

Cents = Annotated[int, Field(ge=0)]
"""Money as non-negative integer cents (never a float in the database)."""


_INVALID_PHONE = (
    "Not a valid phone number: no such area code, or the wrong number of digits "
    "(without a +country code it is read in region {region})."
)


@functools.lru_cache(maxsize=4096)
def normalize_phone(value: str, region: str = "US") -> str:
    """A phone read in `region` unless it has a country code, as E.164; ValueError if invalid.

    Only numbers that can be dialled (`is_valid_number`: a real area code and length) pass,
    since dedupe, consent and quiet hours key on them. Cached: imports repeat values, and the
    parse is most of a row's cost. The messages are ours, not the library's. The common
    North American shapes take an exact shortcut (documents/phones.py).
    """
    fast = nanp_e164(value, region)
    if isinstance(fast, str):
        return fast
    if fast is False:
        raise ValueError(_INVALID_PHONE.format(region=region))
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        raise ValueError("Not a phone number: expected digits such as +1 415 555 0100.") from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValueError(_INVALID_PHONE.format(region=region))
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


E164 = re.compile(r"^\+[1-9]\d{6,14}$")
"""A phone number in E.164 form (what `normalize_phone` produces)."""


def _check_e164(value: str) -> str:
    # Documents only accept already-normalised numbers; services normalise with the tenant region.
    normalised = normalize_phone(value, "US")
    if not E164.match(normalised):
        raise ValueError("phone must be E.164")
    return normalised


Phone = Annotated[str, AfterValidator(_check_e164)]
"""A possible phone number stored in E.164 (numbers without a country code are read as US)."""


def _scalar_kind(annotation: Any) -> type | None:
    """`bool`, `int` or `float` when a field holds that (optionally None), else None."""
    if get_origin(annotation) is Annotated:
        return _scalar_kind(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        options = [a for a in get_args(annotation) if a is not type(None)]
        return _scalar_kind(options[0]) if len(options) == 1 else None
    return annotation if annotation in (bool, int, float) else None


_SCALAR_FIELDS: dict[type[BaseModel], list[tuple[str, str, type]]] = {}


def _scalar_fields(model: type[BaseModel]) -> list[tuple[str, str, type]]:
    # (name, key in the input, bool/int/float) of a model's scalar fields, worked out once:
    # this runs for every validated object (each row of a bulk import, twice or more).
    fields = _SCALAR_FIELDS.get(model)
    if fields is None:
        fields = []
        for name, info in model.model_fields.items():
            kind = _scalar_kind(info.annotation)
            if kind is not None:
                fields.append((name, info.alias or name, kind))
        _SCALAR_FIELDS[model] = fields
    return fields


def refuse_bool_number_mixups(model: type[BaseModel], data: Any) -> Any:
    """Refuse `true` for a number and `0`/`1` for a boolean, which pydantic would coerce.

    JSON has distinct booleans and numbers; OpenAPI clients are told so, and a flag sent as
    `0` or a count sent as `false` is a client bug worth a 422.
    """
    if not isinstance(data, dict):
        return data
    for name, key, kind in _scalar_fields(model):
        value = data.get(key)
        if value is None:
            continue
        if kind is bool and not isinstance(value, bool):
            raise ValueError(f"{name} must be true or false")
        if kind is not bool and isinstance(value, bool):
            raise ValueError(f"{name} must be a number, not a boolean")
    return data


class SubDocument(BaseModel):
    """Base of embedded sub-documents: unknown keys refused, values re-validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @model_validator(mode="before")
    @classmethod
    def _strict_scalars(cls, data: Any) -> Any:
        return refuse_bool_number_mixups(cls, data)


class PendingEvent(BaseModel):
    """The journal outbox: the domain event written atomically with the state it describes."""

    model_config = ConfigDict(extra="allow")

    version: int


ENVELOPE_FIELDS = frozenset(
    {
        "id",
        "tenant_id",
        "created_at",
        "updated_at",
        "created_by",
        "updated_by",
        "is_deleted",
        "deleted_at",
        "archived_at",
        "version",
    }
)
"""What every stored resource carries and the repository manages (schemas ResourceRead)."""


class RootDocument(Document, Versioned):
    """Base of every aggregate root: tenant, audit, soft delete, archive and optimistic version.

    `version` starts at 1 and grows by one with each change; the journal (`domain_events`) holds
    one event per version. `pending_event` is the outbox the repository writes together with the
    state so that a crash before the journal insert is repaired (see
    service/core/journal/__init__.py).
    `schema_version` is the stored shape (documents/migrations.py): a subclass raises its default
    and registers `upcasters` when its shape changes.
    """

    id: UUID = Field(default_factory=uuid7)  # type: ignore[assignment]
    tenant_id: UUID
    created_at: UTCDateTime = Field(default_factory=utcnow)
    updated_at: UTCDateTime = Field(default_factory=utcnow)
    created_by: UUID | None = None
    updated_by: UUID | None = None
    is_deleted: bool = False
    deleted_at: UTCDateTime | None = None
    archived_at: UTCDateTime | None = None
    version: int = Field(default=1, ge=1)
    pending_event: PendingEvent | None = None

    # The aggregate name used in the journal and in `/v1/<coll>/{id}/history`.
    aggregate_type: ClassVar[str] = ""
    # Dotted field paths whose values never reach the journal (replaced by "***").
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    # Internal fields the document's validator derives from the others on every validation
    # (never sent, never shown): stored with every write, never journaled, since a state
    # rebuilt from the journal derives them again when it is validated.
    derived_fields: ClassVar[frozenset[str]] = frozenset()

    @before_event(Insert)
    def _stamp_insert(self) -> None:
        self.updated_at = self.created_at = self.created_at or utcnow()

    @before_event(Replace)
    def _stamp_replace(self) -> None:
        self.updated_at = utcnow()

    @classmethod
    def collection_name(cls) -> str:
        """The MongoDB collection this document lives in."""
        return cls.get_settings().name or cls.__name__

    def to_public(self) -> dict[str, Any]:
        """The stored fields as plain data without internals (secrets are the caller's to drop)."""
        return self.model_dump(exclude={"pending_event", "revision_id"})


FieldKey = Annotated[str, StringConstraints(max_length=64, pattern=r"^[^$.\x00]+$")]
"""A client-chosen map key that is stored as a MongoDB field name (segments, feature flags).

Not empty, and no `$` (an operator), `.` (a path) or NUL (BSON refuses it) anywhere: the one
rule every such map uses, in documents and request schemas alike.
"""


class Segmented(BaseModel):
    """Tags and free-form segmentation, as the plan asks on all major models."""

    tags: list[Tag] = Field(default_factory=list, max_length=50)
    segments: dict[FieldKey, ShortText] = Field(default_factory=dict, max_length=50)


class PostalAddress(SubDocument):
    """A postal address (lead properties, billing)."""

    line1: ShortText | None = None
    line2: ShortText | None = None
    city: ShortText | None = None
    state: ShortText | None = None
    postal_code: ShortText | None = None
    country: ShortText | None = None
