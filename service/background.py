"""The service's background work, started and stopped by the app's lifespan.

Every process runs the same workers (service/feeds/workers.py); a lease per worker makes one
process at a time do each piece of work, and another take over within a lease TTL if it dies:

* `sequencer` — gives new feed entries their position (service/feeds/sequencer.py);
* `projector:<name>` — one per read model (service/projections/);
* `journal-repair` — flushes outboxes a crashed write left behind, every
  `JOURNAL_REPAIR_SECONDS` (not only at start-up or at that aggregate's next write);
* `webhooks` — delivers the journal to subscribed endpoints (service/webhooks/delivery.py);
* `retention` — erases soft-deleted leads past the tenant's retention (service/leads/retention.py).

`BACKGROUND_WORKERS=false` turns them off in a process (e.g. one that only serves reads);
some process must run them, or read models and webhooks stand still.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from documents import AGGREGATE_ROOTS
from documents.base import utcnow
from service import projections
from service.core.journal import repair_journal
from service.core.settings import Settings
from service.feeds import leases, sequencer, workers
from service.leads.retention import add_retention_worker
from service.projections.runner import catch_up_projector, configure_inline, lease_name
from service.webhooks.delivery import add_delivery_worker

log = logging.getLogger(__name__)

PROJECTOR_BATCHES = 8  # batches per step; the loop comes back at once while more is waiting


async def _sequence(_: leases.Held) -> bool:
    done = await sequencer.sequence_all()
    if done:
        workers.poke_prefix("projector:")
        workers.poke("webhooks")
    return done >= sequencer.BATCH


def _projector_step(name: str) -> workers.Step:
    projector = projections.PROJECTORS[name]

    async def step(held: leases.Held) -> bool:
        _, more = await catch_up_projector(projector, max_batches=PROJECTOR_BATCHES, held=held)
        return more

    return step


REPAIR_GRACE = timedelta(seconds=30)  # > the longest a live write takes to flush its outbox


async def _repair(_: leases.Held) -> bool:
    if await repair_journal(AGGREGATE_ROOTS, older_than=utcnow() - REPAIR_GRACE):
        workers.poke(sequencer.LEASE)
    return False


def add_sequencer_worker(runtime: workers.Runtime, settings: Settings) -> None:
    """Register the sequencer's worker in a runtime."""
    ttl = timedelta(seconds=settings.lease_ttl_seconds)
    runtime.add(sequencer.LEASE, _sequence, poll=settings.worker_poll_seconds, ttl=ttl)


def build_runtime(settings: Settings) -> workers.Runtime:
    """Every background worker of a process, not started yet."""
    runtime = workers.Runtime()
    ttl = timedelta(seconds=settings.lease_ttl_seconds)
    poll = settings.worker_poll_seconds
    add_sequencer_worker(runtime, settings)
    for name in projections.PROJECTORS:
        runtime.add(lease_name(name), _projector_step(name), poll=poll, ttl=ttl)
    # Start-up already repaired: the first periodic run comes one interval later.
    runtime.add(
        "journal-repair", _repair, poll=settings.journal_repair_seconds, ttl=ttl, first_delay=True
    )
    add_delivery_worker(runtime, settings)
    add_retention_worker(runtime, settings)
    for worker in runtime.workers.values():
        # Delivery steps wait on HTTP endpoints (WEBHOOK_TIMEOUT_SECONDS per call), not on the
        # database: its calls are bounded one by one (MONGODB_TIMEOUT_MS, socket timeout).
        if worker.name != "webhooks":
            worker.budget = settings.background_timeout_ms / 1000
    return runtime


class Background:
    """The running background work of one app instance."""

    def __init__(self, runtime: workers.Runtime | None) -> None:
        self.runtime = runtime

    async def stop(self) -> None:
        """Stop every loop and release the leases (another process takes over at once)."""
        if self.runtime is not None:
            await self.runtime.stop()


async def start_background(settings: Settings) -> Background:
    """Start the background workers (unless turned off) and set the inline feed budget."""
    configure_inline(
        batches=settings.inline_feed_batches, seconds=settings.inline_feed_budget_ms / 1000
    )
    if not settings.background_workers:
        log.warning("background workers are off in this process (BACKGROUND_WORKERS=false)")
        return Background(None)
    runtime = build_runtime(settings)
    runtime.start()
    return Background(runtime)


__all__ = ["Background", "add_sequencer_worker", "build_runtime", "start_background"]
