"""The operator CLI (`python -m service.cli`): help, JSON output, read models, CSV import.

Database commands run as an operator runs them: against the embedded file named by
EMBEDDED_DB_PATH (a temporary one here), opened and closed by the command itself.
"""

from __future__ import annotations

import asyncio
import csv
import json
import subprocess
import sys
from pathlib import Path
from typing import TypeVar
from uuid import uuid4

import pytest
from bson import Binary, json_util
from cryptography.fernet import Fernet

from documents.journal import DomainEvent
from documents.user import User
from service import pipelines, projections
from service.cli import PIPELINES, app
from service.cli.lead_import import FIELDS, build_row, column_mapping
from service.core.context import RequestContext, Role
from service.core.repository import Repository
from service.core.settings import Settings
from service.storage.sharding import shard_commands
from tests.support import analytics_seed as seed
from tests.support.helpers import (
    CHEAP,
    PASSWORD,
    WIDE,
    cli_env,
    cli_runner,
    on_embedded_file,
    stored_leads,
    write_csv,
)

T = TypeVar("T")
ROOT = Path(__file__).resolve().parent.parent


def _ctx(user: User, role: Role = Role.owner) -> RequestContext:
    return RequestContext(tenant_id=user.tenant_id, actor_id=user.id, role=role)


# -- help ---------------------------------------------------------------------------------------


def test_help_lists_every_command_and_the_valid_names() -> None:
    runner = cli_runner()
    top = runner.invoke(app, ["--help"], env=WIDE)
    assert top.exit_code == 0
    for command in ("pipelines", "rebuild", "project", "repair", "import", "shards"):
        assert command in top.output
    rebuild = runner.invoke(app, ["rebuild", "--help"], env=WIDE)
    assert rebuild.exit_code == 0
    for name in ["all", *projections.PROJECTORS]:
        assert name in rebuild.output
    for name in PIPELINES:
        assert name in runner.invoke(app, ["pipelines", "--help"], env=WIDE).output
    imported = runner.invoke(app, ["import", "--help"], env=WIDE).output
    for name in ("email", "address.city", "mls_id", "list_price", "segments.KEY"):
        assert name in imported


def test_an_unknown_name_is_refused_with_the_valid_ones() -> None:
    result = cli_runner().invoke(app, ["rebuild", "nope"], env=WIDE)
    assert result.exit_code == 2
    assert "campaign_stats" in result.output
    assert cli_runner().invoke(app, ["pipelines", "nope"], env=WIDE).exit_code == 2


def test_the_module_runs_and_warns_about_nothing_irrelevant() -> None:
    """`python -m service.cli shards`, with no JWT_SECRET or FERNET_KEY set: no warnings."""
    env = {"PATH": "/usr/bin:/bin", "MONGODB_DB": "leads_prod"}
    done = subprocess.run(
        [sys.executable, "-m", "service.cli", "shards"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == shard_commands("leads_prod")
    assert done.stderr == ""


def test_shards_json_and_a_bad_database_name() -> None:
    result = cli_runner().invoke(app, ["shards", "--json", "--database", "crm"])
    assert result.exit_code == 0
    assert json.loads(result.stdout) == shard_commands("crm")
    bad = cli_runner().invoke(app, ["shards", "--database", "a.b"])
    assert bad.exit_code == 2 and "not a valid MongoDB database name" in bad.stderr


def test_settings_warnings_stay_out_of_the_cli(caplog: pytest.LogCaptureFixture) -> None:
    result = cli_runner().invoke(app, ["shards"], env={"JWT_SECRET": None, "FERNET_KEY": None})
    assert result.exit_code == 0
    assert not [r for r in caplog.records if r.name == "service.core.settings"]
    # The server still warns: the settings themselves are unchanged.
    Settings(jwt_secret=None, fernet_key=None, embedded_db_path="")  # no development file
    assert any("JWT_SECRET is not set" in r.getMessage() for r in caplog.records)


# -- pipelines ----------------------------------------------------------------------------------


def test_pipelines_json_is_json() -> None:
    tenant, campaign = uuid4(), uuid4()
    args = ["pipelines", "--json", "--tenant", str(tenant), "--campaign", str(campaign)]
    result = cli_runner().invoke(app, args)
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert set(document) == set(PIPELINES)
    assert not any(p["placeholder"] for p in document.values())
    assert result.stderr == ""

    one = cli_runner().invoke(app, ["pipelines", "campaign_analytics", *args[1:]])
    assert one.exit_code == 0
    stages = json_util.loads(one.stdout)  # Extended JSON: UUIDs back as BSON binaries
    assert stages[0] == {
        "$match": {
            "tenant_id": Binary.from_uuid(tenant),
            "is_deleted": False,
            "campaign_id": Binary.from_uuid(campaign),
        }
    }
    assert stages[1:] == pipelines.campaign_analytics(tenant_id=tenant, campaign_id=campaign)


def test_pipelines_print_mongosh_statements() -> None:
    result = cli_runner().invoke(app, ["pipelines", "--tenant", str(uuid4())])
    assert result.exit_code == 0
    for name in PIPELINES:
        assert f"// {name}:" in result.stdout
    assert result.stdout.count("db.getCollection(") == len(PIPELINES)


def test_endpoint_pipelines_need_a_tenant_or_say_they_show_a_placeholder() -> None:
    named = cli_runner().invoke(app, ["pipelines", "overview"])
    assert named.exit_code == 2 and "--tenant" in named.stderr
    campaign = cli_runner().invoke(
        app, ["pipelines", "campaign_analytics", "--tenant", str(uuid4())]
    )
    assert campaign.exit_code == 2 and "--campaign" in campaign.stderr
    assert cli_runner().invoke(app, ["pipelines", "global_team"]).exit_code == 0  # needs none

    listing = cli_runner().invoke(app, ["pipelines", "--json"])
    assert listing.exit_code == 0
    assert "PLACEHOLDER" in listing.stderr
    document = json.loads(listing.stdout)
    assert {n for n, p in document.items() if p["placeholder"]} == {
        "campaign_analytics",
        "campaign_analytics_leads",
        "overview",
    }


def test_overview_range_errors_are_clear() -> None:
    args = ["pipelines", "overview", "--tenant", str(uuid4())]
    result = cli_runner().invoke(app, [*args, "--since", "2024-05-02", "--until", "2024-05-01"])
    assert result.exit_code == 2 and "`until` must be after `since`" in result.stderr


# -- read models and the journal ------------------------------------------------------------------


def test_rebuild_project_and_repair(db_file: Path, owner_of: User) -> None:
    async def data() -> None:
        ctx = _ctx(owner_of)
        camp, lead = await seed.campaign(ctx), await seed.lead(ctx)
        await seed.link(ctx, camp.id, lead.id)

    on_embedded_file(db_file, data)
    runner = cli_runner()
    rebuilt = runner.invoke(app, ["rebuild", "all"], env=cli_env(db_file))
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "campaign_stats: 1 rows" in rebuilt.stdout
    assert all(f"{name}: " in rebuilt.stdout for name in projections.PROJECTORS)
    assert f"{len(projections.PROJECTORS)}/{len(projections.PROJECTORS)}" in rebuilt.stderr

    one = runner.invoke(app, ["rebuild", "global_team"], env=cli_env(db_file))
    assert one.stdout.strip() == "global_team: 0 rows"
    project = runner.invoke(app, ["project", "campaign_stats"], env=cli_env(db_file))
    assert project.exit_code == 0 and project.stdout.startswith("campaign_stats: ")
    repair = runner.invoke(app, ["repair"], env=cli_env(db_file))
    assert repair.exit_code == 0
    assert repair.stdout.splitlines() == [
        "journal repair: 0 pending event(s) flushed",
        "lead claims: 0 stale claim(s) of 0 removed",
    ]


@pytest.mark.embedded_only  # the embedded file's lock
@pytest.mark.usefixtures("owner_of")
def test_a_busy_database_file_is_refused(db_file: Path) -> None:
    from service.embedded import open_embedded

    db, _ = open_embedded(str(db_file), "lead_ignite")  # another process would hold this lock
    try:
        result = cli_runner().invoke(app, ["repair"], env=cli_env(db_file))
    finally:
        asyncio.run(db.client.close())
    assert result.exit_code == 2
    assert "in use" in result.stderr


# -- CSV import ---------------------------------------------------------------------------------


def test_a_5000_row_csv_imports_with_progress_report_and_summary(
    tmp_path: Path, db_file: Path, owner_of: User
) -> None:
    header = ["E-mail", "First Name", "Last Name", "Phone", "City", "Zip", "Tags", "Notes"]
    rows: list[list[str]] = []
    bad_rows: set[int] = set()
    for n in range(1, 5001):
        email = f"lead{n}@example.com"
        if n % 50 == 0:
            email, _ = "not-an-email", bad_rows.add(n)
        elif n % 100 == 1 and n > 1:
            email = f"lead{n - 2}@example.com"  # repeats an earlier row (n=1001: another chunk)
        notes = "two\nlines" if n == 7 else ""  # a quoted cell spanning lines
        rows.append([email, f"First{n}", "Last", "", "Springfield", "12345", "a;b", notes])
    source = write_csv(tmp_path / "leads.csv", header, rows)
    report = tmp_path / "failed.ndjson"

    result = cli_runner().invoke(
        app,
        ["import", str(source), "--tenant", str(owner_of.tenant_id), "--report", str(report)],
        env=cli_env(db_file),
    )

    duplicates = sum(1 for n in range(101, 5001, 100))  # 49 rows repeat an earlier email
    created = 5000 - len(bad_rows) - duplicates
    assert result.exit_code == 1, result.output  # some rows failed
    assert "5000/5000" in result.stderr  # the progress bar's last state
    assert "E-mail → email" in result.stderr and "City → address.city" in result.stderr
    (counts,) = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert [c.strip() for c in counts.strip("│").split("│")] == [
        "5000",
        str(created),
        str(duplicates),
        str(len(bad_rows)),
    ]

    stored = stored_leads(db_file, owner_of.tenant_id)
    assert len(stored) == created
    first = next(lead for lead in stored if lead.email == "lead1@example.com")
    assert first.first_name == "First1" and first.address.city == "Springfield"
    assert first.tags == ["a", "b"] and first.user_id == owner_of.id
    assert next(lead for lead in stored if lead.email == "lead7@example.com").notes == "two\nlines"

    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert [line["row"] for line in lines] == sorted(bad_rows)
    # Line numbers count the header and the two-line cell of row 7.
    assert [line["line"] for line in lines] == [n + 2 for n in sorted(bad_rows)]
    assert lines[0]["errors"][0]["field"] == "email"
    assert lines[0]["errors"][0]["column"] == "E-mail"
    assert lines[0]["values"]["E-mail"] == "not-an-email"

    async def journal() -> int:
        return await DomainEvent.find(
            {"aggregate_type": "lead", "actor_id": Binary.from_uuid(owner_of.id)}
        ).count()

    assert (
        on_embedded_file(db_file, journal) == created
    )  # one journal event per lead, by the importer


def test_a_second_import_of_the_same_file_creates_nothing(
    tmp_path: Path, db_file: Path, owner_of: User
) -> None:
    source = write_csv(tmp_path / "a.csv", ["email"], [["x@example.com"], ["y@example.com"]])
    args = ["import", str(source), "--tenant", str(owner_of.tenant_id), "--json"]
    first = cli_runner().invoke(app, args, env=cli_env(db_file))
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) | {"report": None} == {
        "rows": 2,
        "created": 2,
        "duplicates": 0,
        "failed": 0,
        "report": None,
        "ignored_columns": [],
    }
    again = json.loads(cli_runner().invoke(app, args, env=cli_env(db_file)).stdout)
    assert (again["created"], again["duplicates"]) == (0, 2)


def test_import_maps_columns_explicitly_and_reports_as_csv(
    tmp_path: Path, db_file: Path, owner_of: User
) -> None:
    header = ["Listing", "Asking", "Beds", "Agent Phone", "Town", "Ignored"]
    rows = [
        ["MLS-1", "$350,000.50", "3", "+14155550123", "Oakland", "x"],
        ["MLS-2", "lots", "2", "", "Berkeley", ""],
        ["MLS-3", "100", "-1", "", "", ""],
    ]
    source = write_csv(tmp_path / "mls.csv", header, rows)
    report = tmp_path / "failed.csv"
    result = cli_runner().invoke(
        app,
        [
            "import",
            str(source),
            "--tenant",
            str(owner_of.tenant_id),
            "--type",
            "mls",
            "--map",
            "mls_id=Listing",
            "--map",
            "list_price=Asking",
            "--map",
            "address.city=Town",
            "--report",
            str(report),
        ],
        env=cli_env(db_file),
    )
    assert result.exit_code == 1, result.output
    assert "ignored columns: Ignored" in result.stderr
    (lead,) = stored_leads(db_file, owner_of.tenant_id)
    assert lead.mls_id == "MLS-1" and lead.address.city == "Oakland"  # type: ignore[attr-defined]
    assert lead.list_price_cents == 35_000_050  # type: ignore[attr-defined]
    assert lead.beds == 3  # type: ignore[attr-defined]
    assert lead.listing_agent.phone == "+14155550123"  # type: ignore[attr-defined]
    with report.open(newline="") as f:
        failed = list(csv.DictReader(f))
    assert [(r["row"], r["field"], r["column"]) for r in failed] == [
        ("2", "list_price", "Asking"),
        ("3", "beds", "Beds"),
    ]


def test_import_refuses_bad_arguments_before_touching_data(
    tmp_path: Path, db_file: Path, owner_of: User
) -> None:
    source = write_csv(tmp_path / "a.csv", ["Who"], [["x"]])
    tenant = ["--tenant", str(owner_of.tenant_id)]
    runner = cli_runner()
    nothing = runner.invoke(app, ["import", str(source), *tenant], env=cli_env(db_file))
    assert nothing.exit_code == 2 and "no column maps to a lead field" in nothing.stderr
    unknown = runner.invoke(
        app, ["import", str(source), *tenant, "--map", "nickname=Who"], env=cli_env(db_file)
    )
    assert unknown.exit_code == 2 and "unknown lead field 'nickname'" in unknown.stderr
    missing = runner.invoke(
        app, ["import", str(source), *tenant, "--map", "email=Mail"], env=cli_env(db_file)
    )
    assert missing.exit_code == 2 and "no column 'Mail'" in missing.stderr
    stranger = runner.invoke(
        app,
        ["import", str(source), "--tenant", str(uuid4()), "--map", "email=Who"],
        env=cli_env(db_file),
    )
    assert stranger.exit_code == 2 and "no tenant" in stranger.stderr
    latin = tmp_path / "latin.csv"
    latin.write_bytes("email,first_name\nzoe@example.com,Zoé\n".encode("latin-1"))
    undecodable = runner.invoke(app, ["import", str(latin), *tenant], env=cli_env(db_file))
    assert undecodable.exit_code == 2 and "pass --encoding" in undecodable.stderr
    assert stored_leads(db_file, owner_of.tenant_id) == []
    decoded = runner.invoke(
        app, ["import", str(latin), *tenant, "--encoding", "latin-1"], env=cli_env(db_file)
    )
    assert decoded.exit_code == 0, decoded.output
    (lead,) = stored_leads(db_file, owner_of.tenant_id)
    assert lead.first_name == "Zoé"


def test_import_acts_as_the_named_user_and_needs_a_member(
    tmp_path: Path, db_file: Path, owner_of: User
) -> None:
    async def colleagues() -> tuple[User, User]:
        from service.core import security

        made = []
        for name, role in (("mia", "member"), ("vic", "viewer")):
            user = User(
                tenant_id=owner_of.tenant_id,
                username=name,
                email=f"{name}@example.com",
                password_hash=await security.hash_password(CHEAP, PASSWORD),
                role=role,
            )
            made.append(await Repository(User, _ctx(owner_of)).create(user))
        return made[0], made[1]

    member, _ = on_embedded_file(db_file, colleagues)
    source = write_csv(tmp_path / "a.csv", ["email"], [["m@example.com"]])
    base = ["import", str(source), "--tenant", str(owner_of.tenant_id)]
    viewer = cli_runner().invoke(app, [*base, "--user", "VIC@example.com"], env=cli_env(db_file))
    assert viewer.exit_code == 2 and "member role" in viewer.stderr
    foreign = cli_runner().invoke(app, [*base, "--user", str(uuid4())], env=cli_env(db_file))
    assert foreign.exit_code == 2 and "no active user" in foreign.stderr
    done = cli_runner().invoke(app, [*base, "--user", "mia"], env=cli_env(db_file))
    assert done.exit_code == 0, done.output
    (lead,) = stored_leads(db_file, owner_of.tenant_id)
    assert lead.user_id == member.id and lead.created_by == member.id


def test_rows_are_built_as_the_api_takes_them() -> None:
    headers = ["Email", "Zip", "Baths", "Tags", "Type", "Segment"]
    mapping = column_mapping(headers, ["segments.tier=Segment"], auto=True)
    assert mapping == {
        "segments.tier": 5,
        "email": 0,
        "address.postal_code": 1,
        "baths": 2,
        "tags": 3,
        "type": 4,
    }
    row = build_row(["a@b.co ", "02134", "2.5", "x| y;", "MLS", "gold"], mapping, "generic")
    assert row == {
        "type": "mls",
        "email": "a@b.co",
        "address": {"postal_code": "02134"},  # text fields stay text: leading zeros kept
        "baths": 2.5,
        "tags": ["x", "y"],
        "segments": {"tier": "gold"},
    }
    assert FIELDS["list_price"] == "number" and FIELDS["beds"] == "integer"
    assert build_row(["", "", "", "", "", ""], mapping, "generic") == {"type": "generic"}


def test_deliver_needs_the_servers_key_and_stops_when_asked(db_file: Path) -> None:
    refused = cli_runner().invoke(
        app, ["deliver", "--seconds", "0.2"], env={**cli_env(db_file), "FERNET_KEY": None}
    )
    assert refused.exit_code == 2 and "FERNET_KEY" in refused.stderr
    key = Fernet.generate_key().decode()
    ran = cli_runner().invoke(
        app, ["deliver", "--seconds", "0.3"], env={**cli_env(db_file), "FERNET_KEY": key}
    )
    assert ran.exit_code == 0, ran.output
    assert "delivering webhooks" in ran.stderr
