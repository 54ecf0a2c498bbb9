"""A read-model GET whose request budget runs out inside its inline catch-up (issue 30).

The outside 500 on `GET /v1/read-models/teams/{id}` came under load; a request budget
(`REQUEST_TIMEOUT_MS`) spent in the middle of the inline work is the load-dependent path. At
every step of that work (the sequencer pass, the lease renewal, the projector's compute and
write, the checkpoint, the final read, an engine call that outlasts the budget) the answer is
503 problem+json, never a 500, and the next requests find the read model whole (the lease,
the checkpoint and the rows left consistent). The background loops are not poked here, so
the request's own inline catch-up meets each pause.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from typing import Any

import pytest

from service import read_models
from service.core.settings import Settings
from service.embedded.engine import EngineCollection
from service.feeds import leases, sequencer, workers
from service.projections import runner
from tests.factories import make_team
from tests.support.helpers import Account, assert_problem

BUDGET_MS = 150
PAUSE = 0.3  # seconds: twice the request budget


@pytest.fixture
def settings(settings: Settings, request: pytest.FixtureRequest) -> Settings:
    """A short request budget; leases renewed often (a third of 1 s), so renewals happen;
    background loops that run only when poked (after their first run at start-up)."""
    update = {"request_timeout_ms": BUDGET_MS, "lease_ttl_seconds": 1, "worker_poll_seconds": 60}
    return settings.model_copy(update={**update, **getattr(request, "param", {})})


@pytest.fixture(autouse=True)
def inline_only(monkeypatch: pytest.MonkeyPatch) -> None:
    """No pokes: the requests' inline catch-up does all the work, so it meets every pause."""
    monkeypatch.setattr(workers, "poke", lambda *_: None)
    monkeypatch.setattr(workers, "poke_prefix", lambda _: None)


def _paused(original: Callable[..., Any], *, after: bool = False) -> Callable[..., Any]:
    @functools.wraps(original)
    async def slow(*args: Any, **kwargs: Any) -> Any:
        if not after:
            await asyncio.sleep(PAUSE)
        result = await original(*args, **kwargs)
        if after:
            await asyncio.sleep(PAUSE)
        return result

    return slow


POINTS: dict[str, tuple[Any, str, bool]] = {
    "sequencer pass": (sequencer, "sequence_all", False),
    "lease renewal": (leases, "renew", False),
    "projector apply": (runner, "apply", False),
    "checkpoint": (runner, "_save", False),
    "final read": (read_models, "_fresh", True),
}


@pytest.mark.parametrize("point", POINTS)
async def test_a_budget_spent_inside_the_inline_catch_up_answers_503_not_500(
    owner: Account, monkeypatch: pytest.MonkeyPatch, point: str
) -> None:
    team = await make_team(owner, name="Before")
    assert (await owner.client.get(f"/v1/read-models/teams/{team['id']}")).status_code == 200
    await owner.client.patch(f"/v1/teams/{team['id']}", json={"name": "After"})
    module, name, after = POINTS[point]
    monkeypatch.setattr(module, name, _paused(getattr(module, name), after=after))
    if point == "lease renewal":
        # Every held lease counts as due for renewal (a sleep past a third of the TTL would
        # overshoot the whole TTL on a loaded machine: the next use would take, not renew).
        monkeypatch.setattr(leases.Held, "fresh", lambda *_: False)
    r = await owner.client.get(f"/v1/read-models/teams/{team['id']}")
    assert_problem(r, 503)
    monkeypatch.setattr(module, name, getattr(module, name).__wrapped__)
    await _answers_the_new_name(owner, team["id"])


@pytest.mark.embedded_only
async def test_an_engine_call_outlasting_the_budget_answers_503_not_500(
    owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The projector's pipeline holds the engine past the budget: the request stops waiting
    # (NetworkTimeout) while the call still finishes in the engine's thread.
    team = await make_team(owner, name="Before")
    await owner.client.patch(f"/v1/teams/{team['id']}", json={"name": "After"})
    original = EngineCollection.aggregate

    def slow(self: EngineCollection, *args: Any, **kwargs: Any) -> Any:
        time.sleep(PAUSE)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(EngineCollection, "aggregate", slow)
    r = await owner.client.get(f"/v1/read-models/teams/{team['id']}")
    assert_problem(r, 503)
    monkeypatch.setattr(EngineCollection, "aggregate", original)
    await _answers_the_new_name(owner, team["id"])


async def test_a_long_background_step_holds_a_read_no_longer_than_its_budget(
    owner: Account, app: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worker's lock was waited for without bound: a read queued behind a whole background
    # step (up to BACKGROUND_TIMEOUT_MS, a rebuild for as long as it takes) before its 503.
    team = await make_team(owner, name="Before")
    assert (await owner.client.get(f"/v1/read-models/teams/{team['id']}")).status_code == 200
    await owner.client.patch(f"/v1/teams/{team['id']}", json={"name": "After"})
    await runner.sync_feeds()
    apply = runner.apply

    async def slow_in_background(*args: Any, **kwargs: Any) -> Any:
        if workers.in_background.get():
            await asyncio.sleep(4 * PAUSE)
        return await apply(*args, **kwargs)

    monkeypatch.setattr(runner, "apply", slow_in_background)
    app.state.background.runtime.workers[runner.lease_name("global_team")].wake.set()
    await asyncio.sleep(0.1)  # the worker is in its step, holding its lock
    started = time.monotonic()
    r = await owner.client.get(f"/v1/read-models/teams/{team['id']}")
    assert time.monotonic() - started < 2 * PAUSE, r.text
    assert_problem(r, 503)
    await _answers_the_new_name(owner, team["id"])


@pytest.mark.parametrize("settings", [{"background_workers": False}], indirect=True)
async def test_a_lease_taken_for_the_block_is_given_back_when_the_budget_ran_out(
    owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Without a runtime (BACKGROUND_WORKERS=false, the CLI) `leased` takes the lease for the
    # block and releases it after. The release ran under the spent budget and failed, so the
    # lease stayed held: for a whole TTL every read waited READ_WAIT twice and answered stale.
    team = await make_team(owner, name="Before")
    assert (await owner.client.get(f"/v1/read-models/teams/{team['id']}")).status_code == 200
    await owner.client.patch(f"/v1/teams/{team['id']}", json={"name": "After"})
    monkeypatch.setattr(runner, "apply", _paused(runner.apply))
    assert_problem(await owner.client.get(f"/v1/read-models/teams/{team['id']}"), 503)
    monkeypatch.setattr(runner, "apply", runner.apply.__wrapped__)
    started = time.monotonic()
    r = await owner.client.get(f"/v1/read-models/teams/{team['id']}")
    assert r.status_code == 200 and r.json()["name"] == "After", r.text
    assert time.monotonic() - started < runner.READ_WAIT


async def _answers_the_new_name(owner: Account, team_id: str) -> None:
    """Within a few tries (the background worker may still hold the lock), the whole row."""
    for _ in range(20):
        r = await owner.client.get(f"/v1/read-models/teams/{team_id}")
        assert r.status_code in (200, 503), r.text
        if r.status_code == 200 and r.json()["name"] == "After":
            assert [m["user_id"] for m in r.json()["members"]] == [str(owner.id)]
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the read model never caught up: {r.status_code} {r.text}")
