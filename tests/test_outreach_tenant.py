"""Tenant settings: `GET/PATCH /v1/tenant` (time zone, quiet hours, retention), journaled."""

from __future__ import annotations

import pytest
from bson import Binary

from documents.journal import DomainEvent
from tests.support.helpers import Account, assert_problem


async def test_defaults(owner: Account, viewer: Account) -> None:
    response = await viewer.client.get("/v1/tenant")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["id"] == str(owner.tenant_id) and body["default_phone_region"] == "US"
    assert body["time_zone"] is None
    assert body["quiet_hours"] == {"start": "08:00", "end": "21:00"}
    assert body["retention"] == {"erase_deleted_after_days": None}


async def test_admin_changes_settings_and_it_is_journaled(owner: Account, admin: Account) -> None:
    change = {
        "time_zone": "America/Chicago",
        "quiet_hours": {"start": "09:00", "end": "20:30"},
        "retention": {"erase_deleted_after_days": 30},
    }
    response = await admin.client.patch("/v1/tenant", json=change)
    assert response.status_code == 200, response.text
    body = response.json()
    assert {k: body[k] for k in change} == change and body["version"] == 2
    assert response.headers["etag"] == '"2"'
    events = await DomainEvent.find(
        {"aggregate_id": Binary.from_uuid(owner.tenant_id), "version": 2}
    ).to_list()
    assert len(events) == 1 and events[0].aggregate_type == "tenant"
    cleared = await admin.client.patch("/v1/tenant", json={"time_zone": None})
    assert cleared.status_code == 200 and cleared.json()["time_zone"] is None
    again = await owner.client.get("/v1/tenant")
    assert again.json()["retention"] == {"erase_deleted_after_days": 30}


async def test_member_cannot_change(member: Account) -> None:
    assert_problem(await member.client.patch("/v1/tenant", json={"name": "X"}), 403)


@pytest.mark.parametrize(
    "change",
    [
        {"time_zone": "Mars/Olympus"},
        {"time_zone": ""},
        {"quiet_hours": {"start": "21:00", "end": "08:00"}},
        {"quiet_hours": {"start": "8:00", "end": "21:00"}},
        {"quiet_hours": {"start": "08:00", "end": "24:00"}},
        {"retention": {"erase_deleted_after_days": 0}},
        {"retention": {"erase_deleted_after_days": True}},
        {"retention": {"days": 3}},
        {"default_phone_region": "usa"},
        {"name": None},
        {"unknown": 1},
    ],
)
async def test_bad_settings_are_422(owner: Account, change: dict[str, object]) -> None:
    assert_problem(await owner.client.patch("/v1/tenant", json=change), 422)


async def test_stale_if_match_is_412(owner: Account) -> None:
    response = await owner.client.patch(
        "/v1/tenant", json={"name": "Renamed"}, headers={"If-Match": '"7"'}
    )
    assert_problem(response, 412)


async def test_tenants_are_separate(owner: Account, stranger: Account) -> None:
    await owner.client.patch("/v1/tenant", json={"time_zone": "Europe/Paris"})
    other = await stranger.client.get("/v1/tenant")
    assert other.json()["id"] == str(stranger.tenant_id) and other.json()["time_zone"] is None
