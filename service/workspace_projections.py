"""Workspace read models (`GlobalBlog`, `GlobalResearchStats`), rebuilt on demand.

Each rebuild is one aggregation pipeline over the source collection (tenant-scoped by the
repository, soft-deleted documents left out, archived ones counted) and one upsert of the
read-model document keyed by (tenant_id, user_id). They run when a stats endpoint is read, so
they are always current and need no hook in the shared lifecycle routes (see the module
docstring of documents/workspace_read_models.py).
"""

from __future__ import annotations

from typing import Any, TypeVar
from uuid import UUID

from beanie import Document

from documents.base import _as_utc, utcnow
from documents.blog import Blog, BlogStatus
from documents.research import ResearchTopic
from documents.user import User
from documents.workspace_read_models import BlogCounts, GlobalBlog, GlobalResearchStats
from service.context import RequestContext
from service.repository import Repository, tenant_filter, to_bson, uuid_filter

R = TypeVar("R", bound=Document)


def _utc(value: Any) -> Any:
    return _as_utc(value) if value is not None else None


async def _upsert(model: type[R], ctx: RequestContext, user_id: UUID, values: dict[str, Any]) -> R:
    key = tenant_filter(ctx, {"user_id": uuid_filter(user_id)})
    doc = model(tenant_id=ctx.tenant_id, user_id=user_id, computed_at=utcnow(), **values)
    data = to_bson(doc)
    new_id = data.pop("_id")
    data.pop("revision_id", None)
    # Keyed by the unique (tenant_id, user_id): concurrent rebuilds converge on one document.
    await model.get_pymongo_collection().update_one(
        key, {"$set": data, "$setOnInsert": {"_id": new_id}}, upsert=True
    )
    stored = await model.get_pymongo_collection().find_one(key, {"_id": 1})
    doc.id = stored["_id"] if stored else doc.id
    return doc


async def _user_in_tenant(ctx: RequestContext, user_id: UUID) -> None:
    await Repository(User, ctx).get(user_id)  # 404 for a missing or another tenant's user


async def rebuild_global_blog(*, ctx: RequestContext, user_id: UUID) -> GlobalBlog:
    """Recompute a user's blog rollup (counts by status, last post, next scheduled)."""
    await _user_in_tenant(ctx, user_id)
    rows = await Repository(Blog, ctx).aggregate(
        [
            {
                "$group": {
                    "_id": "$status",
                    "n": {"$sum": 1},
                    "last_posted_at": {"$max": "$posted.posted_at"},
                    # Shape-1 blogs (not yet migrated) kept it in `plan.scheduled_for`.
                    "first_scheduled_for": {
                        "$min": {"$ifNull": ["$calendar.scheduled_for", "$plan.scheduled_for"]}
                    },
                }
            }
        ],
        match={"user_id": uuid_filter(user_id)},
    )
    by_status = {row["_id"]: row for row in rows}
    counts = BlogCounts(**{status: by_status.get(status, {}).get("n", 0) for status in BlogStatus})
    posted = by_status.get(BlogStatus.posted.value, {})
    scheduled = by_status.get(BlogStatus.scheduled.value, {})
    return await _upsert(
        GlobalBlog,
        ctx,
        user_id,
        {
            "total": sum(row["n"] for row in rows),
            "by_status": counts,
            "last_posted_at": _utc(posted.get("last_posted_at")),
            "next_scheduled_for": _utc(scheduled.get("first_scheduled_for")),
        },
    )


async def rebuild_global_research_stats(
    *, ctx: RequestContext, user_id: UUID
) -> GlobalResearchStats:
    """Recompute a user's research rollup (topics, results, distinct keywords, volume)."""
    await _user_in_tenant(ctx, user_id)
    rows = await Repository(ResearchTopic, ctx).aggregate(
        [
            {
                "$facet": {
                    "totals": [
                        {
                            "$group": {
                                "_id": None,
                                "topics": {"$sum": 1},
                                "results": {"$sum": {"$size": "$results"}},
                                "volume": {"$sum": {"$sum": "$results.search_volume"}},
                                "last": {"$max": {"$max": "$results.researched_at"}},
                            }
                        }
                    ],
                    "keywords": [
                        {"$unwind": "$results"},
                        {"$unwind": "$results.keywords"},
                        {"$group": {"_id": "$results.keywords"}},
                        {"$count": "n"},
                    ],
                }
            }
        ],
        match={"user_id": uuid_filter(user_id)},
    )
    facet = rows[0] if rows else {}
    totals = (facet.get("totals") or [{}])[0]
    keywords = (facet.get("keywords") or [{}])[0]
    return await _upsert(
        GlobalResearchStats,
        ctx,
        user_id,
        {
            "topics_total": totals.get("topics", 0),
            "results_total": totals.get("results", 0),
            "keywords_total": keywords.get("n", 0),
            "search_volume_total": totals.get("volume", 0),
            "last_researched_at": _utc(totals.get("last")),
        },
    )
