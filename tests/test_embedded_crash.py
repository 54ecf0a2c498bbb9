"""Fault injection: the embedded backend killed at every step of a write or a compaction.

A child process (this module run as a script) writes through the driver API, printing each
write once it is acknowledged, and dies with `os._exit` at a named point (or is sent SIGKILL).
The parent then opens the file: it must open, hold every acknowledged write, and hold the
one write in flight either applied or not, never half; temporary files are gone and the log
keeps working afterwards.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from service.embedded import open_embedded, snapshot, wal

pytestmark = pytest.mark.embedded_only

ROOT = Path(__file__).resolve().parent.parent
OPS = 60  # writes before the injected fault is armed (and as many after)


def _die() -> None:
    os._exit(9)


def _arm(point: str, armed: dict[str, bool]) -> None:
    """Install the fault for `point`; it fires once `armed["on"]` is set."""
    if point == "mid-record":
        real_flush = wal.Log._flush

        def flush(self: wal.Log) -> None:
            if armed["on"] and self._pending:
                data = b"".join(self._pending)
                self._file.write(data[: max(1, len(data) // 2)])  # half a batch reaches disk
                self._file.flush()
                _die()
            real_flush(self)

        wal.Log._flush = flush  # type: ignore[method-assign]
    elif point in ("before-fsync", "after-fsync"):
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            if armed["on"] and point == "before-fsync":
                _die()
            real_fsync(fd)
            if armed["on"]:
                _die()  # durable, not yet acknowledged

        os.fsync = fsync
    elif point == "mid-compaction":
        real_open = open

        def gated(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
            handle = real_open(file, mode, *args, **kwargs)
            if armed["on"] and str(file).endswith(".tmp"):
                handle.write(b"LEAD-IGNITE-EMBEDDED-MONGODB\n" + b"\0" * 4096)
                handle.flush()
                _die()
            return handle

        snapshot.open = gated  # type: ignore[attr-defined]
    elif point == "before-rename":
        real_replace = os.replace

        def replace(src: Any, dst: Any) -> None:
            if armed["on"]:
                _die()
            real_replace(src, dst)

        os.replace = replace
    elif point == "after-rename":
        real_compacted = wal.Log.compacted

        def compacted(self: wal.Log, first: int, size: int) -> None:
            if armed["on"]:
                _die()  # the new snapshot is in place, the old segments are not yet deleted
            real_compacted(self, first, size)

        wal.Log.compacted = compacted  # type: ignore[method-assign]
    elif point != "sigkill":
        raise ValueError(point)


async def _child(point: str, path: str) -> None:
    armed = {"on": False}
    _arm(point, armed)
    db, snapshotter = open_embedded(path, "app", interval=0)
    coll = db["c"]
    await coll.create_index("k", unique=True)
    compacting = point in ("mid-compaction", "before-rename", "after-rename")
    for i in range(2 * OPS):
        if i == OPS:
            armed["on"] = True
            if compacting:
                await snapshotter.save()
        # Inserts, updates of the previous document, deletes of every fifth.
        if i % 5 == 4:
            op, key = "del", i - 3
            print(f"try {op} {key}", flush=True)
            await coll.delete_one({"_id": key})
        elif i % 2:
            op, key = "upd", i - 1
            print(f"try {op} {key} {i}", flush=True)
            await coll.update_one({"_id": key}, {"$set": {"u": i}})
        else:
            op, key = "ins", i
            print(f"try {op} {key}", flush=True)
            await coll.insert_one({"_id": key, "k": key, "v": "x" * 300})
        print("ack", flush=True)
    if point == "sigkill":
        await asyncio.sleep(60)  # the parent kills us
    _die()


def _expected(lines: list[str]) -> tuple[dict[int, int | None], str | None]:
    """The state every acknowledged write leaves (id -> `u`), and the write in flight."""
    state: dict[int, int | None] = {}
    pending: str | None = None
    for line in lines:
        if line.startswith("try "):
            pending = line[4:]
        elif line == "ack" and pending is not None:
            _apply(state, pending)
            pending = None
    return state, pending


def _apply(state: dict[int, int | None], op: str) -> None:
    kind, *args = op.split()
    key = int(args[0])
    if kind == "ins":
        state[key] = None
    elif kind == "upd" and key in state:
        state[key] = int(args[1])
    elif kind == "del":
        state.pop(key, None)


def _run_child(point: str, path: Path) -> list[str]:
    command = [sys.executable, "-m", "tests.test_embedded_crash", point, str(path)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if point != "sigkill":
        done = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 9, done.stderr
        return done.stdout.splitlines()
    child = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    lines: list[str] = []
    for line in child.stdout:
        lines.append(line.strip())
        if lines.count("ack") == OPS + 7:
            child.send_signal(signal.SIGKILL)  # right after an acknowledged write
            break
    child.wait(timeout=60)
    lines.extend(line.strip() for line in child.stdout)
    return lines


@pytest.mark.parametrize(
    "point",
    [
        "mid-record",
        "before-fsync",
        "after-fsync",
        "mid-compaction",
        "before-rename",
        "after-rename",
        "sigkill",
    ],
)
async def test_a_crash_at_any_step_loses_no_acknowledged_write(point: str, tmp_path: Path) -> None:
    path = tmp_path / "data.embedded"
    lines = _run_child(point, path)
    state, in_flight = _expected(lines)
    assert lines.count("ack") >= OPS and state  # the child got past the point of arming

    db, _ = await asyncio.to_thread(open_embedded, path, "app")  # the file opens
    found = {d["_id"]: d.get("u") async for d in db["c"].find({})}
    after = dict(state)
    if in_flight is not None:
        _apply(after, in_flight)
    assert found in (state, after)  # every acknowledged write; the one in flight whole or not
    assert "k_1" in await db["c"].index_information()
    assert not list(tmp_path.glob(".*.tmp"))  # an interrupted snapshot's file is cleaned

    # The log keeps working after a torn tail was cut off.
    await db["c"].insert_one({"_id": 10_000, "k": 10_000})
    await db.client.close()
    db, _ = open_embedded(path, "app")
    assert await db["c"].count_documents({}) == len(found) + 1
    await db.client.close()


if __name__ == "__main__":
    asyncio.run(_child(sys.argv[1], sys.argv[2]))
