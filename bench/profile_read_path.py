"""Profile one read request in process: the ASGI app driven directly (no HTTP, no client).

Usage: .venv/bin/python bench/profile_read_path.py [--leads 1000] [--requests 2000] [--rounds 3]
    [--path campaign|page|health|lead] [--profile] [--sort cumulative] [--callees REGEX]
    [--clock wall|cpu]
Prints µs per request for each path (no client or socket costs; medians of interleaved rounds;
`--clock cpu`: the process's CPU time, both threads, which other processes' load disturbs
far less than wall time: use it to compare two checkouts on a busy machine)
next to two stripped-down "floor" routes making the same database reads with nothing around
them; with --profile, the top cProfile entries of the chosen path, the event loop's and the
embedded engine's worker thread's.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import statistics
import time
from typing import Any
from uuid import UUID

import httpx

from documents.campaign import CampaignBase
from routes.app import create_app
from routes.deps import CurrentContext
from service.core.settings import Settings
from service.database import embedded_database
from service.embedded import aio


async def _call(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": raw_path,
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"bench"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 80),
        "state": {},
    }
    status = 0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status


def _add_floor(app: Any) -> None:
    """Stripped-down routes: the same database reads and JSON, none of the service around them.

    `/floor/page/{tenant}`: the page's query (tenant, live, not archived, newest first, 51
    documents; the page's own filter, `is_archived: false`) on the raw driver, the 50
    documents dumped to JSON by pydantic-core.
    `/floor/one/{tenant}/{id}`: the single read's query the same way. No auth, no schema.
    `/floor/auth/{id}`: `/floor/one` behind the service's authentication dependency.
    `/floor/lead/{tenant}/{id}`: `/floor/one` on a lead (the lead GET's own read).
    """
    from bson import Binary
    from fastapi import Response
    from pydantic_core import to_json

    from documents.lead import LeadBase

    @app.get("/floor/page/{tenant}", include_in_schema=False)
    async def floor_page(tenant: str) -> Response:
        # The page's own filter (Repository.scope for leads: `is_archived` is indexed).
        query = {"tenant_id": Binary.from_uuid(UUID(tenant)), "is_deleted": False}
        query["is_archived"] = False
        cursor = LeadBase.get_pymongo_collection().find(query).sort("_id", -1).limit(51)
        docs = await cursor.to_list()
        return Response(to_json({"items": docs[:50]}), media_type="application/json")

    @app.get("/floor/one/{tenant}/{id}", include_in_schema=False)
    async def floor_one(tenant: str, id: str) -> Response:
        query = {"_id": Binary.from_uuid(UUID(id)), "tenant_id": Binary.from_uuid(UUID(tenant))}
        doc = await CampaignBase.get_pymongo_collection().find_one({**query, "is_deleted": False})
        return Response(to_json(doc), media_type="application/json")

    @app.get("/floor/lead/{tenant}/{id}", include_in_schema=False)
    async def floor_lead(tenant: str, id: str) -> Response:
        query = {"_id": Binary.from_uuid(UUID(id)), "tenant_id": Binary.from_uuid(UUID(tenant))}
        doc = await LeadBase.get_pymongo_collection().find_one({**query, "is_deleted": False})
        return Response(to_json(doc), media_type="application/json")

    @app.get("/floor/auth/{id}", include_in_schema=False)
    async def floor_auth(id: UUID, ctx: CurrentContext) -> Response:
        # `floor one` plus what FastAPI does for any authenticated route: the caller's
        # dependency (the credential cache) and a typed path parameter. The gap to `campaign`
        # is then the service's own: the repository's scope, the view, the ETag, the routing.
        query = {"_id": Binary.from_uuid(id), "tenant_id": Binary.from_uuid(ctx.tenant_id)}
        doc = await CampaignBase.get_pymongo_collection().find_one({**query, "is_deleted": False})
        return Response(to_json(doc), media_type="application/json")

    # First in the routing table: appended last, each floor request paid for matching the
    # ~200 routes before it (about 1 ms), which no real route pays.
    routes = app.router.routes
    routes[:0] = [routes.pop() for _ in range(4)]


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--path", default="campaign")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--callees", default="", help="print what functions matching this call")
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    args = parser.parse_args()
    settings = Settings(embedded_db_path="", auth_cache_seconds=300, log_level="WARNING")
    app = create_app(settings=settings, database=embedded_database("profile"))
    _add_floor(app)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            pw = "bench-password-123"
            r = await c.post(
                "/v1/auth/register",
                json={"username": "bench", "email": "bench@example.com", "password": pw},
            )
            r.raise_for_status()
            tok = (
                await c.post("/v1/auth/token", data={"username": "bench", "password": pw})
            ).json()["access_token"]
            h = {"Authorization": f"Bearer {tok}"}
            camp = (
                await c.post("/v1/campaigns", json={"type": "call", "name": "B"}, headers=h)
            ).json()
            rows = [
                {"type": "generic", "email": f"l{i}@example.com", "first_name": f"L{i}"}
                for i in range(args.leads)
            ]
            for i in range(0, len(rows), 5000):
                (await c.post("/v1/leads/bulk", json={"leads": rows[i : i + 5000]}, headers=h))
            lead = (await c.get("/v1/leads?limit=1", headers=h)).json()["items"][0]["id"]
            camp_tenant = (await c.get("/v1/users/me", headers=h)).json()["tenant_id"]
        auth = [(b"authorization", f"Bearer {tok}".encode())]
        paths = {
            "health": ("/health", []),
            "campaign": (f"/v1/campaigns/{camp['id']}", auth),
            "lead": (f"/v1/leads/{lead}", auth),
            "page": ("/v1/leads?limit=50", auth),
            "floor one": (f"/floor/one/{camp_tenant}/{camp['id']}", []),
            "floor page": (f"/floor/page/{camp_tenant}", []),
            "floor auth": (f"/floor/auth/{camp['id']}", auth),
            "floor lead": (f"/floor/lead/{camp_tenant}/{lead}", []),
        }
        took: dict[str, list[float]] = {name: [] for name in paths}
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        for name, (path, hdrs) in paths.items():  # warm-up
            for _ in range(50):
                assert await _call(app, path, hdrs) == 200, name
        for _ in range(args.rounds):  # interleaved rounds: machine noise hits all alike
            for name, (path, hdrs) in paths.items():
                n = args.requests if "page" not in name else max(args.requests // 10, 50)
                start = clock()
                for _ in range(n):
                    await _call(app, path, hdrs)
                took[name].append((clock() - start) / n)
        health = statistics.median(took["health"])
        print(
            f"leads={args.leads} rounds={args.rounds} clock={args.clock}, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        for name, values in took.items():
            t = statistics.median(values)
            print(f"{name:10s} {t * 1e6:9.1f} µs per request  (vs /health {health / t:5.3f}x)")
        if args.profile:
            path, hdrs = paths[args.path]
            prof = cProfile.Profile()
            engine = cProfile.Profile()  # the embedded engine's worker thread
            exclusive = aio._exclusive

            def profiled(call: Any) -> Any:
                engine.enable()
                try:
                    return exclusive(call)
                finally:
                    engine.disable()

            aio._exclusive = profiled
            n = args.requests // (10 if "page" in args.path else 1)
            prof.enable()
            for _ in range(n):
                await _call(app, path, hdrs)
            prof.disable()
            aio._exclusive = exclusive
            stats = pstats.Stats(prof).sort_stats(args.sort)
            stats.print_stats(args.top)
            if args.callees:
                stats.print_callees(args.callees)
            print("---- the engine's worker thread")
            calls = {"event loop": _calls(stats) / n, "engine worker": 0.0}
            if engine.getstats():  # point reads run on the loop: the worker may do nothing
                worker = pstats.Stats(engine).sort_stats(args.sort)
                worker.print_stats(args.top)
                calls["engine worker"] = _calls(worker) / n
            # Python calls per request do not depend on the machine's load, unlike its time.
            print(f"{args.path}: Python calls per request", {k: round(v) for k, v in calls.items()})


def _calls(stats: pstats.Stats) -> int:
    return sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]


if __name__ == "__main__":
    asyncio.run(main())
