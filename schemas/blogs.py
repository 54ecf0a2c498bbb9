"""API shapes of blogs: create, patch, publish, read, list filters and the month calendar."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from documents.base import LongText, Name, ShortText, Tag, UTCDateTime
from documents.blog import MAX_BLOG_KEYWORDS, MAX_OUTLINE_ITEMS, Blog, BlogStatus, Url
from documents.workspace_read_models import GlobalBlog
from schemas.common import IgnoreTenantId, ListParams, PatchBody, ResourceRead

Outline = Annotated[list[ShortText], Field(max_length=MAX_OUTLINE_ITEMS)]
Keywords = Annotated[list[Tag], Field(max_length=MAX_BLOG_KEYWORDS)]
Tags = Annotated[list[Tag], Field(max_length=50)]


class BlogCreate(IgnoreTenantId):
    """`POST /v1/blogs`. `scheduled` needs `scheduled_for`; `posted` is stamped `posted_at` now."""

    title: Name
    content: LongText = ""
    status: BlogStatus = BlogStatus.planned
    scheduled_for: UTCDateTime | None = None
    outline: Outline = Field(default_factory=list)
    keywords: Keywords = Field(default_factory=list)
    tags: Tags = Field(default_factory=list)

    @model_validator(mode="after")
    def _schedule(self) -> BlogCreate:
        if self.status == BlogStatus.scheduled and self.scheduled_for is None:
            raise ValueError("a scheduled blog needs scheduled_for")
        return self


class BlogUpdate(PatchBody):
    """`PATCH /v1/blogs/{id}`: planned ↔ scheduled here; posting is `POST /{id}/publish`.

    `scheduled_for: null` unschedules (only while not `scheduled`). A posted blog keeps its
    status and schedule (409); its text, outline, keywords and tags stay editable.
    """

    nullable = frozenset({"scheduled_for"})

    title: Name | None = None
    content: LongText | None = None
    status: Literal[BlogStatus.planned, BlogStatus.scheduled] | None = None
    scheduled_for: UTCDateTime | None = None
    outline: Outline | None = None
    keywords: Keywords | None = None
    tags: Tags | None = None


class BlogPublish(IgnoreTenantId):
    """`POST /v1/blogs/{id}/publish` (body optional): when and where it went out."""

    posted_at: UTCDateTime | None = Field(
        default=None, description="Defaults to now; may not lie in the future."
    )
    url: Url | None = None
    platform: ShortText | None = None


class BlogRead(ResourceRead):
    """A blog as the API shows it (the stored plan/posted parts flattened)."""

    user_id: UUID | None
    title: str
    content: str
    status: BlogStatus
    scheduled_for: datetime | None
    posted_at: datetime | None
    url: str | None
    platform: str | None
    outline: list[str]
    keywords: list[str]
    tags: list[str]


def to_blog_read(doc: Blog) -> BlogRead:
    """The response shape of a stored blog."""
    posted = doc.posted
    return BlogRead(
        **doc.model_dump(include=set(ResourceRead.model_fields)),
        user_id=doc.user_id,
        title=doc.title,
        content=doc.content,
        status=doc.status,
        scheduled_for=doc.plan.scheduled_for,
        posted_at=posted.posted_at if posted else None,
        url=posted.url if posted else None,
        platform=posted.platform if posted else None,
        outline=doc.plan.outline,
        keywords=doc.plan.keywords,
        tags=doc.tags,
    )


class BlogFilters(ListParams):
    """`GET /v1/blogs` filters."""

    status: BlogStatus | None = None
    tag: Tag | None = None
    user_id: UUID | None = None


# Years 1970-2999: real calendars, and every month has a representable next month.
Month = Annotated[str, StringConstraints(pattern=r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$")]


class CalendarParams(BaseModel):
    """`GET /v1/blogs/calendar` parameters."""

    model_config = ConfigDict(extra="forbid")

    month: Month = Field(description="The month to show, `YYYY-MM` (UTC days).")
    user_id: UUID | None = Field(default=None, description="Only this author's blogs.")


class CalendarEntry(BaseModel):
    """A blog on a calendar day (without its content, to keep the month small)."""

    id: UUID
    user_id: UUID | None
    title: str
    status: BlogStatus
    scheduled_for: datetime | None
    posted_at: datetime | None
    tags: list[str]


def to_calendar_entry(doc: Blog) -> CalendarEntry:
    """The calendar shape of a stored blog."""
    return CalendarEntry(
        id=doc.id,
        user_id=doc.user_id,
        title=doc.title,
        status=doc.status,
        scheduled_for=doc.plan.scheduled_for,
        posted_at=doc.posted.posted_at if doc.posted else None,
        tags=doc.tags,
    )


class CalendarDay(BaseModel):
    """One UTC day that has blogs."""

    date: date
    blogs: list[CalendarEntry]


class BlogCalendar(BaseModel):
    """The plan's `BlogCalendar`: a month's blogs by UTC day.

    Only days with at least one blog are listed, in date order; within a day blogs are in time
    order. `truncated` is true when the month holds more than the calendar's cap.
    """

    month: str
    days: list[CalendarDay]
    truncated: bool = False


class BlogStatsRead(BaseModel):
    """The `GlobalBlog` read model of one user."""

    user_id: UUID
    total: int
    by_status: dict[str, int]
    last_posted_at: datetime | None
    next_scheduled_for: datetime | None
    computed_at: datetime


def to_blog_stats_read(doc: GlobalBlog) -> BlogStatsRead:
    """The response shape of the read model."""
    return BlogStatsRead(
        user_id=doc.user_id,
        total=doc.total,
        by_status=doc.by_status.model_dump(),
        last_posted_at=doc.last_posted_at,
        next_scheduled_for=doc.next_scheduled_for,
        computed_at=doc.computed_at,
    )


class StatsParams(BaseModel):
    """Whose rollup to show; defaults to the calling user."""

    model_config = ConfigDict(extra="forbid")

    user_id: UUID | None = None
