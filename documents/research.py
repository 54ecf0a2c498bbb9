"""Topic research: one document per topic in `research`, with its (bounded) results embedded.

A topic's results are read with the topic and stay few (each is a research run's summary), so
they are embedded up to `MAX_RESULTS_PER_TOPIC`; adding beyond that is a 409 (start a new topic
or delete old results).
"""

from __future__ import annotations

from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import Field, StringConstraints
from pymongo import IndexModel
from uuid6 import uuid7

from documents.base import (
    NOT_BLANK,
    Name,
    RootDocument,
    Segmented,
    ShortText,
    SubDocument,
    UTCDateTime,
    utcnow,
)

MAX_RESULTS_PER_TOPIC = 50
MAX_KEYWORDS_PER_RESULT = 100
MAX_SOURCES_PER_RESULT = 50

# `[^\s\x85]` rather than `\S`: NEL (U+0085) is whitespace to the validator's regex engine but
# not to ECMA regexes, so OpenAPI clients would otherwise send URLs we refuse.
Url = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=2048, pattern=r"^https?://[^\s\x85]+$"),
]
Summary = Annotated[str, StringConstraints(max_length=20_000)]
Keyword = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=100),
    Field(json_schema_extra=NOT_BLANK),
]


class TopicResearchResult(SubDocument):
    """One research run on a topic: keywords found, their search volume, sources, a summary."""

    id: UUID = Field(default_factory=uuid7)
    keywords: list[Keyword] = Field(default_factory=list, max_length=MAX_KEYWORDS_PER_RESULT)
    search_volume: int = Field(default=0, ge=0, le=10**12)
    competition: float | None = Field(default=None, ge=0.0, le=1.0)
    sources: list[Url] = Field(default_factory=list, max_length=MAX_SOURCES_PER_RESULT)
    summary: Summary | None = None
    researched_at: UTCDateTime = Field(default_factory=utcnow)


class ResearchTopic(RootDocument, Segmented):
    """A topic a user researches (for blogs, campaigns, markets)."""

    aggregate_type: ClassVar[str] = "research_topic"

    user_id: UUID | None = None  # who researches it; None when an internal service created it
    topic: Name
    description: Annotated[str, StringConstraints(max_length=5000)] | None = None
    market: ShortText | None = None
    results: list[TopicResearchResult] = Field(
        default_factory=list, max_length=MAX_RESULTS_PER_TOPIC
    )

    class Settings:
        name = "research"
        indexes = [
            IndexModel([("tenant_id", 1), ("is_deleted", 1), ("_id", -1)], name="tenant_list"),
            IndexModel([("tenant_id", 1), ("user_id", 1), ("_id", -1)], name="tenant_user"),
            IndexModel([("tenant_id", 1), ("tags", 1), ("_id", -1)], name="tenant_tag"),
        ]
