"""API shapes of research topics, their results and the `GlobalResearchStats` rollup."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from documents.base import Name, ShortText, Tag, UTCDateTime
from documents.research import (
    MAX_KEYWORDS_PER_RESULT,
    MAX_RESULTS_PER_TOPIC,
    MAX_SOURCES_PER_RESULT,
    Keyword,
    Summary,
    Url,
)
from schemas.common import IgnoreTenantId, ListParams, PatchBody, ReadView, ResourceRead

Description = Annotated[str, StringConstraints(max_length=5000)]
Tags = Annotated[list[Tag], Field(max_length=50)]


class ResearchResultIn(IgnoreTenantId):
    """One research run on a topic (`TopicResearchResult`)."""

    keywords: list[Keyword] = Field(default_factory=list, max_length=MAX_KEYWORDS_PER_RESULT)
    search_volume: int = Field(default=0, ge=0, le=10**12, description="Monthly searches.")
    competition: float | None = Field(default=None, ge=0.0, le=1.0)
    sources: list[Url] = Field(default_factory=list, max_length=MAX_SOURCES_PER_RESULT)
    summary: Summary | None = None
    researched_at: UTCDateTime | None = Field(default=None, description="Defaults to now.")


class ResearchTopicCreate(IgnoreTenantId):
    """`POST /v1/research/topics`: a topic, optionally with its first results."""

    topic: Name
    description: Description | None = None
    market: ShortText | None = None
    tags: Tags = Field(default_factory=list)
    results: list[ResearchResultIn] = Field(default_factory=list, max_length=MAX_RESULTS_PER_TOPIC)


class ResearchTopicUpdate(PatchBody):
    """`PATCH /v1/research/topics/{id}` (results are added with `POST /{id}/results`)."""

    nullable = frozenset({"description", "market"})

    topic: Name | None = None
    description: Description | None = None
    market: ShortText | None = None
    tags: Tags | None = None


class ResearchResultRead(BaseModel):
    """A stored research result."""

    id: UUID
    keywords: list[str]
    search_volume: int
    competition: float | None
    sources: list[str]
    summary: str | None
    researched_at: datetime


class ResearchTopicRead(ResourceRead):
    """A research topic with its results (oldest first)."""

    user_id: UUID | None
    topic: str
    description: str | None
    market: str | None
    tags: list[str]
    results: list[ResearchResultRead]


RESEARCH_TOPIC_VIEW: ReadView[ResearchTopicRead] = ReadView(ResearchTopicRead)
"""Stored topics → `ResearchTopicRead`, one validation each."""
to_research_topic_read = RESEARCH_TOPIC_VIEW.document
"""The response shape of a topic document in hand."""


class ResearchFilters(ListParams):
    """`GET /v1/research/topics` filters."""

    tag: Tag | None = None
    user_id: UUID | None = None


class ResearchStatsParams(BaseModel):
    """Whose rollup to show; defaults to the calling user."""

    model_config = ConfigDict(extra="forbid")

    user_id: UUID | None = None


class ResearchStatsRead(BaseModel):
    """The `GlobalResearchStats` read model of one user."""

    user_id: UUID
    topics_total: int
    results_total: int
    keywords_total: int
    search_volume_total: int
    last_researched_at: datetime | None
    computed_at: datetime


RESEARCH_STATS_VIEW: ReadView[ResearchStatsRead] = ReadView(ResearchStatsRead)
"""A user's `GlobalResearchStats` read model → `ResearchStatsRead`."""
to_research_stats_read = RESEARCH_STATS_VIEW.document
"""The response shape of the read model in hand."""
