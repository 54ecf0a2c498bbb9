"""The embedded backend's write-ahead log: every acknowledged change, on disk before the reply.

Every change to a collection store (insert, replace, delete, index creation or drop,
collection creation or drop, options, database drop, TTL deletions included) appends one
record to an in-memory batch while the engine works (store.py calls `Recorder.record`). The
async face (aio.py) then waits for `Log.commit` before it answers: the first waiter writes
every pending record with one `write`, then `fsync`s the file (group commit: concurrent
writers share one fsync), and the others find their records already durable. So a write
that returned survives `kill -9` and, with `fsync` on (EMBEDDED_FSYNC, the default), a power
failure; with `fsync` off it survives the process being killed, not the machine stopping.

The log is a series of segments `<file>.wal.<n>` (n counts up from 1). A segment is a magic
line followed by records; a record is `<u32 length><u32 crc32><body>` (little-endian; the CRC
covers the body), the body is `<u8 kind><u16 len>database<u16 len>collection<payload>` and
the payload is BSON (a document, an `{_id}`, an index spec, options) or empty. Compaction
(snapshot.py) rotates to a new segment, writes the snapshot naming that segment as the first
one to replay, and then deletes the older segments.

At start-up the records of every segment from the snapshot's on are replayed in order. A
record cut short or failing its CRC at the end of the last segment is a torn write that was
never acknowledged (its fsync had not returned): it and everything after it are discarded
(with a warning saying how many bytes) and the segment is truncated there. Damage in an
earlier segment, a missing segment or a foreign file stops start-up with a clear error.
A flipped bit inside the last segment cannot be told from a torn write: its record and
those after it are discarded, and the warning says so with the byte count.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import os
import struct
import threading
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

log = logging.getLogger(__name__)

MAGIC = b"LEAD-IGNITE-EMBEDDED-WAL 1\n"
_HEAD = struct.Struct("<II")  # body length, crc32 of the body
_NAME = struct.Struct("<H")

# Record kinds (one byte).
INSERT = 1  # payload: the document's BSON
REPLACE = 2  # payload: the new version's BSON
DELETE = 3  # payload: {"_id": ...}
CREATE_INDEX = 4  # payload: {"name", "key", "options"}
DROP_INDEX = 5  # payload: {"name"}
CREATE = 6  # the collection exists (empty payload)
DROP = 7  # the collection is dropped (empty payload)
OPTIONS = 8  # payload: the collection's options
DROP_DATABASE = 9  # the database is dropped (empty collection name and payload)


class LogDamaged(RuntimeError):
    """A log segment is damaged somewhere other than a torn tail."""


@dataclass(frozen=True, slots=True)
class Record:
    """One decoded record."""

    kind: int
    database: str
    collection: str
    payload: bytes


def encode(kind: int, database: str, collection: str, payload: bytes = b"") -> bytes:
    """One record's bytes, ready to append."""
    names, names_crc = _prefix(kind, database, collection)
    # The CRC runs on across the small prefix and the payload: the payload is copied once.
    crc = zlib.crc32(payload, names_crc)
    return b"".join((_HEAD.pack(len(names) + len(payload), crc), names, payload))


@functools.lru_cache(maxsize=1024)
def _prefix(kind: int, database: str, collection: str) -> tuple[bytes, int]:
    # A record's kind and names as written, and their CRC: the same for every record of a
    # kind in a collection.
    db, coll = database.encode(), collection.encode()
    names = b"".join((bytes((kind,)), _NAME.pack(len(db)), db, _NAME.pack(len(coll)), coll))
    return names, zlib.crc32(names)


def segment_path(path: Path, number: int) -> Path:
    """The file of log segment `number` for the data file `path`."""
    return path.with_name(f"{path.name}.wal.{number:08d}")


def segments(path: Path) -> list[tuple[int, Path]]:
    """The log segments of the data file `path`, in order."""
    found = []
    for candidate in path.parent.glob(f"{path.name}.wal.*"):
        suffix = candidate.name.rsplit(".", 1)[-1]
        if suffix.isdigit():
            found.append((int(suffix), candidate))
    return sorted(found)


def read(segment: Path, *, last: bool) -> tuple[list[Record], int, int]:
    """A segment's records, the length of its good prefix and the bytes of a torn tail.

    A damaged record ends the good prefix; in the last segment that is a torn tail (never
    acknowledged), elsewhere it is damage (LogDamaged).
    """
    data = segment.read_bytes()
    if not data.startswith(MAGIC):
        if last and MAGIC.startswith(data):  # created, header torn: holds nothing
            return [], 0, len(data)
        raise LogDamaged(f"{segment.name} is not a log segment of ours")
    records = []
    position = len(MAGIC)
    for record, end in _records(data, position):
        records.append(record)
        position = end
    torn = len(data) - position
    if torn and not last:
        raise LogDamaged(f"{segment.name} is damaged at byte {position}")
    return records, position, torn


def _records(data: bytes, position: int) -> Iterator[tuple[Record, int]]:
    view = memoryview(data)
    while position + _HEAD.size <= len(data):
        length, crc = _HEAD.unpack_from(data, position)
        start = position + _HEAD.size
        end = start + length
        if length < 5 or end > len(data) or zlib.crc32(view[start:end]) != crc:
            return
        kind = data[start]
        (db_len,) = _NAME.unpack_from(data, start + 1)
        db_end = start + 3 + db_len
        (coll_len,) = _NAME.unpack_from(data, db_end)
        coll_end = db_end + 2 + coll_len
        yield (
            Record(
                kind,
                data[start + 3 : db_end].decode(),
                data[db_end + 2 : coll_end].decode(),
                data[coll_end:end],
            ),
            end,
        )
        position = end


def fsync_folder(folder: Path) -> None:
    """Make a rename, creation or deletion in `folder` durable."""
    handle = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


# Set while a caller makes writes it can redo from an already durable one (a journal outbox's
# follow-ups: the event insert and the outbox clear; the outbox itself was committed with the
# aggregate's write and start-up repair replays it). Such writes are committed in the
# background, not waited for: the log is ordered, so the next waited-for commit carries them.
_deferred: contextvars.ContextVar[bool] = contextvars.ContextVar("wal_deferred", default=False)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within: embedded writes answer before their fsync (only for writes redone on recovery)."""
    token = _deferred.set(True)
    try:
        yield
    finally:
        _deferred.reset(token)


def is_deferred() -> bool:
    """Whether the current caller's writes may answer before their commit (see `deferred`)."""
    return _deferred.get()


# Logs that received records during the current engine call (the engine lock serialises
# calls, see aio.py): the caller commits them before it answers.
_written: dict[int, tuple[Log, int]] = {}


def written() -> list[tuple[Log, int]]:
    """The logs (and their last record number) written since the last call, then forgets them."""
    if not _written:
        return []
    out = list(_written.values())
    _written.clear()
    return out


class Log:
    """The open log of one data file: appends, group commits, rotation."""

    def __init__(self, path: Path, number: int, *, fsync: bool = True) -> None:
        self.path = path
        self.fsync = fsync
        self.number = number
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self.appended = 0  # records appended since opening
        self.synced = 0  # records written (and fsync'd) so far
        self.size = 0  # bytes of records in the log (all segments not yet compacted away)
        self._lock = threading.Lock()  # guards the pending batch
        self._sync = threading.Lock()  # one writer of the file at a time (commit, rotate)
        self._file: IO[bytes] = self._open(number)

    def _open(self, number: int) -> IO[bytes]:
        segment = segment_path(self.path, number)
        fresh = not segment.exists() or segment.stat().st_size == 0
        handle = open(segment, "ab")  # noqa: SIM115 - held open until rotation or close
        if fresh:
            handle.write(MAGIC)
            handle.flush()
            os.fsync(handle.fileno())
            fsync_folder(self.path.parent)
        return handle

    @property
    def dirty(self) -> bool:
        """Whether the log holds records a snapshot does not."""
        return self.size > 0 or bool(self._pending)

    def append(self, record: bytes) -> None:
        """Queue a record (called by the engine; `commit` makes it durable)."""
        with self._lock:
            self._pending.append(record)
            self._pending_bytes += len(record)
            self.appended += 1
            _written[id(self)] = (self, self.appended)

    async def commit(self, upto: int) -> None:
        """Return once records up to number `upto` are written (and fsync'd when asked)."""
        if self.synced >= upto:
            return
        await asyncio.to_thread(self.sync, upto)

    def sync(self, upto: int | None = None) -> None:
        """Write every pending record with one write, then fsync (blocking: not on the loop)."""
        with self._sync:
            if upto is not None and self.synced >= upto:
                return  # another commit carried these records
            self._flush()

    def _flush(self) -> None:
        # Holds self._sync. On failure the batch goes back in front of the queue and the
        # file is cut back to its last good length, so no half batch sits before later ones.
        with self._lock:
            batch, self._pending = self._pending, []
            size, self._pending_bytes = self._pending_bytes, 0
            upto = self.appended
        if not batch:
            return
        start = self._file.tell()
        try:
            self._file.write(b"".join(batch))
            self._file.flush()
            if self.fsync:
                os.fsync(self._file.fileno())
        except BaseException:
            with self._lock:
                self._pending[:0] = batch
                self._pending_bytes += size
            try:
                self._file.truncate(start)
                self._file.seek(start)
            except OSError:
                log.exception("could not cut the embedded log back after a failed write")
            raise
        self.size += size
        self.synced = upto

    def rotate(self) -> int:
        """Finish the current segment and start the next one; the new segment's number.

        Called in the engine's critical section, so the records before it are exactly
        those a snapshot taken in the same section holds.
        """
        with self._sync:
            self._flush()
            self._file.close()
            self.number += 1
            self._file = self._open(self.number)
            return self.number

    def compacted(self, first: int, size_before: int) -> None:
        """Forget segments before `first` (a snapshot holds them) and their bytes."""
        for number, segment in segments(self.path):
            if number < first:
                segment.unlink(missing_ok=True)
        fsync_folder(self.path.parent)
        self.size = max(0, self.size - size_before)

    def close(self) -> None:
        """Write what is pending and close the segment."""
        with self._sync:
            self._flush()
            self._file.close()
