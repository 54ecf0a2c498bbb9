"""The embedded MongoDB: an in-process backend with PyMongo's async API, over mongomock.

No published package offers an in-process `AsyncMongoClient` (mongomock is synchronous,
mongomock-motor is shaped like the retired Motor), so this package is ours. It is the only
code that knows about mongomock; the domain code sees a database object that answers like
PyMongo's `AsyncDatabase`.

- `codec.py`    everything crosses the boundary as BSON, as it would on the wire
- `keys.py`     MongoDB's value order, index keys, multikey paths
- `store.py`    a collection's documents and indexes (sorted entries, unique hash maps)
- `planner.py`  which index bounds a query's candidates
- `engine.py`   mongomock's matching/update/aggregation semantics on that storage
- `aio.py`      the async face (client, database, collection, cursors), one worker thread
- `wal.py`      the write-ahead log: every change on disk before it is acknowledged
- `snapshot.py` persistence: snapshot plus log, compaction, recovery, one owning process
- `mongomock_hooks.py` every private part of mongomock used (pinned, checked by a test)

Its limits are stated in the README: one process, data that fits in memory (it is meant for
development, demos and a single agent's workload of tens of thousands of leads), and the
features listed in aio.py's docstring.
"""

from __future__ import annotations

from pathlib import Path

from service.embedded.aio import (
    EmbeddedClient,
    EmbeddedCollection,
    EmbeddedCursor,
    EmbeddedDatabase,
    Operation,
    observers,
)
from service.embedded.snapshot import EmbeddedDataError, Snapshotter


def embedded_database(name: str = "lead_ignite") -> EmbeddedDatabase:
    """A fresh, empty, in-memory embedded database (nothing is persisted)."""
    return EmbeddedClient()[name]


def open_embedded(
    path: str | Path, name: str, *, interval: float = 5.0, fsync: bool = True
) -> tuple[EmbeddedDatabase, Snapshotter]:
    """The embedded database kept in `path`, owned by this process until its client closes.

    Every write is in the log (`fsync`'d when `fsync`) before it returns. Raises
    EmbeddedDataError when another process owns the file or the file is not usable. Call
    `snapshotter.start()` once an event loop runs to sweep TTL indexes and compact the log
    when due, every `interval` seconds.
    """
    snapshotter = Snapshotter(Path(path), interval, fsync=fsync)
    client = snapshotter.open()
    return client[name], snapshotter


__all__ = [
    "EmbeddedClient",
    "EmbeddedCollection",
    "EmbeddedCursor",
    "EmbeddedDataError",
    "EmbeddedDatabase",
    "Operation",
    "Snapshotter",
    "embedded_database",
    "observers",
    "open_embedded",
]
