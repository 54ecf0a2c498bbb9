"""`/health` latency while logins hash passwords (issue 12 defect 4).

Latency is measured from when each probe is due, so time spent waiting for a blocked event
loop counts.

Runs the app in-process (ASGI, embedded database) with the production Argon2 cost, starts
`--logins` concurrent logins (unknown accounts, so each still burns one Argon2 verification
and no account gets locked), and probes `GET /health` every 10 ms until they are done.
`--on-loop` runs the hashes on the event loop, as the service did before the fix, for
comparison in the same run.

Usage: .venv/bin/python bench/bench_login_loop.py [--logins 4] [--rounds 3] [--on-loop]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx

from service.core import security
from service.core.settings import Settings
from service.database import embedded_database
from service.main import create_app


async def inline(passwords: Any, fn: Callable[[], Any]) -> Any:  # noqa: ARG001  (as the patched one)
    return fn()  # the pre-fix behaviour: Argon2 on the event loop


async def one_round(settings: Settings, logins: int, n: int) -> tuple[list[float], float]:
    app = create_app(settings=settings, database=embedded_database(f"bench_login_{n}"))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await client.get("/health")
            forms = [{"username": f"ghost{n}-{i}", "password": "wrong-1"} for i in range(logins)]
            started = time.perf_counter()
            tasks = [asyncio.create_task(client.post("/v1/auth/token", data=f)) for f in forms]
            latencies: list[float] = []
            while not all(t.done() for t in tasks):
                # From when the probe was due (10 ms after the last answer) to its answer: a
                # blocked event loop shows up as the wait before the probe even starts.
                due = time.perf_counter() + 0.01
                await asyncio.sleep(0.01)
                assert (await client.get("/health")).status_code == 200
                latencies.append((time.perf_counter() - due) * 1000)
            await asyncio.gather(*tasks)
            return latencies, time.perf_counter() - started


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--logins", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--on-loop", action="store_true")
    args = parser.parse_args()
    if args.on_loop:
        security._off_loop = inline  # type: ignore[assignment]
    settings = Settings(app_env="test", embedded_db_path="", register_max_per_minute=10_000)
    await one_round(settings, 1, 0)  # warm-up: imports, the dummy hash
    everything: list[float] = []
    walls = []
    for n in range(1, args.rounds + 1):
        latencies, wall = await one_round(settings, args.logins, n)
        everything.extend(latencies)
        walls.append(wall)
    everything.sort()
    mode = "on the event loop (before)" if args.on_loop else "in the hashing pool (after)"
    print(
        f"argon2 t={settings.password_hash_time_cost} m={settings.password_hash_memory_kib}KiB "
        f"p={settings.password_hash_parallelism} pool={settings.password_hash_concurrency}; "
        f"{args.logins} concurrent logins x {args.rounds} rounds; hashing {mode}"
    )
    print(
        f"/health during logins: n={len(everything)} "
        f"p50={statistics.median(everything):.1f} ms "
        f"p95={everything[int(len(everything) * 0.95) - 1]:.1f} ms max={everything[-1]:.1f} ms; "
        f"logins done in {statistics.median(walls):.2f} s (median)"
    )


if __name__ == "__main__":
    asyncio.run(main())
