"""Webhook delivery: the journal, sent to each subscribed endpoint, signed, in order, at least once.

How it works. Each endpoint has a durable position in the journal (`WebhookState.position`, a
`seq`, service/feeds/sequencer.py). The worker `webhooks` (one process at a time holds its lease;
service/feeds/workers.py) reads each endpoint's tenant journal after its position, up to the
published head, and POSTs every change whose `event_type` matches the subscription, one at
a time, oldest first; the position moves past a change only after a 2xx answer (or when the
change does not match). Hence:

* **after commit, nothing lost**: only entries at or below the sequencer's head are read, and
  those are committed (majority write concern) and final; a restart resumes at the stored
  position, so a change whose answer was not recorded is sent again (at-least-once; receivers
  dedupe by the `webhook-id` header, the change's id);
* **order per aggregate**: an endpoint's changes go out strictly in journal order (which keeps
  each aggregate's versions in order), one at a time: a failing change holds back the ones
  after it (head-of-line blocking is the price of order);
* **retries**: a non-2xx answer, a timeout (`WEBHOOK_TIMEOUT_SECONDS`), a refused address or
  a network error is retried after `WEBHOOK_RETRY_BASE_SECONDS * 2^(attempt-1)` (capped at
  `WEBHOOK_RETRY_MAX_SECONDS`), with full jitter (a random 50 to 100% of it) so endpoints that
  failed together do not retry together; after `WEBHOOK_DISABLE_AFTER_SECONDS` of failing,
  the endpoint is disabled (journaled, with `disabled_reason`) until an admin re-enables it;
* **no double sending**: one process holds the `webhooks` lease; a holder that lost it (a
  pause longer than the lease) stops before its next send, and its position writes carry the
  lease's fence (service/feeds/leases.py): a paused holder can never move an endpoint's position
  back over what a newer holder delivered. Across processes the throughput is
  one process's (`WEBHOOK_CONCURRENCY` endpoints at a time); per-endpoint leases would spread
  it, at one more lease write per endpoint and pass.

Every request follows the Standard Webhooks specification: headers `webhook-id` (the change
id), `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256>` computed by the
`standardwebhooks` package), body `{"type", "timestamp", "data": <the change as
GET /v1/changes shows it>}`. URLs are re-checked before each attempt (service/webhooks/urls.py).
Each attempt is a `webhook_deliveries` row and a log line with the request id of the change's
request; `/metrics` has attempts by outcome, their latency and the lag in changes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from datetime import timedelta
from fnmatch import fnmatchcase
from typing import Any

import httpx
from prometheus_client import Counter, Gauge, Histogram
from pymongo.errors import DuplicateKeyError
from standardwebhooks.webhooks import Webhook

from documents.base import utcnow
from documents.webhook import WebhookDelivery, WebhookEndpoint, WebhookState
from service.changes import read_page, visible_items
from service.core.context import RequestContext, Role
from service.core.repository import Repository, uuid_filter
from service.core.settings import Settings
from service.feeds import leases, sequencer, workers
from service.projections.runner import FENCE, fenced
from service.webhooks.endpoints import secret_of, strict_urls
from service.webhooks.urls import BlockedUrl, check_url

log = logging.getLogger(__name__)

LEASE = "webhooks"
BATCH = 50  # changes read per endpoint and pass

DELIVERIES = Counter(
    "webhook_deliveries_total", "Webhook delivery attempts by outcome.", ["outcome"]
)
DELIVERY_SECONDS = Histogram(
    "webhook_delivery_duration_seconds",
    "Latency of webhook delivery attempts.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
LAG = Gauge("webhook_lag_changes", "Journal entries the furthest-behind endpoint has not passed.")


def system_context(endpoint: WebhookEndpoint) -> RequestContext:
    """Who reads and writes on an endpoint's behalf: the tenant, as an admin service (no user).

    Having no user, it sees every user's changes through the colleague view
    (service/core/visibility.py).
    """
    return RequestContext(
        tenant_id=endpoint.tenant_id, actor_id=endpoint.id, role=Role.admin, actor_type="api_key"
    )


def matches(event_type: str, patterns: list[str]) -> bool:
    """Whether a change type matches a subscription (`lead.created`, `lead.*`, `*`)."""
    return any(fnmatchcase(event_type, p) for p in patterns)


def backoff(attempt: int, settings: Settings) -> timedelta:
    """The wait after the `attempt`-th failure: exponential, capped, with full jitter."""
    ceiling = min(
        settings.webhook_retry_max_seconds,
        settings.webhook_retry_base_seconds * 2 ** min(attempt - 1, 30),
    )
    return timedelta(seconds=ceiling * random.uniform(0.5, 1.0))


def payload(change: dict[str, Any]) -> str:
    """The request body of a change (JSON text, signed as it is sent)."""
    body = {"type": change["event_type"], "timestamp": change["occurred_at"], "data": change}
    return json.dumps(body, default=str, separators=(",", ":"))


class Dispatcher:
    """Delivers due endpoints' changes; one instance per worker (holds the HTTP client)."""

    def __init__(self, settings: Settings, client: httpx.AsyncClient | None = None) -> None:
        self.settings = settings
        self.client = client

    async def step(self, held: leases.Held) -> bool:
        """One pass over the due endpoints; True when more is waiting."""
        head = await sequencer.head(sequencer.JOURNAL)
        endpoints = await WebhookEndpoint.find(
            {"enabled": True, "is_deleted": False}, with_children=True
        ).to_list()
        if not endpoints:
            LAG.set(0)
            return False
        ids = [uuid_filter(e.id) for e in endpoints]
        states = {s.id: s for s in await WebhookState.find({"_id": {"$in": ids}}).to_list()}
        now = utcnow()
        due = []
        for endpoint in endpoints:
            state = states.get(endpoint.id) or WebhookState(
                id=endpoint.id, tenant_id=endpoint.tenant_id, position=head
            )
            if state.position < head and (
                state.next_attempt_at is None or state.next_attempt_at <= now
            ):
                due.append((endpoint, state))
        LAG.set(max((head - s.position for s in states.values()), default=0))
        if not due:
            return False
        limit = asyncio.Semaphore(self.settings.webhook_concurrency)

        async def one(endpoint: WebhookEndpoint, state: WebhookState) -> bool:
            async with limit:
                return await self.deliver_endpoint(endpoint, state, held)

        results = await asyncio.gather(*(one(e, s) for e, s in due))
        return any(results)

    async def deliver_endpoint(
        self, endpoint: WebhookEndpoint, state: WebhookState, held: leases.Held
    ) -> bool:
        """Send an endpoint's next changes in order; True when it has more right away."""
        ctx = system_context(endpoint)
        events, resume = await read_page(ctx, position=state.position, limit=BATCH)
        for event in events:
            assert event.seq is not None
            if not held.valid:  # the lease may have moved on: never send under a lost lease
                return False
            if not matches(event.event_type, endpoint.event_types):
                state.position = event.seq
                continue
            if not await self.attempt(endpoint, state, ctx, event):
                await self._save(state, held)
                return False
            state.position = event.seq
            if not await self._save(state, held):
                return False  # a newer holder of the lease owns this endpoint's position
        state.position = max(state.position, resume)
        if not await self._save(state, held):
            return False
        return len(events) == BATCH

    async def attempt(
        self, endpoint: WebhookEndpoint, state: WebhookState, ctx: RequestContext, event: Any
    ) -> bool:
        """POST one change; records the attempt and the endpoint's retry state."""
        visible = await visible_items(ctx, [event])
        if not visible:
            return True  # nothing this subscription may see: delivered, as far as it is concerned
        body = payload(visible[0])
        number = state.attempt + 1
        status: int | None = None
        error: str | None = None
        started = time.perf_counter()
        try:
            await check_url(endpoint.url, strict=strict_urls(self.settings))
            sent_at = utcnow()
            signature = Webhook(secret_of(self.settings, endpoint)).sign(
                str(event.id), sent_at, body
            )
            headers = {
                "content-type": "application/json",
                "webhook-id": str(event.id),
                "webhook-timestamp": str(int(sent_at.timestamp())),
                "webhook-signature": signature,
            }
            response = await self._client().post(endpoint.url, content=body, headers=headers)
            status = response.status_code
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except BlockedUrl as exc:
            error = f"blocked: {exc}"
        except httpx.TimeoutException:
            error = f"timed out after {self.settings.webhook_timeout_seconds}s"
        except (httpx.HTTPError, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}"[:500]
        elapsed = time.perf_counter() - started
        ok = error is None
        DELIVERIES.labels("success" if ok else "failure").inc()
        DELIVERY_SECONDS.observe(elapsed)
        log.info(
            "webhook delivery",
            extra={
                "endpoint_id": str(endpoint.id),
                "change_id": str(event.id),
                "event_type": event.event_type,
                "attempt": number,
                "status_code": status,
                "error": error,
                "change_request_id": event.request_id,
            },
        )
        await WebhookDelivery(
            tenant_id=endpoint.tenant_id,
            endpoint_id=endpoint.id,
            change_id=event.id,
            event_type=event.event_type,
            seq=event.seq,
            attempt=number,
            status_code=status,
            error=error,
            succeeded=ok,
            duration_ms=round(elapsed * 1000, 2),
            request_id=event.request_id,
        ).insert()
        now = utcnow()
        state.last_status, state.last_error = status, error
        if ok:
            state.attempt, state.next_attempt_at, state.failing_since = 0, None, None
            state.last_success_at = now
            state.delivered += 1
            return True
        state.attempt = number
        state.failing_since = state.failing_since or now
        state.next_attempt_at = now + backoff(number, self.settings)
        limit = timedelta(seconds=self.settings.webhook_disable_after_seconds)
        if now - state.failing_since >= limit:
            await self._disable(
                endpoint,
                f"failing since {state.failing_since:%Y-%m-%dT%H:%M:%SZ}"
                f" ({number} attempts, last: {error})",
            )
        return False

    async def _disable(self, endpoint: WebhookEndpoint, reason: str) -> None:
        ctx = system_context(endpoint)
        repo = Repository(WebhookEndpoint, ctx)
        try:
            current = await repo.get(endpoint.id)
            await repo.update(
                current, {"enabled": False, "disabled_reason": reason[:500]}, event_type="disabled"
            )
            log.warning("webhook %s disabled: %s", endpoint.id, reason)
        except Exception:  # changed or deleted meanwhile: the next pass sees the new state
            log.exception("could not disable webhook %s", endpoint.id)

    async def _save(self, state: WebhookState, held: leases.Held) -> bool:
        """Store an endpoint's position under the lease's fence; False when a newer holder
        wrote it (this one paused past its lease: it must not move the position back)."""
        data = state.model_dump(exclude={"id", "revision_id"})
        data["tenant_id"] = uuid_filter(state.tenant_id)
        data[FENCE] = held.fence
        try:
            await WebhookState.get_pymongo_collection().update_one(
                {
                    "_id": uuid_filter(state.id),
                    "tenant_id": data["tenant_id"],
                    **fenced(held.fence),
                },
                {"$set": data},
                upsert=True,
            )
        except DuplicateKeyError:
            log.warning("webhook %s: position kept by a newer lease holder", state.id)
            return False
        return True

    def _client(self) -> httpx.AsyncClient:
        if self.client is None:
            self.client = httpx.AsyncClient(
                timeout=self.settings.webhook_timeout_seconds, follow_redirects=False
            )
        return self.client

    async def close(self) -> None:
        """Close the HTTP client."""
        if self.client is not None:
            await self.client.aclose()
            self.client = None


def add_delivery_worker(runtime: workers.Runtime, settings: Settings) -> Dispatcher:
    """Register the `webhooks` worker in a runtime (the service's, or `run_deliveries`')."""
    dispatcher = Dispatcher(settings)
    runtime.add(
        LEASE,
        dispatcher.step,
        poll=settings.worker_poll_seconds,
        ttl=timedelta(seconds=settings.lease_ttl_seconds),
    )
    runtime.on_stop(dispatcher.close)
    return dispatcher


async def run_deliveries(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Deliver webhooks (and sequence the journal they read) until `stop` is set or cancelled.

    For `python -m service.cli deliver`: a process that only delivers, next to (or instead of)
    the API servers; leases keep it from sending what a server's worker sends. The database
    must be initialised (Beanie bound) before.
    """
    # service.background imports this module (its worker set includes delivery): a real cycle.
    from service.background import add_sequencer_worker

    runtime = workers.Runtime()
    add_sequencer_worker(runtime, settings)
    add_delivery_worker(runtime, settings)
    runtime.start()
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await runtime.stop()


__all__ = [
    "DELIVERIES",
    "LAG",
    "LEASE",
    "Dispatcher",
    "add_delivery_worker",
    "backoff",
    "matches",
    "payload",
    "run_deliveries",
]
