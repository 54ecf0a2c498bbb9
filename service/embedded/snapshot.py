"""Keeping the embedded data on disk: a snapshot plus a write-ahead log, owned by one process.

What is guaranteed: a write that returned is on disk. Every change goes to the write-ahead
log (wal.py) and is written, and fsync'd when EMBEDDED_FSYNC is on (the default), before the
call returns (group commit), so `kill -9` loses no acknowledged write, and neither does a
power failure with fsync on. A process killed at any point restarts on a file that opens.

Files, for a data file `<file>`:

- `<file>`: the snapshot. A magic line, then BSON documents: a header (format version, the
  first log segment to replay), per collection a descriptor (database, name, indexes,
  options, count) followed by its documents, then a trailer holding the count and a SHA-256
  of everything before it. Version 1 files (no log) still open.
- `<file>.wal.<n>`: the log segments since that snapshot (format in wal.py).
- `<file>.lock`: an exclusive lock making one process the owner; another is refused with
  the owner's pid.

Compaction replaces the log by a new snapshot: in the engine's critical section it takes the
documents (stored BSON is immutable, so references are a consistent picture) and rotates the
log to a new segment; then, in another thread while requests go on, it writes the snapshot
to a fresh temporary file, fsyncs it, renames it over the old one, fsyncs the folder, and
only then deletes the segments the snapshot holds. It runs when the log outgrows both the
snapshot and COMPACT_MIN_BYTES (checked every `interval` seconds, with the TTL sweep) and at
close, so the cost of persistence per write is one log record and compaction is amortised.
A crash at any step leaves the old snapshot with its segments, or the new snapshot (older
segments are then ignored and deleted). Leftover temporary files are deleted at start-up.

Start-up loads the snapshot, replays the log (a torn last record, never acknowledged, is
discarded with a warning) and logs what it loaded and how long it took. A snapshot or log
that is truncated, altered or not ours anywhere else stops start-up with a clear error
rather than starting empty.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import gc
import hashlib
import itertools
import logging
import os
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import bson

from service.embedded import codec, wal
from service.embedded.aio import EmbeddedClient, run
from service.embedded.engine import EngineClient
from service.embedded.keys import sort_key
from service.embedded.store import CollectionStore, Index, index_spec

log = logging.getLogger(__name__)

MAGIC = b"LEAD-IGNITE-EMBEDDED-MONGODB\n"
FORMAT_VERSION = 2
COMPACT_MIN_BYTES = 8 * 1024 * 1024
"""The log is compacted once it holds more than this and more than the snapshot's size."""

_temporary = itertools.count()
_SLICE = 4 * 1024 * 1024  # a snapshot is written and pushed to disk this much at a time


class EmbeddedDataError(RuntimeError):
    """The snapshot file cannot be used (corrupt, foreign or locked)."""


@dataclass(frozen=True)
class _Collection:
    database: str
    name: str
    indexes: list[dict[str, Any]]
    options: dict[str, Any]
    raws: list[bytes]


# -- writing ------------------------------------------------------------------------------


def _capture(engine: EngineClient) -> list[_Collection]:
    """A consistent picture of every collection (run in the worker: nothing changes meanwhile).

    Stored BSON is immutable, so the lists of references are the snapshot; encoding to the
    file happens afterwards without holding up the database.
    """
    out = []
    with engine.lock:
        stores = [(db.name, list(db.stores.items())) for db in engine.databases.values()]
    for database, items in stores:
        for name, store in items:
            if not store.created:
                continue
            indexes = [index_spec(i) for i in store.indexes.values() if i.name != "_id_"]
            raws = [raw for raw, _ in store.docs.values()]
            out.append(_Collection(database, name, indexes, dict(store.options), raws))
    return out


def _write(path: Path, collections: list[_Collection], first_segment: int) -> int:
    """Write a snapshot atomically (fresh temporary file, fsync, rename, fsync of the folder).

    Each call writes its own temporary file, so two writers can never share an inode.
    Returns the snapshot's size in bytes.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{next(_temporary)}.tmp")
    digest = hashlib.sha256()
    total = 0
    try:
        with open(tmp, "wb") as out:
            unsynced = 0

            def put(chunk: bytes) -> None:
                # In slices, each pushed to disk: a commit's fsync of the log then never waits
                # behind the whole snapshot's dirty pages (ext4 flushes them in one journal
                # transaction), which stalled writes for seconds at 20,000 leads.
                nonlocal unsynced
                view = memoryview(chunk)
                for start in range(0, len(view), _SLICE):
                    piece = view[start : start + _SLICE]
                    digest.update(piece)
                    out.write(piece)
                    unsynced += len(piece)
                    if unsynced >= _SLICE:
                        out.flush()
                        os.fdatasync(out.fileno())
                        unsynced = 0

            put(MAGIC)
            put(
                bson.encode(
                    {
                        "format": "lead-ignite-embedded",
                        "version": FORMAT_VERSION,
                        "saved_at": datetime.now(UTC),
                        "collections": len(collections),
                        "wal": first_segment,
                    }
                )
            )
            for c in collections:
                put(
                    codec.encode(
                        {
                            "database": c.database,
                            "collection": c.name,
                            "indexes": c.indexes,
                            "options": c.options,
                            "count": len(c.raws),
                        }
                    )
                )
                put(b"".join(c.raws))  # one write and one hash update (they release the GIL)
                total += len(c.raws)
            out.write(bson.encode({"end": True, "documents": total, "sha256": digest.hexdigest()}))
            out.flush()
            os.fsync(out.fileno())
            size = out.tell()
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    wal.fsync_folder(path.parent)
    return size


# -- reading ------------------------------------------------------------------------------


@dataclass
class Loaded:
    """What start-up found: the engine, and figures for its log line."""

    engine: EngineClient
    first_segment: int = 1
    snapshot_bytes: int = 0
    documents: int = 0
    collections: int = 0


def _documents(data: bytes, start: int) -> Iterator[tuple[int, bytes]]:
    position = start
    while position < len(data):
        if position + 4 > len(data):
            raise EmbeddedDataError("the file ends inside a document")
        (size,) = struct.unpack_from("<i", data, position)
        if size < 5 or position + size > len(data):
            raise EmbeddedDataError("the file ends inside a document")
        yield position, data[position : position + size]
        position += size


def load(path: Path) -> EngineClient:
    """Read a snapshot into a fresh engine (EmbeddedDataError if the file is not usable)."""
    return _load(path).engine


@contextlib.contextmanager
def _paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while loading: a load creates nothing but acyclic bytes
    and tuples, and each full collection would walk the whole growing heap again (it took
    half the time at 5,000 leads)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load(path: Path) -> Loaded:
    with _paused_gc():
        return _read_snapshot(path)


def _read_snapshot(path: Path) -> Loaded:
    data = path.read_bytes()
    if not data.startswith(MAGIC):
        raise EmbeddedDataError("it is not a Lead Ignite embedded database file")
    try:
        items = list(_documents(data, len(MAGIC)))
        if len(items) < 2:
            raise EmbeddedDataError("the file is truncated")
        trailer_at, trailer_raw = items[-1]
        trailer = bson.decode(trailer_raw)
        if not trailer.get("end"):
            raise EmbeddedDataError("the file is truncated (no trailer)")
        if hashlib.sha256(memoryview(data)[:trailer_at]).hexdigest() != trailer.get("sha256"):
            raise EmbeddedDataError("its checksum does not match (the file is corrupt)")
        header = bson.decode(items[0][1])
        if header.get("format") != "lead-ignite-embedded":
            raise EmbeddedDataError("it is not a Lead Ignite embedded database file")
        if header.get("version") not in (1, FORMAT_VERSION):
            raise EmbeddedDataError(f"its format version {header.get('version')} is unknown")
        loaded = Loaded(EngineClient(), int(header.get("wal", 1)), len(data))
        body = iter(items[1:-1])
        for _, raw in body:
            descriptor = bson.decode(raw)
            raws = [next(body)[1] for _ in range(descriptor["count"])]
            store = loaded.engine.database(descriptor["database"]).store(descriptor["collection"])
            _fill(store, descriptor, raws)
            loaded.documents += len(raws)
            loaded.collections += 1
        return loaded
    except EmbeddedDataError:
        raise
    except Exception as exc:  # any decoding failure means the file is not what we wrote
        raise EmbeddedDataError(f"it cannot be read ({exc})") from exc


def _index(spec: dict[str, Any]) -> Index:
    options = codec.canonical(spec.get("options") or {})
    return Index(spec["name"], [(k, d) for k, d in spec["key"]], options)


def _fill(store: CollectionStore, descriptor: dict[str, Any], raws: list[bytes]) -> None:
    store.options = descriptor.get("options") or {}
    store.load(raws, [_index(spec) for spec in descriptor["indexes"]])


def _apply(engine: EngineClient, record: wal.Record) -> None:
    """Redo one logged change (idempotent for document writes, as a replay must be)."""
    kind, payload = record.kind, record.payload
    if kind == wal.DROP_DATABASE:
        engine.drop_database(record.database)
        return
    store = engine.database(record.database).store(record.collection)
    if kind in (wal.INSERT, wal.REPLACE):
        doc = codec.to_canonical(payload)
        key = sort_key(doc["_id"])
        if key in store:
            store.replace(key, doc, payload)
        else:
            store.insert(doc, payload)
    elif kind == wal.DELETE:
        key = sort_key(codec.to_canonical(payload)["_id"])
        if key in store:
            store.delete(key)
    elif kind == wal.CREATE_INDEX:
        spec = codec.to_canonical(payload)
        if spec["name"] not in store.indexes:
            store.create_index(_index(spec))
    elif kind == wal.DROP_INDEX:
        name = codec.to_canonical(payload)["name"]
        if name in store.indexes:
            store.drop_index(name)
    elif kind == wal.CREATE:
        store.created = True
    elif kind == wal.DROP:
        store.drop()
    elif kind == wal.OPTIONS:
        store.options = codec.to_canonical(payload)
    else:
        raise EmbeddedDataError(f"the log holds a record of unknown kind {kind}")


# -- the owning process -------------------------------------------------------------------


class _Lock:
    """An exclusive, advisory lock on `<file>.lock`, holding the owner's pid."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        self._handle: IO[str] | None = None

    def acquire(self, data_path: Path) -> None:
        handle = open(self.path, "a+")  # noqa: SIM115 - held open for the lock's lifetime
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "unknown"
            handle.close()
            raise EmbeddedDataError(
                f"The embedded database {data_path} is in use by another process (pid {owner}). "
                "Stop that process (e.g. the running `make run`), or set MONGODB_URL to use a "
                "MongoDB server that several processes can share."
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        # The file stays: unlinking it would let two processes lock two different files.
        if self._handle is not None:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_UN)
            self._handle.close()
            self._handle = None


def _megabytes(size: int) -> str:
    return f"{size / 1e6:.1f} MB"


class Snapshotter:
    """Owns a data file for a client: loads it, logs every write, compacts, releases it."""

    def __init__(self, path: Path, interval: float, *, fsync: bool = True) -> None:
        self.path = path
        self.interval = interval
        self.fsync = fsync
        self._lock = _Lock(path)
        self._task: asyncio.Task[None] | None = None
        self._busy: asyncio.Lock | None = None  # one compaction at a time; close waits for it
        self.snapshot_bytes = 0
        self.client: EmbeddedClient | None = None
        self.log: wal.Log | None = None

    def open(self) -> EmbeddedClient:
        """Take the lock, load the snapshot and replay the log (or start empty)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock.acquire(self.path)
        try:
            self._clean_temporary_files()
            engine = self._recover()
        except (EmbeddedDataError, wal.LogDamaged) as exc:
            self._lock.release()
            raise EmbeddedDataError(
                f"Cannot start on the embedded database {self.path}: {exc}. Move the file "
                "away to start with an empty database, or restore a good copy."
            ) from None
        except BaseException:
            self._lock.release()
            raise
        self.client = EmbeddedClient(engine)
        self.client.on_close(self.close)
        return self.client

    def _clean_temporary_files(self) -> None:
        # Snapshots a crash interrupted (we hold the lock: no other writer exists).
        for leftover in self.path.parent.glob(f".{self.path.name}.*.tmp"):
            log.warning(
                "embedded database: deleting %s (%s), an unfinished snapshot from a crash",
                leftover,
                _megabytes(leftover.stat().st_size),
            )
            leftover.unlink(missing_ok=True)

    def _recover(self) -> EngineClient:
        started = time.perf_counter()
        found = wal.segments(self.path)
        if self.path.exists():
            log.info(
                "embedded database: loading %s (%s)",
                self.path,
                _megabytes(self.path.stat().st_size),
            )
            loaded = _load(self.path)
        else:
            loaded = Loaded(EngineClient())
            if found and found[0][0] != 1:
                raise EmbeddedDataError(
                    f"its snapshot is missing but log segment {found[0][1].name} is not the first"
                )
        self.snapshot_bytes = loaded.snapshot_bytes
        stale = [segment for number, segment in found if number < loaded.first_segment]
        live = [(number, segment) for number, segment in found if number >= loaded.first_segment]
        for expected, (number, segment) in enumerate(live, start=loaded.first_segment):
            if number != expected:
                raise EmbeddedDataError(f"log segment {expected} is missing before {segment.name}")
        with _paused_gc():
            records, log_bytes = self._replay(loaded, live)
        for segment in stale:  # a crash came between a compaction's rename and its clean-up
            segment.unlink(missing_ok=True)
        number = live[-1][0] if live else loaded.first_segment
        self.log = wal.Log(self.path, number, fsync=self.fsync)
        self.log.size = log_bytes
        loaded.engine.recorder.log = self.log
        if self.path.exists() or records:
            log.info(
                "embedded database: loaded %d documents in %d collections (%s snapshot) and "
                "replayed %d log records (%s) in %.2f s",
                sum(len(s) for db in loaded.engine.databases.values() for s in db.stores.values()),
                sum(
                    1
                    for db in loaded.engine.databases.values()
                    for s in db.stores.values()
                    if s.created
                ),
                _megabytes(loaded.snapshot_bytes),
                records,
                _megabytes(log_bytes),
                time.perf_counter() - started,
            )
        return loaded.engine

    def _replay(self, loaded: Loaded, live: list[tuple[int, Path]]) -> tuple[int, int]:
        # Every record of the live segments, in order; a torn tail of the last one is cut off.
        records = 0
        log_bytes = 0
        for position, (_, segment) in enumerate(live):
            last = position == len(live) - 1
            batch, good, torn = wal.read(segment, last=last)
            for record in batch:
                try:
                    _apply(loaded.engine, record)
                except EmbeddedDataError:
                    raise
                except Exception as exc:
                    raise EmbeddedDataError(
                        f"the log record {records + 1} cannot be replayed ({exc})"
                    ) from exc
                records += 1
            log_bytes += max(0, good - len(wal.MAGIC))
            if torn:
                log.warning(
                    "embedded database: discarding a torn write of %d bytes at the end of %s "
                    "(it was never acknowledged)",
                    torn,
                    segment.name,
                )
                with open(segment, "r+b") as handle:
                    handle.truncate(good)
                    os.fsync(handle.fileno())
        return records, log_bytes

    def start(self) -> None:
        """Sweep TTL indexes and compact when due, every `interval` seconds (needs a loop)."""
        if self._task is None and self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._maintain())

    def _guard(self) -> asyncio.Lock:
        if self._busy is None:
            self._busy = asyncio.Lock()
        return self._busy

    async def _maintain(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            async with self._guard():
                try:
                    await self._sweep()
                    if self._due():
                        await self._compact()
                except Exception:  # keep serving; the log still holds every write
                    log.exception("embedded database maintenance on %s failed", self.path)

    async def _sweep(self) -> None:
        # Collections only ever inserted into are swept too; deletions are logged as writes.
        client = self.client
        if client is not None:
            now = datetime.now(UTC).replace(tzinfo=None)
            if await run(client.engine.sweep, now):
                client.writes += 1

    def _due(self) -> bool:
        return self.log is not None and self.log.size > max(COMPACT_MIN_BYTES, self.snapshot_bytes)

    async def save(self) -> bool:
        """Compact now if the log holds anything; True when a snapshot was written."""
        async with self._guard():
            return await self._compact()

    async def _compact(self) -> bool:
        client, current = self.client, self.log
        if client is None or current is None or not current.dirty:
            return False

        def capture() -> tuple[list[_Collection], int, int]:
            # In the engine's critical section: the snapshot holds exactly the records
            # before the new segment (rotate() writes the pending ones first).
            collections = _capture(client.engine)
            first = current.rotate()
            return collections, first, current.size

        collections, first, covered = await run(capture)
        self.snapshot_bytes = await asyncio.to_thread(_write, self.path, collections, first)
        await asyncio.to_thread(current.compacted, first, covered)
        return True

    async def close(self) -> None:
        """Wait for a running compaction, compact what the log holds and release the file."""
        async with self._guard():  # never cancel a compaction mid-write (issue 22, finding 1)
            if self._task is not None:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
                self._task = None
            try:
                await self._compact()
            finally:
                if self.log is not None:
                    self.log.close()
                    self.log = None
                self._lock.release()
