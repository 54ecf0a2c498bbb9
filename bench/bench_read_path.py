"""The read path: stored documents → response objects, per document, old way vs new way.

Old: Beanie parses each stored document into a document model, then `to_lead_read` dumps it
and validates the dump into the response schema (two validations and a dump per document).
New: the raw driver dict is validated once into the response schema (`LEAD_VIEW.stored`).
Both start from the same raw documents, as the driver returns them, so the figures are the
service's own CPU per document, without the database.

Usage: .venv/bin/python bench/bench_read_path.py [--leads 1000] [--rounds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from beanie.odm.utils.parsing import parse_obj
from uuid6 import uuid7

from documents.lead import LeadBase
from schemas.leads import LEAD_VIEW
from service.core.context import RequestContext, Role
from service.core.repository import Repository
from service.database import embedded_database, init_models
from service.leads.commands import _bulk_document
from tests.support import oracles


def _timed(fn: Any, docs: list[dict[str, Any]], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for raw in docs:
            fn(raw)
        times.append((time.perf_counter() - start) / len(docs))
    return statistics.median(times)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--leads", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    await init_models(embedded_database("bench_read_path"))
    ctx = RequestContext(tenant_id=uuid7(), actor_id=uuid7(), role=Role.owner)
    rows = []
    for i in range(args.leads):
        row: dict[str, Any] = {
            "type": "generic",
            "email": f"lead{i}@example.com",
            "first_name": f"Lead{i}",
            "address": {"city": "Springfield", "line1": f"{i} Main St"},
            "tags": ["imported"],
        }
        if i % 2:
            row = {"type": "mls", "mls_id": f"M-{i}", "list_price": 100_000 + i, "beds": 3}
        rows.append(row)
    await oracles.create_many(Repository(LeadBase, ctx), [_bulk_document(ctx, r) for r in rows])
    raws = await LeadBase.get_pymongo_collection().find({}).to_list()

    def old(raw: dict[str, Any]) -> Any:
        return LEAD_VIEW.document(parse_obj(LeadBase, raw))  # type: ignore[arg-type]

    for fn in (old, LEAD_VIEW.stored):  # warm-up
        _timed(fn, raws[:100], 1)
    before = _timed(old, raws, args.rounds)
    after = _timed(LEAD_VIEW.stored, raws, args.rounds)
    assert [old(r) for r in raws[:50]] == [LEAD_VIEW.stored(r) for r in raws[:50]]
    print(f"leads={len(raws)} rounds={args.rounds} (median µs per document, same documents)")
    print(f"Beanie document, then the response schema : {before * 1e6:8.1f} µs")
    print(f"raw document straight into the schema     : {after * 1e6:8.1f} µs")
    page_before, page_after = before * 50e3, after * 50e3
    print(f"a page of 50                              : {page_before:.2f} ms → {page_after:.2f} ms")


if __name__ == "__main__":
    asyncio.run(main())
