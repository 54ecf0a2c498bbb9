"""Background work of the service: leased loops, run by every process, done by one at a time.

A `Worker` is a named step (sequence the feeds, catch one projector up, deliver webhooks,
repair the journal) guarded by a lease of the same name (service/feeds/leases.py). Every process of
the service runs every worker's loop (`Runtime`, started by the app's lifespan): the process
holding a worker's lease runs its step whenever it is poked or every `poll` seconds and renews
the lease; the others only try to take the lease now and then, so a dead holder is replaced
within one lease TTL. A step is idempotent, so even the rare overlap of two holders (a pause
longer than the TTL) only repeats work.

`leased(name)` runs work in the calling task under the lease, for readers that want fresh data
(a read model catching up before it answers) and for the CLI: through this process's worker
when a runtime runs here, or by taking the lease just for the block (the CLI). It yields None
when another process holds the lease; the caller then waits for that process's progress
(`wait_for`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import timedelta
from uuid import uuid4

from service.core.deadlines import deadline, remaining, unbounded
from service.feeds import leases

log = logging.getLogger(__name__)

in_background: ContextVar[bool] = ContextVar("in_background", default=False)
"""True inside a worker's own loop (tools that count a request's database calls skip these)."""

RELEASE_BUDGET = 2.0  # seconds for giving a lease back, whatever budget the block had left

Step = Callable[[leases.Held], Awaitable[bool]]
"""One unit of work under a held lease; True when more work is waiting (run again soon)."""


def new_owner() -> str:
    """An owner id naming this process (and instance) in lease documents."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid4().hex[:8]}"


@dataclass
class Worker:
    """A step, the lease that guards it, and its loop's state in one runtime."""

    name: str
    step: Step
    poll: float
    ttl: timedelta
    owner: str = ""
    held: leases.Held | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    runs: int = 0
    first_delay: bool = False  # wait one `poll` before the first run
    budget: float | None = None  # seconds of database work per step (service/core/deadlines.py)

    async def ensure_lease(self) -> bool:
        """Hold the lease (renewing it when a third of the TTL passed); False if another has it."""
        if self.held is not None:
            if self.held.fresh():
                return True
            if self.held.valid and await leases.renew(self.held):
                return True
            self.held = None
        self.held = await leases.take(self.name, self.owner, self.ttl)
        return self.held is not None

    async def run_once(self) -> bool | None:
        """One step under the lease; None when another process holds it."""
        async with self.lock:
            if not await self.ensure_lease():
                return None
            assert self.held is not None
            self.runs += 1
            return await self.step(self.held)

    async def loop(self) -> None:
        """Run the step while holding the lease; otherwise try to take it now and then."""
        retry = self.ttl.total_seconds() / 3
        in_background.set(True)  # this task's context only
        if self.first_delay:
            await asyncio.sleep(self.poll)
        while True:
            delay = self.poll
            try:
                with deadline(self.budget):
                    more = await self.run_once()
                if more is None:
                    delay = max(self.poll, retry)
                elif more:
                    delay = 0
            except asyncio.CancelledError:
                raise
            except Exception:  # a database outage: log, keep the loop alive, try again later
                log.exception("background worker %s failed; retrying", self.name)
                delay = max(self.poll, 1.0)
            if delay:
                self.wake.clear()
                # `asyncio.timeout`, not `wait_for`: on 3.11 `wait_for` can swallow a
                # cancellation that races its timeout, and the loop would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(delay):
                        await self.wake.wait()

    async def release(self) -> None:
        """Give the lease up (at shutdown), so another process takes over at once."""
        if self.held is not None:
            with contextlib.suppress(Exception):
                await leases.release(self.held)
            self.held = None


class Runtime:
    """The workers of one app instance and their loops."""

    def __init__(self, owner: str | None = None) -> None:
        self.owner = owner or new_owner()
        self.workers: dict[str, Worker] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self._on_stop: list[Callable[[], Awaitable[None]]] = []

    def on_stop(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Run `callback` after the loops stopped (e.g. close an HTTP client)."""
        self._on_stop.append(callback)

    def add(
        self, name: str, step: Step, *, poll: float, ttl: timedelta, first_delay: bool = False
    ) -> Worker:
        """Register a worker (before `start`)."""
        worker = Worker(
            name=name, step=step, poll=poll, ttl=ttl, owner=self.owner, first_delay=first_delay
        )
        self.workers[name] = worker
        return worker

    def start(self) -> None:
        """Start every worker's loop and make this runtime the one `run_now` uses."""
        _RUNTIMES.append(self)
        self.tasks = [
            asyncio.create_task(w.loop(), name=f"worker:{w.name}") for w in self.workers.values()
        ]

    async def stop(self) -> None:
        """Stop the loops (waiting for a step in progress) and release every lease."""
        if self in _RUNTIMES:
            _RUNTIMES.remove(self)
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.tasks = []
        for worker in self.workers.values():
            async with worker.lock:
                await worker.release()
        for callback in self._on_stop:
            await callback()


_RUNTIMES: list[Runtime] = []


def poke(*names: str) -> None:
    """Wake this process's workers of these names (e.g. after a write they should see)."""
    for runtime in _RUNTIMES:
        for name in names:
            worker = runtime.workers.get(name)
            if worker is not None:
                worker.wake.set()


def poke_prefix(prefix: str) -> None:
    """Wake every worker of this process whose name starts with `prefix`."""
    for runtime in _RUNTIMES:
        for name, worker in runtime.workers.items():
            if name.startswith(prefix):
                worker.wake.set()


@contextlib.asynccontextmanager
async def leased(
    name: str, *, ttl: timedelta = timedelta(seconds=30)
) -> AsyncIterator[leases.Held | None]:
    """Hold the lease `name` for a block of work in the calling task; None if another holds it.

    In a process running a `Runtime`, this goes through that runtime's worker of the same name
    (its lock keeps the block and the worker's own loop apart, and its lease is reused); with
    no runtime (the CLI), the lease is taken for the block and released after it. Under a
    budget (a request's), the worker's lock is waited for at most the budget left: a long step
    of the worker (a rebuild) then reads as another holder instead of holding the caller.
    """
    for runtime in _RUNTIMES:
        worker = runtime.workers.get(name)
        if worker is not None:
            if not await _acquire(worker.lock):
                yield None
                return
            try:
                yield worker.held if await worker.ensure_lease() else None
            finally:
                worker.lock.release()
            return
    held = await leases.take(name, new_owner(), ttl)
    try:
        yield held
    finally:
        if held is not None:
            # Even when the block ended because the caller's budget ran out: a lease left
            # behind would keep everyone else waiting a whole TTL for its silence.
            with unbounded(), deadline(RELEASE_BUDGET):
                await leases.release(held)


async def _acquire(lock: asyncio.Lock) -> bool:
    """Take `lock` within the caller's budget (without one: however long it takes)."""
    left = remaining()
    if left is None:
        await lock.acquire()
        return True
    try:
        async with asyncio.timeout(max(left, 0.0)):
            await lock.acquire()
    except TimeoutError:
        return False
    return True


async def wait_for(
    done: Callable[[], Awaitable[bool]], *, patience: float, every: float = 0.05
) -> bool:
    """Poll `done` until it is true or `patience` seconds pass; whether it became true.

    Polling, not an event: the progress awaited is usually another process's.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + patience
    while True:
        if await done():
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(every)


__all__ = [
    "Runtime",
    "Step",
    "Worker",
    "in_background",
    "leased",
    "new_owner",
    "poke",
    "poke_prefix",
    "wait_for",
]
