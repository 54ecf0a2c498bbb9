"""Read models (CQRS projections): ONE mechanism for every read model of the service.

* `definitions.py` — what each read model is: which feed entries touch which rows, and the
  pipelines (service/pipelines.py) that recompute them.
* `runner.py` — how they are kept: checkpoints in `seq` order (service/feeds/sequencer.py),
  catch-up, rebuild, and the leases that give each projector one owner across processes.

`repair` (start-up, periodically, `python -m service.cli repair`) flushes journal outboxes a
crash left behind; the flushed entries are sequenced like any other, so no checkpoint needs
rewinding.
"""

from __future__ import annotations

from collections.abc import Iterable

from documents.base import RootDocument
from service.core.journal import repair_journal
from service.feeds import sequencer, workers
from service.projections.definitions import PROJECTORS, Projector
from service.projections.runner import (
    BATCH_SIZE,
    apply,
    catch_up,
    catch_up_projector,
    caught_up,
    rebuild,
    sync_feeds,
)


async def repair(models: Iterable[type[RootDocument]]) -> int:
    """Flush crashed journal outboxes (they are then sequenced); returns the events flushed."""
    repaired = await repair_journal(models)
    if repaired:
        workers.poke(sequencer.LEASE)
    return repaired


__all__ = [
    "BATCH_SIZE",
    "PROJECTORS",
    "Projector",
    "apply",
    "catch_up",
    "catch_up_projector",
    "caught_up",
    "rebuild",
    "repair",
    "sync_feeds",
]
