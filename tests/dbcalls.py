"""Counting (and timing) database calls on the embedded backend, for tests and benchmarks."""

from __future__ import annotations

import inspect
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from service.embedded import EmbeddedCollection
from service.workers import in_background

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
    happens while it is iterated, so it is counted but not timed.
    """
    calls: Counter[str] = Counter()
    seconds: Counter[str] = Counter()
    originals = {name: getattr(EmbeddedCollection, name) for name in COUNTED}

    def wrap(name: str, fn: Any) -> Any:
        def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
            if in_background.get():  # a background worker's call, not the measured code's
                return fn(self, *args, **kwargs)
            key = f"{self.name}.{name}"
            calls[key] += 1
            result = fn(self, *args, **kwargs)
            if not inspect.isawaitable(result):
                return result

            async def timed() -> Any:
                start = time.perf_counter()
                try:
                    return await result
                finally:
                    seconds[key] += time.perf_counter() - start

            return timed()

        return counted

    for name, fn in originals.items():
        setattr(EmbeddedCollection, name, wrap(name, fn))
    try:
        yield calls, seconds
    finally:
        for name, fn in originals.items():
            setattr(EmbeddedCollection, name, fn)
