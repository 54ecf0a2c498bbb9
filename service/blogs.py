"""Blog commands and queries: the planned → scheduled → posted lifecycle and the month calendar.

Allowed moves: planned ↔ scheduled (scheduling needs `scheduled_for`), planned/scheduled →
posted (`publish`, which stamps `posted_at`). Posted is final: publishing again, or changing a
posted blog's status or schedule (`scheduled_for`, `timezone`, `channel`, `recurrence`, stored
as its embedded `BlogCalendar`), is a 409.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from documents.base import utcnow
from documents.blog import (
    SCHEDULE_FIELDS,
    Blog,
    BlogCalendar,
    BlogPlan,
    BlogStatus,
    PostedBlog,
)
from documents.workspace_read_models import GlobalBlog
from schemas.blogs import (
    BLOG_VIEW,
    BlogCreate,
    BlogFilters,
    BlogPublish,
    BlogRead,
    BlogUpdate,
    CalendarParams,
)
from service import read_models
from service.core.context import RequestContext
from service.core.errors import Conflict, Unprocessable, readable
from service.core.pagination import OLDEST_FIRST, PageResult
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository, equal_to, uuid_filter

# The month view answers at most this many blogs (`truncated` says when there were more).
MAX_CALENDAR_BLOGS = 1000
# Clocks differ a little between services; a posting time slightly ahead of ours is accepted.
CLOCK_SKEW = timedelta(minutes=5)


POLICY: ResourcePolicy[Blog] = register_policy(ResourcePolicy(model=Blog))
"""Members and above write Blog documents (the default roles)."""


def schedule(values: dict[str, Any]) -> BlogCalendar | None:
    """The calendar described by the API's schedule fields (None without `scheduled_for`).

    Timezone, channel and recurrence describe a schedule, so they need `scheduled_for`; a
    recurrence must end and stay within its bound. Either failure is a 422 naming the field.
    """
    if values.get("scheduled_for") is None:
        extra = [f for f in SCHEDULE_FIELDS[1:] if values.get(f) is not None]
        if extra:
            raise Unprocessable(f"{extra[0]} needs scheduled_for.", loc=["body", extra[0]])
        return None
    try:
        calendar = BlogCalendar(
            **{f: values[f] for f in SCHEDULE_FIELDS if values.get(f) is not None}
        )
        calendar.occurrences(values["scheduled_for"])  # refuses a rule past its bound
    except (ValidationError, ValueError) as exc:
        message = exc.errors()[0]["msg"] if isinstance(exc, ValidationError) else str(exc)
        raise Unprocessable(
            f"Invalid schedule: {readable(message).rstrip('.')}.", loc=["body", "recurrence"]
        ) from None
    return calendar


async def create_blog(*, ctx: RequestContext, data: BlogCreate) -> Blog:
    """Create a blog in the caller's tenant (a `posted` one is stamped `posted_at` now)."""
    POLICY.require(ctx, Action.create)
    blog = Blog(
        tenant_id=ctx.tenant_id,
        user_id=ctx.user_id,
        title=data.title,
        content=data.content,
        status=data.status,
        plan=BlogPlan(outline=data.outline, keywords=data.keywords),
        calendar=schedule({f: getattr(data, f) for f in SCHEDULE_FIELDS}),
        posted=PostedBlog(posted_at=utcnow()) if data.status == BlogStatus.posted else None,
        tags=data.tags,
    )
    return await Repository(Blog, ctx).create(blog)


async def get_blog(*, ctx: RequestContext, id: UUID) -> BlogRead:
    """One blog of the tenant (404 if missing, deleted or another tenant's)."""
    return await Repository(Blog, ctx).read(id, BLOG_VIEW)


async def list_blogs(*, ctx: RequestContext, filters: BlogFilters) -> PageResult[BlogRead]:
    """A page of the tenant's blogs, newest first."""
    query = equal_to(filters, {"status": "status", "tag": "tags", "user_id": "user_id"})
    return await Repository(Blog, ctx).page_for(query, filters, view=BLOG_VIEW)


async def update_blog(
    *, ctx: RequestContext, id: UUID, patch: BlogUpdate, expected_version: int | None
) -> Blog:
    """Apply a partial update, keeping the lifecycle rules (see the module docstring)."""
    POLICY.require(ctx, Action.update)
    repo = Repository(Blog, ctx)
    blog = await repo.get(id)
    sent = patch.changes()
    if blog.status == BlogStatus.posted and {"status", *SCHEDULE_FIELDS} & sent.keys():
        raise Conflict("A posted blog's status and schedule can no longer change.")
    plan = blog.plan.model_copy(update={k: sent[k] for k in ("outline", "keywords") if k in sent})
    status = sent.get("status", blog.status)
    changes: dict[str, Any] = {k: sent[k] for k in ("title", "content", "tags") if k in sent}
    changes["status"] = status
    changes["plan"] = plan.model_dump()
    scheduled_for = blog.scheduled_for
    if sent.keys() & set(SCHEDULE_FIELDS):
        # Unscheduling (`scheduled_for: null`) drops the schedule's details with it.
        kept = blog.schedule_fields() if sent.get("scheduled_for", True) is not None else {}
        calendar = schedule({**kept, **{f: sent[f] for f in SCHEDULE_FIELDS if f in sent}})
        changes["calendar"] = calendar.model_dump() if calendar else None
        scheduled_for = calendar.scheduled_for if calendar else None
    if status == BlogStatus.scheduled and scheduled_for is None:
        loc = "scheduled_for" if "scheduled_for" in sent else "status"
        raise Unprocessable("A scheduled blog needs scheduled_for.", loc=["body", loc])
    event = "scheduled" if status != blog.status and status == BlogStatus.scheduled else "updated"
    return await repo.update(blog, changes, expected_version=expected_version, event_type=event)


async def publish_blog(
    *, ctx: RequestContext, id: UUID, data: BlogPublish, expected_version: int | None
) -> Blog:
    """Mark a blog posted, stamping `posted_at` (now unless given; never in the future)."""
    POLICY.require(ctx, Action.update)
    repo = Repository(Blog, ctx)
    blog = await repo.get(id)
    if blog.status == BlogStatus.posted:
        raise Conflict("The blog is already posted.")
    now = utcnow()
    if data.posted_at is not None and data.posted_at > now + CLOCK_SKEW:
        raise Unprocessable("posted_at cannot lie in the future.", loc=["body", "posted_at"])
    posted = PostedBlog(posted_at=data.posted_at or now, url=data.url, platform=data.platform)
    return await repo.update(
        blog,
        {"status": BlogStatus.posted, "posted": posted.model_dump()},
        expected_version=expected_version,
        event_type="published",
    )


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The UTC instants starting `YYYY-MM` and the month after it."""
    year, mon = (int(part) for part in month.split("-"))
    start = datetime(year, mon, 1, tzinfo=UTC)
    end = datetime(year + mon // 12, mon % 12 + 1, 1, tzinfo=UTC)
    return start, end


async def blog_calendar(*, ctx: RequestContext, params: CalendarParams) -> tuple[list[Blog], bool]:
    """The month's live, unarchived blogs (oldest first), and whether the cap cut it short.

    One query, an equality on the indexed `calendar.months` (every UTC month in which the
    blog has an occurrence). Its second `$or` branch finds shape-1 blogs, which kept a derived
    `calendar_at` instead, until `python -m service.cli migrate` has rewritten them (reads
    upcast them, see documents/migrations.py; queries see stored shapes); drop it and the
    `tenant_calendar` indexes once every deployment has migrated.
    """
    start, end = month_bounds(params.month)
    query: dict[str, Any] = {
        "$or": [{"calendar.months": params.month}, {"calendar_at": {"$gte": start, "$lt": end}}]
    }
    if params.user_id is not None:
        query["user_id"] = uuid_filter(params.user_id)
    page = await Repository(Blog, ctx).page(query, limit=MAX_CALENDAR_BLOGS, sort=OLDEST_FIRST)
    return page.items, page.next_cursor is not None


async def blog_stats(*, ctx: RequestContext, user_id: UUID | None) -> GlobalBlog:
    """The `GlobalBlog` read model of a user (the caller's; another user's needs admin)."""
    return await read_models.blog_stats(ctx=ctx, user_id=user_id)
