"""The first hour with the service (issue 29): valid phones only, errors in plain words.

Impossible phone numbers are refused on every path that stores one (create, patch, bulk, the
CSV import); 422s carry no library wording and name a field by its JSON path only.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from documents.base import normalize_phone
from documents.tenant import Tenant
from documents.user import User
from service.cli import app
from service.core.journal_view import api_changes
from service.core.repository import Repository
from service.core.settings import DEV_JWT_SECRET_SUFFIX, Settings
from tests.support.helpers import (
    Account,
    assert_problem,
    cli_env,
    cli_runner,
    stored_leads,
    write_csv,
)
from tests.support.problem_audit import leaks
from tests.support.webhook_receiver import receiver, settings, subscribe, until, verified

# The webhook tests' fixture (fast loops).
__all__ = ["settings"]

IMPOSSIBLE = ["(000) 000-0001", "+10000000000", "(415) 555-01", "999 999 9999"]


# -- impossible phones -----------------------------------------------------------------------


@pytest.mark.parametrize("phone", IMPOSSIBLE)
async def test_create_refuses_an_impossible_phone(owner: Account, phone: str) -> None:
    response = await owner.client.post("/v1/leads", json={"type": "generic", "phone": phone})
    problem = assert_problem(response, 422)
    (error,) = problem["errors"]
    assert error["loc"] == ["body", "phone"]
    assert error["msg"].startswith("Not a valid phone number"), error
    assert not leaks(problem)
    listed = await owner.client.get("/v1/leads")
    assert listed.json()["items"] == []


async def test_a_phone_that_is_no_number_at_all_is_named_in_plain_words(owner: Account) -> None:
    response = await owner.client.post("/v1/leads", json={"type": "generic", "phone": "call me"})
    (error,) = assert_problem(response, 422)["errors"]
    assert error["msg"] == "Not a phone number: expected digits such as +1 415 555 0100."


async def test_validity_is_judged_in_the_tenant_region(owner: Account) -> None:
    tenant = await Repository(Tenant, owner.ctx).get(owner.ctx.tenant_id)
    await Repository(Tenant, owner.ctx).update(tenant, {"default_phone_region": "GB"})
    # A valid US number without +1 is no London number; with +1 it is fine anywhere.
    refused = await owner.client.post(
        "/v1/leads", json={"type": "generic", "phone": "(415) 555-0100"}
    )
    assert "region GB" in assert_problem(refused, 422)["errors"][0]["msg"]
    ok = await owner.client.post("/v1/leads", json={"type": "generic", "phone": "+1 415 555 0100"})
    assert ok.status_code == 201 and ok.json()["phone"] == "+14155550100"


async def test_patch_refuses_an_impossible_phone_and_keeps_the_stored_one(owner: Account) -> None:
    created = await owner.client.post(
        "/v1/leads", json={"type": "generic", "phone": "(415) 555-0100"}
    )
    url = f"/v1/leads/{created.json()['id']}"
    response = await owner.client.patch(url, json={"phone": "(000) 000-0000"})
    assert assert_problem(response, 422)["errors"][0]["loc"] == ["body", "phone"]
    agent = await owner.client.post(
        "/v1/leads",
        json={"type": "mls", "mls_id": "A1", "listing_agent": {"phone": "(415) 555-0101"}},
    )
    refused = await owner.client.patch(
        f"/v1/leads/{agent.json()['id']}", json={"listing_agent": {"phone": "000-000-0000"}}
    )
    assert assert_problem(refused, 422)["errors"][0]["loc"] == ["body", "listing_agent", "phone"]
    assert (await owner.client.get(url)).json()["phone"] == "+14155550100"


async def test_bulk_reports_impossible_phones_per_row_and_keeps_the_good_rows(
    owner: Account,
) -> None:
    rows: list[dict[str, Any]] = [
        {"type": "generic", "phone": "(415) 555-0100"},
        {"type": "generic", "phone": "(000) 000-0001"},
        {"type": "mls", "mls_id": "M1", "listing_agent": {"phone": "+10000000000"}},
        {"type": "generic", "email": "ok@example.com", "phone": "(000) 000-0001"},
        {"type": "generic", "phone": "+1 415 555 0101"},
    ]
    response = await owner.client.post("/v1/leads/bulk", json={"leads": rows})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["created"], body["duplicates"]) == (2, 0)
    assert [f["index"] for f in body["failed"]] == [1, 2, 3]
    locs = [f["errors"][0]["loc"] for f in body["failed"]]
    assert locs == [["phone"], ["listing_agent", "phone"], ["phone"]]
    assert all(f["errors"][0]["msg"].startswith("Not a valid phone") for f in body["failed"])


def test_phone_parsing_is_cached_per_distinct_value() -> None:
    normalize_phone.cache_clear()
    for _ in range(3):
        assert normalize_phone("(415) 555-0100", "US") == "+14155550100"
        with pytest.raises(ValueError, match="Not a valid phone number"):
            normalize_phone("(000) 000-0001", "US")
    info = normalize_phone.cache_info()
    # A refusal raises, so only valid values are cached; they are parsed once.
    assert info.hits == 2 and info.misses == 4


# -- errors in plain words, one location per field -------------------------------------------


async def test_an_email_error_is_ours_and_located_by_its_json_path(owner: Account) -> None:
    response = await owner.client.post("/v1/leads", json={"type": "generic", "email": "nope"})
    problem = assert_problem(response, 422)
    (error,) = problem["errors"]
    assert error["loc"] == ["body", "email"]  # not ["body", "generic", "email"]
    assert error["msg"] == "Not a valid email address: expected something like name@example.com."
    assert not leaks(problem)
    nested = await owner.client.post(
        "/v1/leads", json={"type": "mls", "mls_id": "X", "listing_agent": {"email": "a@"}}
    )
    assert assert_problem(nested, 422)["errors"][0]["loc"] == ["body", "listing_agent", "email"]


async def test_the_same_field_has_the_same_loc_in_create_patch_and_bulk(owner: Account) -> None:
    created = await owner.client.post("/v1/leads", json={"type": "generic", "email": "x@"})
    phone = await owner.client.post("/v1/leads", json={"type": "generic", "phone": "1"})
    assert assert_problem(created, 422)["errors"][0]["loc"] == ["body", "email"]
    assert assert_problem(phone, 422)["errors"][0]["loc"] == ["body", "phone"]
    lead = await owner.client.post("/v1/leads", json={"type": "generic", "phone": "4155550100"})
    patched = await owner.client.patch(f"/v1/leads/{lead.json()['id']}", json={"email": "x@"})
    assert assert_problem(patched, 422)["errors"][0]["loc"] == ["body", "email"]
    bulk = await owner.client.post(
        "/v1/leads/bulk",
        json={"leads": [{"type": "generic", "email": "x@"}, {"type": "generic", "phone": "1"}]},
    )
    assert [f["errors"][0]["loc"] for f in bulk.json()["failed"]] == [["email"], ["phone"]]
    dates = {"starts_at": "2026-01-02T00:00:00Z", "ends_at": "2026-01-01T00:00:00Z"}
    campaign = await owner.client.post(
        "/v1/campaigns", json={"type": "email", "name": "x", "subject": "s", **dates}
    )
    (error,) = assert_problem(campaign, 422)["errors"]
    assert error["loc"] == ["body"], error  # the whole object, not ["body", "email"] (its tag)


async def test_a_missing_type_lists_the_valid_values(owner: Account) -> None:
    lead = await owner.client.post("/v1/leads", json={"email": "a@example.com"})
    (error,) = assert_problem(lead, 422)["errors"]
    assert error["loc"] == ["body", "type"]
    assert "'generic', 'mls'" in error["msg"], error
    campaign = await owner.client.post("/v1/campaigns", json={"name": "x"})
    assert "'call'" in assert_problem(campaign, 422)["errors"][0]["msg"]
    bulk = await owner.client.post("/v1/leads/bulk", json={"leads": [{"email": "a@b.co"}]})
    (failure,) = bulk.json()["failed"]
    assert failure["errors"][0]["loc"] == ["type"]
    assert "'generic', 'mls'" in failure["errors"][0]["msg"]


@pytest.mark.parametrize(
    ("near", "words"),
    [
        ("37.77,-122.42", "are the two swapped?"),
        ("here", "two numbers separated by a comma"),
        ("-190,10", "the longitude must be between -180 and 180"),
        ("10,195", "the latitude must be between -90 and 90"),
    ],
)
async def test_a_wrong_near_is_explained_without_a_regex(
    owner: Account, near: str, words: str
) -> None:
    problem = assert_problem(await owner.client.get("/v1/leads", params={"near": near}), 422)
    (error,) = problem["errors"]
    assert error["loc"] == ["query", "near"] and words in error["msg"], error
    assert "^" not in error["msg"] and not leaks(problem)


async def test_patterns_are_explained_in_words(owner: Account) -> None:
    response = await owner.client.post(
        "/v1/leads", json={"type": "generic", "phone": "4155550100", "segments": {"a.b": "x"}}
    )
    problem = assert_problem(response, 422)
    assert problem["errors"][0]["msg"] == "Must not contain `$`, `.` or a NUL character."
    assert not leaks(problem)


def test_the_audit_catches_library_wording() -> None:
    for text in [
        "not a phone number: (1) The string supplied did not seem to be a phone number.",
        "value is not a valid email address: An email address must have an @-sign.",
        "String should match pattern '^[a-z]+$'",
    ]:
        assert leaks({"detail": "x", "errors": [{"loc": ["body"], "msg": text}]}), text


def test_the_csv_import_reports_impossible_phones(
    tmp_path: Path, db_file: Path, owner_of: User
) -> None:
    source = write_csv(
        tmp_path / "leads.csv",
        ["Phone", "Email"],
        [["(415) 555-0100", ""], ["(000) 000-0000", ""], ["(000) 000-0001", "b@example.com"]],
    )
    report = tmp_path / "failed.ndjson"
    args = ["import", str(source), "--tenant", str(owner_of.tenant_id), "--report", str(report)]
    result = cli_runner().invoke(app, [*args, "--json"], env=cli_env(db_file))
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout)["created"] == 1
    lines = [json.loads(line) for line in report.read_text().splitlines()]
    assert [line["row"] for line in lines] == [2, 3]
    for line in lines:
        (error,) = line["errors"]
        assert error["field"] == "phone" and error["column"] == "Phone"
        assert error["msg"].startswith("Not a valid phone number"), error
    assert [lead.phone for lead in stored_leads(db_file, owner_of.tenant_id)] == ["+14155550100"]


# -- history in API terms --------------------------------------------------------------------

INTERNAL = frozenset({"search_text", "search_tokens"})  # a lead's: never shown, journaled or not


async def test_history_feed_and_versions_speak_api_names_and_units(owner: Account) -> None:
    created = await owner.client.post(
        "/v1/leads", json={"type": "mls", "mls_id": "H1", "list_price": 850000}
    )
    url = f"/v1/leads/{created.json()['id']}"
    await owner.client.patch(url, json={"list_price": 900000.5})
    await owner.client.patch(url, json={"first_name": "Ana"})  # a searchable field
    history = (await owner.client.get(f"{url}/history")).json()["items"]
    first = {c["field"]: c["new"] for c in history[0]["changes"]}
    assert first["list_price"] == 850000.0
    assert not {"list_price_cents", *INTERNAL} & first.keys()  # stored form, internal
    assert history[1]["changes"] == [{"field": "list_price", "old": 850000.0, "new": 900000.5}]
    assert history[2]["changes"] == [{"field": "first_name", "old": None, "new": "Ana"}]
    assert (await owner.client.get(f"{url}/versions/1")).json()["list_price"] == 850000.0
    feed = (await owner.client.get("/v1/changes", params={"aggregate_type": "lead"})).json()
    assert [item["changes"] for item in feed["items"][-2:]] == [
        history[1]["changes"],
        history[2]["changes"],
    ]
    assert not any(name in str(feed) for name in ("list_price_cents", *INTERNAL))


def test_entries_journaled_with_the_derived_fields_hide_them() -> None:
    # Entries journaled before the derived fields were left out of the journal still hold
    # them: the API's view leaves them out as it leaves `GET` without them.
    changes = [
        {"field": "first_name", "old": None, "new": "Ana"},
        {"field": "search_text", "old": None, "new": "ana"},
        {"field": "search_tokens", "old": None, "new": ["ana"]},
    ]
    assert api_changes("lead", changes) == changes[:1]


async def test_nested_money_is_shown_in_major_units(owner: Account) -> None:
    assert (await owner.client.put("/v1/ai/config", json={"monthly_cost_limit": 12.5})).is_success
    feed = (await owner.client.get("/v1/changes", params={"aggregate_type": "user"})).json()
    assert feed["items"][-1]["changes"] == [
        {"field": "ai_config.monthly_cost_limit", "old": None, "new": 12.5}
    ]


def test_the_view_maps_names_inside_values_and_leaves_segments_alone() -> None:
    changes = [
        {"field": "billing", "old": None, "new": {"billing_history": [{"amount_cents": 4999}]}},
        {"field": "segments", "old": None, "new": {"amount_cents": "data"}},
    ]
    assert api_changes("user", changes) == [
        {"field": "billing", "old": None, "new": {"billing_history": [{"amount": 49.99}]}},
        {"field": "segments", "old": None, "new": {"amount_cents": "data"}},
    ]
    assert api_changes("campaign", changes) == changes


async def test_webhook_payloads_speak_api_names_and_units(owner: Account) -> None:
    with receiver() as rec:
        hook = await subscribe(owner, rec.url, ["lead.*"])
        await owner.client.post("/v1/leads", json={"type": "mls", "mls_id": "W1", "list_price": 1})
        await until(lambda: len(rec.ok()) >= 1)
        (body,) = verified(rec, hook["secret"])
    fields = {c["field"]: c["new"] for c in body["data"]["changes"]}
    assert fields["list_price"] == 1.0 and "list_price_cents" not in fields
    assert not INTERNAL & fields.keys()


# -- getting started ----------------------------------------------------------------------------


async def test_the_root_links_to_the_docs(client: httpx.AsyncClient) -> None:
    response = await client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert {body["docs"], body["redoc"], body["openapi"]} == {"/docs", "/redoc", "/openapi.json"}
    for link in ("docs", "redoc", "openapi"):
        assert (await client.get(body[link])).status_code == 200, link
    assert (await client.get("/v1/")).status_code == 404  # not part of the versioned API


def test_the_cli_takes_the_owner_email_for_tenant(
    tmp_path: Path, db_file: Path, owner_of: User
) -> None:
    source = write_csv(tmp_path / "a.csv", ["email"], [["x@example.com"]])
    by_email = ["import", str(source), "--tenant", "Owner@Example.com", "--json"]
    result = cli_runner().invoke(app, by_email, env=cli_env(db_file))
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["created"] == 1
    (lead,) = stored_leads(db_file, owner_of.tenant_id)
    assert lead.email == "x@example.com"
    unknown = cli_runner().invoke(app, [*by_email[:3], "nobody@example.com"], env=cli_env(db_file))
    assert unknown.exit_code == 2 and "no user with the e-mail" in unknown.stderr
    neither = cli_runner().invoke(app, [*by_email[:3], "owner"], env=cli_env(db_file))
    assert neither.exit_code == 2 and "id or its owner's e-mail" in neither.stderr
    pipeline = cli_runner().invoke(
        app,
        ["pipelines", "overview", "--tenant", "owner@example.com", "--json"],
        env=cli_env(db_file),
    )
    assert pipeline.exit_code == 0, pipeline.output
    encoded = base64.b64encode(owner_of.tenant_id.bytes).decode()  # Extended JSON's UUID
    assert encoded in pipeline.stdout


def _development(path: Path, **extra: Any) -> Settings:
    return Settings(app_env="development", mongodb_url=None, embedded_db_path=str(path), **extra)


def test_development_keeps_its_jwt_secret_beside_the_data_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    data = tmp_path / "data" / "lead_ignite.embedded"
    first = _development(data)
    kept = data.with_name(data.name + DEV_JWT_SECRET_SUFFIX)
    assert kept.read_text().strip() == first.jwt_secret
    assert kept.stat().st_mode & 0o777 == 0o600
    # A restart reads it back: tokens issued before it stay valid.
    assert _development(data).jwt_secret == first.jwt_secret
    assert _development(data, jwt_secret="s" * 32).jwt_secret == "s" * 32  # JWT_SECRET wins


def test_no_development_secret_outside_development(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JWT_SECRET", raising=False)
    data = tmp_path / "lead_ignite.embedded"
    kept = data.with_name(data.name + DEV_JWT_SECRET_SUFFIX)
    kept.write_text("k" * 48)  # even when a file is there, only development reads it
    test_settings = Settings(app_env="test", mongodb_url=None, embedded_db_path=str(data))
    assert test_settings.jwt_secret != "k" * 48
    with pytest.raises(ValueError, match="JWT_SECRET"):
        Settings(
            app_env="production",
            mongodb_url="mongodb://db",
            embedded_db_path=str(data),
            fernet_key=Fernet.generate_key().decode(),
        )
    on_mongodb = Settings(
        app_env="development", mongodb_url="mongodb://db", embedded_db_path=str(data)
    )
    assert on_mongodb.jwt_secret != "k" * 48  # beside the embedded file only
    kept.unlink()
    Settings(app_env="test", mongodb_url=None, embedded_db_path=str(data))
    assert not kept.exists()


ROOT = Path(__file__).resolve().parent.parent
QUICKSTART_MARK = "<!-- quickstart:"


def quickstart_script() -> str:
    """The README's quickstart block, as written (the fenced `sh` block after its marker)."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    after = readme[readme.index(QUICKSTART_MARK) :]
    block = re.search(r"```sh\n(.*?)```", after, re.S)
    assert block is not None, "the quickstart block is fenced as ```sh"
    return block.group(1)


def _json_values(text: str) -> list[Any]:
    decoder, values, at = json.JSONDecoder(), [], 0
    while at < len(text):
        if text[at].isspace():
            at += 1
            continue
        value, at = decoder.raw_decode(text, at)
        values.append(value)
    return values


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.skipif(shutil.which("curl") is None, reason="the quickstart's lines use curl")
def test_the_readme_quickstart_runs_as_written(tmp_path: Path) -> None:
    script = quickstart_script()
    assert "/v1/auth/token" in script and "-d username=" in script  # form-encoded login
    port = _free_port()
    env = {
        **os.environ,
        "APP_ENV": "development",
        "EMBEDDED_DB_PATH": str(tmp_path / "quickstart.embedded"),
        "MONGODB_URL": "",
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "64",
        "PASSWORD_HASH_PARALLELISM": "1",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("JWT_SECRET", None)
    env.pop("MONGODB_URL")
    server = subprocess.Popen(
        [sys.executable, "-m", "service.serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("the server did not start")
        run = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            env={**os.environ, "BASE": base},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    root, owner, lead, page = _json_values(run.stdout)  # curl prints them back to back
    assert root["docs"] == "/docs"
    assert owner["username"] == "ana"
    assert lead["phone"] == "+14155550100"
    assert [item["id"] for item in page["items"]] == [lead["id"]]
    # The development secret was kept beside the data file: a restart keeps the token valid.
    assert (tmp_path / f"quickstart.embedded{DEV_JWT_SECRET_SUFFIX}").exists()


def test_cli_help_shows_no_type_placeholder_for_flags() -> None:
    import typer

    commands = sorted(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    for args in [["--help"], *([c, "--help"] for c in commands)]:
        result = cli_runner().invoke(app, args, env={"COLUMNS": "200", "TERMINAL_WIDTH": "200"})
        assert result.exit_code == 0, args
        assert "<bool>" not in result.output and "BOOLEAN" not in result.output, args


def test_answers_from_another_transport_join_the_audit() -> None:
    from tests.support.problem_audit import AUDIT, audit_answer

    error = {"loc": ["body"], "msg": "String should match pattern '^a$'"}
    body = json.dumps({"detail": "x", "errors": [error]}).encode()
    audit_answer("POST", "http://t/v1/x", 422, [("content-type", "application/problem+json")], body)
    found = AUDIT.take()
    assert len(found) == 1 and "a raw regex" in found[0]
