"""The hot requests at 1k, 10k (and, asked for, 100k) leads: time and counted work each (issue 23).

Each size is a fresh embedded database with one tenant whose leads are all in one campaign,
one touchpoint per lead (tests/test_scale.py builds it and lists the requests). Every request
is sent once through the in-process ASGI client and measured with service/embedded/work.py:
keys and documents examined (MongoDB's executionStats), rows sorted in memory, and wall time.
A flat row is a request whose work does not grow with the data; the growing ones are listed,
with why, in tests/test_scale.py `GROWING`.

Usage: .venv/bin/python bench/bench_scale.py [--sizes 1000 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time

from tests.test_scale import GROWING, requests, world


async def main(sizes: list[int]) -> None:
    """Measure every size, then print one table: work and time per request per size."""
    results: dict[int, dict[str, dict[str, int]]] = {}
    for n in sizes:
        start = time.perf_counter()
        async with world(n) as w:
            seeded = time.perf_counter() - start
            results[n] = await requests(w)
        print(f"{n} leads: seeded in {seeded:.1f} s", flush=True)
    load = os.getloadavg()[0]
    print(f"\nmachine load {load:.1f} (1-min average); work = keys + documents examined\n")
    head = "".join(f" | {n:>7} work {'ms':>7}" for n in sizes)
    print(f"{'request':28}{head} | grows")
    for name in results[sizes[0]]:
        cells = "".join(
            f" | {results[n][name]['examined']:>12} {results[n][name]['us'] / 1000:>7.1f}"
            for n in sizes
        )
        print(f"{name:28}{cells} | {'yes: ' + GROWING[name] if name in GROWING else ''}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    asyncio.run(main(parser.parse_args().sizes))
