"""`migrate` on N shape-1 blogs: time, database round trips, and a second (no-op) run.

A fresh embedded database with the service's indexes gets N blogs written raw in their
shape-1 form (`plan.scheduled_for` + `calendar_at`, a third each scheduled, posted and
planned), then `service.storage.migrations.migrate` rewrites them to shape 2 (the embedded
`calendar`). Printed: documents per second, round trips per batch (target: one read and one
`bulk_write` per batch, so calls grow with N / batch size, not with N), and the second run's
cost (one count, nothing read or written beyond it).

Usage: .venv/bin/python bench/bench_migrate.py [--rows 10000] [--batch 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bson import Binary
from uuid6 import uuid7

from documents.blog import Blog
from service.database import embedded_database, init_models
from service.storage.migrations import migrate
from tests.support.dbcalls import count_db_calls

START = datetime(2026, 1, 1, tzinfo=UTC)


def shape_1_blogs(n: int) -> list[dict[str, Any]]:
    """N blogs as the shape-1 code stored them, in one tenant."""
    tenant, user = Binary.from_uuid(uuid7()), Binary.from_uuid(uuid7())
    docs = []
    for i in range(n):
        when = START + timedelta(hours=i)
        scheduled = when if i % 3 != 2 else None
        posted = {"posted_at": when, "url": None, "platform": None} if i % 3 == 1 else None
        docs.append(
            {
                "_id": Binary.from_uuid(uuid7()),
                "tags": [],
                "segments": {},
                "tenant_id": tenant,
                "created_at": START,
                "updated_at": START,
                "created_by": user,
                "updated_by": user,
                "is_deleted": False,
                "deleted_at": None,
                "archived_at": None,
                "version": 1,
                "schema_version": 1,
                "user_id": user,
                "title": f"Post {i}",
                "content": "x" * 500,
                "status": "posted" if posted else "scheduled" if scheduled else "planned",
                "plan": {"scheduled_for": scheduled, "outline": ["a", "b"], "keywords": ["k"]},
                "posted": posted,
                "calendar_at": scheduled or (posted or {}).get("posted_at"),
            }
        )
    return docs


async def main(rows: int, batch: int) -> None:
    db = embedded_database("bench_migrate")
    await init_models(db)
    await Blog.get_pymongo_collection().insert_many(shape_1_blogs(rows))

    with count_db_calls() as (calls, _):
        start = time.perf_counter()
        report = await migrate(models=[Blog], batch_size=batch)
        first = time.perf_counter() - start
    (blogs,) = report.collections
    assert blogs.migrated == rows and not blogs.failed, blogs
    batches = -(-rows // batch)
    print(
        f"migrate {rows} shape-1 blogs, batch {batch}: {first:.2f} s ({rows / first:,.0f} docs/s)"
    )
    print(f"  round trips: {dict(calls)}  ({batches} batches)")

    with count_db_calls() as (calls, _):
        start = time.perf_counter()
        again = await migrate(models=[Blog], batch_size=batch)
        second = time.perf_counter() - start
    assert again.migrated == 0
    print(f"second run: {second * 1000:.1f} ms, round trips: {dict(calls)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=500)
    args = parser.parse_args()
    asyncio.run(main(args.rows, args.batch))
