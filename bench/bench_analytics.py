"""Analytics endpoints at 1x, 10x and 100x the touchpoints in a tenant: time and round trips.

For each scale a fresh embedded database gets one tenant with 10 campaigns, 200 leads linked to
them and N touchpoint events spread over 90 days (written raw in bulk, shaped as the service
stores them). Then, through the real app (auth, validation, routing, serialisation):

* `GET /v1/analytics/campaigns/{id}`        (one campaign: N/10 of the events)
* `GET /v1/analytics/overview` day and week buckets over the 90 days
* `GET /v1/read-models/analytics`           (GlobalAnalytics, after the projector caught up)

Each request is timed (median of `--rounds` after a warm-up) and its database calls are counted
by wrapping the Motor collection methods. Target: the number of calls per request does not grow
with the data. Note the embedded backend (mongomock) has no indexes and evaluates pipelines in
Python, so absolute times are far above a real MongoDB's; the growth pattern is the point.

Usage: .venv/bin/python bench/bench_analytics.py [--base 1000] [--scales 1,10,100] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import httpx
from bson import Binary
from uuid6 import uuid7

from service import projections
from service.auth import register_owner
from service.core import security
from service.core.settings import Settings
from service.database import embedded_database
from service.main import create_app
from tests.support.dbcalls import count_db_calls

CHANNELS = ("call", "text", "social", "email")
START = datetime(2024, 1, 1, tzinfo=UTC)
DAYS = 90
_seq = itertools.count()


async def seed(client: httpx.AsyncClient, db: Any, tenant_id: Any, n_events: int) -> str:
    """10 campaigns and 200 leads through the API, then N raw touchpoints; returns a campaign."""
    campaigns = []
    for i in range(10):
        r = await client.post("/v1/campaigns", json={"type": "call", "name": f"C{i}"})
        campaigns.append(r.json()["id"])
    rows = [{"type": "generic", "email": f"lead{i}@example.com"} for i in range(200)]
    await client.post("/v1/leads/bulk", json={"leads": rows})
    leads = [x["id"] for x in (await client.get("/v1/leads?limit=200")).json()["items"]]
    for i, cid in enumerate(campaigns):
        await client.post(
            f"/v1/campaigns/{cid}/leads", json={"lead_ids": leads[i * 20 : i * 20 + 20]}
        )
    tenant = Binary.from_uuid(tenant_id)
    now = datetime.now(UTC)
    docs = []
    for i in range(n_events):
        c = i % 10
        lead = leads[c * 20 + (i // 10) % 25 % 20] if i % 25 else leads[(c * 20 + 37) % 200]
        docs.append(
            {
                "_id": Binary.from_uuid(uuid7()),
                "_class_id": "TouchpointEvent.CallEvent",
                "tenant_id": tenant,
                "type": CHANNELS[i % 4],
                "campaign_id": Binary.from_uuid(_uuid(campaigns[c])),
                "lead_id": Binary.from_uuid(_uuid(lead)),
                "user_id": None,
                "occurred_at": START + timedelta(minutes=(i * 7919) % (DAYS * 24 * 60)),
                "created_at": now,
                "updated_at": now,
                "is_deleted": False,
                "deleted_at": None,
                "archived_at": None,
                "version": 1,
            }
        )
    for chunk in range(0, len(docs), 10_000):
        await db["events"].insert_many(docs[chunk : chunk + 10_000])
    return campaigns[0]


def _uuid(value: str) -> Any:
    from uuid import UUID

    return UUID(value)


async def measure(
    client: httpx.AsyncClient, path: str, params: dict[str, str], rounds: int
) -> tuple[float, int]:
    """Median seconds of a GET and the database calls one request makes."""
    r = await client.get(path, params=params)  # warm-up (and the projector catch-up)
    assert r.status_code == 200, r.text
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        r = await client.get(path, params=params)
        times.append(time.perf_counter() - start)
    with count_db_calls() as (calls, _):
        await client.get(path, params=params)
    return statistics.median(times), sum(calls.values())


async def scale_round(
    settings: Settings, n_events: int, rounds: int
) -> dict[str, tuple[float, int]]:
    """All measurements on a fresh database with `n_events` touchpoints."""
    db = embedded_database(f"bench_analytics_{next(_seq)}")
    app = create_app(settings=settings, database=db)
    async with app.router.lifespan_context(app):
        n = next(_seq)
        user = await register_owner(
            settings=settings,
            username=f"bench{n}",
            email=f"bench{n}@example.com",
            password="bench-password-123",
            organization_name=None,
        )
        token, _ = security.create_access_token(
            settings, user_id=user.id, tenant_id=user.tenant_id, role=user.role
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://bench",
            timeout=600,
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            campaign = await seed(client, db, user.tenant_id, n_events)
            # Steady state: the read models are current (a rebuild sequences the seeded rows
            # and recomputes each read model with one pass of its pipelines).
            for name in projections.PROJECTORS:
                await projections.rebuild(name)
            span = {"since": "2024-01-01", "until": "2024-03-31"}
            return {
                "campaign": await measure(
                    client, f"/v1/analytics/campaigns/{campaign}", {}, rounds
                ),
                "overview day": await measure(
                    client, "/v1/analytics/overview", {**span, "interval": "day"}, rounds
                ),
                "overview week": await measure(
                    client, "/v1/analytics/overview", {**span, "interval": "week"}, rounds
                ),
                "read model daily": await measure(
                    client, "/v1/read-models/analytics", span, rounds
                ),
            }


async def main(base: int, scales: list[int], rounds: int) -> None:
    settings = Settings(
        app_env="test",
        jwt_secret="bench-secret-" + "x" * 40,
        fernet_key="yQ8hR3Hh6p4VbYdG0o8tYgq1w9H2sM3bGk7Zr8cXw5E=",
        auth_cache_seconds=30,
        log_level="WARNING",
        # Requests alone: background workers would add their own calls to the counts (the
        # read-model endpoint catches its projector up inline).
        background_workers=False,
    )
    results = {s: await scale_round(settings, base * s, rounds) for s in scales}
    names = list(next(iter(results.values())))
    print(f"base={base} events; median of {rounds} rounds; embedded backend (mongomock)")
    header = "endpoint".ljust(20) + "".join(f"{f'{s}x ({base * s:,} ev)':>26}" for s in scales)
    print(header)
    for name in names:
        cells = "".join(
            f"{results[s][name][0] * 1000:>14.1f} ms {results[s][name][1]:>3} calls" for s in scales
        )
        print(name.ljust(20) + cells)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--base", type=int, default=1000)
    parser.add_argument("--scales", default="1,10,100")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.base, [int(s) for s in args.scales.split(",")], args.rounds))
