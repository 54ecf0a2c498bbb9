"""HTTP throughput: uvicorn on loopback under wrk, resource reads against GET /health.

Targets (issue 27): GET /v1/campaigns/{id} >= 0.7x and GET /v1/leads?limit=50 (1,000 leads
stored) >= 0.3x the req/s of GET /health, measured in the same run on the same server; with
`--large N`, a second tenant holds N leads and its first page must be >= 0.9x the small
tenant's (the page's work must not grow with the data stored).

Usage: .venv/bin/python bench/bench_http.py [--seconds 8] [--connections 32] [--rounds 3]
    [--leads 1000] [--large 100000] [--floor]
Needs `wrk` (Debian package `wrk`). Runs one uvicorn worker on the embedded database (in
memory: EMBEDDED_DB_PATH is emptied) and seeds it over HTTP, so the numbers include auth,
validation, the repository and serialisation. Background workers are off: after a large
seeding the sequencer would number its events in the same process for minutes, and that is
not the read path's cost.

`--floor` also serves bench/floor_app.py (the same reads on the same backend and framework,
nothing else: no middleware, auth, dependencies or schema) and measures it in the same
rounds: the ratios the framework and the backend allow at best.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from typing import Any

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def call(
    base: str,
    method: str,
    path: str,
    body: Any = None,
    token: str | None = None,
    form: dict[str, str] | None = None,
) -> Any:
    headers = {"Content-Type": "application/json"}
    data = None
    if form is not None:
        from urllib.parse import urlencode

        data = urlencode(form).encode()
        headers["Content-Type"] = "application/x-www-form-urlencoded"
    elif body is not None:
        data = json.dumps(body).encode()
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(base + path, data=data, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=600) as r:  # a 10,000-row import may be slow
        return json.loads(r.read() or b"null")


def seed(base: str, leads: int, user: str = "bench") -> tuple[str, str]:
    password = "bench-password-123"
    call(
        base,
        "POST",
        "/v1/auth/register",
        {"username": user, "email": f"{user}@example.com", "password": password},
    )
    token = call(base, "POST", "/v1/auth/token", form={"username": user, "password": password})[
        "access_token"
    ]
    campaign = call(
        base, "POST", "/v1/campaigns", {"type": "call", "name": "Bench campaign"}, token
    )
    rows = [
        {"type": "generic", "email": f"lead{i}@example.com", "first_name": f"Lead{i}"}
        for i in range(leads)
    ]
    for start in range(0, leads, 10_000):  # the bulk endpoint's cap per request
        call(base, "POST", "/v1/leads/bulk", {"leads": rows[start : start + 10_000]}, token)
    return token, campaign["id"]


def wrk(url: str, seconds: int, connections: int, token: str | None) -> float:
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if token:
        cmd[1:1] = ["-H", f"Authorization: Bearer {token}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        raise SystemExit(f"{url}: {non2xx.group(1)} non-2xx responses\n{out}")
    assert match, out
    return float(match.group(1))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--large", type=int, default=0, help="a second tenant with this many")
    parser.add_argument("--floor", action="store_true", help="also measure bench/floor_app.py")
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install wrk)")

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "LOG_LEVEL": "WARNING",
        "AUTH_CACHE_SECONDS": "30",
        "EMBEDDED_DB_PATH": "",  # memory only: no file, no lock, nothing left behind
        "BACKGROUND_WORKERS": "false",
        "FLOOR_LEADS": str(args.leads),
    }
    env.pop("MONGODB_URL", None)
    server = serve("service.main:app", port, env)
    floor_port = free_port()
    floor_base = f"http://127.0.0.1:{floor_port}"
    floor = serve("bench.floor_app:app", floor_port, env) if args.floor else None
    try:
        for url in (base, floor_base) if floor else (base,):
            for _ in range(600):  # the floor app seeds itself before it answers
                try:
                    call(url, "GET", "/health")
                    break
                except OSError:
                    time.sleep(0.1)
        token, campaign_id = seed(base, args.leads)
        large_token = seed(base, args.large, user="large")[0] if args.large else None
        lead_id = call(base, "GET", "/v1/leads?limit=1", token=token)["items"][0]["id"]
        targets = {
            "GET /health": (f"{base}/health", None),
            "GET /v1/campaigns/{id}": (f"{base}/v1/campaigns/{campaign_id}", token),
            "GET /v1/leads/{id}": (f"{base}/v1/leads/{lead_id}", token),
            "GET /v1/leads?limit=50": (f"{base}/v1/leads?limit=50", token),
        }
        if large_token:
            targets[f"GET /v1/leads?limit=50 @{args.large}"] = (
                f"{base}/v1/leads?limit=50",
                large_token,
            )
        if floor:
            floor_campaign = call(floor_base, "GET", "/campaign")
            targets["floor GET /health"] = (f"{floor_base}/health", None)
            targets["floor GET one (find_one)"] = (f"{floor_base}/one/{floor_campaign}", None)
            targets["floor GET page (find 51)"] = (f"{floor_base}/page", None)
        for url, tok in targets.values():  # warm-up
            wrk(url, 2, args.connections, tok)
        results: dict[str, list[float]] = {name: [] for name in targets}
        for _ in range(args.rounds):  # interleaved rounds: machine noise hits all alike
            for name, (url, tok) in targets.items():
                results[name].append(wrk(url, args.seconds, args.connections, tok))
        health = statistics.median(results["GET /health"])
        floor_health = statistics.median(results["floor GET /health"]) if floor else 0.0
        print(
            f"rounds={args.rounds} seconds={args.seconds} connections={args.connections} "
            f"leads={args.leads} load average {load_before:.1f} before, "
            f"{os.getloadavg()[0]:.1f} after"
        )
        for name, values in results.items():
            rps = statistics.median(values)
            line = f"{name:34s} {rps:9.0f} req/s  ratio to /health {rps / health:5.2f}"
            if floor and name.startswith("floor"):
                line += f"  (to the floor's /health {rps / floor_health:5.2f})"
            print(line)
        print("targets: campaign >= 0.70, leads page >= 0.30")
        if large_token:
            small = statistics.median(results["GET /v1/leads?limit=50"])
            large = statistics.median(results[f"GET /v1/leads?limit=50 @{args.large}"])
            print(
                f"page at {args.large} stored vs at {args.leads}: {large / small:5.2f}x "
                "(target >= 0.90)"
            )
    finally:
        for process in (server, floor):
            if process is None:
                continue
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def serve(app: str, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """One uvicorn worker serving `app` on loopback."""
    command = [sys.executable, "-m", "uvicorn", app, "--port", str(port), "--no-access-log"]
    return subprocess.Popen([*command, "--log-level", "warning"], cwd=ROOT, env=env)


if __name__ == "__main__":
    main()
