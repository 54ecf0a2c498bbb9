"""The suite's two modes, run as a developer runs them (a pytest process each).

Without TEST_MONGODB_URL the `real_mongodb` tests are skipped and the summary says how many;
with an unreachable TEST_MONGODB_URL the run stops at once with one readable message. And the
reading of `explain()` that tests/test_real_mongodb.py relies on, on MongoDB's output shapes.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.support.query_plans import plan_problems, winning_stages

ROOT = Path(__file__).resolve().parent.parent
# Variables of the outer run that an inner pytest must not share (its plugins' result folders).
_OUTER = ("QUERY_PLAN_SHAPES_DIR", "PROBLEM_AUDIT_DIR", "PYTEST_ADDOPTS", "TEST_MONGODB_URL")


def _pytest(*args: str, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    environment = {k: v for k, v in os.environ.items() if k not in _OUTER}
    environment.update(env)
    start = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    return done, time.monotonic() - start


def test_without_a_server_the_real_server_tests_are_skipped_and_counted() -> None:
    done, _ = _pytest("tests/test_real_mongodb.py", "--collect-only")
    collected = sum(1 for line in done.stdout.splitlines() if "::test_" in line)
    assert collected >= 15, done.stdout
    done, _ = _pytest("tests/test_real_mongodb.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{collected} skipped" in done.stdout
    line = f"real-server tests: {collected} skipped (set TEST_MONGODB_URL to run them on MongoDB)"
    assert line in done.stdout.splitlines()


def test_an_unreachable_server_stops_the_run_at_once_with_one_message() -> None:
    url = "mongodb://tester:s3cret@127.0.0.1:1/?serverSelectionTimeoutMS=500"
    done, seconds = _pytest("tests/test_health.py", TEST_MONGODB_URL=url)
    output = done.stdout + done.stderr
    assert done.returncode == 3, output  # pytest's INTERNAL_ERROR: nothing ran
    assert "MongoDB did not answer a ping" in output
    assert "mongodb://***@127.0.0.1:1/" in output and "s3cret" not in output
    assert not re.search(r"\d+ (passed|failed|errors?)\b", output)  # no test ran
    assert seconds < 60  # imports plus one ping (MONGODB_TIMEOUT_MS), not a timeout per test


# -- reading explain() (tests/test_real_mongodb.py), on MongoDB 8.0's output shapes ----------


def _ixscan(name: str) -> dict[str, Any]:
    return {"stage": "IXSCAN", "indexName": name, "keyPattern": {"tenant_id": 1}}


def _problems(explained: dict[str, Any]) -> tuple[list[str], set[str]]:
    stages = winning_stages(explained)
    return plan_problems(stages), {s["indexName"] for s in stages if "indexName" in s}


def test_a_classic_plan_is_read_from_the_winning_plan_only() -> None:
    explained = {
        "queryPlanner": {
            "winningPlan": {
                "stage": "LIMIT",
                "inputStage": {"stage": "FETCH", "inputStage": _ixscan("tenant_list")},
            },
            "rejectedPlans": [{"stage": "SORT", "inputStage": {"stage": "COLLSCAN"}}],
        },
        "ok": 1.0,
    }
    assert _problems(explained) == ([], {"tenant_list"})


def test_or_branches_and_merge_sorts_are_index_scans() -> None:
    branches = [_ixscan("tenant_email_unique"), _ixscan("tenant_phone_unique")]
    dedupe = {"stage": "FETCH", "inputStage": {"stage": "OR", "inputStages": branches}}
    assert _problems({"queryPlanner": {"winningPlan": dedupe}}) == (
        [],
        {"tenant_email_unique", "tenant_phone_unique"},
    )
    merged = {"stage": "SORT_MERGE", "inputStages": [_ixscan("tenant_list")] * 2}
    assert _problems({"queryPlanner": {"winningPlan": merged}}) == ([], {"tenant_list"})


def test_collection_scans_blocking_sorts_and_scanning_lookups_are_found() -> None:
    scan = {"queryPlanner": {"winningPlan": {"stage": "COLLSCAN"}}}
    assert "COLLSCAN" in _problems(scan)[0]
    sort = {"stage": "SORT", "inputStage": {"stage": "FETCH", "inputStage": _ixscan("x")}}
    assert _problems({"queryPlanner": {"winningPlan": sort}})[0] == ["a blocking SORT stage"]
    lookup = {
        "stage": "EQ_LOOKUP",
        "strategy": "HashJoin",
        "foreignCollection": "db.leads",
        "inputStage": _ixscan("campaign_lead_unique"),
    }
    sbe = {"queryPlanner": {"winningPlan": {"queryPlan": lookup, "slotBasedPlan": {"stages": "…"}}}}
    assert _problems(sbe)[0] == ["$lookup from db.leads: HashJoin"]
    lookup["strategy"] = "IndexedLoopJoin"
    assert _problems(sbe) == ([], {"campaign_lead_unique"})


def test_an_aggregate_is_read_through_its_cursor_stage() -> None:
    explained = {
        "stages": [
            {"$cursor": {"queryPlanner": {"winningPlan": _ixscan("campaign_lead_unique")}}},
            {"$lookup": {"from": "leads"}},
        ]
    }
    assert _problems(explained) == ([], {"campaign_lead_unique"})
    assert "no index scan" in _problems({"stages": [{"$cursor": {}}]})[0][0]
