"""Journal values are stored with their BSON types; entries stored as strings are migrated."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

from bson import Binary
from typer.testing import CliRunner
from uuid6 import uuid7

from documents.journal import DomainEvent
from service.cli import app as cli
from service.core import journal
from tests.factories import make_campaign, make_lead
from tests.support.helpers import Account, on_embedded_file, stored_form


async def _entries(database: Any, aggregate_id: str) -> list[dict[str, Any]]:
    query = {"aggregate_id": Binary.from_uuid(UUID(aggregate_id))}
    return [e async for e in stored_form(database["domain_events"]).find(query).sort("version")]


def _changes(entry: dict[str, Any]) -> dict[str, Any]:
    return {c["field"]: c for c in entry["changes"]}


async def test_values_are_stored_typed_and_read_as_before(owner: Account, database: Any) -> None:
    r = await owner.client.post(
        "/v1/leads",
        json={
            "type": "mls",
            "mls_id": "AB-1",
            "email": "t@example.com",
            "list_price": 350000.5,
            "listed_at": "2026-01-02T03:04:05Z",
        },
    )
    assert r.status_code == 201, r.text
    lead = r.json()
    [created] = await _entries(database, lead["id"])
    changes = _changes(created)
    assert (
        isinstance(changes["tenant_id"]["new"], Binary) and changes["tenant_id"]["new"].subtype == 4
    )
    assert isinstance(changes["created_at"]["new"], datetime)
    assert isinstance(changes["listed_at"]["new"], datetime)
    assert changes["list_price_cents"]["new"] == 35000050  # money: integer cents
    assert changes["email"]["new"] == "t@example.com"  # text stays text
    # Readers see what they saw before: JSON values.
    history = (await owner.client.get(f"/v1/leads/{lead['id']}/history")).json()["items"]
    new = {c["field"]: c["new"] for c in history[0]["changes"]}
    assert new["tenant_id"] == str(owner.tenant_id)
    assert new["listed_at"] == "2026-01-02T03:04:05Z"
    assert new["created_at"].replace("000Z", "Z") == lead["created_at"].replace("000Z", "Z")
    version = await owner.client.get(f"/v1/leads/{lead['id']}/versions/1")
    assert version.status_code == 200 and version.json()["listed_at"] == lead["listed_at"]
    # The bulk path stores the same types.
    bulk = await owner.client.post(
        "/v1/leads/bulk", json={"leads": [{"type": "generic", "email": "b@example.com"}]}
    )
    assert bulk.status_code == 200, bulk.text
    listed = await owner.client.get("/v1/leads", params={"q": "b@example.com"})
    [row] = listed.json()["items"]
    [bulk_created] = await _entries(database, row["id"])
    assert isinstance(_changes(bulk_created)["created_at"]["new"], datetime)


def test_typed_changes_follow_the_schema_only() -> None:
    changes = [
        {"field": "notes", "old": None, "new": "2026-01-02T03:04:05Z"},  # text, not a date
        {"field": "user_id", "old": None, "new": str(uuid7())},
        {"field": "address", "old": {"city": "x"}, "new": None},
        {"field": "segments.k", "old": None, "new": "0190a5b4-7c1e-7d3a-9f00-6a1b2c3d4e5f"},
    ]
    typed = journal.typed_changes("lead", changes)
    assert typed[0]["new"] == "2026-01-02T03:04:05Z"
    assert isinstance(typed[1]["new"], Binary)
    assert typed[2]["old"] == {"city": "x"}
    assert typed[3]["new"] == changes[3]["new"]
    assert journal.typed_changes("lead", typed) == typed  # idempotent


async def test_existing_string_entries_are_migrated(owner: Account, database: Any) -> None:
    lead_id = (await make_lead(owner, email="m@example.com"))["id"]
    [entry] = await _entries(database, lead_id)
    # As an older release stored it: every value a JSON string.
    old = [
        {
            **c,
            "new": str(c["new"].as_uuid())
            if isinstance(c["new"], Binary)
            else (c["new"].isoformat() if isinstance(c["new"], datetime) else c["new"]),
        }
        for c in entry["changes"]
    ]
    await database["domain_events"].update_one({"_id": entry["_id"]}, {"$set": {"changes": old}})
    seen, changed = await journal.retype_journal(batch_size=2)
    assert seen >= 2 and changed == 1
    [migrated] = await _entries(database, lead_id)
    assert isinstance(_changes(migrated)["created_at"]["new"], datetime)
    assert isinstance(_changes(migrated)["tenant_id"]["new"], Binary)
    assert (await journal.retype_journal())[1] == 0  # idempotent
    history = await owner.client.get(f"/v1/leads/{lead_id}/history")
    assert history.json()["items"][0]["changes"]


async def test_daily_read_model_day_is_a_bson_date(owner: Account, database: Any) -> None:
    campaign = await make_campaign(owner)
    lead = await make_lead(owner, email="d@example.com")
    refs = {"campaign_id": campaign["id"], "lead_id": lead["id"]}
    attached = await owner.client.post(
        f"/v1/campaigns/{campaign['id']}/leads", json={"lead_ids": [lead["id"]]}
    )
    assert attached.status_code == 200
    event = await owner.client.post(
        "/v1/events",
        json={"type": "call", "outcome": "answered", "occurred_at": "2024-05-01T10:00:00Z", **refs},
    )
    assert event.status_code == 201, event.text
    r = await owner.client.get(
        "/v1/read-models/analytics", params={"since": "2024-05-01", "until": "2024-05-02"}
    )
    assert r.status_code == 200, r.text
    assert r.json()["items"] == [
        {"day": "2024-05-01", "channel": "call", "events": 1, "leads_touched": 1}
    ]
    [row] = [d async for d in database["read_analytics_daily"].find({})]
    assert isinstance(row["day"], datetime)
    assert row["day"].replace(tzinfo=None) == datetime(2024, 5, 1)


def test_retype_journal_command_on_an_embedded_file(tmp_path: Path) -> None:
    path = tmp_path / "lead_ignite.embedded"
    tenant = uuid7()

    async def seed() -> None:
        # An entry as an older release stored it: the tenant id and the time as text.
        await DomainEvent.get_pymongo_collection().insert_one(
            {
                "_id": Binary.from_uuid(uuid7()),
                "tenant_id": Binary.from_uuid(tenant),
                "aggregate_type": "tenant",
                "aggregate_id": Binary.from_uuid(tenant),
                "version": 1,
                "event_type": "tenant.created",
                "actor_id": None,
                "actor_type": "system",
                "occurred_at": datetime.now(UTC),
                "changes": [
                    {"field": "created_at", "old": None, "new": "2024-05-01T00:00:00Z"},
                    {"field": "id", "old": None, "new": str(tenant)},
                    {"field": "name", "old": None, "new": "Org"},
                ],
                "seq": None,
            }
        )

    async def stored() -> list[Any]:
        raw = await stored_form(DomainEvent.get_pymongo_collection()).find_one({})
        return [c["new"] for c in raw["changes"]]

    on_embedded_file(path, seed)
    env = {"EMBEDDED_DB_PATH": str(path), "MONGODB_URL": None}
    result = CliRunner().invoke(cli, ["retype-journal"], env=env)
    assert result.exit_code == 0, result.output
    assert "1 entries read, 1 rewritten" in result.stdout
    created, id_, name = on_embedded_file(path, stored)
    assert created == datetime(2024, 5, 1, tzinfo=UTC)
    assert id_ == Binary.from_uuid(tenant) and name == "Org"
    again = CliRunner().invoke(cli, ["retype-journal"], env=env)
    assert "0 rewritten" in again.stdout
