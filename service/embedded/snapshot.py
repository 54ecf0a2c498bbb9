"""Keeping the embedded data on disk: one snapshot file, one owning process.

The file is a magic line, then BSON documents: a header, then per collection a descriptor
(database, name, indexes, count) followed by its documents, then a trailer holding the count
and a SHA-256 of everything before it. It is written whole, atomically (temporary file, fsync,
rename, fsync of the folder), at shutdown and every `interval` seconds while writes happen,
so a killed process loses at most that interval and a reader never sees half a file. A file
that is truncated, altered or not ours stops start-up with a clear error rather than
starting empty. An exclusive lock on `<file>.lock` makes one process the owner; another one
is refused with the owner's pid.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import bson

from service.embedded import codec
from service.embedded.aio import EmbeddedClient, run
from service.embedded.engine import EngineClient
from service.embedded.store import CollectionStore, Index

log = logging.getLogger(__name__)

MAGIC = b"LEAD-IGNITE-EMBEDDED-MONGODB\n"
FORMAT_VERSION = 1


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
    for db in engine.databases.values():
        for name, store in db.stores.items():
            if not store.created:
                continue
            indexes = [
                {"name": i.name, "key": [[k, d] for k, d in i.keys], "options": i.options}
                for i in store.indexes.values()
                if i.name != "_id_"
            ]
            raws = [raw for raw, _ in store.docs.values()]
            out.append(_Collection(db.name, name, indexes, dict(store.options), raws))
    return out


def _write(path: Path, collections: list[_Collection]) -> None:
    """Write a snapshot atomically: temporary file, fsync, rename, fsync of the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    digest = hashlib.sha256()
    total = 0
    with open(tmp, "wb") as out:

        def put(chunk: bytes) -> None:
            digest.update(chunk)
            out.write(chunk)

        put(MAGIC)
        put(
            bson.encode(
                {
                    "format": "lead-ignite-embedded",
                    "version": FORMAT_VERSION,
                    "saved_at": datetime.now(UTC),
                    "collections": len(collections),
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
            for raw in c.raws:
                put(raw)
            total += len(c.raws)
        out.write(bson.encode({"end": True, "documents": total, "sha256": digest.hexdigest()}))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, path)
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


# -- reading ------------------------------------------------------------------------------


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
        if hashlib.sha256(data[:trailer_at]).hexdigest() != trailer.get("sha256"):
            raise EmbeddedDataError("its checksum does not match (the file is corrupt)")
        header = bson.decode(items[0][1])
        if header.get("format") != "lead-ignite-embedded":
            raise EmbeddedDataError("it is not a Lead Ignite embedded database file")
        if header.get("version") != FORMAT_VERSION:
            raise EmbeddedDataError(f"its format version {header.get('version')} is unknown")
        engine = EngineClient()
        body = iter(items[1:-1])
        for _, raw in body:
            descriptor = bson.decode(raw)
            raws = [next(body)[1] for _ in range(descriptor["count"])]
            store = engine.database(descriptor["database"]).store(descriptor["collection"])
            _fill(store, descriptor, raws)
        return engine
    except EmbeddedDataError:
        raise
    except Exception as exc:  # any decoding failure means the file is not what we wrote
        raise EmbeddedDataError(f"it cannot be read ({exc})") from exc


def _fill(store: CollectionStore, descriptor: dict[str, Any], raws: list[bytes]) -> None:
    store.created = True
    store.options = descriptor.get("options") or {}
    for raw in raws:
        store.insert(codec.to_canonical(raw), raw)
    for spec in descriptor["indexes"]:
        options = codec.canonical(spec.get("options") or {})
        store.create_index(Index(spec["name"], [tuple(k) for k in spec["key"]], options))


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


class Snapshotter:
    """Owns a snapshot file for a client: loads it, saves it periodically and at close."""

    def __init__(self, path: Path, interval: float) -> None:
        self.path = path
        self.interval = interval
        self._lock = _Lock(path)
        self._saved_writes = 0
        self._task: asyncio.Task[None] | None = None
        self.client: EmbeddedClient | None = None

    def open(self) -> EmbeddedClient:
        """Take the lock and load the file (or start empty when there is none yet)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock.acquire(self.path)
        try:
            engine = load(self.path) if self.path.exists() else EngineClient()
        except EmbeddedDataError as exc:
            self._lock.release()
            raise EmbeddedDataError(
                f"Cannot start on the embedded database {self.path}: {exc}. Move the file "
                "away to start with an empty database, or restore a good copy."
            ) from None
        self.client = EmbeddedClient(engine)
        self.client.on_close(self.close)
        return self.client

    def start(self) -> None:
        """Save every `interval` seconds while the data changes (needs a running loop)."""
        if self._task is None and self.interval > 0:
            self._task = asyncio.get_running_loop().create_task(self._autosave())

    async def _autosave(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.save()
            except Exception:  # keep serving; the next interval tries again
                log.exception("embedded database snapshot to %s failed", self.path)

    async def save(self) -> bool:
        """Write a snapshot if anything changed since the last one; True when written."""
        client = self.client
        if client is None or client.writes == self._saved_writes:
            return False
        writes = client.writes
        collections = await run(_capture, client.engine)
        await asyncio.to_thread(_write, self.path, collections)
        self._saved_writes = writes
        return True

    async def close(self) -> None:
        """Stop the periodic saves, write the last snapshot and release the file."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        try:
            await self.save()
        finally:
            self._lock.release()
