"""The schema operator commands: `migrate`, `validators`, `indexes` (`python -m service.cli`).

Each runs as an operator runs it: against the embedded file named by EMBEDDED_DB_PATH (a
temporary one here), opened and closed by the command; the tests look at the file afterwards.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest
from pymongo.errors import OperationFailure
from typer.testing import CliRunner

from documents import ALL_DOCUMENTS
from documents.blog import Blog
from service.cli import app
from service.cli import validators as validators_cli
from service.embedded import open_embedded
from service.storage.indexes import declared
from service.storage.validators import validators
from tests.factories import SCHEDULED, shape_1_blog
from tests.support.helpers import (
    WIDE,
    cli_env,
    install_older_claim_indexes,
    on_embedded_file,
    stored_form,
)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Author:
    """Whose blogs the shape-1 documents are (only the ids are stored)."""

    id: UUID
    tenant_id: UUID


def _cli(path: Path, *args: str, **env: str) -> Any:
    return CliRunner().invoke(app, list(args), env=cli_env(path, **env))


def _raw(path: Path, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(db)` on the file as it is: nothing bound, no index built or rebuilt."""

    async def session() -> T:
        db, _ = open_embedded(str(path), "lead_ignite")
        try:
            return await work(db)
        finally:
            await db.client.close()

    return asyncio.run(session())


def _stored_blogs(path: Path) -> dict[UUID, dict[str, Any]]:
    async def read() -> dict[UUID, dict[str, Any]]:
        rows = await stored_form(Blog.get_pymongo_collection()).find({}).to_list()
        return {row["_id"].as_uuid(): row for row in rows}

    return on_embedded_file(path, read)


def _insert_shape_1_blogs(path: Path, *extra: dict[str, Any], count: int = 5) -> list[UUID]:
    author = Author(id=uuid4(), tenant_id=uuid4())
    raws = [
        shape_1_blog(author, title=f"Old post {n}", scheduled_for=SCHEDULED) for n in range(count)
    ]
    raws += [shape_1_blog(author, **fields) for fields in extra]

    async def insert() -> None:
        await Blog.get_pymongo_collection().insert_many(raws)

    on_embedded_file(path, insert)
    return [raw["_id"].as_uuid() for raw in raws]


# -- help ---------------------------------------------------------------------------------------


def test_help_lists_the_commands_and_their_choices() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "--help"],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", **WIDE},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    for command in ("migrate", "validators", "indexes"):
        assert f" {command} " in done.stdout
    runner = CliRunner()
    migrate = runner.invoke(app, ["migrate", "--help"], env=WIDE).output
    assert "--dry-run" in migrate and "--batch-size" in migrate
    assert "blogs" in migrate and "leads" in migrate
    assert "error|warn" in runner.invoke(app, ["validators", "--help"], env=WIDE).output
    indexes = runner.invoke(app, ["indexes", "--help"], env=WIDE).output
    assert "--apply" in indexes and "Exit status" in indexes


# -- migrate ------------------------------------------------------------------------------------


def test_migrate_rewrites_old_documents_once_and_a_dry_run_writes_nothing(db_file: Path) -> None:
    ids = _insert_shape_1_blogs(db_file)
    before = _stored_blogs(db_file)

    dry = _cli(db_file, "migrate", "--collection", "blogs", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "blogs (schema_version 2): 5 pending, 5 would migrate, 0 would fail" in dry.stdout
    assert "dry run: nothing written" in dry.stdout
    assert _stored_blogs(db_file) == before

    run = _cli(db_file, "migrate", "--batch-size", "2")
    assert run.exit_code == 0, run.output
    assert "blogs (schema_version 2): 5 pending, 5 migrated, 0 skipped, 0 failed" in run.stdout
    assert "single-shape collections, nothing to migrate: tenants, users" in run.stdout
    assert "lead claims: 0 live lead(s) with keys, 0 claim(s) created" in run.stdout
    assert "5/5 documents" in run.stderr  # the collection's progress bar, at its end
    after = _stored_blogs(db_file)
    for blog_id in ids:
        old, new = before[blog_id], after[blog_id]
        assert (old["schema_version"], new["schema_version"]) == (1, 2)
        assert "calendar_at" in old and "calendar_at" not in new
        assert "scheduled_for" not in new["plan"]
        assert new["calendar"]["scheduled_for"] == SCHEDULED
        assert new["version"] == old["version"] == 1  # a shape change is not a business change

    again = _cli(db_file, "migrate", "--collection", "blogs", "--json")
    assert again.exit_code == 0, again.output
    report = json.loads(again.stdout)
    assert report["migrated"] == 0 and report["dry_run"] is False
    assert report["collections"] == [
        {
            "collection": "blogs",
            "schema_version": 2,
            "pending": 0,
            "migrated": 0,
            "skipped": 0,
            "failed": [],
        }
    ]
    assert _stored_blogs(db_file) == after


def test_migrate_reports_documents_that_fail_and_exits_1(db_file: Path) -> None:
    ids = _insert_shape_1_blogs(db_file, {"title": ""}, count=2)  # an empty title: never valid
    broken = ids[-1]
    message = "String should have at least 1 character"

    dry = _cli(db_file, "migrate", "--dry-run")
    assert dry.exit_code == 1
    assert "3 pending, 2 would migrate, 1 would fail" in dry.stdout
    assert f"failed {broken}: {message}" in dry.stdout

    run = _cli(db_file, "migrate", "--collection", "blogs", "--json")
    assert run.exit_code == 1
    (blogs,) = json.loads(run.stdout)["collections"]
    assert (blogs["pending"], blogs["migrated"]) == (3, 2)
    assert blogs["failed"] == [{"id": str(broken), "error": message}]
    stored = _stored_blogs(db_file)
    assert stored[broken]["schema_version"] == 1  # left as it was
    assert [stored[i]["schema_version"] for i in ids[:-1]] == [2, 2]
    # The broken one stays reported on every run, alone.
    again = _cli(db_file, "migrate", "--collection", "blogs")
    assert again.exit_code == 1
    assert "1 pending, 0 migrated, 0 skipped, 1 failed" in again.stdout


def test_migrate_refuses_bad_arguments_before_opening_the_database(db_file: Path) -> None:
    unknown = _cli(db_file, "migrate", "--collection", "blogs", "--collection", "nope")
    assert unknown.exit_code == 2
    assert "'nope' is not one of" in unknown.stderr and "'blogs'" in unknown.stderr
    not_versioned = _cli(db_file, "migrate", "--collection", "domain_events")
    assert not_versioned.exit_code == 2
    zero = _cli(db_file, "migrate", "--batch-size", "0")
    assert zero.exit_code == 2 and "--batch-size" in zero.stderr
    assert not db_file.exists()


# -- validators ---------------------------------------------------------------------------------


def _statements(text: str) -> list[dict[str, Any]]:
    parts = [s for s in text.strip().split(";\n") if s.strip()]
    return [
        json.loads(p.strip().removeprefix("db.runCommand(").removesuffix(";")[:-1]) for p in parts
    ]


def test_validators_are_printed_without_touching_the_database(db_file: Path) -> None:
    printed = _cli(db_file, "validators", "--action", "warn")
    assert printed.exit_code == 0, printed.output
    commands = _statements(printed.stdout)
    assert [c["collMod"] for c in commands] == list(validators())
    assert {(c["validationAction"], c["validationLevel"]) for c in commands} == {
        ("warn", "moderate")
    }
    assert commands[0]["validator"] == validators()[commands[0]["collMod"]]
    assert "mongosh" in printed.stderr and "dbAdmin" in printed.stderr
    # The action defaults to the VALIDATION_ACTION setting.
    default = _cli(db_file, "validators", VALIDATION_ACTION="warn")
    assert {c["validationAction"] for c in _statements(default.stdout)} == {"warn"}
    assert not db_file.exists()


def _validator_options(path: Path) -> dict[str, dict[str, Any]]:
    """The validator options of every collection that exists in the file."""

    async def read(db: Any) -> dict[str, dict[str, Any]]:
        names = await db.list_collection_names()
        return {name: dict(db.engine.store(name).options) for name in names}

    return _raw(path, read)


async def _nothing() -> None:
    return None


def test_validators_apply_installs_them_in_the_database(db_file: Path) -> None:
    on_embedded_file(db_file, _nothing)  # a database as start-up leaves it
    applied = _cli(db_file, "validators", "--apply", "--action", "warn")
    assert applied.exit_code == 0, applied.output
    assert f"{len(validators())} collection(s): validators applied" in applied.stdout
    assert "blogs: validator applied (validationLevel moderate, validationAction warn)" in (
        applied.stdout
    )
    installed = _validator_options(db_file)
    assert {"blogs", "leads", "domain_events", "users"} <= installed.keys()
    for name, options in installed.items():
        assert options["validator"] == validators()[name]
        assert options["validationLevel"] == "moderate"
        assert options["validationAction"] == "warn"

    assert _cli(db_file, "validators", "--apply", "--action", "error").exit_code == 0
    assert {o["validationAction"] for o in _validator_options(db_file).values()} == {"error"}


def test_validators_apply_on_a_new_database_covers_every_collection(db_file: Path) -> None:
    assert _cli(db_file, "validators", "--apply").exit_code == 0
    installed = _validator_options(db_file)
    assert installed.keys() == validators().keys()
    assert all(o["validator"] == validators()[n] for n, o in installed.items())


def test_validators_refuse_a_bad_action_and_report_a_refused_collmod(
    db_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = _cli(db_file, "validators", "--apply", "--action", "strict")
    assert bad.exit_code == 2 and "'strict' is not one of 'error', 'warn'" in bad.stderr
    assert not db_file.exists()

    # Stands in for the command's apply step, so it takes the same arguments.
    async def unauthorized(db: Any, *, action: str | None = None) -> list[str]:  # noqa: ARG001
        raise OperationFailure("not authorized on lead_ignite to execute command", code=13)

    monkeypatch.setattr(validators_cli, "apply_validators", unauthorized)
    refused = _cli(db_file, "validators", "--apply")
    assert refused.exit_code == 2
    assert "refused collMod (13)" in refused.stderr and "dbAdmin" in refused.stderr
    assert refused.stdout == ""


# -- indexes ------------------------------------------------------------------------------------


def _claims_indexes(path: Path) -> dict[str, Any]:
    async def read(db: Any) -> dict[str, Any]:
        return dict(await db["lead_claims"].index_information())

    return _raw(path, read)


def test_indexes_report_differences_and_apply_changes_them_keeping_undeclared_ones(
    db_file: Path,
) -> None:
    on_embedded_file(
        db_file, _nothing
    )  # a database as start-up leaves it: every declared index built

    _raw(db_file, install_older_claim_indexes)
    before = _claims_indexes(db_file)

    compared = _cli(db_file, "indexes")
    assert compared.exit_code == 1, compared.output
    lines = compared.stdout.splitlines()
    assert (
        "lead_claims: changed (differs from its declaration): old_value_name, tenant_lead" in lines
    )
    assert "lead_claims: missing (declared, not built): tenant_field_value_unique" in lines
    assert "lead_claims: undeclared (kept, never dropped): operators_own" in lines
    assert lines[-1].startswith("indexes: 2 changed, 1 missing, 1 undeclared (kept)")
    assert _claims_indexes(db_file) == before  # compared only
    as_json = json.loads(_cli(db_file, "indexes", "--json").stdout)
    assert as_json == {
        "applied": False,
        "clean": False,
        "changed": {"lead_claims": ["old_value_name", "tenant_lead"]},
        "missing": {"lead_claims": ["tenant_field_value_unique"]},
        "undeclared": {"lead_claims": ["operators_own"]},
    }

    applied = _cli(db_file, "indexes", "--apply")
    assert applied.exit_code == 0, applied.output
    # Built beside, hidden, dropped: never a gap (tests/test_indexes.py checks every step).
    assert "lead_claims: hid tenant_lead" in applied.stdout
    assert "lead_claims: built tenant_field_value_unique" in applied.stdout
    assert "indexes: 2 changed, 1 built, 1 undeclared kept" in applied.stdout
    after = _claims_indexes(db_file)
    assert "unique" not in after["tenant_lead"]
    assert "old_value_name" not in after and after["tenant_field_value_unique"]["unique"] is True
    assert after["operators_own"]["key"] == [("claimed_at", 1)]

    clean = _cli(db_file, "indexes")
    assert clean.exit_code == 0, clean.output
    assert clean.stdout.splitlines() == [
        "lead_claims: undeclared (kept, never dropped): operators_own",
        "indexes: as declared (1 undeclared, kept)",
    ]


def test_a_new_database_misses_every_declared_index(db_file: Path) -> None:
    result = _cli(db_file, "indexes", "--json")
    assert result.exit_code == 1
    missing = json.loads(result.stdout)["missing"]
    assert missing == {
        name: sorted(i.document["name"] for i in wanted)
        for name, wanted in declared(ALL_DOCUMENTS).items()
    }
    assert _cli(db_file, "indexes", "--apply").exit_code == 0
    assert _cli(db_file, "indexes").exit_code == 0


def test_indexes_refuse_a_busy_database_file(db_file: Path) -> None:
    db, _ = open_embedded(str(db_file), "lead_ignite")  # another process would hold this lock
    try:
        result = _cli(db_file, "indexes")
    finally:
        asyncio.run(db.client.close())
    assert result.exit_code == 2 and "in use" in result.stderr
