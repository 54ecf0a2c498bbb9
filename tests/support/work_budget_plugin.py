"""pytest plugin: every request the suite sends is held to a work budget (issue 23).

Registered in pyproject's pytest options. Each request an in-process client sends (httpx's
`ASGITransport`) is measured with `service.embedded.work` (keys and documents examined,
documents returned, in-memory sorts: MongoDB's `executionStats`, summed over the request's
operations, `$lookup` probes included). A request fails its test when it examined more than

    BUDGET_RATIO x (documents it returned) + BUDGET_CONSTANT

keys plus documents: a request may read what it answers, a page's look-ahead, its caller's
and its journal's few documents, but not a scan of data it does not return. Counts answered
from index bounds alone examine keys only (`COUNT_SCAN`) and are capped by the service
(`COUNT_CAP`), so they are judged by that cap rather than by the ratio. At test size a scan
of a handful of documents fits the constant; the scale tests (tests/test_scale.py) compare
the same requests at N and 8N. Requests on `ALLOWED` (the short, commented list below) are
recorded but not judged. `BUDGET.take()` pops findings, for the test of the check itself.

On a real server (TEST_MONGODB_URL) nothing is measured (the work is the server's).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.embedded import work

BUDGET_RATIO = 4
BUDGET_CONSTANT = 200
COUNT_CAP = 10_001  # service.core.pagination counts at most this many keys (`total_is_lower_bound`)

_ID = re.compile(r"/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")

# (method, path with ids as {id}) → why its work may grow with the data. Keep it short.
ALLOWED: dict[tuple[str, str], str] = {
    ("GET", "/v1/leads/export"): "streams every matching lead in batches: the work is the answer",
    ("GET", "/v1/campaigns/{id}/leads/export"): "streams a campaign's members: the answer",
    ("POST", "/v1/leads/bulk"): "an import checks each row's duplicates: work per row imported",
    ("POST", "/v1/leads/import"): "a CSV import: work per row imported (as bulk)",
}


def route_of(request: httpx.Request) -> tuple[str, str]:
    """A request's method and path with ids replaced by `{id}`."""
    return request.method, _ID.sub("/{id}", request.url.path)


def budget(summary: dict[str, int]) -> int:
    """What a request that returned these documents may examine."""
    return BUDGET_RATIO * summary["returned"] + BUDGET_CONSTANT


@dataclass
class Budget:
    """Findings since the last `take()`, and the heaviest request seen per route."""

    findings: list[str] = field(default_factory=list)
    heaviest: dict[str, dict[str, int]] = field(default_factory=dict)
    requests: int = 0

    def judge(self, request: httpx.Request, measured: work.Work) -> None:
        """Record one request's work; a finding when it is over budget and not allowed."""
        self.requests += 1
        method, path = route_of(request)
        summary = measured.summary()
        key = f"{method} {path}"
        if summary["keys_examined"] + summary["docs_examined"] > self.heaviest.get(key, {}).get(
            "examined", -1
        ):
            self.heaviest[key] = {**summary, "examined": measured.examined}
        if (method, path) in ALLOWED:
            return
        examined = measured.examined - _count_scan_keys(measured)
        if examined > budget(summary):
            worst = measured.worst()
            self.findings.append(
                f"{method} {request.url.path}?{request.url.query.decode()} examined {examined} "
                f"keys+documents for {summary['returned']} returned (budget {budget(summary)}); "
                f"worst: {worst}"
            )

    def take(self) -> list[str]:
        """Findings since the last call (they are cleared)."""
        found, self.findings = self.findings, []
        return found


def _count_scan_keys(measured: work.Work) -> int:
    # Keys a count read from index bounds alone (no document), up to the service's cap.
    return sum(
        min(op.keys_examined, COUNT_CAP)
        for op in measured.operations
        if op.method == "count" and op.docs_examined == 0
    )


BUDGET = Budget()


def _active(config: pytest.Config) -> bool:
    return not os.environ.get("TEST_MONGODB_URL") and not config.option.collectonly


def pytest_configure(config: pytest.Config) -> None:
    """Measure every request sent through an in-process ASGI transport."""
    if not _active(config):
        return
    original = httpx.ASGITransport.handle_async_request

    async def measured(self: httpx.ASGITransport, request: httpx.Request) -> httpx.Response:
        with work.measuring() as counted:
            response = await original(self, request)
        BUDGET.judge(request, counted)
        return response

    httpx.ASGITransport.handle_async_request = measured  # type: ignore[method-assign]
    if not hasattr(config, "workerinput") and os.environ.get(_DIR_VAR) is None:
        os.environ[_DIR_VAR] = tempfile.mkdtemp(prefix="work-budget-")

    def restore() -> None:
        httpx.ASGITransport.handle_async_request = original  # type: ignore[method-assign]

    config.add_cleanup(restore)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call() -> Generator[None, None, None]:
    BUDGET.take()  # fixtures' requests (account set-up) are recorded, not judged
    result = yield
    found = BUDGET.take()
    if found:
        shown = "\n  ".join(found[:10])
        raise AssertionError(f"requests over their work budget ({len(found)}):\n  {shown}")
    return result


_DIR_VAR = "WORK_BUDGET_DIR"


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if not _active(config):
        return
    folder = os.environ.get(_DIR_VAR)
    if folder is None:
        return
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    data = {"requests": BUDGET.requests, "heaviest": BUDGET.heaviest}
    (Path(folder) / f"{worker}.json").write_text(json.dumps(data))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    folder = os.environ.get(_DIR_VAR)
    if folder is None or hasattr(config, "workerinput"):
        return
    requests, heaviest = 0, {}
    for path in Path(folder).glob("*.json"):
        data = json.loads(path.read_text())
        requests += data["requests"]
        for key, row in data["heaviest"].items():
            if row["examined"] > heaviest.get(key, {}).get("examined", -1):
                heaviest[key] = row
    top = sorted(heaviest.items(), key=lambda kv: -kv[1]["examined"])[:5]
    shown = "; ".join(f"{k}: {v['examined']} for {v['returned']}" for k, v in top)
    terminalreporter.write_line(
        f"work budget: {requests} requests measured; heaviest: {shown or 'none'}"
    )
