"""Blogs: one document per post in `blogs`, moving planned → scheduled → posted.

The plan's `BlogPlan` (scheduling data) and `PostedBlog` (publication data) are embedded parts;
the calendar view (`BlogCalendar`) is a response shape (schemas/blogs.py), not stored.
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pydantic import Field, model_validator
from pymongo import IndexModel

from documents.base import (
    Embedded,
    LongText,
    Name,
    RootDocument,
    Segmented,
    ShortText,
    Tag,
    Url,
    UTCDateTime,
)

MAX_OUTLINE_ITEMS = 100
MAX_BLOG_KEYWORDS = 50


class BlogStatus(StrEnum):
    """Where a post is in its lifecycle (see service/blogs.py for the allowed moves)."""

    planned = "planned"
    scheduled = "scheduled"
    posted = "posted"


class BlogPlan(Embedded):
    """Planning data: when it should go out, its outline and target keywords."""

    scheduled_for: UTCDateTime | None = None
    outline: list[ShortText] = Field(default_factory=list, max_length=MAX_OUTLINE_ITEMS)
    keywords: list[Tag] = Field(default_factory=list, max_length=MAX_BLOG_KEYWORDS)


class PostedBlog(Embedded):
    """Publication data, present once the post is out."""

    posted_at: UTCDateTime
    url: Url | None = None
    platform: ShortText | None = None


class Blog(RootDocument, Segmented):
    """A blog post of a user; `calendar_at` is the instant the calendar files it under."""

    aggregate_type: ClassVar[str] = "blog"

    user_id: UUID | None = None  # the author; None when an internal service created it
    title: Name
    content: LongText = ""
    status: BlogStatus = BlogStatus.planned
    plan: BlogPlan = Field(default_factory=BlogPlan)
    posted: PostedBlog | None = None
    # Derived, stored so the month view is one indexed range query rather than an `$or` over
    # two fields: the scheduled day, or the posting day of a post that was never scheduled.
    calendar_at: UTCDateTime | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Blog:
        if self.status == BlogStatus.scheduled and self.plan.scheduled_for is None:
            raise ValueError("a scheduled blog needs scheduled_for")
        if (self.status == BlogStatus.posted) != (self.posted is not None):
            raise ValueError("posted data is present exactly when the status is posted")
        self.calendar_at = self.plan.scheduled_for or (
            self.posted.posted_at if self.posted else None
        )
        return self

    class Settings:
        name = "blogs"
        indexes = [
            IndexModel([("tenant_id", 1), ("is_deleted", 1), ("_id", -1)], name="tenant_list"),
            IndexModel([("tenant_id", 1), ("status", 1), ("_id", -1)], name="tenant_status"),
            IndexModel([("tenant_id", 1), ("user_id", 1), ("_id", -1)], name="tenant_user"),
            IndexModel([("tenant_id", 1), ("tags", 1), ("_id", -1)], name="tenant_tag"),
            IndexModel([("tenant_id", 1), ("calendar_at", 1), ("_id", 1)], name="tenant_calendar"),
            IndexModel(
                [("tenant_id", 1), ("user_id", 1), ("calendar_at", 1), ("_id", 1)],
                name="tenant_user_calendar",
            ),
        ]
