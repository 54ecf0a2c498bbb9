"""`GET /v1/leads/{id}/data-export`: everything stored about the person, as a raw dump has it."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from bson import Binary

from tests.factories import make_person
from tests.support.helpers import Account, assert_problem, stored_form


def _as_json(value: Any) -> Any:
    """A raw stored value as the export writes it (UUIDs as text, dates ISO 8601 with Z)."""
    if isinstance(value, Binary) and value.subtype == 4:
        return str(value.as_uuid())
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, dict):
        return {
            ("id" if k == "_id" else k): _as_json(v)
            for k, v in value.items()
            if k not in ("_class_id", "revision_id")
        }
    if isinstance(value, list):
        return [_as_json(v) for v in value]
    return value


def _normal(value: Any) -> Any:
    # Microseconds print as 6 digits either way; equal instants compare equal as datetimes.
    if isinstance(value, str) and value.endswith("Z") and "T" in value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    return value


async def _raw(database: Any, collection: str, query: dict[str, Any]) -> list[dict[str, Any]]:
    return [_as_json(d) async for d in stored_form(database[collection]).find(query)]


async def test_export_matches_a_raw_dump(
    owner: Account, admin: Account, member: Account, stranger: Account, database: Any
) -> None:
    made = await make_person(owner.client)
    lead_id = made["lead_id"]
    key = Binary.from_uuid(UUID(lead_id))
    # A consent sub-document (added by the outreach work) is exported as stored.
    consent = {"email": {"status": "opted_in", "source": "form"}}
    await database["leads"].update_one({"_id": key}, {"$set": {"consent": consent}})

    assert_problem(await member.client.get(f"/v1/leads/{lead_id}/data-export"), 403)
    assert_problem(await stranger.client.get(f"/v1/leads/{lead_id}/data-export"), 404)
    assert_problem(await admin.client.get(f"/v1/leads/{uuid4()}/data-export"), 404)
    assert_problem(await admin.client.get("/v1/leads/nope/data-export"), 422)
    r = await admin.client.get(f"/v1/leads/{lead_id}/data-export")
    assert r.status_code == 200, r.text
    export = r.json()

    assert export["consent"] == consent
    (lead,) = await _raw(database, "leads", {"_id": key})
    assert _normal(export["lead"]) == _normal(lead)
    links = await _raw(database, "campaign_leads", {"lead_id": key})
    assert len(links) == 1
    assert _normal(export["campaign_memberships"]) == _normal(links)
    events = await _raw(database, "events", {"lead_id": key})
    assert len(events) == 3
    by_id = {e["id"]: e for e in events}
    assert {t["id"] for t in export["touchpoints"]} == set(by_id)
    for item in export["touchpoints"]:
        assert _normal(item) == _normal(by_id[item["id"]])
    journal = await _raw(database, "domain_events", {"aggregate_id": key})
    journal.sort(key=lambda e: e["version"])
    versions = [e["version"] for e in export["history"]]
    assert versions == list(range(1, len(journal) + 1)) and len(versions) >= 2
    assert _normal(export["history"]) == _normal(journal)


async def test_export_of_a_deleted_and_an_erased_lead(owner: Account) -> None:
    made = await make_person(owner.client)
    lead_id = made["lead_id"]
    await owner.client.delete(f"/v1/leads/{lead_id}")
    deleted = await owner.client.get(f"/v1/leads/{lead_id}/data-export")
    assert deleted.status_code == 200 and deleted.json()["lead"]["is_deleted"] is True
    assert (await owner.client.post(f"/v1/leads/{lead_id}/erase")).status_code == 200
    erased = (await owner.client.get(f"/v1/leads/{lead_id}/data-export")).json()
    assert erased["lead"]["erased_at"] is not None and erased["lead"]["email"] is None
    assert len(erased["touchpoints"]) == 3 and erased["history"][-1]["event_type"] == "lead.erased"
