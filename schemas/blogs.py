"""API shapes of blogs: create, patch, publish, read, list filters and the month calendar."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from documents import migrations
from documents.base import LongText, Name, ShortText, Tag, Url, UTCDateTime
from documents.blog import (
    MAX_BLOG_KEYWORDS,
    MAX_OUTLINE_ITEMS,
    SCHEDULE_FIELDS,
    Blog,
    BlogCalendar,
    BlogChannel,
    BlogStatus,
    Recurrence,
    TimeZoneName,
)
from schemas.common import IgnoreTenantId, ListParams, PatchBody, ReadView, ResourceRead

Outline = Annotated[list[ShortText], Field(max_length=MAX_OUTLINE_ITEMS)]
Keywords = Annotated[list[Tag], Field(max_length=MAX_BLOG_KEYWORDS)]
Tags = Annotated[list[Tag], Field(max_length=50)]


_TIMEZONE = "IANA time zone the schedule (and its recurrence) keeps its wall-clock time in."
_CHANNEL = "Where the post goes out."
_RECURRENCE = (
    "Repeat rule: every `interval` days, weeks or months, ended by `count` or `until`, at most "
    "100 occurrences; the month calendar shows every occurrence."
)


class BlogCreate(IgnoreTenantId):
    """`POST /v1/blogs`. `scheduled` needs `scheduled_for`; `posted` is stamped `posted_at` now.

    `scheduled_for`, `timezone`, `channel` and `recurrence` are the blog's calendar entry (the
    plan's `BlogCalendar`); the last three need `scheduled_for`.
    """

    title: Name
    content: LongText = ""
    status: BlogStatus = BlogStatus.planned
    scheduled_for: UTCDateTime | None = None
    timezone: TimeZoneName | None = Field(default=None, description=_TIMEZONE + " Default UTC.")
    channel: BlogChannel | None = Field(default=None, description=_CHANNEL)
    recurrence: Recurrence | None = Field(default=None, description=_RECURRENCE)
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

    `scheduled_for: null` unschedules (only while not `scheduled`) and drops `timezone`,
    `channel` and `recurrence` with it; `channel: null` and `recurrence: null` clear those. A
    posted blog keeps its status and schedule (409); its text, outline, keywords and tags stay
    editable.
    """

    nullable = frozenset({"scheduled_for", "channel", "recurrence"})

    title: Name | None = None
    content: LongText | None = None
    status: Literal[BlogStatus.planned, BlogStatus.scheduled] | None = None
    scheduled_for: UTCDateTime | None = None
    timezone: TimeZoneName | None = Field(default=None, description=_TIMEZONE)
    channel: BlogChannel | None = Field(default=None, description=_CHANNEL)
    recurrence: Recurrence | None = Field(default=None, description=_RECURRENCE)
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


def _calendar_field(calendar: dict[str, Any], name: str) -> Any:
    """A stored calendar's field; an upcast old shape lacks some: the document's default."""
    return calendar[name] if name in calendar else BlogCalendar.model_fields[name].get_default()


class BlogRead(ResourceRead):
    """A blog as the API shows it (the stored plan, calendar and posted parts flattened).

    `timezone`, `channel` and `recurrence` are null when the blog is not scheduled.
    """

    user_id: UUID | None
    title: str
    content: str
    status: BlogStatus
    scheduled_for: datetime | None
    timezone: str | None
    channel: BlogChannel | None
    recurrence: Recurrence | None
    posted_at: datetime | None
    url: str | None
    platform: str | None
    outline: list[str]
    keywords: list[str]
    tags: list[str]

    @model_validator(mode="before")
    @classmethod
    def _flatten_stored(cls, data: Any) -> Any:
        # A stored blog (raw, any shape version, or a document's dump): upcast, then the
        # plan, calendar (only when scheduled) and posted parts flattened into the API fields.
        if not isinstance(data, dict) or "plan" not in data:
            return data
        doc = migrations.upcast(Blog, data)
        calendar = doc.get("calendar") or {}
        scheduled = calendar.get("scheduled_for") is not None
        posted = doc.get("posted") or {}
        plan = doc["plan"]
        return {
            **doc,
            **{
                name: _calendar_field(calendar, name) if scheduled else None
                for name in SCHEDULE_FIELDS
            },
            "posted_at": posted.get("posted_at"),
            "url": posted.get("url"),
            "platform": posted.get("platform"),
            "outline": plan.get("outline", []),
            "keywords": plan.get("keywords", []),
        }


BLOG_VIEW: ReadView[BlogRead] = ReadView(BlogRead)
"""Stored blogs → `BlogRead`, one validation each."""
to_blog_read = BLOG_VIEW.document
"""The response shape of a blog document in hand."""


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
    """A blog on a calendar day (without its content, to keep the month small).

    `occurs_at` is this occurrence: `scheduled_for` (or `posted_at` for a blog posted
    unscheduled), or one of its recurrence's later occurrences.
    """

    id: UUID
    user_id: UUID | None
    title: str
    status: BlogStatus
    occurs_at: datetime
    scheduled_for: datetime | None
    timezone: str | None
    channel: BlogChannel | None
    recurrence: Recurrence | None
    posted_at: datetime | None
    tags: list[str]


def to_calendar_entry(doc: Blog, occurs_at: datetime) -> CalendarEntry:
    """The calendar shape of one occurrence of a stored blog."""
    return CalendarEntry(
        **doc.schedule_fields(),
        id=doc.id,
        user_id=doc.user_id,
        title=doc.title,
        status=doc.status,
        occurs_at=occurs_at,
        posted_at=doc.posted.posted_at if doc.posted else None,
        tags=doc.tags,
    )


class CalendarDay(BaseModel):
    """One UTC day that has blogs."""

    date: date
    blogs: list[CalendarEntry]


class CalendarMonth(BaseModel):
    """A month of the content calendar: blogs by UTC day, built from their `BlogCalendar`.

    Only days with at least one blog are listed, in date order; within a day entries are in
    time order. A recurring blog is listed on every day it occurs. `truncated` is true when the
    month holds more blogs than the calendar's cap.
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


BLOG_STATS_VIEW: ReadView[BlogStatsRead] = ReadView(BlogStatsRead)
"""A user's `GlobalBlog` read model → `BlogStatsRead`."""
to_blog_stats_read = BLOG_STATS_VIEW.document
"""The response shape of the read model in hand."""


class StatsParams(BaseModel):
    """Whose rollup to show; defaults to the calling user."""

    model_config = ConfigDict(extra="forbid")

    user_id: UUID | None = None
