"""Profile one read request in process: the ASGI app driven directly (no HTTP, no client).

Usage: .venv/bin/python bench/profile_read_path.py [--leads 1000] [--requests 2000]
    [--path campaign|page|health|lead] [--profile]
Prints µs per request for each path (no client or socket costs); with --profile, the top
cProfile entries of the chosen path.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import time
from typing import Any

import httpx

from routes.app import create_app
from service.database import embedded_database
from service.embedded import aio
from service.settings import Settings


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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--path", default="campaign")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--sort", default="tottime")
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("--callees", default="", help="print what functions matching this call")
    args = parser.parse_args()
    settings = Settings(embedded_db_path="", auth_cache_seconds=300, log_level="WARNING")
    app = create_app(settings=settings, database=embedded_database("profile"))
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
        auth = [(b"authorization", f"Bearer {tok}".encode())]
        paths = {
            "health": ("/health", []),
            "campaign": (f"/v1/campaigns/{camp['id']}", auth),
            "lead": (f"/v1/leads/{lead}", auth),
            "page": ("/v1/leads?limit=50", auth),
        }
        for name, (path, hdrs) in paths.items():
            for _ in range(50):
                assert await _call(app, path, hdrs) == 200, name
            n = args.requests if name != "page" else max(args.requests // 10, 50)
            start = time.perf_counter()
            for _ in range(n):
                await _call(app, path, hdrs)
            print(f"{name:10s} {(time.perf_counter() - start) / n * 1e6:9.1f} µs per request")
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
            prof.enable()
            for _ in range(args.requests // (10 if args.path == "page" else 1)):
                await _call(app, path, hdrs)
            prof.disable()
            aio._exclusive = exclusive
            stats = pstats.Stats(prof).sort_stats(args.sort)
            stats.print_stats(args.top)
            if args.callees:
                stats.print_callees(args.callees)
            print("---- the engine's worker thread")
            pstats.Stats(engine).sort_stats(args.sort).print_stats(args.top)


if __name__ == "__main__":
    asyncio.run(main())
