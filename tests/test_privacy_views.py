"""Analyst views: no secret, hash, encrypted field, search text or personal value gets through.

The embedded backend has no views: each view's pipeline runs here as an aggregation over its
collection (what a view is), and `--apply` is refused. Creating the views and the role runs on
a real server only (the `real_mongodb` test).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import uuid4

import bson
import pytest
from bson import Binary, json_util
from typer.testing import CliRunner

from service.analyst_views import ROLE, VIEWS, apply_views, mongosh_commands
from service.cli import app as cli
from service.cli.pipelines import PIPELINES, Params, shell
from tests.factories import NEEDLES, make_person, person_leaks
from tests.support.helpers import Account, stored_form

SECRET_NAMES = (
    "password_hash",
    "key_hash",
    "token_hash",
    "secret_encrypted",
    "credentials_encrypted",
    "search_text",
    "two_factor_auth",
    "pending_event",
)


async def _view_rows(database: Any) -> dict[str, list[dict[str, Any]]]:
    out = {}
    for view in VIEWS:
        cursor = await stored_form(database[view.source]).aggregate(view.pipeline)
        out[view.name] = [row async for row in cursor]
    return out


@pytest.mark.usefixtures("member")
async def test_views_leave_out_secrets_and_personal_values(owner: Account, database: Any) -> None:
    await make_person(owner.client)
    # Something in every secret-holding collection: an API key, a webhook with its secret.
    key = await owner.client.post("/v1/api-keys", json={"name": "k", "role": "member"})
    assert key.status_code == 201, key.text
    hook = await owner.client.post(
        "/v1/webhooks", json={"url": "https://hooks.example.com/x", "event_types": ["lead.*"]}
    )
    assert hook.status_code == 201, hook.text
    assert person_leaks(
        b"".join([bson.encode(d) async for d in stored_form(database["leads"]).find()])
    )

    rows = await _view_rows(database)
    assert {name for name, found in rows.items() if not found} == set()
    data = b"".join(bson.encode(row) for found in rows.values() for row in found)
    assert person_leaks(data) == [], "a personal value reaches an analyst view"
    documents = b"".join(
        bson.encode(row)
        for name, found in rows.items()
        if name != "analyst_journal"
        for row in found
    )
    for name in SECRET_NAMES:
        assert name.encode() not in documents, name
    # The journal names changed secret fields (that a change happened), never a value.
    for entry in rows["analyst_journal"]:
        for change in entry["changes"]:
            if any(s in change["field"] for s in (*SECRET_NAMES, "email", "username")):
                assert change["old"] is None and change["new"] is None, change
    users = rows["analyst_users"]
    assert all("email" not in u and "username" not in u for u in users)
    assert {u["role"] for u in users} == {"owner", "member"}
    # The journal keeps what changed and its typed, harmless values.
    journal = rows["analyst_journal"]
    lead_created = next(e for e in journal if e["event_type"] == "lead.created")
    fields = {c["field"]: c for c in lead_created["changes"]}
    assert fields["email"]["new"] is None and fields["status"]["new"] == "new"
    assert fields["type"]["new"] == "generic"


def test_views_command_prints_the_views_and_the_role() -> None:
    printed = CliRunner().invoke(cli, ["views"])
    assert printed.exit_code == 0, printed.output
    text = printed.stdout
    assert text == mongosh_commands("lead_ignite") + "\n"
    for view in VIEWS:
        assert f'db.createView("{view.name}", "{view.source}"' in text
        assert f'"collection": "{view.name}"' in text
    assert f'db.createRole({{role: "{ROLE}"' in text and "passwordPrompt()" in text
    # Only `find`, only on the views.
    assert text.count('"find"') == len(VIEWS) and '"insert"' not in text


def test_apply_is_refused_on_the_embedded_backend(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.delenv("MONGODB_URL", raising=False)
    monkeypatch.setenv("EMBEDDED_DB_PATH", str(tmp_path / "views.db"))
    result = CliRunner().invoke(cli, ["views", "--apply"])
    assert result.exit_code == 2
    assert "no views" in result.output


@pytest.mark.real_mongodb
async def test_views_are_created_and_read_on_a_real_server(owner: Account, database: Any) -> None:
    await make_person(owner.client)
    created = await apply_views(database, kind="mongodb")
    assert created == [v.name for v in VIEWS]
    assert await apply_views(database, kind="mongodb") == created  # re-run safe
    for view in VIEWS:
        rows = [r async for r in database[view.name].find({})]
        assert not person_leaks(b"".join(bson.encode(r) for r in rows)), view.name
    assert NEEDLES


def test_pipelines_print_ids_and_dates_as_mongosh_reads_them() -> None:
    tenant = uuid4()
    args = ["pipelines", "overview", "--tenant", str(tenant)]
    result = CliRunner().invoke(cli, [*args, "--since", "2024-05-01", "--until", "2024-05-03"])
    assert result.exit_code == 0, result.output
    text = result.stdout
    assert f'UUID("{tenant}")' in text and 'ISODate("2024-05-01T00:00:00.000Z")' in text
    assert "$binary" not in text and "EJSON" not in text and '"$date"' not in text
    # The statement reads back as the pipeline the service runs (mongosh's constructors as
    # Extended JSON).
    body = text.split(".aggregate(", 1)[1].rsplit(")", 1)[0]
    ejson = re.sub(r'UUID\("([^"]+)"\)', r'{"$uuid": "\1"}', body)
    ejson = re.sub(r'ISODate\("([^"]+)"\)', r'{"$date": "\1"}', ejson)
    stages = json_util.loads(ejson)
    _, expected = PIPELINES["overview"].build(
        Params(
            tenant=tenant,
            since=datetime(2024, 5, 1, tzinfo=UTC),
            until=datetime(2024, 5, 3, tzinfo=UTC),
        )
    )
    assert json_util.dumps(stages) == json_util.dumps(expected)


def test_shell_syntax_of_other_values() -> None:
    assert shell({"a": [], "b": {}, "c": None, "d": True}) == (
        '{\n  "a": [],\n  "b": {},\n  "c": null,\n  "d": true\n}'
    )
    assert shell(Binary(b"\x01\x02", 0)) == 'BinData(0, "AQI=")'
