"""The team read model with a pause placed at every database call in turn (issue 30, `stress`).

tests/test_read_model_interleavings.py draws pauses at random; this one places them
systematically. Each round runs one write that the `global_team` projector follows (a
registration through an invitation, a rename, a profile or username change, a member removed
and added back, a member's role, a user deleted and restored, the team deleted and restored)
together with two GETs of the team read model; the write pauses at its j-th call into the
embedded backend and the GETs at their k-th and (k+1)-th, for every (j, k) up to `PAUSE_JMAX`
and `PAUSE_KMAX`, at each pause length of `PAUSE_DELAYS` (seconds). The background
workers poll once a second, so the GETs' inline catch-ups do most of the projecting, under
the pause. No answer may be a 5xx.

On main @ 49388fb (the code the outside prober ran) the same placement, run as a script, found
no 5xx either; see the issue-30 closing note.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import os
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from service.core.settings import Settings
from tests.support.helpers import PASSWORD, Account, around_engine_calls, client_of, watching

# A team read-model GET makes 14 engine calls when the model is current and 28-56 when it
# catches up inline (sequencing, leases, checkpoints, the pipeline, the writes).
KMAX = int(os.environ.get("PAUSE_KMAX", "60"))
JMAX = int(os.environ.get("PAUSE_JMAX", "2"))
DELAYS = tuple(float(d) for d in os.environ.get("PAUSE_DELAYS", "0.02").split(","))

# (which call pauses, for how long) for the request running in this context, and its count.
_plan: contextvars.ContextVar[tuple[int, float] | None] = contextvars.ContextVar(
    "pause_plan", default=None
)
_calls: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "pause_calls", default=None
)


@contextmanager
def pause_at_planned_call() -> Iterator[None]:
    """An engine call pauses when it is the planned one of the request it serves."""

    async def pause() -> None:
        plan, calls = _plan.get(), _calls.get()
        if plan is not None and calls is not None:
            calls[0] += 1
            if calls[0] == plan[0]:
                await asyncio.sleep(plan[1])

    with around_engine_calls(pause):
        yield


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Background loops come back only each second: reads catch up inline, under the pause."""
    return settings.model_copy(
        update={"worker_poll_seconds": 1.0, "register_max_per_minute": 1_000_000}
    )


class Round:
    """The tenant of the run: its owner, people, one team, and every answer."""

    def __init__(self, app: FastAPI, owner: Account) -> None:
        self.app, self.owner = app, owner.client
        self.team = ""
        self.people: list[tuple[str, str, httpx.AsyncClient]] = []  # id, email, client
        self.clients: list[httpx.AsyncClient] = []
        self.answers: Counter[int] = Counter()
        self.bad: list[str] = []
        self.n = itertools.count(1)

    def client(self, token: str | None = None) -> httpx.AsyncClient:
        c = client_of(self.app, token)
        self.clients.append(c)
        return c

    async def call(
        self,
        c: httpx.AsyncClient,
        method: str,
        url: str,
        at: tuple[int, float] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        # The plan lives in this request's context only (the app runs in the calling task).
        plan, calls = _plan.set(at), _calls.set([0])
        try:
            r = await c.request(method, url, **kw)
        finally:
            _plan.reset(plan)
            _calls.reset(calls)
        self.answers[r.status_code] += 1
        if r.status_code >= 500:
            self.bad.append(f"{method} {url} {kw.get('json', '')} paused at {at}: {r.text}")
        return r

    async def join(self, at: tuple[int, float] | None = None) -> None:
        """Someone new is invited to the team and registers with the token (and, in a round,
        is removed again: a team of ~100 members would exceed the suite's work budget)."""
        k = next(self.n)
        email, username = f"joiner{k}@example.com", f"joiner{k}"
        r = await self.call(
            self.owner, "POST", f"/v1/teams/{self.team}/invitations", json={"email": email}
        )
        body = {
            "username": username,
            "email": email,
            "password": PASSWORD,
            "invitation_token": r.json()["token"],
        }
        r = await self.call(self.client(), "POST", "/v1/auth/register", at, json=body)
        if r.status_code != 201:
            return
        if at is not None:  # a round's joiner leaves again: the team stays small
            url = f"/v1/teams/{self.team}/members/{r.json()['id']}"
            await self.call(self.owner, "DELETE", url)
            return
        form = {"username": email, "password": PASSWORD}
        token = await self.call(self.client(), "POST", "/v1/auth/token", data=form)
        self.people.append((r.json()["id"], email, self.client(token.json()["access_token"])))

    def writes(self) -> list[Callable[[tuple[int, float]], Awaitable[Any]]]:
        """Every kind of change the team read model follows."""
        team, owner, people = self.team, self.owner, self.people

        async def member_out_and_in(at: tuple[int, float]) -> None:
            user = people[1][0]
            r = await self.call(owner, "DELETE", f"/v1/teams/{team}/members/{user}", at)
            if r.status_code == 200:
                await self.call(owner, "POST", f"/v1/teams/{team}/members", json={"user_id": user})

        async def user_out_and_in(at: tuple[int, float]) -> None:
            await self.call(owner, "DELETE", f"/v1/users/{people[2][0]}", at)
            await self.call(owner, "POST", f"/v1/users/{people[2][0]}/restore")

        async def team_out_and_in(at: tuple[int, float]) -> None:
            await self.call(owner, "DELETE", f"/v1/teams/{team}", at)
            await self.call(owner, "POST", f"/v1/teams/{team}/restore")

        def rename(at: tuple[int, float]) -> Awaitable[Any]:
            body = {"name": f"Team {next(self.n)}"}
            return self.call(owner, "PATCH", f"/v1/teams/{team}", at, json=body)

        def profile(at: tuple[int, float]) -> Awaitable[Any]:
            body = {"profile": {"first_name": f"Ana {next(self.n)}"}}
            return self.call(people[-1][2], "PATCH", "/v1/users/me", at, json=body)

        def username(at: tuple[int, float]) -> Awaitable[Any]:
            body = {"username": f"renamed{next(self.n)}"}
            return self.call(people[-1][2], "PATCH", "/v1/users/me", at, json=body)

        def role(at: tuple[int, float]) -> Awaitable[Any]:
            body = {"role": ("admin", "member")[next(self.n) % 2]}
            url = f"/v1/teams/{team}/members/{people[0][0]}"
            return self.call(owner, "PATCH", url, at, json=body)

        return [
            self.join,
            rename,
            profile,
            username,
            member_out_and_in,
            role,
            user_out_and_in,
            team_out_and_in,
        ]


@pytest.mark.stress
async def test_team_read_model_paused_at_every_call(app: FastAPI, owner: Account) -> None:
    run = Round(app, owner)
    try:
        with pause_at_planned_call():
            r = await run.call(owner.client, "POST", "/v1/teams", json={"name": "Team"})
            run.team = r.json()["id"]
            for _ in range(3):
                await run.join()
            readers = [owner.client, run.people[0][2]]
            url = f"/v1/read-models/teams/{run.team}"
            async with watching() as failures:
                for delay, j, write, k in itertools.product(
                    DELAYS, range(1, JMAX + 1), run.writes(), range(1, KMAX + 1)
                ):
                    reader = readers[(j + k) % 2]
                    await asyncio.gather(
                        write((j, delay)),
                        run.call(reader, "GET", url, (k, delay)),
                        run.call(reader, "GET", url, (k + 1, delay)),
                    )
    finally:
        for c in run.clients:
            await c.aclose()
    assert not run.bad, f"{len(run.bad)} answers were 5xx; first: {run.bad[0]}\n{failures.text()}"
    assert run.answers[200] > KMAX * JMAX, run.answers
