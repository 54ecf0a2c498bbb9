"""Integrations: write-only encrypted credentials, connected_at, tenancy, soft delete."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from bson import Binary, json_util

from documents.integration import Integration
from documents.journal import DomainEvent
from service import integrations
from service.core.settings import Settings
from tests.support.helpers import Account, assert_problem, stored_form

SECRET = "sk_live_very-secret-token-123"


async def make_integration(account: Account, **body: Any) -> dict[str, Any]:
    response = await account.client.post("/v1/integrations", json={"type": "mailchimp", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def stored_text(integration_id: str) -> str:
    """The raw stored document and its journal, as text."""
    raw = await stored_form(Integration.get_pymongo_collection()).find_one(
        {"_id": Binary.from_uuid(UUID(integration_id))}
    )
    events = (
        await stored_form(DomainEvent.get_pymongo_collection())
        .find({"aggregate_id": Binary.from_uuid(UUID(integration_id))})
        .to_list(None)
    )
    return json_util.dumps([raw, events])


async def test_credentials_are_write_only_and_encrypted_at_rest(
    owner: Account, settings: Settings
) -> None:
    response = await owner.client.post(
        "/v1/integrations",
        json={"type": "mailchimp", "status": "connected", "credentials": {"api_key": SECRET}},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    assert SECRET not in response.text and "credentials" not in created
    assert created["has_credentials"] is True and created["connected_at"] is not None
    assert created["user_id"] == str(owner.id)

    for url in (f"/v1/integrations/{created['id']}", "/v1/integrations"):
        read = await owner.client.get(url)
        assert read.status_code == 200 and SECRET not in read.text
        assert "credentials_encrypted" not in read.text
    history = await owner.client.get(f"/v1/integrations/{created['id']}/history")
    assert SECRET not in history.text

    raw = await stored_text(created["id"])
    assert SECRET not in raw and "api_key" not in raw  # the whole credential map is sealed
    doc = await Integration.get(UUID(created["id"]))
    assert doc is not None and doc.credentials_encrypted is not None
    revealed = await integrations.reveal_credentials(ctx=owner.ctx, settings=settings, id=doc.id)
    assert revealed == {"api_key": SECRET}


async def test_patch_status_and_credentials(owner: Account, settings: Settings) -> None:
    created = await make_integration(owner)
    assert created["status"] == "pending" and created["connected_at"] is None
    assert created["has_credentials"] is False
    url = f"/v1/integrations/{created['id']}"
    response = await owner.client.patch(
        url, json={"status": "connected", "credentials": {"token": SECRET}}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "connected" and body["connected_at"] and body["has_credentials"]
    assert SECRET not in response.text and SECRET not in await stored_text(created["id"])
    assert response.headers["ETag"] == '"2"'

    cleared = await owner.client.patch(url, json={"credentials": None})
    assert cleared.json()["has_credentials"] is False
    assert (
        await integrations.reveal_credentials(
            ctx=owner.ctx, settings=settings, id=UUID(created["id"])
        )
        is None
    )
    assert_problem(await owner.client.patch(url, json={"status": None}), 422)
    assert_problem(
        await owner.client.patch(url, json={"name": "x"}, headers={"If-Match": '"1"'}), 412
    )


async def test_validation(owner: Account) -> None:
    bad = [
        {},
        {"type": "myspace"},
        {"type": "zapier", "status": "on"},
        {"type": "zapier", "credentials": {}},
        {"type": "zapier", "credentials": {"bad key": "v"}},
        {"type": "zapier", "credentials": {"k": ""}},
        {"type": "zapier", "credentials": {"k": {"nested": 1}}},
        {"type": "zapier", "credentials": {f"k{i}": "v" for i in range(21)}},
        {"type": "zapier", "connected_at": "2026-01-01T00:00:00Z"},
        {"type": "zapier", "credentials_encrypted": "x"},
    ]
    for body in bad:
        assert_problem(await owner.client.post("/v1/integrations", json=body), 422)


async def test_list_filters(owner: Account) -> None:
    a = await make_integration(owner, type="twilio", status="connected")
    b = await make_integration(owner, type="hubspot")
    listed = (await owner.client.get("/v1/integrations")).json()
    assert [i["id"] for i in listed["items"]] == [b["id"], a["id"]]
    by_type = (await owner.client.get("/v1/integrations", params={"type": "twilio"})).json()
    assert [i["id"] for i in by_type["items"]] == [a["id"]]
    by_status = (await owner.client.get("/v1/integrations", params={"status": "pending"})).json()
    assert [i["id"] for i in by_status["items"]] == [b["id"]]
    assert_problem(await owner.client.get("/v1/integrations", params={"type": "nope"}), 422)


async def test_cross_tenant_404_and_roles(
    owner: Account, stranger: Account, viewer: Account
) -> None:
    created = await make_integration(owner, credentials={"k": SECRET})
    url = f"/v1/integrations/{created['id']}"
    assert_problem(await stranger.client.get(url), 404)
    assert_problem(await stranger.client.patch(url, json={"name": "x"}), 404)
    assert_problem(await stranger.client.delete(url), 404)
    assert_problem(await stranger.client.post(f"{url}/restore"), 404)
    assert (await stranger.client.get("/v1/integrations")).json()["items"] == []
    assert (await viewer.client.get(url)).status_code == 200
    assert_problem(await viewer.client.post("/v1/integrations", json={"type": "zapier"}), 403)
    assert_problem(await viewer.client.delete(url), 403)


async def test_delete_is_soft_and_restorable(owner: Account) -> None:
    created = await make_integration(owner, credentials={"k": SECRET})
    url = f"/v1/integrations/{created['id']}"
    assert (await owner.client.delete(url)).status_code == 204
    assert_problem(await owner.client.get(url), 404)
    assert_problem(await owner.client.delete(url), 404)
    assert await Integration.get(UUID(created["id"])) is not None
    restored = await owner.client.post(f"{url}/restore")
    assert restored.status_code == 200 and restored.json()["has_credentials"] is True
    assert SECRET not in restored.text
