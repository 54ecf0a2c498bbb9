"""Workspace read models: per-user rollups of blogs and research.

Maintained like every read model, by a projector (service/projections/definitions.py) that
follows the journal: any change of a blog or topic — soft delete, restore and archive through
the shared lifecycle routes included — is a journal entry, so no per-domain hook is needed.
Rows are keyed by (tenant_id, user_id), the unique index below.
"""

from __future__ import annotations

from uuid import UUID

from beanie import Document
from pydantic import BaseModel, Field
from pymongo import IndexModel
from uuid6 import uuid7

from documents.base import UTCDateTime, utcnow


class GlobalResearchStats(Document):
    """A user's research totals: topics, results, distinct keywords and summed search volume."""

    id: UUID = Field(default_factory=uuid7)  # type: ignore[assignment]
    tenant_id: UUID
    user_id: UUID
    topics_total: int = 0
    results_total: int = 0
    keywords_total: int = 0  # distinct keywords across all results
    search_volume_total: int = 0
    last_researched_at: UTCDateTime | None = None
    computed_at: UTCDateTime = Field(default_factory=utcnow)

    class Settings:
        name = "read_research_stats"
        indexes = [
            IndexModel([("tenant_id", 1), ("user_id", 1)], unique=True, name="tenant_user"),
        ]


class BlogCounts(BaseModel):
    """Blogs per status."""

    planned: int = 0
    scheduled: int = 0
    posted: int = 0


class GlobalBlog(Document):
    """A user's blog rollup: counts by status and the last posting time."""

    id: UUID = Field(default_factory=uuid7)  # type: ignore[assignment]
    tenant_id: UUID
    user_id: UUID
    total: int = 0
    by_status: BlogCounts = Field(default_factory=BlogCounts)
    last_posted_at: UTCDateTime | None = None
    next_scheduled_for: UTCDateTime | None = None
    computed_at: UTCDateTime = Field(default_factory=utcnow)

    class Settings:
        name = "read_blog_stats"
        indexes = [
            IndexModel([("tenant_id", 1), ("user_id", 1)], unique=True, name="tenant_user"),
        ]
