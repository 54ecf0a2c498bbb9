"""pytest plugin: record every query the service sends during the suite, check each is indexed.

Registered in pyproject's pytest options. Every operation the embedded backend receives is
seen by `service.embedded.observers`; those made by the service's own code (not by a test
reading stored data directly) are reduced to shapes (tests/support/query_plans.py) and, at the end
of the session, checked against the indexes the service declares (read from a database the
service initialised, so what Beanie and the journal really create). A finding not on the
allow-list (tests/support/query_plan_allowlist.py) fails the run. Under pytest-xdist each worker
writes its shapes to a shared folder and the controller checks them all.

On a real server (TEST_MONGODB_URL) the embedded backend is not used; there the
`real_mongodb` tests ask MongoDB itself with `explain()` (tests/test_real_mongodb.py).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pytest

from tests.support import shard_plan
from tests.support.query_plans import IndexSpec, Shape, check, make_shape

_ROOT = str(Path(__file__).resolve().parents[2])
_OURS = tuple(
    os.path.join(_ROOT, p) + os.sep for p in ("service", "documents", "routes", "schemas")
)
_BACKEND = os.path.join(_ROOT, "service", "embedded") + os.sep
_TESTS = os.path.join(_ROOT, "tests") + os.sep
_DIR_VAR = "QUERY_PLAN_SHAPES_DIR"

shapes: set[Shape] = set()


def from_the_service() -> bool:
    """Whether the running operation was sent by the service's code (not by a test's probe)."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if filename.startswith(_BACKEND):
            frame = frame.f_back  # type: ignore[assignment]
            continue
        if filename.startswith(_OURS):
            return True
        if filename.startswith(_TESTS):
            return False
        frame = frame.f_back  # type: ignore[assignment]
    return False


def shape_of_operation(op: Any) -> Shape | None:
    """The shape of an observed operation, or None for writes without a filter."""
    if op.method in ("insert_one", "insert_many", "bulk_write"):
        return None
    sort = list(op.sort)
    if op.method == "aggregate":
        stages = list(op.pipeline)
        if len(stages) > 1 and "$sort" in stages[1] and "$match" in stages[0]:
            sort = list(stages[1]["$sort"].items())
    return make_shape(op.collection, op.method, op.filter, sort)


def record(op: Any) -> None:
    """The observer: keep the shape of every service query."""
    if not from_the_service():
        return
    shard_plan.record(op)
    shape = shape_of_operation(op)
    if shape is not None:
        shapes.add(shape)


async def declared_indexes() -> dict[str, list[IndexSpec]]:
    """The indexes a freshly started service has, per collection."""
    from service.database import embedded_database, init_models

    db = embedded_database("query_plans")
    await init_models(db)
    out: dict[str, list[IndexSpec]] = {}
    for name in await db.list_collection_names():
        info = await db[name].index_information()
        out[name] = [IndexSpec.from_info(n, i) for n, i in info.items()]
    return out


def findings(recorded: set[Shape]) -> list[tuple[Shape, str]]:
    """Every recorded shape that no declared index serves and the allow-list does not cover."""
    from tests.support.query_plan_allowlist import allowed

    indexes = asyncio.run(declared_indexes())
    implicit = [IndexSpec("_id_", (("_id", 1),), unique=True)]  # every collection has it
    out = []
    for shape in sorted(recorded, key=str):
        reason = check(shape, indexes.get(shape.collection, implicit))
        if reason is not None and allowed(shape) is None:
            out.append((shape, reason))
    return out


# -- the plugin hooks ---------------------------------------------------------------------------


def _active(config: pytest.Config) -> bool:
    return not os.environ.get("TEST_MONGODB_URL") and not config.option.collectonly


def pytest_configure(config: pytest.Config) -> None:
    if not _active(config):
        return
    from service.embedded import observers

    observers.append(record)
    if not hasattr(config, "workerinput") and os.environ.get(_DIR_VAR) is None:
        os.environ[_DIR_VAR] = tempfile.mkdtemp(prefix="query-plans-")


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if not _active(config):
        return
    folder = Path(os.environ[_DIR_VAR])
    rows = [[s.collection, s.method, s.filter, [list(p) for p in s.sort]] for s in shapes]
    worker = getattr(config, "workerinput", {}).get("workerid", "main")
    (folder / f"{worker}.json").write_text(json.dumps(rows))
    shard_plan.save(folder, worker)
    if hasattr(config, "workerinput"):
        return  # the controller checks everything once every worker has written
    recorded: set[Shape] = set()
    for path in folder.glob("*.json"):
        for collection, method, filt, sort in json.loads(path.read_text()):
            recorded.add(Shape(collection, method, filt, tuple(tuple(p) for p in sort)))
    found = findings(recorded)
    config.stash[_FINDINGS] = (len(recorded), found)
    routed = shard_plan.load(folder)
    config.stash[_SHARD_FINDINGS] = (len(routed), shard_plan.findings(routed))
    if (found or config.stash[_SHARD_FINDINGS][1]) and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


_FINDINGS = pytest.StashKey[tuple[int, list[tuple[Shape, str]]]]()
_SHARD_FINDINGS = pytest.StashKey[tuple[int, list[tuple[shard_plan.Routed, str]]]]()


def _report(
    reporter: Any, found: list[tuple[Any, str]], *, ok: str, title: str, advice: str
) -> None:
    """One check's summary: a line when it found nothing, else each finding and what to do."""
    if not found:
        reporter.write_line(ok)
        return
    reporter.section(title, sep="=", red=True)
    for what, reason in found:
        reporter.write_line(f"{what}\n    -> {reason}")
    reporter.write_line(advice)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if _FINDINGS not in config.stash:
        return
    # The shard plan's check (tests/support/shard_plan.py): operations hitting every shard.
    checked, found = config.stash[_SHARD_FINDINGS]
    _report(
        terminalreporter,
        found,
        ok=f"shard plan: {checked} operations checked, all targeted",
        title="shard plan: operations every shard would answer",
        advice=f"{len(found)} of {checked} operations need the shard key's prefix or a justified "
        "entry in tests/support/shard_plan.py ALLOWED",
    )
    checked, shapes = config.stash[_FINDINGS]
    _report(
        terminalreporter,
        shapes,
        ok=f"query plans: {checked} query shapes checked, all served by an index",
        title="query plans: queries no declared index serves",
        advice=f"{len(shapes)} of {checked} query shapes need an index, a rewrite, or a justified "
        "entry in tests/support/query_plan_allowlist.py",
    )
