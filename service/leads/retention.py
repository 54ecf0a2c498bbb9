"""Retention: soft-deleted leads are erased `retention.erase_deleted_after_days` after deletion.

A leased background worker (`retention`, service/feeds/workers.py) walks the tenants in `_id` order
(their primary index, a page at a time) and, per tenant:

* finishes erasures a crash interrupted (`erased_at` set, `search_text` not yet empty: the
  redaction pass of service/leads/privacy.py is idempotent and ends by emptying it);
* when the tenant set `retention.erase_deleted_after_days`, erases its leads deleted before
  `now - days` that are not erased yet (the same `erase` as the API's, journaled as
  `lead.erased` by the retention actor `RETENTION_ACTOR`).

Days, not seconds, matter here: the worker runs hourly by default (`RETENTION_POLL_SECONDS`
in the worker registration), and `erase_expired(now=...)` takes the clock for tests.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from bson import Binary

from documents.base import utcnow
from documents.lead import LeadBase
from documents.tenant import Tenant
from service.core.context import RequestContext, Role
from service.core.repository import tenant_filter
from service.core.settings import Settings
from service.feeds import leases, workers
from service.leads import privacy

LEASE = "retention"
RETENTION_ACTOR = UUID(int=0)  # the journal's actor of erasures the retention worker makes
POLL_SECONDS = 3600.0
TENANT_PAGE = 100
BATCH = 200  # leads erased per tenant per pass; the worker comes back at once for more


def _ctx(tenant_id: UUID) -> RequestContext:
    return RequestContext(tenant_id=tenant_id, actor_id=RETENTION_ACTOR, role=Role.owner)


async def _tenants() -> Any:
    """Every tenant's id and retention, a page at a time by `_id` (the primary index)."""
    after: Any = Binary.from_uuid(UUID(int=0))
    collection = Tenant.get_pymongo_collection()
    first = True
    while True:
        bound = {"$gte": after} if first else {"$gt": after}
        page = (
            await collection.find({"_id": bound}, {"retention": 1})
            .sort("_id", 1)
            .limit(TENANT_PAGE)
            .to_list(None)
        )
        for raw in page:
            yield raw
        if len(page) < TENANT_PAGE:
            return
        after, first = page[-1]["_id"], False


def _uuid(value: Any) -> UUID:
    return value.as_uuid() if isinstance(value, Binary) else UUID(str(value))


async def erase_expired(*, now: datetime | None = None) -> tuple[int, bool]:
    """One pass over every tenant; (leads erased or finished, whether more are waiting)."""
    now = now or utcnow()
    done = 0
    more = False
    async for tenant in _tenants():
        ctx = _ctx(_uuid(tenant["_id"]))
        unfinished = tenant_filter(
            ctx, {"is_deleted": True, "erased_at": {"$ne": None}, "search_text": {"$ne": ""}}
        )
        queries = [unfinished]
        days = (tenant.get("retention") or {}).get("erase_deleted_after_days")
        if days:
            queries.append(
                tenant_filter(
                    ctx,
                    {
                        "is_deleted": True,
                        "erased_at": None,
                        "deleted_at": {"$lt": now - timedelta(days=days)},
                    },
                )
            )
        for query in queries:
            found = await LeadBase.find(query, with_children=True).limit(BATCH + 1).to_list()
            more = more or len(found) > BATCH
            for lead in found[:BATCH]:
                await privacy.erase_with(ctx, lead)
                done += 1
    return done, more


async def _step(held: leases.Held) -> bool:  # noqa: ARG001  (a worker step's signature)
    _erased, more = await erase_expired()
    return more


def add_retention_worker(runtime: workers.Runtime, settings: Settings) -> None:
    """Register the retention worker in a runtime (it runs hourly, after one interval)."""
    ttl = timedelta(seconds=settings.lease_ttl_seconds)
    runtime.add(LEASE, _step, poll=POLL_SECONDS, ttl=ttl, first_delay=True)


__all__ = ["LEASE", "RETENTION_ACTOR", "add_retention_worker", "erase_expired"]
