"""Tenants: the organisations every aggregate root belongs to, and their outreach settings."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, Field, model_validator
from pymongo import IndexModel

from documents.base import Name, RootDocument, SubDocument

DEFAULT_QUIET_START = "08:00"
DEFAULT_QUIET_END = "21:00"


def check_time_zone(value: str) -> str:
    """An IANA zone name zoneinfo knows (`America/New_York`, `UTC`); ValueError otherwise."""
    try:
        ZoneInfo(value)
    # OSError: a directory of the zone database (`America`, `Etc`) is opened as a file.
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown IANA time zone: {value!r}") from None
    return value


TimeZoneName = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["America/New_York"]),
    AfterValidator(check_time_zone),
]
"""An IANA time zone name, checked against the zoneinfo database."""

ClockTime = Annotated[str, Field(pattern=r"^(?:[01]\d|2[0-3]):[0-5]\d$", examples=["08:00"])]
"""A local wall-clock time `HH:MM` (24-hour)."""


class QuietHours(SubDocument):
    """The local-time window in which calls and texts are allowed (outside it: quiet hours)."""

    start: ClockTime = DEFAULT_QUIET_START
    end: ClockTime = DEFAULT_QUIET_END

    @model_validator(mode="after")
    def _ordered(self) -> QuietHours:
        if self.end <= self.start:
            raise ValueError("quiet_hours.end must be after quiet_hours.start")
        return self


class Retention(SubDocument):
    """How long data is kept; read by the retention worker (`erase_deleted_after_days`)."""

    erase_deleted_after_days: int | None = Field(
        default=None,
        ge=1,
        le=36_500,
        description="Soft-deleted leads are erased this many days after deletion (null: never).",
    )


class Tenant(RootDocument):
    """An organisation (a brokerage, a team of agents); created with its owner at registration."""

    aggregate_type: ClassVar[str] = "tenant"

    name: Name
    owner_id: UUID | None = None  # the owning user, set at registration
    default_phone_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    # Local-day analytics default to it; None reads as UTC.
    time_zone: TimeZoneName | None = None
    quiet_hours: QuietHours = Field(default_factory=QuietHours)
    retention: Retention = Field(default_factory=Retention)

    class Settings:
        name = "tenants"
        indexes = [IndexModel([("owner_id", 1)], name="owner")]


def tenant_zone(tenant: Any) -> str:
    """The tenant's IANA zone, or UTC when it has none."""
    return getattr(tenant, "time_zone", None) or "UTC"
