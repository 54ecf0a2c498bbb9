"""Tenants: the organisations every aggregate root belongs to."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import Field
from pymongo import IndexModel

from documents.base import Embedded, Name, RootDocument


class Retention(Embedded):
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
    retention: Retention = Field(default_factory=Retention)

    class Settings:
        name = "tenants"
        indexes = [IndexModel([("owner_id", 1)], name="owner")]
