"""Tenants: the organisations every aggregate root belongs to."""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID

from pydantic import Field
from pymongo import IndexModel

from documents.base import Name, RootDocument


class Tenant(RootDocument):
    """An organisation (a brokerage, a team of agents); created with its owner at registration."""

    aggregate_type: ClassVar[str] = "tenant"

    name: Name
    owner_id: UUID | None = None  # the owning user, set at registration
    default_phone_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")

    class Settings:
        name = "tenants"
        indexes = [IndexModel([("owner_id", 1)], name="owner")]
