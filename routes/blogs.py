"""Blogs: `/v1/blogs` (CRUD, publish, the month calendar, the author rollup, lifecycle)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Body, Query, Request, Response, status

from documents.blog import Blog
from routes.deps import (
    CurrentContext,
    IfMatch,
    page_response,
    read_response,
    set_etag,
    set_location,
)
from routes.lifecycle import add_lifecycle_routes
from schemas.blogs import (
    BLOG_VIEW,
    BlogCreate,
    BlogFilters,
    BlogPublish,
    BlogRead,
    BlogStatsRead,
    BlogUpdate,
    CalendarDay,
    CalendarEntry,
    CalendarMonth,
    CalendarParams,
    StatsParams,
    to_blog_read,
    to_blog_stats_read,
    to_calendar_entry,
)
from schemas.common import Page
from service import blogs

router = APIRouter(prefix="/blogs", tags=["blogs"])


@router.post("", response_model=BlogRead, status_code=status.HTTP_201_CREATED)
async def create_blog(
    body: BlogCreate, ctx: CurrentContext, request: Request, response: Response
) -> Any:
    """Create a blog (`planned` by default; `scheduled` needs `scheduled_for`)."""
    blog = await blogs.create_blog(ctx=ctx, data=body)
    set_etag(response, blog.version)
    set_location(request, response, "get_blog", id=blog.id)
    return to_blog_read(blog)


@router.get("", response_model=Page[BlogRead])
async def list_blogs(ctx: CurrentContext, filters: Annotated[BlogFilters, Query()]) -> Any:
    """The tenant's blogs, newest first."""
    page = await blogs.list_blogs(ctx=ctx, filters=filters)
    return page_response(page, Page[BlogRead])


@router.get("/calendar", response_model=CalendarMonth)
async def blog_calendar(ctx: CurrentContext, params: Annotated[CalendarParams, Query()]) -> Any:
    """A month's blogs by UTC day: on the `scheduled_for` day, else on the `posted_at` day.

    A recurring blog sits on each day it occurs. Only days with blogs are listed; deleted and
    archived blogs are left out.
    """
    items, truncated = await blogs.blog_calendar(ctx=ctx, params=params)
    start, end = blogs.month_bounds(params.month)
    entries = sorted(
        (
            to_calendar_entry(blog, when)
            for blog in items
            for when in blog.calendar_days(start, end)
        ),
        key=lambda entry: (entry.occurs_at, entry.id),
    )
    days: dict[date, list[CalendarEntry]] = {}
    for entry in entries:
        days.setdefault(entry.occurs_at.date(), []).append(entry)
    return CalendarMonth(
        month=params.month,
        days=[CalendarDay(date=day, blogs=day_entries) for day, day_entries in days.items()],
        truncated=truncated,
    )


@router.get("/stats", response_model=BlogStatsRead)
async def blog_stats(ctx: CurrentContext, params: Annotated[StatsParams, Query()]) -> Any:
    """The `GlobalBlog` rollup of a user (the caller unless `user_id`), recomputed now."""
    stats = await blogs.blog_stats(ctx=ctx, user_id=params.user_id)
    return to_blog_stats_read(stats)


@router.get("/{id}", response_model=BlogRead)
async def get_blog(id: UUID, ctx: CurrentContext) -> Response:
    """One blog."""
    blog = await blogs.get_blog(ctx=ctx, id=id)
    return read_response(BLOG_VIEW, blog)


@router.patch("/{id}", response_model=BlogRead)
async def update_blog(
    id: UUID, body: BlogUpdate, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    """Change a blog's fields; `status` moves between `planned` and `scheduled` only."""
    blog = await blogs.update_blog(ctx=ctx, id=id, patch=body, expected_version=if_match)
    set_etag(response, blog.version)
    return to_blog_read(blog)


@router.post("/{id}/publish", response_model=BlogRead)
async def publish_blog(
    id: UUID,
    ctx: CurrentContext,
    if_match: IfMatch,
    response: Response,
    body: Annotated[BlogPublish | None, Body()] = None,
) -> Any:
    """Set `status: posted` and `posted_at` (409 if it is already posted)."""
    blog = await blogs.publish_blog(
        ctx=ctx, id=id, data=body or BlogPublish(), expected_version=if_match
    )
    set_etag(response, blog.version)
    return to_blog_read(blog)


add_lifecycle_routes(router, model=Blog, read_model=BlogRead, to_read=to_blog_read)
