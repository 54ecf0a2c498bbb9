"""Read models under concurrency (issue 30): background projectors, inline catch-ups and many
concurrent read-model GETs while teams, members, invitations, users, campaigns, blogs and
research change. No read-model GET may ever answer 500.

`test_read_models_never_answer_500_under_load` is the stress run (marker `stress`, about a
minute: `pytest -m stress`); `test_a_short_burst_never_answers_500` is its short variant in
the default suite. Both run two app instances on one database (two processes), so a read may
catch up inline in one while the other's background worker applies the same feed; leases
last 1 s (`STRESS_TTL`), so they change hands under load, and in the stress run writers of
read-model rows now and then pause between computing and writing (`STRESS_PAUSE`), the
paused-worker case the fence exists for. At the end every read model must equal a rebuild
from the sources (no lost update, no resurrected row) and no answer may be a 5xx.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from unittest.mock import patch

import httpx
import pytest
from fastapi import FastAPI

from service import projections
from service.core.settings import Settings
from service.main import create_app
from service.projections import runner
from tests.support import work_budget_plugin
from tests.support.helpers import PASSWORD, Account, client_of, read_model_snapshot, watching


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Background loops that come back at once: the most overlap with inline catch-ups."""
    return settings.model_copy(
        update={
            "worker_poll_seconds": 0.01,
            "register_max_per_minute": 100_000,
            "lease_ttl_seconds": TTL,
        }
    )


@asynccontextmanager
async def instance(settings: Settings, database: Any) -> AsyncIterator[FastAPI]:
    """Another process of the service on the same database (its own workers and leases)."""
    app = create_app(settings=settings, database=database)
    async with app.router.lifespan_context(app):
        yield app


READERS = int(os.environ.get("STRESS_READERS", "6"))
TTL = float(os.environ.get("STRESS_TTL", "1"))  # short: leases change hands under load
PAUSE = float(os.environ.get("STRESS_PAUSE", "1.5"))  # longest pause of a writer (stress run)


class World:
    """What the writers made so far (the readers ask for these)."""

    def __init__(self) -> None:
        self.teams: list[str] = []
        self.campaigns: list[str] = []
        self.users: list[str] = []
        self.n = itertools.count(1)
        self.answers: dict[int, int] = {}
        self.bad: list[str] = []

    def saw(self, response: httpx.Response) -> None:
        self.answers[response.status_code] = self.answers.get(response.status_code, 0) + 1
        if response.status_code >= 500:
            self.bad.append(f"{response.request.method} {response.request.url}: {response.text}")


async def write_round(owner: Account, other: httpx.AsyncClient, world: World) -> None:
    """One round of every kind of change the read models follow."""
    n = next(world.n)
    c = owner.client if n % 2 else other

    async def call(method: str, path: str, **kw: Any) -> Any:
        response = await c.request(method, path, **kw)
        world.saw(response)
        # 409: two writers changed one team at once (the loser is told to retry); 404: another
        # writer deleted the older team meanwhile. Both are right answers here.
        assert response.status_code < 400 or response.status_code in (404, 409), (
            f"{method} {path}: {response.text}"
        )
        return response.json() if response.content and response.status_code < 400 else {}

    team = await call("POST", "/v1/teams", json={"name": f"Team {n}"})
    world.teams.append(team["id"])
    email = f"invitee{n}@example.com"
    invited = await call("POST", f"/v1/teams/{team['id']}/invitations", json={"email": email})
    body = {"username": f"invitee{n}", "email": email, "password": PASSWORD}
    joined = await owner.client.post(  # an anonymous request (its own client would do too)
        "/v1/auth/register",
        json={**body, "invitation_token": invited["token"]},
        headers={"Authorization": ""},
    )
    world.saw(joined)
    if joined.status_code == 409:  # the team changed under the acceptance: retry later
        return
    assert joined.status_code == 201, joined.text
    user = joined.json()
    world.users.append(user["id"])
    await call("PATCH", f"/v1/teams/{team['id']}", json={"name": f"Team {n}b"})
    older = world.teams[n % len(world.teams)]
    if older != team["id"]:  # the new user joins an older team too
        added = await call("POST", f"/v1/teams/{older}/members", json={"user_id": user["id"]})
        await call("PATCH", f"/v1/teams/{older}/members/{user['id']}", json={"role": "admin"})
        if n % 3 == 0 and added:  # and leaves it again
            await call("DELETE", f"/v1/teams/{older}/members/{user['id']}")
    await call("PATCH", "/v1/users/me", json={"profile": {"first_name": f"Ana{n}"}})
    camp = await call("POST", "/v1/campaigns", json={"type": "call", "name": f"C{n}"})
    world.campaigns.append(camp["id"])
    lead = await call("POST", "/v1/leads", json={"type": "generic", "email": f"l{n}@x.io"})
    await call("POST", f"/v1/campaigns/{camp['id']}/leads", json={"lead_ids": [lead["id"]]})
    touch = {"type": "call", "campaign_id": camp["id"], "lead_id": lead["id"], "outcome": "busy"}
    await call("POST", "/v1/events", json=touch)
    await call("PATCH", f"/v1/campaigns/{camp['id']}", json={"status": "active"})
    blog = await call("POST", "/v1/blogs", json={"title": f"B{n}"})
    await call("POST", f"/v1/blogs/{blog['id']}/publish")
    await call("POST", "/v1/research/topics", json={"topic": f"T{n}"})
    if n % 4 == 0:
        await call("DELETE", f"/v1/teams/{team['id']}")
        await call("DELETE", f"/v1/campaigns/{camp['id']}")


async def read_round(clients: list[httpx.AsyncClient], world: World, n: int) -> None:
    """One GET of every read model, spread over both processes."""
    c = clients[n % len(clients)]
    paths = [
        "/v1/read-models/campaigns",
        "/v1/read-models/analytics",
        "/v1/blogs/stats",
        "/v1/research/stats",
    ]
    if world.teams:
        paths.append(f"/v1/read-models/teams/{world.teams[n % len(world.teams)]}")
        paths.append(f"/v1/read-models/teams/{world.teams[-1]}")
    if world.campaigns:
        paths.append(f"/v1/read-models/campaign-stats/{world.campaigns[-1]}")
    if world.users:
        paths.append(f"/v1/read-models/campaigns?user_id={world.users[-1]}")
    for r in await asyncio.gather(*(c.get(p) for p in paths)):
        world.saw(r)


@asynccontextmanager
async def pauses(probability: float, longest: float) -> AsyncIterator[None]:
    """Writers of read-model rows now and then pause between computing and writing (a GC
    pause, a frozen VM, a loaded machine): long enough, the lease moves on meanwhile."""
    real = runner._upsert
    rng = random.Random(30)

    async def paused(*args: Any, **kwargs: Any) -> Any:
        if rng.random() < probability:
            await asyncio.sleep(rng.uniform(0, longest))
        return await real(*args, **kwargs)

    with patch.object(runner, "_upsert", paused):
        yield


async def hammer(
    settings: Settings,
    database: Any,
    owner: Account,
    *,
    seconds: float,
    writers: int = 2,
    pause: float = 0.0,
) -> World:
    """Writers and readers on two processes for `seconds`; what they saw."""
    world = World()
    async with (
        instance(settings, database) as second,
        watching() as failures,
        pauses(0.2 if pause else 0.0, pause),
    ):
        other = client_of(second, owner.token)
        clients = [owner.client, other]
        deadline = time.monotonic() + seconds
        stop = asyncio.Event()

        async def writer() -> None:
            while time.monotonic() < deadline:
                await write_round(owner, other, world)
            stop.set()

        async def reader(k: int) -> None:
            for n in itertools.count(k):
                if stop.is_set():
                    return
                await read_round(clients, world, n)

        try:
            await asyncio.gather(
                *(writer() for _ in range(writers)), *(reader(k) for k in range(READERS))
            )
        finally:
            await other.aclose()
        assert not world.bad, f"{len(world.bad)} answers were 5xx, first: {world.bad[0]}\n" + (
            failures.text()
        )
    # Quiet now: what was kept incrementally equals a recomputation from the sources.
    await projections.catch_up(patience=10)
    incremental = await read_model_snapshot()
    for name in projections.PROJECTORS:
        await projections.rebuild(name)
    rebuilt = await read_model_snapshot()
    for name, rows in rebuilt.items():
        kept = {str(r["_id"]): r for r in incremental[name]}
        fresh = {str(r["_id"]): r for r in rows}
        wrong = {k: (kept.get(k), fresh.get(k)) for k in kept.keys() | fresh.keys()}
        wrong = {k: pair for k, pair in wrong.items() if pair[0] != pair[1]}
        assert not wrong, f"read model {name} differs from a rebuild (kept, rebuilt): {wrong}"
    return world


async def test_a_short_burst_never_answers_500(
    settings: Settings, database: Any, owner: Account
) -> None:
    world = await hammer(settings, database, owner, seconds=3)
    assert world.answers.get(200, 0) > 20, world.answers


@pytest.mark.stress
async def test_read_models_never_answer_500_under_load(
    settings: Settings, database: Any, owner: Account
) -> None:
    seconds = float(os.environ.get("STRESS_SECONDS", "60"))
    world = await hammer(settings, database, owner, seconds=seconds, writers=3, pause=PAUSE)
    assert world.answers.get(200, 0) > 100, world.answers
    # Not judged here: under this deliberate backlog a read-model GET's inline catch-up applies
    # up to its inline budget (`INLINE_FEED_BATCHES` pages per feed) whatever it returns; the
    # default suite and `make scale` hold those GETs to the work budget.
    work_budget_plugin.BUDGET.take()
