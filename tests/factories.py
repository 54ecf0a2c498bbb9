"""Factories for the resources tests set up over and over, created through the public API.

Each one posts as the given `Account`, asserts the create succeeded (a setup that fails is
reported at the setup, not as a puzzling failure later) and returns the created body. Tests
whose subject IS the create (validation, status codes, headers) keep their raw calls.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import httpx
from bson import Binary
from uuid6 import uuid7

from tests.support.helpers import Account


async def _created(account: Account, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await account.client.post(path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def make_lead(account: Account, **fields: Any) -> dict[str, Any]:
    """A lead created by `account` (generic unless `type` is given); returns its body."""
    return await _created(account, "/v1/leads", {"type": "generic", **fields})


async def make_campaign(account: Account, **fields: Any) -> dict[str, Any]:
    """A campaign created by `account` (a call campaign named "C" by default); returns its body."""
    return await _created(account, "/v1/campaigns", {"type": "call", "name": "C", **fields})


async def make_team(account: Account, **fields: Any) -> dict[str, Any]:
    """A team created by `account` (named "T" by default); returns its body."""
    return await _created(account, "/v1/teams", {"name": "T", **fields})


async def make_api_key(account: Account, **fields: Any) -> dict[str, Any]:
    """An API key created by `account` (named "k" by default); returns its body with the secret."""
    return await _created(account, "/v1/api-keys", {"name": "k", **fields})


async def attach_leads(account: Account, campaign_id: str, *lead_ids: str) -> None:
    """Attach `lead_ids` to the campaign as `account`, asserting the request succeeded."""
    response = await account.client.post(
        f"/v1/campaigns/{campaign_id}/leads", json={"lead_ids": list(lead_ids)}
    )
    assert response.status_code == 200, response.text


# -- a person with personal values everywhere (the privacy tests) ------------------------------

# Distinctive values: any stored byte string holding one of them (any case) is a leak.
FIRST, LAST = "Zebulonia", "Quaxtonberry"
EMAIL = "zebulonia.quaxton@privacy-example.com"
OLD_EMAIL = "zq.previous@privacy-example.com"
PHONE, PHONE_DIGITS = "+14155550199", "14155550199"
NEEDLES = [FIRST, LAST, EMAIL, OLD_EMAIL, PHONE_DIGITS, "Wistfulmoor Lane", "call-recording-xq"]


async def make_person(client: httpx.AsyncClient) -> dict[str, Any]:
    """A lead with a history, campaign link and touchpoints carrying the person's values.

    Takes a client, not an `Account`: one test runs it on an app of its own.
    """
    lead = await client.post(
        "/v1/leads",
        json={
            "type": "generic",
            "first_name": FIRST,
            "last_name": LAST,
            "email": OLD_EMAIL,
            "phone": PHONE,
            "company": "Quaxtonberry Holdings",
            "notes": f"{FIRST} prefers evenings",
            "address": {"line1": "12 Wistfulmoor Lane", "city": "Springfield"},
        },
    )
    assert lead.status_code == 201, lead.text
    lead_id = lead.json()["id"]
    patched = await client.patch(f"/v1/leads/{lead_id}", json={"email": EMAIL})
    assert patched.status_code == 200, patched.text
    campaign = (await client.post("/v1/campaigns", json={"type": "call", "name": "C"})).json()
    attached = await client.post(
        f"/v1/campaigns/{campaign['id']}/leads", json={"lead_ids": [lead_id]}
    )
    assert attached.status_code == 200, attached.text
    refs = {"campaign_id": campaign["id"], "lead_id": lead_id}
    touchpoints = [
        {
            "type": "call",
            "outcome": "answered",
            "duration_seconds": 60,
            "notes": f"spoke with {FIRST} {LAST}",
            "recording_url": "https://rec.example.com/call-recording-xq.mp3",
        },
        {"type": "text", "body": f"Hi {FIRST}, call me at {PHONE}", "direction": "outbound"},
        {"type": "email", "subject": f"For {LAST}", "status": "opened"},
    ]
    for n, body in enumerate(touchpoints):
        r = await client.post(
            "/v1/events", json={**body, **refs}, headers={"Idempotency-Key": f"k-{n}"}
        )
        assert r.status_code == 201, r.text
    return {"lead_id": lead_id, "campaign_id": campaign["id"]}


def person_leaks(data: bytes) -> list[str]:
    """The person's values found in `data` (any case): each one is a leak."""
    low = data.lower()
    return [n for n in NEEDLES if n.lower().encode() in low]


# -- stored shapes of older releases (the migration tests) ------------------------------------


class Owned(Protocol):
    """Whose document it is: an `Account`, or just the two ids."""

    @property
    def id(self) -> UUID: ...

    @property
    def tenant_id(self) -> UUID: ...


SCHEDULED = datetime(2026, 5, 4, 9, 30, tzinfo=UTC)
POSTED = datetime(2026, 5, 20, 17, 0, tzinfo=UTC)


def shape_1_blog(account: Owned, **fields: Any) -> dict[str, Any]:
    """A blog exactly as the shape-1 code stored it."""
    scheduled_for = fields.pop("scheduled_for", None)
    posted = fields.pop("posted", None)
    now = datetime(2026, 4, 1, tzinfo=UTC)
    return {
        "_id": Binary.from_uuid(uuid7()),
        "tags": [],
        "segments": {},
        "tenant_id": Binary.from_uuid(account.tenant_id),
        "created_at": now,
        "updated_at": now,
        "created_by": Binary.from_uuid(account.id),
        "updated_by": Binary.from_uuid(account.id),
        "is_deleted": False,
        "deleted_at": None,
        "archived_at": None,
        "version": 1,
        "schema_version": 1,
        "user_id": Binary.from_uuid(account.id),
        "title": "Old post",
        "content": "",
        "status": "planned",
        "plan": {"scheduled_for": scheduled_for, "outline": ["intro"], "keywords": ["seo"]},
        "posted": posted,
        "calendar_at": scheduled_for or (posted or {}).get("posted_at"),
        **fields,
    }
