"""The query-plan checker: it must catch what MongoDB's planner would not serve from an index."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from service.embedded import Operation, embedded_database
from tests.support.query_plan_plugin import findings, shape_of_operation
from tests.support.query_plans import IndexSpec, check, make_shape

# The checker and the embedded observers (on MongoDB, tests/test_real_mongodb.py asks explain()).
pytestmark = pytest.mark.embedded_only

T = uuid.uuid4()

LEADS = [
    IndexSpec("_id_", (("_id", 1),), unique=True),
    IndexSpec("tenant_list", (("tenant_id", 1), ("is_deleted", 1), ("_id", -1))),
    IndexSpec("tenant_status", (("tenant_id", 1), ("is_deleted", 1), ("status", 1), ("_id", -1))),
    IndexSpec(
        "tenant_email_unique",
        (("tenant_id", 1), ("email", 1)),
        unique=True,
        partial='{"email": {"$type": "string"}, "is_deleted": {"$eq": false}}',
    ),
    IndexSpec("outbox", (("pending.v", 1),), sparse=True),
]


def verdict(query: dict[str, Any], sort: list[tuple[str, int]] | None = None) -> str | None:
    return check(make_shape("leads", "find", query, sort or []), LEADS)


def test_equality_prefix_then_sort_is_served() -> None:
    assert verdict({"tenant_id": T, "is_deleted": False}, [("_id", -1)]) is None
    assert verdict({"tenant_id": T, "is_deleted": False}, [("_id", 1)]) is None  # reversed walk
    query = {"tenant_id": T, "is_deleted": False, "status": "new"}
    assert verdict(query, [("_id", -1)]) is None
    assert verdict({**query, "_id": {"$lt": T}}, [("_id", -1)]) is None  # a keyset page


def test_a_sort_the_index_does_not_give_is_a_blocking_sort() -> None:
    reason = verdict({"tenant_id": T, "is_deleted": False}, [("last_name", 1), ("_id", 1)])
    assert reason is not None and reason.startswith("blocking sort")
    # Without the soft-delete equality the index order breaks after tenant_id (issue 11.4).
    reason = verdict({"tenant_id": T}, [("_id", -1)])
    assert reason is not None and "blocking sort" in reason
    # A mixed direction the index cannot walk.
    reason = verdict({"tenant_id": T, "is_deleted": False}, [("status", 1), ("_id", 1)])
    assert reason is not None


def test_a_small_in_list_before_the_sort_is_exploded_into_merged_scans() -> None:
    # include_deleted: `is_deleted: {$in: [true, false]}` — one scan per point, merged in order.
    deleted_too = {"tenant_id": T, "is_deleted": {"$in": [True, False]}}
    assert verdict(deleted_too, [("_id", -1)]) is None
    assert verdict({**deleted_too, "status": "new"}, [("_id", -1)]) is None
    # Without the `$in`, no index gives `last_name` order: still a blocking sort.
    reason = verdict(deleted_too, [("last_name", 1), ("_id", 1)])
    assert reason is not None and "blocking sort" in reason


def test_a_partial_index_the_query_contradicts_is_not_a_missed_one() -> None:
    seq = [
        IndexSpec("by_aggregate", (("aggregate_id", 1), ("version", 1)), unique=True),
        IndexSpec("seq_unique", (("seq", 1),), unique=True, partial='{"seq": {"$gt": 0}}'),
    ]
    unsequenced = make_shape("f", "find", {"aggregate_id": {"$in": [T]}, "seq": None}, [])
    assert check(unsequenced, seq) is None
    # The same query without the contradiction could have been written to use it.
    live = [
        IndexSpec("by_tenant", (("tenant_id", 1),)),
        IndexSpec(
            "email", (("tenant_id", 1), ("email", 1)), partial='{"is_deleted": {"$eq": false}}'
        ),
    ]
    loose = make_shape("f", "find", {"tenant_id": T, "email": "a@b.c"}, [])
    reason = check(loose, live)
    assert reason is not None and reason.startswith("partial index email")
    deleted = make_shape("f", "find", {"tenant_id": T, "email": "a", "is_deleted": True}, [])
    assert check(deleted, live) is None  # looks for deleted rows: the index never holds them


def test_no_bounds_is_a_finding_even_when_an_index_has_the_order() -> None:
    assert verdict({"status": "new"}) == "no declared index bounds this query"
    reason = verdict({}, [("_id", 1)])
    assert reason is not None and "whole collection" in reason
    reason = verdict({"status": {"$ne": "new"}}, [("tenant_id", 1)])
    assert reason is not None and "whole-index scan" in reason


def test_a_single_document_needs_no_sort() -> None:
    assert verdict({"_id": T}, [("created_at", -1)]) is None
    assert verdict({"tenant_id": T, "email": "a", "is_deleted": False}) is None


def test_partial_indexes_need_the_query_to_imply_their_filter() -> None:
    served = {"tenant_id": T, "is_deleted": False, "email": {"$in": ["a", "b"], "$type": "string"}}
    assert verdict(served) is None
    # Issue 11.1: the soft-delete condition outside the $or; each branch alone does not imply
    # the partial filter, so MongoDB reads the tenant's leads instead of the unique index.
    outside = {
        "tenant_id": T,
        "is_deleted": False,
        "$or": [{"email": {"$in": ["a"], "$type": "string"}}, {"phone": {"$in": ["1"]}}],
    }
    reason = verdict(outside)
    assert reason is not None and "tenant_email_unique" in reason and "$or branch" in reason
    inside = {
        "tenant_id": T,
        "$or": [
            {"email": {"$in": ["a"], "$type": "string"}, "is_deleted": False},
            {"email": "b", "is_deleted": False},
        ],
    }
    assert verdict(inside) is None


def test_sparse_indexes_serve_only_queries_that_exclude_missing_fields() -> None:
    assert verdict({"pending.v": {"$exists": True}}) is None
    assert verdict({"pending.v": None}) == "no declared index bounds this query"


def test_an_or_is_served_branch_by_branch_or_not_at_all() -> None:
    both = {"$or": [{"_id": T}, {"tenant_id": T, "is_deleted": True}]}
    assert verdict(both) is None
    one_unserved = {"$or": [{"_id": T}, {"status": "x"}]}
    reason = verdict(one_unserved)
    assert reason is not None and reason.startswith("an $or branch is not served")


def test_the_suite_recorder_flags_an_unindexed_query_sent_at_run_time() -> None:
    """What the plugin does at the end of the suite, on a query the service might add."""
    from service.embedded import observers

    operations: list[Operation] = []

    async def send() -> None:
        db = embedded_database("plans")
        await db["leads"].insert_one({"x": 1})
        await db["leads"].find({"last_name": "Silva"}).sort("_id", -1).to_list()
        await db["leads"].find({"_id": 1}).to_list()

    observers.append(operations.append)
    try:
        asyncio.run(send())
    finally:
        observers.remove(operations.append)
    shapes = {s for op in operations if (s := shape_of_operation(op)) is not None}
    found = dict(findings(shapes))
    assert [str(s) for s in found] == [
        'leads.find {"last_name": {"=": "string"}} sort=[(\'_id\', -1)]'
    ]
    assert "no condition bounds an index" in next(iter(found.values()))


@pytest.mark.parametrize(
    "query",
    [
        {"tenant_id": T, "created_at": {"$gte": 1}},
        {"tenant_id": T, "last_name": {"$regex": "^Sil"}},
    ],
)
def test_ranges_and_anchored_regexes_bound_the_index(query: dict[str, Any]) -> None:
    specs = [
        IndexSpec("t_created", (("tenant_id", 1), ("created_at", 1))),
        IndexSpec("t_last", (("tenant_id", 1), ("last_name", 1))),
    ]
    assert check(make_shape("leads", "find", query, []), specs) is None
