"""API shapes of personal-data requests: erasure and subject export of a lead."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field


class LeadErased(BaseModel):
    """The answer to an erasure: the lead (now a tombstone) and when it was erased."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"id": "0190a5b4-7c1e-7d3a-9f00-6a1b2c3d4e5f", "erased_at": "2026-01-05T10:00:00Z"}
            ]
        }
    )

    id: UUID
    erased_at: datetime


class SubjectExport(BaseModel):
    """Everything stored about one lead's person, as stored (ids as text, times ISO 8601)."""

    lead: dict[str, Any] = Field(description="The lead document as stored.")
    consent: dict[str, Any] | None = Field(
        default=None, description="The lead's consent per channel, when it carries one."
    )
    campaign_memberships: list[dict[str, Any]] = Field(
        description="Its `campaign_leads` rows: which campaigns it is in, since when, by whom."
    )
    touchpoints: list[dict[str, Any]] = Field(description="Its touchpoint events, oldest first.")
    history: list[dict[str, Any]] = Field(
        description="Its change journal (`domain_events`), oldest first."
    )
    exported_at: datetime


__all__ = ["LeadErased", "SubjectExport"]
