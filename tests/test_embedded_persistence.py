"""The embedded default keeps its data in one file, owned by one process at a time."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo.errors import DuplicateKeyError

from service.embedded import EmbeddedDataError, open_embedded, snapshot, wal
from service.embedded.engine import EngineClient
from tests.support.helpers import crash_image

# The embedded backend's file, snapshots and lock.
pytestmark = pytest.mark.embedded_only

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "JWT_SECRET": "persistence-test-secret-" + "x" * 40,
    "FERNET_KEY": "yQ8hR3Hh6p4VbYdG0o8tYgq1w9H2sM3bGk7Zr8cXw5E=",
}


async def test_a_snapshot_keeps_documents_and_index_semantics(tmp_path: Path) -> None:
    path = tmp_path / "data.embedded"
    db, _ = open_embedded(path, "app")
    leads = db["leads"]
    await leads.create_index(
        [("t", 1), ("email", 1)],
        unique=True,
        partialFilterExpression={"email": {"$type": "string"}},
    )
    await leads.insert_many([{"_id": i, "t": 1, "email": f"{i}@x.io"} for i in range(50)])
    await leads.insert_many([{"_id": 100 + i, "t": 1} for i in range(3)])  # outside the index
    await db.client.close()
    assert path.exists() and not list(tmp_path.glob(".*.tmp"))  # written whole, then renamed

    db, _ = open_embedded(path, "app")
    leads = db["leads"]
    assert await leads.count_documents({}) == 53
    assert (await leads.find_one({"email": "7@x.io"}))["_id"] == 7  # type: ignore[index]
    with pytest.raises(DuplicateKeyError):
        await leads.insert_one({"t": 1, "email": "7@x.io"})
    await leads.insert_one({"t": 1})  # still partial: no email, no clash
    await db.client.close()


async def test_the_log_is_compacted_into_the_snapshot_once_it_outgrows_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "COMPACT_MIN_BYTES", 2_000)
    path = tmp_path / "data.embedded"
    db, snapshotter = open_embedded(path, "app", interval=0.05)
    snapshotter.start()
    await db["c"].insert_one({"_id": 1})
    await asyncio.sleep(0.2)
    assert not path.exists()  # a small log is not worth a snapshot
    await db["c"].insert_many([{"_id": i, "v": "x" * 100} for i in range(2, 40)])
    for _ in range(100):
        # (The snapshot is in place a moment before the segments it holds are removed.)
        if path.exists() and len(wal.segments(path)) == 1:
            break
        await asyncio.sleep(0.05)
    first = path.stat().st_mtime_ns
    [segment] = wal.segments(path)  # the older segments went into the snapshot
    assert segment[1].stat().st_size == len(wal.MAGIC)
    await asyncio.sleep(0.2)
    assert path.stat().st_mtime_ns == first  # nothing changed: nothing written
    await db["c"].delete_many({"_id": {"$gt": 20}})
    await db.client.close()  # what the log holds is compacted at close
    assert path.stat().st_mtime_ns != first
    db, _ = open_embedded(path, "app")
    assert await db["c"].count_documents({}) == 20
    await db.client.close()


async def test_every_acknowledged_write_is_on_disk_before_the_call_returns(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data.embedded"
    db, _ = open_embedded(path, "app")
    await db["c"].create_index("k", unique=True)
    await db["c"].insert_many([{"_id": i, "k": i} for i in range(10)])
    await db["c"].update_one({"_id": 3}, {"$set": {"u": 1}})
    await db["c"].delete_one({"_id": 4})
    with pytest.raises(DuplicateKeyError):  # a failed write changes nothing
        await db["c"].insert_one({"_id": 99, "k": 1})
    await db.command({"collMod": "c", "validator": {"k": {"$type": "int"}}})
    await db["gone"].insert_one({"_id": 1})
    await db["gone"].drop()
    copy = crash_image(path, tmp_path / "crashed")
    await db.client.close()

    db, _ = open_embedded(copy, "app")
    assert [d["_id"] async for d in db["c"].find({})] == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    assert (await db["c"].find_one({"_id": 3}))["u"] == 1  # type: ignore[index]
    with pytest.raises(DuplicateKeyError):
        await db["c"].insert_one({"k": 1})
    assert await db.list_collection_names() == ["c"]
    await db.client.close()


async def test_ttl_deletions_are_swept_in_insert_only_collections_and_persisted(
    tmp_path: Path,
) -> None:
    """Issue 22, finding 7: a collection only ever inserted into was never swept, and the
    deletions of a sweep were not saved (expired documents came back after a restart)."""
    path = tmp_path / "data.embedded"
    db, snapshotter = open_embedded(path, "app", interval=0.05)
    snapshotter.start()
    events = db["events"]
    await events.create_index("at", expireAfterSeconds=60)
    old = datetime.now(UTC) - timedelta(hours=1)
    await events.insert_many([{"_id": i, "at": old} for i in range(5)])
    await events.insert_one({"_id": 5, "at": datetime.now(UTC)})
    for _ in range(100):  # no query touches the collection: only the sweep can expire them
        if await events.estimated_document_count() == 1:
            break
        await asyncio.sleep(0.05)
    assert await events.estimated_document_count() == 1
    # A later acknowledged write is durable only after every earlier log record (the log is
    # one sequence): the sweep's deletions are then on disk too, whatever the load.
    await db["marker"].insert_one({"_id": 0})
    copy = crash_image(path, tmp_path / "crashed")
    await db.client.close()

    db, _ = open_embedded(copy, "app")
    assert await db["events"].estimated_document_count() == 1
    await db.client.close()


async def test_deferred_follow_ups_answer_before_their_fsync_and_ride_the_next_commit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 27: a journal outbox's follow-ups (wal.deferred) do not wait for the disk; a
    waited-for write after them commits them too (the log is ordered)."""
    path = tmp_path / "data.embedded"
    db, _ = open_embedded(path, "app")
    await db["c"].insert_one({"_id": 0})
    gate = threading.Event()
    real_sync = wal.Log.sync

    def gated(self: wal.Log, upto: int | None = None) -> None:
        gate.wait(10)
        real_sync(self, upto)

    monkeypatch.setattr(wal.Log, "sync", gated)
    with wal.deferred():  # answers while the disk is held
        await asyncio.wait_for(db["c"].insert_one({"_id": 1}), 5)
        await asyncio.wait_for(db["c"].update_one({"_id": 1}, {"$set": {"u": 1}}), 5)
    waited = asyncio.ensure_future(db["c"].insert_one({"_id": 2}))
    await asyncio.sleep(0.2)
    assert not waited.done()  # an ordinary write still waits for its commit
    gate.set()
    await waited
    copy = crash_image(path, tmp_path / "crashed")
    await db.client.close()

    db, _ = open_embedded(copy, "app")
    assert [d async for d in db["c"].find({})] == [{"_id": 0}, {"_id": 1, "u": 1}, {"_id": 2}]
    await db.client.close()


@pytest.mark.parametrize("fsync", [True, False])
async def test_embedded_fsync_decides_whether_a_commit_waits_for_the_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: bool
) -> None:
    from service.core.settings import Settings
    from service.database import connect

    settings = Settings(
        mongodb_url=None, embedded_db_path=str(tmp_path / "d.embedded"), embedded_fsync=fsync
    )
    database = connect(settings)
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    await database.db["c"].insert_one({"_id": 1})
    assert bool(synced) is fsync  # off: written to the OS (survives kill -9), not fsync'd
    monkeypatch.setattr(os, "fsync", real_fsync)
    copy = crash_image(tmp_path / "d.embedded", tmp_path / "crashed")
    await database.close()
    db, _ = open_embedded(copy, "lead_ignite")
    assert await db["c"].count_documents({}) == 1
    await db.client.close()


def test_a_snapshot_capture_meets_databases_created_meanwhile() -> None:
    """Issue 22, finding 7: the event loop created databases without the engine's lock while
    a snapshot capture iterated them ("dictionary changed size during iteration")."""
    engine = EngineClient()
    for i in range(50):
        engine.database(f"d{i}").store("c").created = True
    errors: list[Exception] = []
    stop = threading.Event()

    def capture() -> None:
        while not stop.is_set():
            try:
                snapshot._capture(engine)
            except RuntimeError as exc:
                errors.append(exc)
                return

    worker = threading.Thread(target=capture)
    worker.start()
    for i in range(5000):
        engine.database(f"n{i}").store("c")
    stop.set()
    worker.join()
    assert not errors


class _GatedFile:
    """A snapshot's temporary file whose first writer stalls after its first chunk."""

    def __init__(self, handle: Any, gates: dict[str, threading.Event], first: bool) -> None:
        self.handle, self.gates, self.first = handle, gates, first
        self.chunks = 0

    def write(self, chunk: bytes) -> int:
        self.chunks += 1
        if self.first and self.chunks == 2:
            self.gates["started"].set()
            self.gates["second_done"].wait(1.5)  # what close() does meanwhile decides
        return int(self.handle.write(chunk))

    def close(self) -> None:
        self.handle.close()
        self.gates["first_done" if self.first else "second_done"].set()

    def __enter__(self) -> _GatedFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.handle, name)


async def test_close_during_a_snapshot_leaves_a_file_that_opens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22, finding 1: close() cancelled a snapshot still being written, then wrote its
    own into the same temporary file; the result refused start-up."""
    gates = {name: threading.Event() for name in ("started", "second_done", "first_done")}
    opened: list[str] = []

    def gated_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = open(file, mode, *args, **kwargs)  # noqa: SIM115 - closed by the wrapper
        if "w" in mode and str(file).endswith(".tmp"):
            opened.append(str(file))
            return _GatedFile(handle, gates, first=len(opened) == 1)
        return handle

    monkeypatch.setattr(snapshot, "open", gated_open, raising=False)
    monkeypatch.setattr(snapshot, "COMPACT_MIN_BYTES", 0, raising=False)
    path = tmp_path / "data.embedded"
    db, snapshotter = open_embedded(path, "app", interval=0.05)
    snapshotter.start()
    await db["c"].insert_many([{"_id": i, "v": "x" * 1000} for i in range(200)])
    assert await asyncio.to_thread(gates["started"].wait, 10)  # a background snapshot runs
    await db["c"].insert_one({"_id": 999})
    await db.client.close()
    await asyncio.to_thread(gates["first_done"].wait, 10)  # the background writer is done too

    db, _ = open_embedded(path, "app")
    assert await db["c"].count_documents({}) == 201
    assert not list(tmp_path.glob(".*.tmp"))
    await db.client.close()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "truncated|ends inside"),
        (lambda data: data[:-40] + bytes([data[-40] ^ 0xFF]) + data[-39:], "corrupt|cannot"),
        (lambda data: b"name,email\nana,ana@x.io\n", "not a Lead Ignite"),
    ],
    ids=["truncated", "altered", "foreign"],
)
async def test_a_damaged_file_stops_start_up_clearly(
    tmp_path: Path, damage: object, message: str
) -> None:
    path = tmp_path / "data.embedded"
    db, _ = open_embedded(path, "app")
    await db["c"].insert_many([{"_id": i, "v": "x" * 100} for i in range(20)])
    await db.client.close()
    path.write_bytes(damage(path.read_bytes()))  # type: ignore[operator]
    with pytest.raises(EmbeddedDataError, match=message) as caught:
        open_embedded(path, "app")
    assert str(path) in str(caught.value) and "Move the file away" in str(caught.value)
    open_embedded(tmp_path / "other.embedded", "app")  # the failed open released nothing else


async def _two_segments(path: Path) -> list[Path]:
    """A crash image whose log has two segments of records (a compaction that never ran)."""
    db, _ = open_embedded(path, "app")
    await db["c"].insert_many([{"_id": i} for i in range(5)])
    assert db.client.engine.recorder.log is not None
    db.client.engine.recorder.log.rotate()
    await db["c"].insert_many([{"_id": i} for i in range(5, 10)])
    copy = crash_image(path, path.parent / "crashed")
    await db.client.close()
    return [segment for _, segment in wal.segments(copy)]


@pytest.mark.parametrize("damage", ["altered", "missing"])
async def test_a_damaged_log_stops_start_up_clearly(tmp_path: Path, damage: str) -> None:
    first, _ = await _two_segments(tmp_path / "data.embedded")
    if damage == "altered":  # not a torn tail: a later segment exists
        data = bytearray(first.read_bytes())
        data[len(wal.MAGIC) + 12] ^= 0xFF
        first.write_bytes(bytes(data))
        message = "damaged at byte"
    else:
        first.unlink()
        message = "log segment 1 is missing|not the first"
    with pytest.raises(EmbeddedDataError, match=message):
        open_embedded(first.parent / "data.embedded", "app")


async def test_a_torn_tail_is_discarded_and_the_rest_replayed(tmp_path: Path) -> None:
    _, second = await _two_segments(tmp_path / "data.embedded")
    torn = wal.encode(wal.INSERT, "app", "c", b"\x10\x00\x00\x00")[:9]
    second.write_bytes(second.read_bytes() + torn)  # a record cut short by the crash
    db, _ = open_embedded(second.parent / "data.embedded", "app")
    assert await db["c"].count_documents({}) == 10
    await db.client.close()


async def test_one_process_owns_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.embedded"
    db, _ = open_embedded(path, "app")
    with pytest.raises(
        EmbeddedDataError, match=rf"in use by another process \(pid {os.getpid()}\)"
    ):
        open_embedded(path, "app")
    await db.client.close()
    db, _ = open_embedded(path, "app")  # released at close
    await db.client.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(path: Path) -> dict[str, str]:
    env = {
        **os.environ,
        **SECRETS,
        "EMBEDDED_DB_PATH": str(path),
        "EMBEDDED_SNAPSHOT_SECONDS": "0.5",
    }
    env.pop("MONGODB_URL", None)
    return env


class Server:
    """`uvicorn service.main:app` on the embedded file, as `make run` starts it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, path: Path) -> str:
        port = _free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "service.main:app", "--port", str(port)],
            cwd=ROOT,
            env=_env(path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    return base
            except httpx.HTTPError:
                if self.process.poll() is not None:
                    assert self.process.stderr is not None
                    raise RuntimeError(self.process.stderr.read().decode()) from None
                time.sleep(0.1)
        raise RuntimeError("the server did not start")

    def stop(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)
        self.process.wait(timeout=60)


@pytest.fixture
def server() -> Iterator[Server]:
    running = Server()
    yield running
    if running.process is not None and running.process.poll() is None:
        running.process.kill()
        running.process.wait()


def _cli(path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        cwd=ROOT,
        env=_env(path),
        capture_output=True,
        text=True,
        timeout=120,
    )


def _login(base: str, credentials: dict[str, str]) -> dict[str, str]:
    token = httpx.post(base + "/v1/auth/token", data=credentials).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def test_a_server_keeps_its_data_across_restarts_and_kill_9(tmp_path: Path, server: Server) -> None:
    """As a new user: run, add leads, Ctrl-C, run again; add one, kill -9 at once, run again."""
    path = tmp_path / "lead_ignite.embedded"
    base = server.start(path)
    user = {"username": "persisted", "email": "p@example.com", "password": "long-password-123"}
    assert httpx.post(base + "/v1/auth/register", json=user).status_code == 201
    login = {"username": "persisted", "password": user["password"]}
    headers = _login(base, login)
    rows = [{"type": "generic", "email": f"lead{i}@example.com"} for i in range(300)]
    imported = httpx.post(base + "/v1/leads/bulk", json={"leads": rows}, headers=headers)
    assert imported.json()["created"] == 300

    # While the server owns the file, the CLI refuses clearly instead of using other data.
    refused = _cli(path, "repair")
    assert refused.returncode == 2 and "in use by another process" in refused.stderr

    server.stop(signal.SIGINT)  # Ctrl-C: the last snapshot is written at shutdown
    base = server.start(path)
    headers = _login(base, login)
    page = httpx.get(base + "/v1/leads", params={"limit": 200}, headers=headers).json()
    assert len(page["items"]) == 200 and page["next_cursor"]
    late = httpx.post(
        base + "/v1/leads", json={"type": "generic", "email": "late@example.com"}, headers=headers
    )
    assert late.status_code == 201
    server.stop(signal.SIGKILL)  # kill -9 right after the reply: the log must have it

    done = _cli(path, "repair")  # the CLI now works on that same data
    assert done.returncode == 0, done.stderr
    base = server.start(path)
    got = httpx.get(base + "/v1/leads/" + late.json()["id"], headers=_login(base, login))
    assert got.status_code == 200


async def test_writes_go_on_while_a_compaction_writes_the_snapshot(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gates = {name: threading.Event() for name in ("started", "second_done", "first_done")}

    def gated_open(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        handle = open(file, mode, *args, **kwargs)  # noqa: SIM115 - closed by the wrapper
        if "w" in mode and str(file).endswith(".tmp"):
            return _GatedFile(handle, gates, first=True)
        return handle

    monkeypatch.setattr(snapshot, "open", gated_open, raising=False)
    path = tmp_path / "data.embedded"
    db, snapshotter = open_embedded(path, "app")
    await db["c"].insert_many([{"_id": i} for i in range(100)])
    compaction = asyncio.create_task(snapshotter.save())
    assert await asyncio.to_thread(gates["started"].wait, 10)  # the snapshot is being written
    await asyncio.wait_for(db["c"].insert_one({"_id": "during"}), timeout=1)  # not held up
    assert await asyncio.wait_for(db["c"].count_documents({}), timeout=1) == 101
    gates["second_done"].set()  # let the snapshot finish
    assert await compaction
    copy = crash_image(path, tmp_path / "crashed")
    await db.client.close()
    db, _ = open_embedded(copy, "app")  # the snapshot plus the write logged meanwhile
    assert await db["c"].count_documents({}) == 101
    await db.client.close()
