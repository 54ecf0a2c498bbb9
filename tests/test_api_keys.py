"""API keys: owner/admin only, shown once, stored hashed, revocable, acting with their role."""

from __future__ import annotations

from typing import Any

import pytest
from bson import Binary

from documents.api_key import ApiKey
from documents.journal import DomainEvent
from service import api_keys
from service.auth import AuthCache, authenticate
from service.core import security
from service.core.errors import Unauthorized
from service.core.settings import Settings
from tests.support.helpers import Account, assert_problem


async def test_create_shows_the_key_once_and_stores_only_its_hash(owner: Account) -> None:
    response = await owner.client.post("/v1/api-keys", json={"name": "crm-sync"})
    assert response.status_code == 201, response.text
    body = response.json()
    key = body["key"]
    assert body["role"] == "member" and body["name"] == "crm-sync"  # role defaults to member
    assert len(key) >= 4 + 43 and key.startswith(body["prefix"])  # ≥ 32 random bytes
    assert "key_hash" not in body and response.headers["ETag"] == '"1"'
    raw = await ApiKey.get_pymongo_collection().find_one({"_id": Binary.from_uuid(_id(body))})
    assert raw is not None and raw["key_hash"] == security.hash_api_key(key)
    assert key not in str(raw)
    listed = await owner.client.get("/v1/api-keys")
    assert listed.status_code == 200 and [k["id"] for k in listed.json()["items"]] == [body["id"]]
    assert (
        key not in listed.text
        and "key_hash" not in listed.text
        and raw["key_hash"] not in listed.text
    )
    one = await owner.client.get(f"/v1/api-keys/{body['id']}")
    assert one.status_code == 200 and key not in one.text and "key" not in one.json()
    events = await DomainEvent.find({"aggregate_id": Binary.from_uuid(_id(body))}).to_list()
    assert raw["key_hash"] not in str([e.model_dump() for e in events])


def _id(body: dict[str, Any]) -> Any:
    from uuid import UUID

    return UUID(body["id"])


async def test_a_key_authenticates_with_its_role_and_tenant(
    owner: Account, stranger: Account, key_client: Any
) -> None:
    created = await owner.client.post("/v1/api-keys", json={"name": "reader", "role": "viewer"})
    client = key_client(created.json()["key"])
    listed = await client.get("/v1/users")
    assert listed.status_code == 200 and str(owner.id) in listed.text
    assert_problem(await client.get(f"/v1/users/{stranger.id}"), 404)
    assert_problem(await client.post("/v1/teams", json={"name": "x"}), 403)  # viewer: read only
    assert_problem(await client.get("/v1/api-keys"), 403)


async def test_changes_made_with_a_key_record_the_key_as_actor(
    owner: Account, member: Account, key_client: Any
) -> None:
    created = await owner.client.post("/v1/api-keys", json={"name": "ops", "role": "admin"})
    client = key_client(created.json()["key"])
    response = await client.patch(f"/v1/users/{member.id}", json={"role": "viewer"})
    assert response.status_code == 200, response.text
    event = (
        await DomainEvent.find({"aggregate_id": Binary.from_uuid(member.id)})
        .sort("-version")
        .first_or_none()
    )
    assert event is not None and str(event.actor_id) == created.json()["id"]
    assert event.actor_type == "api_key" and response.json()["updated_by"] == created.json()["id"]


async def test_revoked_and_unknown_keys_answer_401(owner: Account, key_client: Any) -> None:
    created = (await owner.client.post("/v1/api-keys", json={"name": "tmp"})).json()
    client = key_client(created["key"])
    assert (await client.get("/v1/users")).status_code == 200
    stale = await owner.client.delete(f"/v1/api-keys/{created['id']}", headers={"If-Match": '"7"'})
    assert_problem(stale, 412)
    assert (await owner.client.delete(f"/v1/api-keys/{created['id']}")).status_code == 204
    assert_problem(await client.get("/v1/users"), 401)
    assert_problem(await owner.client.delete(f"/v1/api-keys/{created['id']}"), 404)
    assert (await owner.client.get("/v1/api-keys")).json()["items"] == []
    revoked = await owner.client.get("/v1/api-keys", params={"include_deleted": True})
    assert revoked.json()["items"][0]["is_deleted"] is True
    assert_problem(await key_client("lik_" + "x" * 43).get("/v1/users"), 401)


async def test_only_owners_and_admins_manage_keys(
    owner: Account, member: Account, viewer: Account, make_account: Any
) -> None:
    admin: Account = await make_account(role="admin", tenant_of=owner)
    for account in (member, viewer):
        assert_problem(await account.client.post("/v1/api-keys", json={"name": "k"}), 403)
        assert_problem(await account.client.get("/v1/api-keys"), 403)
    owners_key = (
        await owner.client.post("/v1/api-keys", json={"name": "o", "role": "owner"})
    ).json()
    assert owners_key["role"] == "owner"
    assert_problem(
        await admin.client.post("/v1/api-keys", json={"name": "k", "role": "owner"}), 403
    )
    assert_problem(await admin.client.delete(f"/v1/api-keys/{owners_key['id']}"), 403)
    assert (
        await admin.client.post("/v1/api-keys", json={"name": "k", "role": "admin"})
    ).status_code == 201
    assert_problem(await member.client.delete(f"/v1/api-keys/{owners_key['id']}"), 403)


async def test_other_tenants_keys_are_invisible(owner: Account, stranger: Account) -> None:
    created = (await owner.client.post("/v1/api-keys", json={"name": "k"})).json()
    assert_problem(await stranger.client.get(f"/v1/api-keys/{created['id']}"), 404)
    assert_problem(await stranger.client.delete(f"/v1/api-keys/{created['id']}"), 404)
    assert (await stranger.client.get("/v1/api-keys")).json()["items"] == []
    assert (await owner.client.get(f"/v1/api-keys/{created['id']}")).status_code == 200


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 201},
        {"name": "k", "role": "superuser"},
        {"name": "k", "key_hash": "0" * 64},
        {"name": "k", "prefix": "lik_mine"},
    ],
)
async def test_bad_create_bodies_are_422(owner: Account, body: dict[str, Any]) -> None:
    assert_problem(await owner.client.post("/v1/api-keys", json=body), 422)


async def test_a_tenant_id_in_the_body_is_ignored(owner: Account, stranger: Account) -> None:
    response = await owner.client.post(
        "/v1/api-keys", json={"name": "k", "tenant_id": str(stranger.tenant_id)}
    )
    assert response.status_code == 201 and response.json()["tenant_id"] == str(owner.tenant_id)


async def test_revoking_evicts_the_cached_key(owner: Account, settings: Settings) -> None:
    doc, key = await api_keys.create_api_key(ctx=owner.ctx, name="cached")
    cache = AuthCache(60)
    ctx = await authenticate(settings=settings, cache=cache, bearer=None, api_key=key)
    assert ctx.actor_id == doc.id and ctx.actor_type == "api_key"
    await api_keys.revoke_api_key(ctx=owner.ctx, id=doc.id)
    with pytest.raises(Unauthorized):
        await authenticate(settings=settings, cache=cache, bearer=None, api_key=key)
