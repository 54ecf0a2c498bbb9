"""A projector bootstrapped by a rebuild in the background is batch work, not one step.

A projector without a checkpoint on a feed past `INLINE_REPLAY_MAX` is rebuilt by its
background worker (service/projections/runner.py). The worker's step runs under
BACKGROUND_TIMEOUT_MS; a rebuild longer than that was cut every time and retried from scratch
for ever, while every read of that model answered from the rows already there (a new team:
404). The rebuild lifts the step's budget, as the other batch work does.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from bson import Binary
from uuid6 import uuid7

from documents.read_models import GlobalTeam, ProjectionCheckpoint
from service.core.settings import Settings
from service.feeds import sequencer
from service.projections import runner
from tests.factories import make_team
from tests.support.helpers import Account


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """A background step budget shorter than the rebuild below takes."""
    return settings.model_copy(update={"background_timeout_ms": 100})


async def test_a_rebuild_longer_than_a_background_step_completes(
    owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    team = await make_team(owner, name="Before")
    assert (await owner.client.get(f"/v1/read-models/teams/{team['id']}")).status_code == 200
    # Journal entries no read model follows push the head past INLINE_REPLAY_MAX; then the
    # team projector's checkpoint and rows are lost: it has to be rebuilt.
    noise = [
        {"_id": Binary.from_uuid(uuid7()), "tenant_id": Binary.from_uuid(owner.tenant_id),
         "aggregate_type": "noise", "aggregate_id": Binary.from_uuid(uuid7()), "version": 1,
         "event_type": "noise.created", "seq": None}
        for _ in range(runner.INLINE_REPLAY_MAX + 1)
    ]  # fmt: skip
    await sequencer.collection(sequencer.JOURNAL).insert_many(noise)
    await runner.sync_feeds()
    await ProjectionCheckpoint.get_pymongo_collection().delete_many({"projector": "global_team"})
    await GlobalTeam.get_pymongo_collection().delete_many({})
    projector = runner.PROJECTORS["global_team"]
    compute_tenant = projector.compute_tenant

    async def slow(tenant: Any) -> Any:
        await asyncio.sleep(0.15)  # longer than the step's budget
        return await compute_tenant(tenant)

    monkeypatch.setattr(projector, "compute_tenant", slow)
    await owner.client.patch(f"/v1/teams/{team['id']}", json={"name": "After"})
    for _ in range(40):
        r = await owner.client.get(f"/v1/read-models/teams/{team['id']}")
        if r.status_code == 200 and r.json()["name"] == "After":
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"the rebuild never completed: {r.status_code} {r.text}")
