"""The embedded backend's face: the part of PyMongo's async API that Beanie 2 and the service use.

`EmbeddedClient`, `EmbeddedDatabase`, `EmbeddedCollection`, `EmbeddedCursor` and
`EmbeddedCommandCursor` answer like `AsyncMongoClient`, `AsyncDatabase`, `AsyncCollection`,
`AsyncCursor` and `AsyncCommandCursor`. Every operation runs in one worker thread (so the
event loop keeps serving while the engine works, and engine calls never interleave: a
single-writer store needs no finer locking), on canonical BSON values (codec.py), and every
result is decoded as the real client decodes a reply. The one exception is a point read
(`find_one` by `_id`): it runs on the event loop when the engine is free (`run_point`), under
the same lock, because the thread hand-off costs more than the read.

A large write (`insert_many`, `bulk_write`, `update_many`, `delete_many`) is not one engine
call but a chain of slices of about SLICE_SECONDS each (`run_sliced`), as a server yields its
locks between the write units of a batch: a call queued meanwhile waits for one slice, not
for the whole batch. The answer is the one the write would give in one call (errors keyed by
the original index, counts summed, work counted and observed once); `update_many` and
`delete_many` fix their candidates first and re-check each document at its turn. A cursor
likewise decodes its matches one slice at a time.

Differences from PyMongo, all deliberate:

- No sessions, transactions or change streams (`start_session`, `watch` raise
  NotImplementedError): the service is written not to need them.
- No collations, `$text`, `$merge`, `$lookup` with `let`/`pipeline`, `$dateTrunc` or
  `$setWindowFields` (mongomock lacks them); `$jsonSchema` validators given to `collMod` or
  `create_collection` are kept but not enforced; `collMod` on a collection that does not exist
  fails with NamespaceNotFound (26), as on MongoDB. A collation (on any read, write or
  index), `array_filters`, `let` and a write's `hint` raise NotImplementedError rather than
  being ignored.
- `maxTimeMS` is honoured (cursor `max_time_ms`, `find(max_time_ms=)`, `maxTimeMS=` on
  `count_documents`, `distinct`, `aggregate` and `find_one_and_*`): counted from the call,
  queueing for the worker included, it ends the operation with ExecutionTimeout (code 50).
- A cursor computes its matches when first read and decodes them batch by batch; documents
  changed between batches are read as they are then (a server gives no snapshot either).
- `command` knows `ping`, `buildInfo`, `hello`/`isMaster`, `serverStatus`, `collMod`,
  `dbStats` and `listCollections`.
- `close()` is a coroutine (as PyMongo's is) and also compacts and releases the file of a
  persistent client (see snapshot.py).

Durability: an engine call's changes go to the write-ahead log (wal.py) in the critical
section; `run` (and `run_point`, `run_sliced`) return only once they are committed, so a
write that returned survives `kill -9`, even when the call failed after changing something
(a partly applied `insert_many`: its earlier slices included).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from bson import ObjectId
from bson.codec_options import CodecOptions
from pymongo import (
    DeleteMany,
    DeleteOne,
    InsertOne,
    ReplaceOne,
    ReturnDocument,
    UpdateMany,
    UpdateOne,
    _csot,
)
from pymongo.errors import (
    BulkWriteError,
    ExecutionTimeout,
    InvalidOperation,
    NetworkTimeout,
    OperationFailure,
    WriteError,
)
from pymongo.operations import IndexModel
from pymongo.results import (
    BulkWriteResult,
    DeleteResult,
    InsertManyResult,
    InsertOneResult,
    UpdateResult,
)

from service.embedded import codec, wal, work
from service.embedded.engine import (
    NO_COLLATION,
    SERVER_VERSION,
    EngineClient,
    EngineCollection,
    EngineDatabase,
    Indexed,
    _bulk_details,
    candidate_test,
    filter_applies,
    prepared,
    sort_spec,
    time_limit,
)
from service.embedded.keys import equality_key
from service.embedded.mongomock_hooks import validate_ok_for_replace, validate_ok_for_update

T = TypeVar("T")

# One worker for every embedded client in the process: operations are serialised, as a
# single-writer in-memory store needs, and run off the event loop.
_WORKER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedded-mongodb")
# Held by whoever runs an engine call: the worker, or the event loop for a point read.
_ENGINE = threading.Lock()
_BATCH = 500  # documents decoded per cursor batch


_Outcome = tuple[Any, BaseException | None, list[tuple[wal.Log, int]]]


def _exclusive(call: Callable[[], Any]) -> _Outcome:
    # The call's result or error, and the log records it wrote (taken in the same section).
    with _ENGINE:
        try:
            return call(), None, wal.written()
        except BaseException as exc:  # re-raised by the caller once its changes are durable
            return None, exc, wal.written()


async def _settle(outcome: _Outcome) -> Any:
    result, error, commits = outcome
    if commits and wal.is_deferred():
        for log, upto in commits:  # redone on recovery if lost: commit without waiting
            task = asyncio.get_running_loop().create_task(_commit_later(log, upto))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)
        commits = []
    for log, upto in commits:
        await log.commit(upto)
    if error is not None:
        raise error
    return result


_BACKGROUND: set[asyncio.Task[None]] = set()  # deferred commits in flight (kept referenced)


async def _commit_later(log: wal.Log, upto: int) -> None:
    try:
        await log.commit(upto)
    except Exception:  # the next waited-for commit retries the batch (wal.Log._flush)
        logging.getLogger(__name__).exception("a deferred embedded log commit failed")


async def run(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run an engine call in the worker thread, within the caller's `pymongo.timeout`; return
    once its changes are durable."""
    left = _time_left()
    loop = asyncio.get_running_loop()
    call = functools.partial(fn, *args, **kwargs)
    # In the caller's context: the engine counts its work for whoever measures (work.py).
    context = contextvars.copy_context()
    if left is None:
        outcome = await _submit(loop, context, call)
    else:
        try:
            async with asyncio.timeout(left):
                outcome = await _submit(loop, context, call)
        except TimeoutError:  # as PyMongo's socket timeout under CSOT (the call may still finish)
            raise NetworkTimeout(f"timed out after {left:.3f}s (embedded backend)") from None
    result: T = await _settle(outcome)
    return result


class _Queued:
    """How many one-call operations are queued for (or running in) the worker: the next
    slice of a large write lets them go first (see `_Chain`)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self) -> None:
        with self._lock:
            self.count += 1

    def done(self, _: Any = None) -> None:
        with self._lock:
            self.count -= 1


_QUEUED = _Queued()


def _submit(
    loop: asyncio.AbstractEventLoop, context: contextvars.Context, call: Callable[[], Any]
) -> asyncio.Future[_Outcome]:
    _QUEUED.add()
    try:
        job = _WORKER.submit(context.run, _exclusive, call)
    except BaseException:
        _QUEUED.done()
        raise
    job.add_done_callback(_QUEUED.done)  # finished or cancelled before it ran
    return asyncio.wrap_future(job, loop=loop)


def _time_left() -> float | None:
    """The caller's remaining CSOT budget (service/core/deadlines.py); spent: as PyMongo, refuse."""
    left = _csot.remaining()
    if left is not None and left <= 0:
        raise ExecutionTimeout("operation exceeded time limit (embedded backend)", 50)
    return left


async def run_point(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a point read (one document by `_id`: an index lookup of one entry) on the loop.

    The hand-off to the worker thread and back costs more than such a read itself; when the
    engine is busy (the worker holds it) the read queues in the worker as any other call.
    Calls still never interleave: both paths hold the engine lock.
    """
    _time_left()
    if _ENGINE.acquire(blocking=False):
        try:
            outcome: _Outcome = (fn(*args, **kwargs), None, wal.written())
        except BaseException as exc:
            outcome = (None, exc, wal.written())
        finally:
            _ENGINE.release()
        result: T = await _settle(outcome)  # a TTL deletion on the way is logged
        return result
    return await run(fn, *args, **kwargs)


# -- large writes in slices -----------------------------------------------------------------
#
# A multi-document write (`insert_many`, `bulk_write`, `update_many`, `delete_many`) runs as a
# chain of engine calls, each its own exclusive section of about SLICE_SECONDS, as a server
# yields its locks between the write units of a batch: a call queued meanwhile (a point read,
# a one-document create) runs between two slices instead of waiting for the whole batch. The
# next slice is queued at the back of the worker's queue by the worker itself, so the event
# loop is woken once per operation, not once per slice. The caller's CSOT budget covers the
# whole chain; its log records are committed once, after the last slice (the log is ordered:
# that commit covers the earlier slices), or after the slice that failed.

SLICE_SECONDS = 0.005
"""Engine time one slice of a large write aims at (checked after each document or op)."""
SLICE_ITEMS: int | None = None
"""At most this many documents or ops per slice (None: by time only; tests set it small)."""


class _Slice:
    """One slice's allowance: `more()` before each item (the first one always fits)."""

    __slots__ = ("end", "items", "limit")

    def __init__(self) -> None:
        self.end = time.perf_counter() + SLICE_SECONDS
        self.items = 0
        self.limit = SLICE_ITEMS

    def more(self) -> bool:
        self.items += 1
        if self.items == 1:
            return True
        if self.limit is not None and self.items > self.limit:
            return False
        return time.perf_counter() < self.end


_MORE: Any = object()  # a step's answer: not finished, run another slice


class _Chain:
    """One sliced operation: its step run slice after slice in the worker, its log records."""

    def __init__(
        self, step: Callable[[_Slice], Any], loop: asyncio.AbstractEventLoop, ctx: Any
    ) -> None:
        self.step = step
        self.loop = loop
        self.context = ctx
        self.future: asyncio.Future[tuple[Any, BaseException | None]] = loop.create_future()
        self.stopped = False  # set on the loop when the caller's budget ran out
        self.yielded = False  # the next slice went to the back once already
        self.commits: dict[int, tuple[wal.Log, int]] = {}

    def submit(self) -> None:
        _WORKER.submit(self.context.run, self._slice)

    def _slice(self) -> None:
        # In the worker thread (in the caller's context: work counting, see work.py).
        if self.stopped:
            self._finish(_MORE, None)
            return
        if _QUEUED.count and not self.yielded:
            # One-call operations are waiting (a point read, a one-document write): they go
            # first, once per slice, so each waits for the slice running, not for those
            # queued by every large write in progress.
            self.yielded = True
            with contextlib.suppress(RuntimeError):  # (a worker shutting down: run it now)
                self.submit()
                return
        self.yielded = False
        result, error, written = _exclusive(functools.partial(self.step, _Slice()))
        for log, upto in written:
            self.commits[id(log)] = (log, upto)
        if error is None and result is _MORE:
            try:
                self.submit()  # at the back of the queue: what waits runs first
                return
            except BaseException as exc:  # the worker is shutting down
                result, error = None, exc
        self._finish(result, error)

    def _finish(self, result: Any, error: BaseException | None) -> None:
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
            self.loop.call_soon_threadsafe(self._resolve, result, error)

    def _resolve(self, result: Any, error: BaseException | None) -> None:
        if not self.future.done():
            self.future.set_result((result, error))

    def logged(self) -> list[tuple[wal.Log, int]]:
        return list(self.commits.values())

    def commit_in_background(self, _: Any = None) -> None:
        for log, upto in self.logged():
            task = self.loop.create_task(_commit_later(log, upto))
            _BACKGROUND.add(task)
            task.add_done_callback(_BACKGROUND.discard)


async def run_sliced(step: Callable[[_Slice], Any]) -> Any:
    """Run a large write as slices: `step(slice)` does the next part (as much as the slice
    allows) and answers `_MORE` until it is done; return once every slice's changes are
    durable (after a failing slice too, then raise its error)."""
    left = _time_left()
    loop = asyncio.get_running_loop()
    chain = _Chain(step, loop, contextvars.copy_context())
    chain.submit()
    try:
        if left is None:
            result, error = await asyncio.shield(chain.future)
        else:
            async with asyncio.timeout(left):
                result, error = await asyncio.shield(chain.future)
    except TimeoutError:
        # As a server under `maxTimeMS` (CSOT sends it): the operation stops at its next
        # yield; what it wrote before stays, committed in the background.
        chain.stopped = True
        chain.future.add_done_callback(chain.commit_in_background)
        raise NetworkTimeout(f"timed out after {left:.3f}s (embedded backend)") from None
    except asyncio.CancelledError:
        # As a server when its client goes away: the operation runs to its end.
        chain.future.add_done_callback(chain.commit_in_background)
        raise
    return await _settle((result, error, chain.logged()))


@dataclass(frozen=True, slots=True)
class Operation:
    """One call the backend received, for observers (query-plan checks, call counting)."""

    collection: str
    method: str
    filter: Mapping[str, Any] | None = None
    sort: Sequence[tuple[str, int]] = ()
    pipeline: Sequence[Mapping[str, Any]] = ()


observers: list[Callable[[Operation], None]] = []
"""Called with every operation before it runs (tests register here, nothing else does)."""


def _observe(op: Operation) -> None:
    for observer in observers:
        observer(op)


class EmbeddedClient:
    """An in-process MongoDB server with PyMongo's async client interface."""

    kind = "embedded"

    def __init__(self, engine: EngineClient | None = None) -> None:
        self.engine = engine or EngineClient()
        self.writes = 0  # bumped by every write; the snapshotter saves when it moved
        self.metadata: list[Any] = []
        self._on_close: list[Callable[[], Any]] = []

    def __getitem__(self, name: str) -> EmbeddedDatabase:
        return self.get_database(name)

    def get_database(self, name: str, **_: Any) -> EmbeddedDatabase:
        """A database of this client (codec and concern options do not apply here)."""
        return EmbeddedDatabase(self, name)

    def append_metadata(self, driver_info: Any) -> None:
        """Accept driver metadata as `AsyncMongoClient` does (Beanie sends its own)."""
        self.metadata.append(driver_info)

    @property
    def address(self) -> tuple[str, int]:
        """Where the server is: in this process."""
        return ("embedded", 0)

    async def list_database_names(self) -> list[str]:
        """Databases holding at least one collection."""

        def names() -> list[str]:
            with self.engine.lock:
                databases = list(self.engine.databases.items())
            return [n for n, d in databases if d.list_collection_names()]

        return await run(names)

    async def drop_database(self, name_or_database: str | EmbeddedDatabase) -> None:
        """Drop every collection of a database."""
        name = getattr(name_or_database, "name", name_or_database)
        if await run(self.engine.drop_database, str(name)):
            self.writes += 1

    def on_close(self, callback: Callable[[], Any]) -> None:
        """Run `callback` (a coroutine function or function) when the client closes."""
        self._on_close.append(callback)

    async def close(self) -> None:
        """Close the client (a persistent one writes its last snapshot and frees its file)."""
        callbacks, self._on_close = self._on_close, []
        for callback in callbacks:
            result = callback()
            if asyncio.iscoroutine(result):
                await result

    def start_session(self, *_: Any, **__: Any) -> Any:
        """Sessions (and so transactions) do not exist on the embedded backend."""
        raise NotImplementedError("the embedded backend has no sessions or transactions")


_COLLECTION_OPTIONS = ("validator", "validationLevel", "validationAction")
"""The collection options `create_collection` and `collMod` keep (validators: not enforced)."""


class EmbeddedDatabase:
    """A database with `AsyncDatabase`'s interface."""

    def __init__(self, client: EmbeddedClient, name: str) -> None:
        self.client = client
        self.name = name
        self.engine: EngineDatabase = client.engine.database(name)
        self.codec_options = codec.READER

    def __repr__(self) -> str:
        return f"EmbeddedDatabase({self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EmbeddedDatabase) and other.engine is self.engine

    def __hash__(self) -> int:
        return hash((id(self.engine), self.name))

    def __getitem__(self, name: str) -> EmbeddedCollection:
        return self.get_collection(name)

    def __getattr__(self, name: str) -> EmbeddedCollection:
        if name.startswith("_"):
            raise AttributeError(name)
        return self.get_collection(name)

    def get_collection(
        self, name: str, codec_options: CodecOptions | None = None, **_: Any
    ) -> EmbeddedCollection:
        """A collection of this database (decoding replies with `codec_options` if given)."""
        return EmbeddedCollection(self, name, codec_options or self.codec_options)

    def with_options(self, codec_options: CodecOptions | None = None, **_: Any) -> EmbeddedDatabase:
        """This database decoding with other codec options (concerns mean nothing here)."""
        if codec_options is None:
            return self
        view = EmbeddedDatabase(self.client, self.name)
        view.codec_options = codec_options
        return view

    async def command(self, command: str | Mapping[str, Any], **kwargs: Any) -> dict[str, Any]:
        """The few database commands the service and Beanie send."""
        if isinstance(command, str):
            command = {command: kwargs.pop("value", 1), **kwargs}
        name = next(iter(command))
        if name == "ping":
            return {"ok": 1.0}
        if name == "buildInfo":
            return self.client.engine.server_info()
        if name in ("hello", "isMaster", "ismaster"):
            return {"isWritablePrimary": True, "ismaster": True, "maxWireVersion": 21, "ok": 1.0}
        if name == "serverStatus":
            return {"ok": 1.0, "process": "embedded", "version": SERVER_VERSION}
        if name == "listCollections":
            names = await self.list_collection_names()
            return {"cursor": {"firstBatch": [{"name": n} for n in names]}, "ok": 1.0}
        if name == "collMod":
            return await run(self._coll_mod, dict(command))
        if name == "dbStats":
            return await run(self._db_stats)
        raise OperationFailure(f"no such command: '{name}' (embedded backend)", code=59)

    def _coll_mod(self, command: dict[str, Any]) -> dict[str, Any]:
        name = command["collMod"]
        if name not in self.engine.list_collection_names():
            # As MongoDB: collMod neither creates a collection nor keeps options for one.
            raise OperationFailure(f"ns does not exist: {self.name}.{name}", code=26)
        store = self.engine.store(name)
        for option in _COLLECTION_OPTIONS:
            if option in command:
                store.set_option(option, codec.canonical_value(command[option]))
        if "index" in command:  # hide or unhide: the planner skips hidden indexes
            # Not logged: hiding lasts while `indexes --apply` swaps an index (docs/deployment.md)
            spec = command["index"]
            index = store.indexes.get(spec.get("name"))
            if index is None:
                raise OperationFailure(f"cannot find index {spec.get('name')}", code=27)
            if spec.get("hidden"):
                index.options["hidden"] = True
            else:
                index.options.pop("hidden", None)
        self.client.writes += 1
        return {"ok": 1.0}

    def _db_stats(self) -> dict[str, Any]:
        sizes = [sum(len(raw) for raw, _ in st.docs.values()) for st in self.engine.stores.values()]
        return {
            "db": self.name,
            "collections": len(self.engine.list_collection_names()),
            "objects": sum(len(st) for st in self.engine.stores.values()),
            "dataSize": sum(sizes),
            "ok": 1.0,
        }

    async def list_collection_names(
        self, filter: Mapping[str, Any] | None = None, **_: Any
    ) -> list[str]:
        """Names of the collections that exist (`filter` on `name` only)."""
        names = await run(self.engine.list_collection_names)
        if filter and "name" in filter:
            names = [n for n in names if filter_applies({"name": filter["name"]}, {"name": n})]
        return names

    async def create_collection(self, name: str, **options: Any) -> EmbeddedCollection:
        """Create a collection (CollectionInvalid when it exists), keeping its validator options."""
        kept = {k: v for k, v in options.items() if k in _COLLECTION_OPTIONS}

        def create() -> None:
            self.engine.create_collection(name)
            for option, value in kept.items():
                self.engine.store(name).set_option(option, codec.canonical_value(value))

        await run(create)
        self.client.writes += 1
        return self.get_collection(name)

    async def drop_collection(self, name_or_collection: Any, **_: Any) -> dict[str, Any]:
        """Drop a collection."""
        name = getattr(name_or_collection, "name", name_or_collection)
        await run(self.engine.drop_collection, str(name))
        self.client.writes += 1
        return {"ok": 1.0}


class EmbeddedCollection:
    """A collection with `AsyncCollection`'s interface."""

    def __init__(
        self, database: EmbeddedDatabase, name: str, codec_options: CodecOptions = codec.READER
    ) -> None:
        self.database = database
        self.name = name
        self.engine: EngineCollection = database.engine.get_collection(name)
        self.codec_options = codec_options

    def __repr__(self) -> str:
        return f"EmbeddedCollection({self.database.name!r}, {self.name!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EmbeddedCollection) and other.engine is self.engine

    def __hash__(self) -> int:
        return hash((id(self.engine), self.name))

    @property
    def full_name(self) -> str:
        """`database.collection`."""
        return f"{self.database.name}.{self.name}"

    def with_options(
        self, codec_options: CodecOptions | None = None, **_: Any
    ) -> EmbeddedCollection:
        """This collection decoding with other codec options (concerns mean nothing here)."""
        if codec_options is None:
            return self
        return EmbeddedCollection(self.database, self.name, codec_options)

    def _wrote(self) -> None:
        self.database.client.writes += 1

    # -- reads ----------------------------------------------------------------------------

    def find(
        self, filter: Mapping[str, Any] | None = None, *args: Any, **kwargs: Any
    ) -> EmbeddedCursor:
        """A cursor over matching documents (chain `sort`/`skip`/`limit`, then iterate)."""
        names = ("projection", "skip", "limit", "no_cursor_timeout", "cursor_type", "sort")
        for name, value in zip(names, args, strict=False):
            kwargs[name] = value
        _refuse_session(kwargs.get("session"))
        _refuse_options(kwargs)
        return EmbeddedCursor(
            self,
            filter or {},
            projection=kwargs.get("projection"),
            sort=kwargs.get("sort"),
            skip=kwargs.get("skip") or 0,
            limit=kwargs.get("limit") or 0,
            max_time_ms=kwargs.get("max_time_ms"),
        )

    async def find_one(
        self, filter: Any = None, *args: Any, **kwargs: Any
    ) -> dict[str, Any] | None:
        """The first matching document, or None."""
        if filter is not None and not isinstance(filter, Mapping):
            filter = {"_id": filter}
        kwargs["limit"] = 1
        return await self.find(filter, *args, **kwargs).next_or_none()

    async def count_documents(
        self, filter: Mapping[str, Any], session: Any = None, **kwargs: Any
    ) -> int:
        """How many documents match (`maxTimeMS` honoured)."""
        _refuse_session(session)
        _refuse_options(kwargs)
        query = codec.canonical(filter)
        _observe(Operation(self.name, "count_documents", query))
        count = functools.partial(
            self.engine.count_documents, query, skip=kwargs.get("skip"), limit=kwargs.get("limit")
        )
        return await run(_limited(count, kwargs.get("maxTimeMS")))

    async def estimated_document_count(self, **_: Any) -> int:
        """How many documents the collection holds."""
        return await run(lambda: len(self.engine._store))

    async def distinct(
        self,
        key: str,
        filter: Mapping[str, Any] | None = None,
        session: Any = None,
        **options: Any,
    ) -> list[Any]:
        """Distinct values of `key` among matching documents (`maxTimeMS` honoured)."""
        _refuse_session(session)
        _refuse_options(options)
        query = codec.canonical(filter or {})
        _observe(Operation(self.name, "distinct", query))
        distinct = functools.partial(self.engine.distinct, key, query)
        values = await run(_limited(distinct, options.get("maxTimeMS")))
        return list(codec.reply({"v": values}, self.codec_options)["v"])

    async def aggregate(
        self, pipeline: Sequence[Mapping[str, Any]], session: Any = None, **kwargs: Any
    ) -> EmbeddedCommandCursor:
        """Run an aggregation pipeline; a leading `$match` uses the indexes (`maxTimeMS`
        honoured)."""
        _refuse_session(session)
        _refuse_options(kwargs)
        stages = codec.canonical({"p": list(pipeline)})["p"]
        first = stages[0].get("$match") if stages else None
        _observe(Operation(self.name, "aggregate", first, pipeline=stages))
        started = time.monotonic()

        def execute() -> list[dict[str, Any]]:
            with time_limit(kwargs.get("maxTimeMS"), started):
                rows = self.engine.aggregate(stages)
            if any("$out" in s for s in stages):
                self._wrote()
            return [codec.reply(row, self.codec_options) for row in rows]

        return EmbeddedCommandCursor(await run(execute))

    def watch(self, *_: Any, **__: Any) -> Any:
        """Change streams need a replica set's oplog, which the embedded backend has not."""
        raise NotImplementedError("the embedded backend has no change streams")

    # -- writes ---------------------------------------------------------------------------

    async def insert_one(
        self, document: Any, *_: Any, session: Any = None, **__: Any
    ) -> InsertOneResult:
        """Insert a document (its `_id` is set on the given dict when missing, as PyMongo does)."""
        _refuse_session(session)
        if "_id" not in document:
            document["_id"] = ObjectId()
        _observe(Operation(self.name, "insert_one"))
        await run(self._insert, document)
        return InsertOneResult(document["_id"], True)

    def _insert(self, document: Any) -> None:
        try:
            self.engine._insert(document)
        finally:
            self._wrote()

    async def insert_many(
        self,
        documents: Iterable[Any],
        ordered: bool = True,
        *_: Any,
        session: Any = None,
        **__: Any,
    ) -> InsertManyResult:
        """Insert documents; unordered, every good one is kept (BulkWriteError lists the rest)."""
        _refuse_session(session)
        docs = list(documents)
        if not docs:
            raise TypeError("documents must be a non-empty list")
        for doc in docs:
            if "_id" not in doc:
                doc["_id"] = ObjectId()
        _observe(Operation(self.name, "insert_many"))
        await run_sliced(_InsertMany(self, docs, ordered).step)
        return InsertManyResult([d["_id"] for d in docs], True)

    async def update_one(
        self, filter: Mapping[str, Any], update: Any, upsert: bool = False, **kwargs: Any
    ) -> UpdateResult:
        """Update the first matching document."""
        return await self._update("update_one", filter, update, upsert, multi=False, **kwargs)

    async def update_many(
        self, filter: Mapping[str, Any], update: Any, upsert: bool = False, **kwargs: Any
    ) -> UpdateResult:
        """Update every matching document."""
        return await self._update("update_many", filter, update, upsert, multi=True, **kwargs)

    async def replace_one(
        self, filter: Mapping[str, Any], replacement: Any, upsert: bool = False, **kwargs: Any
    ) -> UpdateResult:
        """Replace the first matching document."""
        validate_ok_for_replace(replacement)
        return await self._update("replace_one", filter, replacement, upsert, multi=False, **kwargs)

    async def _update(
        self,
        method: str,
        filter: Mapping[str, Any],
        update: Any,
        upsert: bool,
        *,
        multi: bool,
        **kwargs: Any,
    ) -> UpdateResult:
        _refuse_session(kwargs.get("session"))
        if method != "replace_one":
            validate_ok_for_update(update)
        _refuse_options(kwargs, ("let", "hint", "sort"))
        query = codec.canonical(filter)
        change = codec.canonical({"u": update})["u"]
        _observe(Operation(self.name, method, query))
        if multi:
            raw = await run_sliced(_UpdateMany(self, query, change, upsert).step)
            return UpdateResult(_update_result(raw), True)

        def execute() -> dict[str, Any]:
            try:
                return self.engine._update(query, change, upsert=upsert, multi=multi)  # type: ignore[no-any-return]
            finally:
                self._wrote()

        return UpdateResult(_update_result(await run(execute)), True)

    async def delete_one(self, filter: Mapping[str, Any], **kwargs: Any) -> DeleteResult:
        """Delete the first matching document."""
        return await self._delete("delete_one", filter, multi=False, **kwargs)

    async def delete_many(self, filter: Mapping[str, Any], **kwargs: Any) -> DeleteResult:
        """Delete every matching document."""
        return await self._delete("delete_many", filter, multi=True, **kwargs)

    async def _delete(
        self, method: str, filter: Mapping[str, Any], *, multi: bool, **kwargs: Any
    ) -> DeleteResult:
        _refuse_session(kwargs.get("session"))
        _refuse_options(kwargs, ("let", "hint"))
        query = codec.canonical(filter)
        _observe(Operation(self.name, method, query))
        if multi:
            return DeleteResult(await run_sliced(_DeleteMany(self, query).step), True)

        def execute() -> dict[str, Any]:
            try:
                return self.engine._delete(query, collation=kwargs.get("collation"), multi=multi)
            finally:
                self._wrote()

        return DeleteResult(await run(execute), True)

    async def find_one_and_update(
        self,
        filter: Mapping[str, Any],
        update: Any,
        projection: Any = None,
        sort: Any = None,
        upsert: bool = False,
        return_document: bool = ReturnDocument.BEFORE,
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        """Update the first matching document and return it (before or after)."""
        validate_ok_for_update(update)
        return await self._find_and_modify(
            "find_one_and_update",
            filter,
            projection,
            sort,
            kwargs,
            update=update,
            upsert=upsert,
            return_document=return_document,
        )

    async def find_one_and_replace(
        self,
        filter: Mapping[str, Any],
        replacement: Any,
        projection: Any = None,
        sort: Any = None,
        upsert: bool = False,
        return_document: bool = ReturnDocument.BEFORE,
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        """Replace the first matching document and return it (before or after)."""
        validate_ok_for_replace(replacement)
        return await self._find_and_modify(
            "find_one_and_replace",
            filter,
            projection,
            sort,
            kwargs,
            update=replacement,
            upsert=upsert,
            return_document=return_document,
        )

    async def find_one_and_delete(
        self, filter: Mapping[str, Any], projection: Any = None, sort: Any = None, **kwargs: Any
    ) -> dict[str, Any] | None:
        """Delete the first matching document and return it."""
        return await self._find_and_modify(
            "find_one_and_delete", filter, projection, sort, kwargs, remove=True
        )

    async def _find_and_modify(
        self,
        method: str,
        filter: Mapping[str, Any],
        projection: Any,
        sort: Any,
        options: Mapping[str, Any],
        **kwargs: Any,
    ) -> dict[str, Any] | None:
        _refuse_session(options.get("session"))
        _refuse_options(options, ("let", "hint"))
        started = time.monotonic()
        query = codec.canonical(filter)
        if "update" in kwargs:
            kwargs["update"] = codec.canonical({"u": kwargs["update"]})["u"]
        order = sort_spec(sort)
        _observe(Operation(self.name, method, query, sort=order))

        def execute() -> dict[str, Any] | None:
            try:
                with time_limit(options.get("maxTimeMS") or options.get("max_time_ms"), started):
                    found = self.engine._find_and_modify(
                        query, projection=projection, sort=order or None, **kwargs
                    )
            finally:
                self._wrote()
            return None if found is None else codec.reply(found, self.codec_options)

        return await run(execute)

    async def bulk_write(
        self, requests: Sequence[Any], ordered: bool = True, *_: Any, session: Any = None, **__: Any
    ) -> BulkWriteResult:
        """Run insert/update/replace/delete operations in order; errors as PyMongo reports them."""
        _refuse_session(session)
        requests = list(requests)
        # Each request's filter, for observers (the shard plan's check): {kind: filter}.
        each = tuple(
            {type(r).__name__: getattr(r, "_filter", None), "upsert": getattr(r, "_upsert", None)}
            for r in requests
        )
        _observe(Operation(self.name, "bulk_write", pipeline=each))
        result = await run_sliced(_Bulk(self, requests, ordered).step)
        if result["writeErrors"]:
            raise BulkWriteError(result)
        return BulkWriteResult(result, True)

    # -- indexes --------------------------------------------------------------------------

    async def create_index(self, keys: Any, session: Any = None, **kwargs: Any) -> str:
        """Create an index (every option kept, `partialFilterExpression` included; a
        collation refused, the same keys under another name refused as IndexOptionsConflict)."""
        _refuse_session(session)
        name = await run(self.engine.create_index, keys, **kwargs)
        self._wrote()
        return name

    async def create_indexes(
        self, indexes: Sequence[IndexModel], session: Any = None, **_: Any
    ) -> list[str]:
        """Create several indexes from `IndexModel`s."""
        _refuse_session(session)
        names = []
        for model in indexes:
            spec = dict(model.document)
            keys = list(spec.pop("key").items())
            names.append(await run(self.engine.create_index, keys, **spec))
        self._wrote()
        return names

    async def drop_index(self, index_or_name: Any, session: Any = None, **_: Any) -> None:
        """Drop an index by name or key pattern."""
        _refuse_session(session)
        await run(self.engine.drop_index, index_or_name)
        self._wrote()

    async def drop_indexes(self, session: Any = None, **_: Any) -> None:
        """Drop every index but `_id_`."""
        _refuse_session(session)
        for name in list(await self.index_information()):
            if name != "_id_":
                await self.drop_index(name)

    async def index_information(self, session: Any = None, **_: Any) -> dict[str, dict[str, Any]]:
        """Indexes by name with their key and options."""
        _refuse_session(session)
        info = await run(self.engine.index_information)
        return {
            name: {**codec.reply(spec), "key": [tuple(k) for k in spec["key"]]}
            for name, spec in info.items()
        }

    async def list_indexes(self, session: Any = None, **_: Any) -> EmbeddedCommandCursor:
        """Index descriptions as `listIndexes` returns them."""
        info = await self.index_information(session=session)
        return EmbeddedCommandCursor(
            [{"name": name, **spec, "key": dict(spec["key"])} for name, spec in info.items()]
        )

    async def drop(self, session: Any = None, **_: Any) -> None:
        """Drop the collection with its indexes."""
        _refuse_session(session)
        await run(self.engine.drop)
        self._wrote()


class EmbeddedCursor:
    """A find cursor: chain options synchronously, then read with `async for` or `to_list`."""

    def __init__(
        self,
        collection: EmbeddedCollection,
        filter: Mapping[str, Any],
        *,
        projection: Any = None,
        sort: Any = None,
        skip: int = 0,
        limit: int = 0,
        max_time_ms: int | None = None,
    ) -> None:
        self.collection = collection
        self._max_time_ms = max_time_ms
        self._filter = codec.canonical(filter)
        self._projection = _projection(projection)
        self._sort = sort_spec(sort)
        self._skip = skip
        self._limit = abs(limit)
        self._matches: list[bytes] | None = None
        self._buffer: list[dict[str, Any]] = []
        self._read = 0  # documents of the buffer already handed out
        self._position = 0  # matches decoded so far
        self._closed = False

    def _check_fresh(self) -> None:
        if self._matches is not None:
            raise InvalidOperation("cannot set options after executing query")

    def sort(self, key_or_list: Any, direction: int | None = None) -> EmbeddedCursor:
        """Order the results."""
        self._check_fresh()
        self._sort = (
            [(key_or_list, direction or 1)]
            if isinstance(key_or_list, str)
            else sort_spec(key_or_list)
        )
        return self

    def skip(self, skip: int) -> EmbeddedCursor:
        """Skip the first `skip` results."""
        self._check_fresh()
        self._skip = skip
        return self

    def limit(self, limit: int) -> EmbeddedCursor:
        """Return at most `limit` results (0: no limit)."""
        self._check_fresh()
        self._limit = abs(limit)
        return self

    def batch_size(self, _: int) -> EmbeddedCursor:
        """Accepted for compatibility (the backend decodes in batches of its own)."""
        return self

    def max_time_ms(self, max_time_ms: int | None) -> EmbeddedCursor:
        """Stop with ExecutionTimeout when the query takes longer (from its first read)."""
        self._check_fresh()
        self._max_time_ms = max_time_ms
        return self

    def hint(self, _: Any) -> EmbeddedCursor:
        """Accepted for compatibility (the planner chooses the index)."""
        return self

    def allow_disk_use(self, _: bool) -> EmbeddedCursor:
        """Accepted for compatibility."""
        return self

    def comment(self, _: Any) -> EmbeddedCursor:
        """Accepted for compatibility."""
        return self

    def collation(self, collation: Any) -> EmbeddedCursor:
        """Collations do not exist on the embedded backend."""
        if collation is not None:
            raise NotImplementedError(NO_COLLATION)
        return self

    @property
    def alive(self) -> bool:
        """Whether more results may come."""
        return not self._closed and (self._matches is None or self._position < len(self._matches))

    async def close(self) -> None:
        """Release the cursor."""
        self._closed = True
        self._matches, self._buffer = [], []

    async def explain(self) -> dict[str, Any]:
        """The plan the embedded planner chooses, in `explain()`'s shape."""
        from service.embedded.planner import plan

        def execute() -> dict[str, Any]:
            chosen = plan(self.collection.engine._store, self._filter, self._sort)
            stage = "COLLSCAN" if chosen.name == "COLLSCAN" else "IXSCAN"
            winning: dict[str, Any] = {"stage": stage}
            if stage == "IXSCAN":
                winning["indexName"] = chosen.name
            return {"queryPlanner": {"winningPlan": winning}, "ok": 1.0}

        return await run(execute)

    async def _fill(self) -> bool:
        # Makes sure the buffer has an unread document; False when the cursor is exhausted.
        if self._read < len(self._buffer):
            return True
        if self._closed:
            return False
        if self._matches is None:
            _observe(Operation(self.collection.name, "find", self._filter, sort=self._sort))
            point = self._limit == 1 and _is_point(self._filter.get("_id"))
            first = _limited(self._first, self._max_time_ms)
            self._matches, self._buffer = await (run_point if point else run)(first)
        elif self._position < len(self._matches):
            batch = self._matches[self._position : self._position + _BATCH]
            self._buffer = await run(self._decode, batch)
        else:
            return False
        self._position += len(self._buffer)
        self._read = 0
        return bool(self._buffer)

    def _first(self) -> tuple[list[bytes], list[dict[str, Any]]]:
        found = self.collection.engine.matching(
            self._filter, sort=self._sort, skip=self._skip, limit=self._limit, keep=False
        )
        matches = [raw for raw, _ in found]
        return matches, self._decode(matches[:_BATCH])

    def _decode(self, batch: Sequence[bytes]) -> list[dict[str, Any]]:
        # As many of `batch` as one slice of time allows (at least one): a long result is
        # decoded over several calls, and calls queued meanwhile run between them.
        options = self.collection.codec_options
        engine = self.collection.engine
        part = _Slice()
        out: list[dict[str, Any]] = []
        read: Callable[[bytes], dict[str, Any]]
        if self._projection is None:
            read = functools.partial(codec.read, options=options)
        else:
            read = engine.projector(self._projection, options)  # the projection read once
        for raw in batch:
            if not part.more():
                break
            out.append(read(raw))
        return out

    def __aiter__(self) -> EmbeddedCursor:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if not await self._fill():
            raise StopAsyncIteration
        self._read += 1
        return self._buffer[self._read - 1]

    async def next(self) -> dict[str, Any]:
        """The next document (StopAsyncIteration at the end)."""
        return await self.__anext__()

    async def next_or_none(self) -> dict[str, Any] | None:
        """The next document, or None at the end."""
        try:
            return await self.__anext__()
        except StopAsyncIteration:
            return None

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        """The remaining documents (at most `length`)."""
        out: list[dict[str, Any]] = []
        while (length is None or len(out) < length) and await self._fill():
            end = len(self._buffer)
            if length is not None:
                end = min(end, self._read + length - len(out))
            out.extend(self._buffer[self._read : end])
            self._read = end
        return out


class EmbeddedCommandCursor:
    """The cursor `aggregate` and `list_indexes` return (results are already computed)."""

    def __init__(self, rows: list[dict[str, Any]]) -> None:
        self._rows = rows
        self._position = 0

    @property
    def alive(self) -> bool:
        """Whether more results may come."""
        return self._position < len(self._rows)

    def __aiter__(self) -> EmbeddedCommandCursor:
        return self

    async def __anext__(self) -> dict[str, Any]:
        if self._position >= len(self._rows):
            raise StopAsyncIteration
        self._position += 1
        return self._rows[self._position - 1]

    async def next(self) -> dict[str, Any]:
        """The next row."""
        return await self.__anext__()

    async def to_list(self, length: int | None = None) -> list[dict[str, Any]]:
        """The remaining rows (at most `length`)."""
        end = len(self._rows) if length is None else min(len(self._rows), self._position + length)
        rows, self._position = self._rows[self._position : end], end
        return rows

    async def close(self) -> None:
        """Release the cursor."""
        self._position = len(self._rows)


def _is_point(value: Any) -> bool:
    # An `_id` equality the `_id` index answers with one entry (not a document, array,
    # regular expression or operator).
    return value is not None and equality_key(value) is not None


def _refuse_options(options: Mapping[str, Any], also: Sequence[str] = ()) -> None:
    # Loud, never silently ignored: what the embedded backend cannot honour.
    if options.get("collation") is not None:
        raise NotImplementedError(NO_COLLATION)
    if options.get("array_filters") or options.get("arrayFilters"):
        raise NotImplementedError("the embedded backend does not take array_filters")
    for option in also:
        if options.get(option):
            raise NotImplementedError(f"the embedded backend does not take {option}")


def _limited(call: Callable[[], T], max_time_ms: int | None) -> Callable[[], T]:
    # The operation's time runs from now (its queueing for the worker counts, as a server
    # counts its own queueing).
    if not max_time_ms:
        return call
    started = time.monotonic()

    def limited() -> T:
        with time_limit(max_time_ms, started):
            return call()

    return limited


def _refuse_session(session: Any) -> None:
    if session is not None:
        raise NotImplementedError("the embedded backend has no sessions or transactions")


def _projection(projection: Any) -> dict[str, Any] | None:
    if projection is None:
        return None
    if isinstance(projection, Mapping):
        return dict(projection) or None
    return dict.fromkeys(projection, 1)


def _update_result(raw: dict[str, Any]) -> dict[str, Any]:
    # The shape PyMongo builds from a server's reply: an upsert matched nothing.
    upserted = raw.get("upserted")
    result = {"n": raw.get("n", 0), "nModified": raw.get("nModified", 0), "ok": 1.0}
    if upserted is not None:
        result["upserted"] = codec.reply({"v": upserted})["v"]
        result["nModified"] = 0
    result["updatedExisting"] = bool(raw.get("updatedExisting"))
    return result


def _bulk_op(request: Any) -> tuple[str, dict[str, Any]]:
    _refuse_options(
        {
            "collation": getattr(request, "_collation", None),
            "array_filters": getattr(request, "_array_filters", None),
            "hint": getattr(request, "_hint", None),
        },
        ("hint",),
    )
    if isinstance(request, InsertOne):
        doc = request._doc
        if "_id" not in doc:
            doc["_id"] = ObjectId()
        return "insert", {"doc": doc}
    if isinstance(request, DeleteOne | DeleteMany):
        return "delete", {
            "filter": codec.canonical(request._filter),
            "multi": isinstance(request, DeleteMany),
        }
    if isinstance(request, ReplaceOne):
        validate_ok_for_replace(request._doc)
        return "update", {
            "filter": codec.canonical(request._filter),
            "update": codec.canonical(request._doc),
            "upsert": bool(request._upsert),
            "multi": False,
        }
    if isinstance(request, UpdateOne | UpdateMany):
        validate_ok_for_update(request._doc)
        return "update", {
            "filter": codec.canonical(request._filter),
            "update": codec.canonical({"u": request._doc})["u"],
            "upsert": bool(request._upsert),
            "multi": isinstance(request, UpdateMany),
        }
    raise TypeError(f"{request!r} is not a valid request")


def _bulk_apply(
    engine: EngineCollection, result: dict[str, Any], index: int, kind: str, args: dict[str, Any]
) -> bool:
    # One op of a bulk write, its outcome added to `result`; False when it failed (WriteError).
    try:
        if kind == "insert":
            engine._insert(args["doc"])
            result["nInserted"] += 1
        elif kind == "delete":
            result["nRemoved"] += engine._delete(args["filter"], multi=args["multi"])["n"]
        else:
            raw = engine._update(
                args["filter"], args["update"], upsert=args["upsert"], multi=args["multi"]
            )
            if raw.get("upserted") is not None:
                result["nUpserted"] += 1
                result["upserted"].append(
                    {"index": index, "_id": codec.reply({"v": raw["upserted"]})["v"]}
                )
            else:
                result["nMatched"] += raw.get("n", 0)
                result["nModified"] += raw.get("nModified", 0)
    except WriteError as exc:
        result["writeErrors"].append(
            {**(exc.details or {}), "index": index, "code": exc.code, "errmsg": str(exc)}
        )
        return False
    return True


class _Bulk:
    """`bulk_write` in slices: every request converted (and refused) before any op runs, as
    the driver validates them before sending; then the ops in order, whole ops per slice."""

    def __init__(self, collection: EmbeddedCollection, requests: list[Any], ordered: bool) -> None:
        self.collection = collection
        self.name = collection.name  # for profiles
        self.requests = requests
        self.ordered = ordered
        self.ops: list[tuple[str, dict[str, Any]]] = []
        self.position = 0
        self.result: dict[str, Any] = {
            "writeErrors": [],
            "writeConcernErrors": [],
            "nInserted": 0,
            "nUpserted": 0,
            "nMatched": 0,
            "nModified": 0,
            "nRemoved": 0,
            "upserted": [],
        }

    def step(self, part: _Slice) -> Any:
        requests, ops = self.requests, self.ops
        while len(ops) < len(requests) and part.more():
            ops.append(_bulk_op(requests[len(ops)]))
        if len(ops) < len(requests):
            return _MORE
        engine = self.collection.engine
        try:
            while self.position < len(ops) and part.more():
                index = self.position
                self.position += 1
                kind, args = ops[index]
                if not _bulk_apply(engine, self.result, index, kind, args) and self.ordered:
                    self.position = len(ops)  # ordered: the first error ends the batch
        finally:
            self.collection._wrote()
        return _MORE if self.position < len(ops) else self.result


class _InsertMany:
    """`insert_many` in slices: every document encoded (DocumentTooLarge refused) before
    anything is written, then inserted in order; errors keyed by the original index."""

    def __init__(self, collection: EmbeddedCollection, docs: list[Any], ordered: bool) -> None:
        self.collection = collection
        self.name = collection.name  # for profiles
        self.docs = docs
        self.ordered = ordered
        self.raws: list[tuple[bytes, Indexed | None]] = []
        self.position = 0
        self.inserted = 0
        self.errors: list[dict[str, Any]] = []

    def step(self, part: _Slice) -> Any:
        docs, raws = self.docs, self.raws
        engine = self.collection.engine
        while len(raws) < len(docs) and part.more():
            raws.append(engine.storable(docs[len(raws)]))
        if len(raws) < len(docs):
            return _MORE
        try:
            while self.position < len(raws) and part.more():
                index = self.position
                self.position += 1
                raw, indexed = raws[index]
                raws[index] = (raw, None)  # done with: the collector need not walk it again
                if engine.insert_stored(raw, index, self.errors, indexed):
                    self.inserted += 1
                elif self.ordered:
                    self.position = len(raws)
        finally:
            self.collection._wrote()
        if self.position < len(raws):
            return _MORE
        if self.errors:
            raise BulkWriteError(_bulk_details(self.errors, n_inserted=self.inserted))
        return None


class _UpdateMany:
    """`update_many` in slices: the candidates fixed first (one call, counted as the engine
    counts an update's reads), then updated batch by batch through the engine's own update,
    each batch's filter narrowed to its candidates' `_id`s: every document is re-read and
    re-checked against the filter at its turn, as a server's multi-update re-checks each
    document it fetches (one changed meanwhile so that it no longer matches is left alone).
    An update with a positional path or a pipeline runs in one call, as before."""

    def __init__(
        self, collection: EmbeddedCollection, query: dict[str, Any], change: Any, upsert: bool
    ) -> None:
        self.collection = collection
        self.name = collection.name  # for profiles
        self.query = query
        self.change = change
        self.upsert = upsert
        self.whole = _positional(change)  # mongomock resolves `a.$` against the filter itself
        self.raws: list[bytes] | None = None
        self.position = 0
        self.size = 64  # candidates per engine update, adapted to SLICE_SECONDS
        self.id_test: Any = None  # the filter's `_id` condition, if it has one
        self.total: dict[str, Any] = {"n": 0, "nModified": 0, "upserted": None}

    def step(self, part: _Slice) -> Any:
        collection = self.collection
        engine = collection.engine
        try:
            if self.whole:
                return engine._update(self.query, self.change, upsert=self.upsert, multi=True)
            if self.raws is None:
                with work.operation(collection.name, "update"):
                    chosen = engine._plan(self.query)
                    self.raws = [raw for raw, _ in chosen.candidates]
                    work.docs(len(self.raws))
                # (A plan that decided `_id`, an outbox's `$in`, found only ids meeting it.)
                if "_id" in self.query and chosen.decided != "_id":
                    self.id_test = candidate_test({"_id": self.query["_id"]}, exact=False)
            raws = self.raws
            first = True
            while self.position < len(raws) and (first or time.perf_counter() < part.end):
                first = False
                size = self.size if part.limit is None else part.limit
                batch = raws[self.position : self.position + size]
                self.position += len(batch)
                started = time.perf_counter()
                ids = [_id_of(raw) for raw in batch]
                if self.id_test is not None:  # an `_id` never changes: tested once, here
                    ids = [i for i in ids if self.id_test({"_id": i})]
                if ids:
                    # The filter with its `_id` condition replaced by the batch's ids (a
                    # long `$in` is not planned again for every batch).
                    self._apply({**self.query, "_id": {"$in": ids}}, upsert=False)
                spent = max(time.perf_counter() - started, 1e-5)
                self.size = max(16, min(4096, int(len(batch) * SLICE_SECONDS / spent)))
            if self.position < len(raws):
                return _MORE
            if self.upsert and not self.total["n"]:  # nothing matched: insert
                self._apply(self.query, upsert=True)
            return self.total
        finally:
            collection._wrote()

    def _apply(self, spec: dict[str, Any], *, upsert: bool) -> None:
        # The engine's update, its reads not counted again (the candidates were, above).
        token = work._current.set(None)
        try:
            raw = self.collection.engine._update(spec, self.change, upsert=upsert, multi=True)
        finally:
            work._current.reset(token)
        total = self.total
        total["n"] += raw.get("n", 0)
        total["nModified"] += raw.get("nModified", 0)
        if raw.get("upserted") is not None:
            total["upserted"] = raw["upserted"]
        total["updatedExisting"] = bool(total.get("updatedExisting") or raw.get("updatedExisting"))


_FIXED_SIZES = {0x01: 8, 0x07: 12, 0x08: 1, 0x09: 8, 0x10: 4, 0x11: 8, 0x12: 8, 0x13: 16}


def _id_of(raw: bytes) -> Any:
    # A stored document's `_id` (its first element, as the encoder writes it), decoded alone.
    if raw[5:9] == b"_id\x00":
        kind = raw[4]
        size = _FIXED_SIZES.get(kind)
        if kind == 0x02:  # string: length (with its NUL), bytes
            size = 4 + int.from_bytes(raw[9:13], "little")
        elif kind == 0x05:  # binary: length, subtype, bytes
            size = 5 + int.from_bytes(raw[9:13], "little")
        if size is not None:
            element = raw[4 : 9 + size]
            alone = (len(element) + 5).to_bytes(4, "little") + element + b"\x00"
            return codec.to_canonical(alone)["_id"]
    return codec.to_canonical(raw)["_id"]


def _positional(update: Any) -> bool:
    # Whether an update names a positional path (`a.$`, `a.$[]`, `a.$[x]`), resolved
    # against the filter; a pipeline counts as one (it is rare: keep the filter).
    if not isinstance(update, Mapping):
        return True
    return any(
        "$" in field
        for fields in update.values()
        if isinstance(fields, Mapping)
        for field in fields
    )


class _DeleteMany:
    """`delete_many` in slices: the matches found first (one call, counted as the engine
    counts a delete), then deleted in order; one changed meanwhile is re-checked, one
    deleted meanwhile is not counted."""

    def __init__(self, collection: EmbeddedCollection, query: dict[str, Any]) -> None:
        self.collection = collection
        self.name = collection.name  # for profiles
        self.query = query
        self.matcher: Any = None
        self.found: list[tuple[bytes, dict[str, Any] | None]] | None = None
        self.position = 0
        self.deleted = 0

    def step(self, part: _Slice) -> Any:
        collection = self.collection
        engine = collection.engine
        try:
            if self.found is None:
                self.matcher = prepared(self.query)
                with work.operation(collection.name, "delete"):
                    # Not kept: a match is decoded only as far as the filter reads it (not
                    # at all on an exact plan); its key comes from its `_id` alone.
                    self.found = engine.matching(self.query, keep=False)
            found, store = self.found, engine._store
            while self.position < len(found) and part.more():
                raw, _ = found[self.position]
                self.position += 1
                key = store.key_of(raw)
                current = store.get(key)
                if current is None:
                    continue
                if current[0] is not raw and not filter_applies(
                    self.matcher, codec.to_canonical(current[0])
                ):
                    continue
                store.delete(key)
                self.deleted += 1
        finally:
            collection._wrote()
        if self.position < len(found):
            return _MORE
        return {"n": self.deleted, "ok": 1.0}
