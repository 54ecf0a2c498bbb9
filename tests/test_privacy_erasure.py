"""`POST /v1/leads/{id}/erase`: the person's values leave every stored byte; counts stay."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import bson
import httpx
import pytest

from service.auth import register_owner
from service.core import security
from service.main import create_app
from tests.conftest import make_settings
from tests.factories import EMAIL, FIRST, LAST, make_lead, make_person, person_leaks
from tests.support.helpers import PASSWORD, Account, assert_problem, stored_form


async def _figures(client: httpx.AsyncClient, campaign_id: str) -> list[Any]:
    """Analytics, counts and read models a reviewer would compare before and after."""
    urls = [
        f"/v1/analytics/campaigns/{campaign_id}",
        "/v1/analytics/overview",
        f"/v1/read-models/campaign-stats/{campaign_id}",
        "/v1/read-models/analytics",
        "/v1/read-models/campaigns",
        f"/v1/campaigns/{campaign_id}",
    ]
    out = []
    for url in urls:
        r = await client.get(url)
        assert r.status_code == 200, (url, r.text)
        body = r.json()
        if isinstance(body, dict):
            body.pop("updated_at", None)
            body.pop("computed_at", None)
        out.append(body)
    return out


async def _stored_bytes(db: Any) -> bytes:
    """Every document of every collection, BSON-encoded as stored."""
    chunks = []
    for name in await db.list_collection_names():
        async for doc in stored_form(db[name]).find({}):
            chunks.append(bson.encode(doc))
    return b"".join(chunks)


async def test_erase_removes_every_stored_value_and_keeps_counts(
    owner: Account, admin: Account, member: Account, stranger: Account, database: Any
) -> None:
    made = await make_person(owner.client)
    lead_id, campaign_id = made["lead_id"], made["campaign_id"]
    assert person_leaks(await _stored_bytes(database))  # the probe finds them before
    deleted = await owner.client.delete(f"/v1/leads/{lead_id}")
    assert deleted.status_code in (200, 204), deleted.text
    before = await _figures(owner.client, campaign_id)

    assert_problem(await member.client.post(f"/v1/leads/{lead_id}/erase"), 403)
    assert_problem(await stranger.client.post(f"/v1/leads/{lead_id}/erase"), 404)
    assert_problem(await admin.client.post(f"/v1/leads/{uuid4()}/erase"), 404)
    assert_problem(await admin.client.post("/v1/leads/not-a-uuid/erase"), 422)
    r = await admin.client.post(f"/v1/leads/{lead_id}/erase")
    assert r.status_code == 200, r.text
    assert r.json().keys() == {"id", "erased_at"} and r.json()["id"] == lead_id
    again = await admin.client.post(f"/v1/leads/{lead_id}/erase")
    assert again.status_code == 200 and again.json() == r.json()

    assert person_leaks(await _stored_bytes(database)) == []
    assert await _figures(owner.client, campaign_id) == before

    assert_problem(await owner.client.get(f"/v1/leads/{lead_id}"), 404)
    tomb = await owner.client.get(f"/v1/leads/{lead_id}", params={"include_deleted": "true"})
    assert tomb.status_code == 200, tomb.text
    body = tomb.json()
    assert body["erased_at"] == r.json()["erased_at"] and body["is_deleted"] is True
    assert body["email"] is body["phone"] is body["first_name"] is body["notes"] is None
    # History keeps that changes happened, not the values; every version still rebuilds.
    history = (await owner.client.get(f"/v1/leads/{lead_id}/history")).json()["items"]
    assert [e["event_type"] for e in history][-1] == "lead.erased"
    emails = [c for e in history for c in e["changes"] if c["field"] == "email"]
    assert emails and all(c["old"] is None and c["new"] is None for c in emails)
    for n in range(1, body["version"] + 1):
        version = await owner.client.get(f"/v1/leads/{lead_id}/versions/{n}")
        assert version.status_code == 200, version.text
        assert version.json()["email"] is None
    restored = await owner.client.post(f"/v1/leads/{lead_id}/restore")
    assert "erased" in assert_problem(restored, 409)["detail"]
    changes = await owner.client.get("/v1/changes")
    assert changes.status_code == 200
    assert not person_leaks(changes.content)
    listed = await owner.client.get("/v1/events", params={"campaign_id": campaign_id})
    assert listed.status_code == 200 and len(listed.json()["items"]) == 3  # counts stay
    assert not person_leaks(listed.content)
    # A replayed idempotent request answers the redacted touchpoint.
    replay = await owner.client.post(
        "/v1/events",
        json={
            "type": "email",
            "subject": f"For {LAST}",
            "status": "opened",
            "campaign_id": campaign_id,
            "lead_id": lead_id,
        },
        headers={"Idempotency-Key": "k-2"},
    )
    assert not person_leaks(replay.content)


async def test_erase_a_live_lead_and_its_merged_sources(owner: Account) -> None:
    target = await make_lead(owner, email="target@example.com")
    source = await make_lead(owner, email=EMAIL, first_name=FIRST)
    tid, sid = target["id"], source["id"]
    merged = await owner.client.post(f"/v1/leads/{tid}/merge", json={"source_ids": [sid]})
    assert merged.status_code == 200, merged.text
    r = await owner.client.post(f"/v1/leads/{tid}/erase")
    assert r.status_code == 200, r.text
    for id in (tid, sid):
        lead = (
            await owner.client.get(f"/v1/leads/{id}", params={"include_deleted": "true"})
        ).json()
        assert lead["erased_at"] is not None and lead["first_name"] is None, lead
    history = await owner.client.get(f"/v1/leads/{sid}/history")
    assert FIRST not in history.text and EMAIL not in history.text
    # The freed keys can be used by a new lead.
    again = await owner.client.post("/v1/leads", json={"type": "generic", "email": EMAIL})
    assert again.status_code == 201, again.text


@pytest.mark.embedded_only
async def test_no_byte_of_the_embedded_file_holds_erased_values(tmp_path: Path) -> None:
    """On disk: the snapshot file and everything next to it, after a close (and a compaction)."""
    path = tmp_path / "data" / "lead_ignite.db"
    path.parent.mkdir()
    settings = make_settings().model_copy(update={"embedded_db_path": str(path)})
    app = create_app(settings=settings)
    async with app.router.lifespan_context(app):
        user = await register_owner(
            settings=settings,
            username="fileowner",
            email="fileowner@example.com",
            password=PASSWORD,
            organization_name="File Org",
        )
        token, _ = security.create_access_token(
            settings, user_id=user.id, tenant_id=user.tenant_id, role=user.role
        )
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            headers={"Authorization": f"Bearer {token}"},
        ) as client:
            made = await make_person(client)
            before = await _figures(client, made["campaign_id"])
            snapshotter = app.state.database.snapshotter
            assert snapshotter is not None
            await snapshotter.save()  # the values are on disk before the erasure
            assert person_leaks(path.read_bytes())
            r = await client.post(f"/v1/leads/{made['lead_id']}/erase")
            assert r.status_code == 200, r.text
            assert person_leaks(await _stored_bytes(app.state.database.db)) == []
            after = await _figures(client, made["campaign_id"])
    # Closed: the last snapshot is written whole (no earlier image or log stays behind).
    files = [p for p in path.parent.rglob("*") if p.is_file()]
    assert path in files
    for file in files:
        assert person_leaks(file.read_bytes()) == [], file
    # A live lead was erased: it left the live counts as a DELETE would, nothing else moved.
    assert after[0]["events_by_type"] == before[0]["events_by_type"]
    assert after[0]["leads_total"] == before[0]["leads_total"] - 1
    assert after[1] == before[1]  # the overview counts touchpoints
