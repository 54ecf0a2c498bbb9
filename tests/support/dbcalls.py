"""Counting (and timing) database calls on the embedded backend, for tests and benchmarks."""

from __future__ import annotations

import inspect
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from service.embedded import EmbeddedCollection
from service.embedded.aio import EmbeddedCursor
from service.feeds.workers import in_background

_inner: ContextVar[bool] = ContextVar("_inner", default=False)

COUNTED = (
    "find",
    "aggregate",
    "find_one",
    "insert_one",
    "insert_many",
    "update_one",
    "update_many",
    "delete_one",
    "delete_many",
    "count_documents",
    "replace_one",
    "find_one_and_update",
    "bulk_write",
)


@contextmanager
def count_db_calls() -> Iterator[tuple[Counter[str], Counter[str]]]:
    """Count every call made through the collection API, and time the awaited ones.

    Yields (calls, seconds) keyed by `collection.method`; `find` returns a cursor whose work
    happens while it is iterated: that time (every batch the cursor fetches) is its seconds.
    """
    calls: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    originals = {name: getattr(EmbeddedCollection, name) for name in COUNTED}

    def wrap(name: str, fn: Any) -> Any:
        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            if in_background.get() or _inner.get():  # a worker's call, or part of another
                return fn(self, *args, **kwargs)
            key = f"{self.name}.{name}"
            calls[key] += 1
            result = fn(self, *args, **kwargs)
            if not inspect.isawaitable(result):
                return result

            async def timed() -> Any:
                start = time.perf_counter()
                token = _inner.set(True)  # `find_one` runs a `find`: one round trip, not two
                try:
                    return await result
                finally:
                    _inner.reset(token)
                    seconds[key] += time.perf_counter() - start

            return timed()

        return counted

    fill = EmbeddedCursor._fill

    async def timed_fill(self: EmbeddedCursor) -> bool:
        if in_background.get():
            return await fill(self)
        start = time.perf_counter()
        try:
            return await fill(self)
        finally:
            seconds[f"{self.collection.name}.find"] += time.perf_counter() - start

    for name, fn in originals.items():
        setattr(EmbeddedCollection, name, wrap(name, fn))
    EmbeddedCursor._fill = timed_fill  # type: ignore[method-assign]
    try:
        yield calls, seconds
    finally:
        for name, fn in originals.items():
            setattr(EmbeddedCollection, name, fn)
        EmbeddedCursor._fill = fill  # type: ignore[method-assign]
