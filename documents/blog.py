"""Blogs: one document per post in `blogs`, moving planned → scheduled → posted.

The plan's `BlogPlan` (outline, keywords), `PostedBlog` (publication data) and `BlogCalendar`
(when and where the post sits on the content calendar: time, time zone, channel, recurrence)
are embedded parts. The month view (`GET /v1/blogs/calendar`) is built from `calendar`.

Shape history (documents/migrations.py): version 1 kept the schedule in `plan.scheduled_for`
and a derived `calendar_at`; version 2 moved both into `calendar`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, ClassVar, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, available_timezones

from dateutil import rrule
from pydantic import AfterValidator, Field, model_validator
from pymongo import IndexModel

from documents.base import (
    LongText,
    Name,
    RootDocument,
    Segmented,
    ShortText,
    SubDocument,
    Tag,
    Url,
    UTCDateTime,
)
from documents.migrations import Upcaster

MAX_OUTLINE_ITEMS = 100
MAX_BLOG_KEYWORDS = 50
# A recurring blog has at most this many occurrences (so `calendar.months` stays small too).
MAX_OCCURRENCES = 100
MAX_INTERVAL = 99
# The API's fields for a blog's schedule: the `BlogCalendar` without its derived `months`.
SCHEDULE_FIELDS = ("scheduled_for", "timezone", "channel", "recurrence")


class BlogStatus(StrEnum):
    """Where a post is in its lifecycle (see service/blogs.py for the allowed moves)."""

    planned = "planned"
    scheduled = "scheduled"
    posted = "posted"


class BlogChannel(StrEnum):
    """Where a post goes out."""

    website = "website"
    newsletter = "newsletter"
    linkedin = "linkedin"
    facebook = "facebook"
    instagram = "instagram"
    x = "x"
    medium = "medium"
    other = "other"


class Frequency(StrEnum):
    """How often a recurring post repeats (RFC 5545 FREQ, the three a content calendar needs)."""

    daily = "daily"
    weekly = "weekly"
    monthly = "monthly"


_RRULE_FREQ: dict[Frequency, Literal[1, 2, 3]] = {
    Frequency.daily: rrule.DAILY,
    Frequency.weekly: rrule.WEEKLY,
    Frequency.monthly: rrule.MONTHLY,
}


@cache
def _zone_names() -> frozenset[str]:
    return frozenset(available_timezones())


def _iana_zone(value: str) -> str:
    # Only names of the IANA database (never file paths or POSIX TZ strings).
    if value not in _zone_names():
        raise ValueError("not an IANA time zone name (e.g. 'America/New_York')")
    return value


TimeZoneName = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["America/New_York"]),
    AfterValidator(_iana_zone),
]
"""An IANA time zone name, checked against the zone database."""


class Recurrence(SubDocument):
    """A bounded repeat rule (an RRULE subset): every `interval` days, weeks or months.

    Exactly one of `count` (occurrences, the first included) or `until` (inclusive) ends it,
    and it never yields more than `MAX_OCCURRENCES`. Occurrences keep the wall-clock time of
    `scheduled_for` in the calendar's time zone (09:00 stays 09:00 across daylight saving); a
    monthly rule skips months without that day (the 31st), as RFC 5545 does.
    """

    frequency: Frequency
    interval: int = Field(default=1, ge=1, le=MAX_INTERVAL)
    count: int | None = Field(default=None, ge=1, le=MAX_OCCURRENCES)
    until: UTCDateTime | None = None

    @model_validator(mode="after")
    def _bounded(self) -> Recurrence:
        if (self.count is None) == (self.until is None):
            raise ValueError("a recurrence needs exactly one of count or until")
        return self


class BlogCalendar(SubDocument):
    """When and where a post sits on the content calendar.

    `scheduled_for` is the planned instant (the first occurrence of a recurring post); it is
    null for a post that went out unscheduled, which the calendar files under its posting
    time. `months` (`YYYY-MM`, UTC, every month with an occurrence) is derived by the blog and
    indexed: the month view is one equality query on it.
    """

    scheduled_for: UTCDateTime | None = None
    timezone: TimeZoneName = "UTC"
    channel: BlogChannel | None = None
    recurrence: Recurrence | None = None
    months: list[Annotated[str, Field(pattern=r"^\d{4}-\d{2}$")]] = Field(
        default_factory=list, max_length=MAX_OCCURRENCES
    )

    @model_validator(mode="after")
    def _recurrence_needs_a_start(self) -> BlogCalendar:
        if self.recurrence is not None:
            if self.scheduled_for is None:
                raise ValueError("a recurrence needs scheduled_for")
            if self.recurrence.until is not None and self.recurrence.until < self.scheduled_for:
                raise ValueError("recurrence.until lies before scheduled_for")
        return self

    def occurrences(self, anchor: datetime) -> list[datetime]:
        """The UTC instants the post sits on: `anchor` (its first), then its recurrence."""
        rule = self.recurrence
        if rule is None:
            return [anchor]
        try:
            zone = ZoneInfo(self.timezone)
            until = rule.until.astimezone(zone) if rule.until else None
            times = rrule.rrule(
                _RRULE_FREQ[rule.frequency],
                dtstart=anchor.astimezone(zone),
                interval=rule.interval,
                count=rule.count,
                until=until,
                cache=False,
            )
            found = []
            for when in times:
                found.append(when.astimezone(UTC))
                if len(found) > MAX_OCCURRENCES:
                    raise ValueError(f"a recurrence may have at most {MAX_OCCURRENCES} occurrences")
        except OverflowError:  # a local time past year 9999
            raise ValueError("the recurrence runs past the last representable date") from None
        return found

    def between(self, anchor: datetime, start: datetime, end: datetime) -> list[datetime]:
        """The occurrences in `[start, end)`."""
        return [when for when in self.occurrences(anchor) if start <= when < end]


class BlogPlan(SubDocument):
    """Planning data: the outline and target keywords (the schedule is in `calendar`)."""

    outline: list[ShortText] = Field(default_factory=list, max_length=MAX_OUTLINE_ITEMS)
    keywords: list[Tag] = Field(default_factory=list, max_length=MAX_BLOG_KEYWORDS)


class PostedBlog(SubDocument):
    """Publication data, present once the post is out."""

    posted_at: UTCDateTime
    url: Url | None = None
    platform: ShortText | None = None


def _calendar_from_calendar_at(doc: dict[str, Any]) -> dict[str, Any]:
    """Shape 1 → 2: `plan.scheduled_for` moves into `calendar`; the derived `calendar_at` goes.

    New-shape `calendar` leaves already present (a version rebuilt from the journal) win over
    the values carried over from the old fields.
    """
    doc = dict(doc)
    plan = dict(doc.get("plan") or {})
    scheduled_for = plan.pop("scheduled_for", None)
    doc["plan"] = plan
    doc.pop("calendar_at", None)
    carried = {"scheduled_for": scheduled_for} if scheduled_for is not None else {}
    present = doc.get("calendar") or {}
    doc["calendar"] = {**carried, **present} if carried or present else None
    return doc


def _month(when: datetime) -> str:
    return f"{when.year:04d}-{when.month:02d}"


class Blog(RootDocument, Segmented):
    """A blog post of a user, with its place on the content calendar."""

    aggregate_type: ClassVar[str] = "blog"
    schema_version: int = 2
    upcasters: ClassVar[dict[int, Upcaster]] = {1: _calendar_from_calendar_at}

    user_id: UUID | None = None  # the author; None when an internal service created it
    title: Name
    content: LongText = ""
    status: BlogStatus = BlogStatus.planned
    plan: BlogPlan = Field(default_factory=BlogPlan)
    posted: PostedBlog | None = None
    calendar: BlogCalendar | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Blog:
        if self.status == BlogStatus.scheduled and self.scheduled_for is None:
            raise ValueError("a scheduled blog needs scheduled_for")
        if (self.status == BlogStatus.posted) != (self.posted is not None):
            raise ValueError("posted data is present exactly when the status is posted")
        anchor = self.calendar_anchor
        if anchor is None:
            if self.calendar is not None and self.calendar != BlogCalendar():
                raise ValueError("a calendar needs scheduled_for (or a posted blog)")
            self.calendar = None
            return self
        calendar = self.calendar or BlogCalendar()
        months = sorted({_month(when) for when in calendar.occurrences(anchor)})
        if months != calendar.months:
            self.calendar = calendar.model_copy(update={"months": months})
        return self

    @property
    def scheduled_for(self) -> datetime | None:
        """The planned instant (the first occurrence), if the blog was scheduled."""
        return self.calendar.scheduled_for if self.calendar else None

    def schedule_fields(self) -> dict[str, Any]:
        """The schedule as the API's fields (`SCHEDULE_FIELDS`), all None when unscheduled."""
        calendar = self.calendar
        if calendar is None or calendar.scheduled_for is None:
            return dict.fromkeys(SCHEDULE_FIELDS)
        return calendar.model_dump(include=set(SCHEDULE_FIELDS))

    @property
    def calendar_anchor(self) -> datetime | None:
        """The instant the calendar files the blog under: scheduled, else posted."""
        return self.scheduled_for or (self.posted.posted_at if self.posted else None)

    def calendar_days(self, start: datetime, end: datetime) -> list[datetime]:
        """The blog's occurrences in `[start, end)` (none when it is not on the calendar)."""
        anchor = self.calendar_anchor
        if self.calendar is None or anchor is None:
            return []
        return self.calendar.between(anchor, start, end)

    class Settings:
        name = "blogs"
        # Whole documents, not only the current fields: upcasters read retired ones.
        projection = None
        indexes = [
            IndexModel([("tenant_id", 1), ("is_deleted", 1), ("_id", -1)], name="tenant_list"),
            IndexModel([("tenant_id", 1), ("status", 1), ("_id", -1)], name="tenant_status"),
            IndexModel([("tenant_id", 1), ("user_id", 1), ("_id", -1)], name="tenant_user"),
            IndexModel([("tenant_id", 1), ("tags", 1), ("_id", -1)], name="tenant_tag"),
            # The month view: equality on the (multikey) month, in `_id` order.
            IndexModel(
                [("tenant_id", 1), ("calendar.months", 1), ("_id", 1)], name="tenant_calendar_month"
            ),
            IndexModel(
                [("tenant_id", 1), ("user_id", 1), ("calendar.months", 1), ("_id", 1)],
                name="tenant_user_calendar_month",
            ),
            # Shape-1 blogs (`calendar_at`) until `migrate` has rewritten them: the month view
            # keeps a branch for them (service/blogs.py). Drop both with that branch.
            IndexModel([("tenant_id", 1), ("calendar_at", 1), ("_id", 1)], name="tenant_calendar"),
            IndexModel(
                [("tenant_id", 1), ("user_id", 1), ("calendar_at", 1), ("_id", 1)],
                name="tenant_user_calendar",
            ),
        ]
