"""Time budgets for database work: one per request, per background step, per batch.

The client has no client-wide `timeoutMS` (service/database.py): a cumulative cap would also
cut long cursors (a lead export after its 200, `rebuild`, `migrate`) and, because PyMongo
uses the remaining CSOT time for server selection, make every request wait the full cap in
an outage. Instead each use gets its own budget (docs/deployment.md, "Time budgets"):

- **a request**: `REQUEST_TIMEOUT_MS`, set around the whole request by
  routes/middleware.RequestDeadlineMiddleware with `pymongo.timeout`. Every database call of
  the request shares it (PyMongo sends the remaining time as `maxTimeMS`, and server
  selection waits at most the remaining time), so an outage answers 503 within the budget;
- **a background step**: `BACKGROUND_TIMEOUT_MS`, around each step of a worker
  (service/feeds/workers.py);
- **batch work** (streaming exports, `rebuild`, `migrate`, imports, the CLI): no cumulative
  cap. `unbounded()` lifts an enclosing deadline; each round trip (one batch) is then bounded
  by the socket timeout `MONGODB_BATCH_TIMEOUT_MS`, and server selection by
  `MONGODB_TIMEOUT_MS`.

The embedded backend honours the same deadline (service/embedded/aio.py reads `remaining()`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pymongo
from pymongo import _csot  # PyMongo's CSOT state: the one place that knows the deadline


@contextmanager
def deadline(seconds: float | None) -> Iterator[None]:
    """Run the block's database calls within `seconds` (None: leave the current budget)."""
    if seconds is None:
        yield
        return
    with pymongo.timeout(seconds):
        yield


def remaining() -> float | None:
    """Seconds left in the current budget, or None when no budget applies."""
    return _csot.remaining()


@contextmanager
def unbounded() -> Iterator[None]:
    """Lift the enclosing budget for the block (batch work: one call per batch, no cap).

    `pymongo.timeout` can only shorten a deadline, so this resets PyMongo's context variables
    itself; they are restored when the block ends.
    """
    timeout = _csot.TIMEOUT.set(None)
    limit = _csot.DEADLINE.set(float("inf"))
    try:
        yield
    finally:
        _csot.DEADLINE.reset(limit)
        _csot.TIMEOUT.reset(timeout)


__all__ = ["deadline", "remaining", "unbounded"]
