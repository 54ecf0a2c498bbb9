"""The audit log: the change journal (`domain_events`) read across a tenant, for admins.

The plan's "audit log in every aggregate root" is this one journal: every change of every
aggregate is already there (actor, time, version, field-level changes with secrets redacted),
so there is no second copy to keep in step. Per resource it is `GET /v1/<coll>/{id}/history`;
across the tenant it is this query, filtered by actor, resource kind or id and time range.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from documents.base import as_utc
from documents.journal import DomainEvent
from schemas.analytics import AuditEntry
from service.core import visibility
from service.core.context import RequestContext, Role
from service.core.errors import Unprocessable
from service.core.pagination import PageResult, Sort, paginate
from service.core.repository import tenant_filter, uuid_filter

# Newest first by time, ties broken by id; served by the tenant-prefixed journal indexes
# `tenant_time`, `tenant_actor_time` and `tenant_type_time` (documents/journal.py).
NEWEST_CHANGE_FIRST = Sort("occurred_at", -1)


def audit_filter(
    ctx: RequestContext,
    *,
    actor_id: UUID | None = None,
    aggregate_type: str | None = None,
    aggregate_id: UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> dict[str, Any]:
    """The journal query of the caller's tenant with the given filters (time: `[since, until)`)."""
    query: dict[str, Any] = tenant_filter(ctx)
    if actor_id is not None:
        query["actor_id"] = uuid_filter(actor_id)
    if aggregate_type is not None:
        query["aggregate_type"] = aggregate_type
    if aggregate_id is not None:
        query["aggregate_id"] = uuid_filter(aggregate_id)
    when: dict[str, datetime] = {}
    if since is not None:
        when["$gte"] = as_utc(since)
    if until is not None:
        when["$lt"] = as_utc(until)
    if since is not None and until is not None and when["$lt"] <= when["$gte"]:
        raise Unprocessable("`until` must be after `since`.", loc=["query", "until"])
    if when:
        query["occurred_at"] = when
    return query


async def audit_log(
    *,
    ctx: RequestContext,
    limit: int,
    cursor: str | None = None,
    actor_id: UUID | None = None,
    aggregate_type: str | None = None,
    aggregate_id: UUID | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> PageResult[AuditEntry]:
    """One page of the tenant's journal, newest change first (admins and owners only).

    Entries show what the caller may see (service/core/visibility.py), as history does.
    """
    # The journal is no aggregate root (no policy): reading all of it is the admins' alone.
    ctx.require(Role.admin)
    query = audit_filter(
        ctx,
        actor_id=actor_id,
        aggregate_type=aggregate_type,
        aggregate_id=aggregate_id,
        since=since,
        until=until,
    )
    page = await paginate(DomainEvent, query, limit=limit, cursor=cursor, sort=NEWEST_CHANGE_FIRST)
    # The same rules as history and the change feed: a colleague's private parts stay out.
    items = await visibility.visible_events(ctx, page.items)
    return PageResult([AuditEntry.model_validate(e.model_dump()) for e in items], page.next_cursor)
