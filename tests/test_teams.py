"""Teams, members and invitations: roles, tenancy, journaling and the token's one use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import Binary

from documents.journal import DomainEvent
from documents.team import Invitation
from documents.tenant import Tenant
from documents.user import User
from service.core import security
from tests.support.helpers import Account, assert_problem

PASSWORD = "a-long-password-42"


async def new_team(account: Account, name: str = "Listings") -> dict[str, Any]:
    response = await account.client.post("/v1/teams", json={"name": name})
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


async def invite(account: Account, team_id: str, email: str, **extra: Any) -> httpx.Response:
    return await account.client.post(
        f"/v1/teams/{team_id}/invitations", json={"email": email, **extra}
    )


async def register(client: httpx.AsyncClient, email: str, token: str, **extra: Any) -> Any:
    body = {"username": email.split("@")[0], "email": email, "password": PASSWORD}
    return await client.post("/v1/auth/register", json={**body, "invitation_token": token, **extra})


async def team_events(team_id: str) -> list[str]:
    from uuid import UUID

    events = (
        await DomainEvent.find({"aggregate_id": Binary.from_uuid(UUID(team_id))})
        .sort("version")
        .to_list()
    )
    return [e.event_type for e in events]


# -- teams ------------------------------------------------------------------------------------


async def test_create_makes_the_creator_its_owner_member(owner: Account, stranger: Account) -> None:
    response = await owner.client.post(
        "/v1/teams", json={"name": "Listings", "tenant_id": str(stranger.tenant_id)}
    )
    assert response.status_code == 201 and response.headers["ETag"] == '"1"'
    team = response.json()
    assert team["tenant_id"] == str(owner.tenant_id)  # a body tenant_id is ignored
    [m] = team["members"]
    assert m["user_id"] == str(owner.id) and m["role"] == "owner" and m["status"] == "active"
    assert m["joined_at"]
    got = await owner.client.get(f"/v1/teams/{team['id']}")
    assert got.status_code == 200 and got.json() == team


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"name": ""},
        {"name": "x" * 201},
        {"name": "t", "members": []},
        {"name": "t", "version": 3},
    ],
)
async def test_bad_team_bodies_are_422(owner: Account, body: dict[str, Any]) -> None:
    assert_problem(await owner.client.post("/v1/teams", json=body), 422)


async def test_viewers_read_but_do_not_write(owner: Account, viewer: Account) -> None:
    team = await new_team(owner)
    assert (await viewer.client.get(f"/v1/teams/{team['id']}")).status_code == 200
    assert (await viewer.client.get("/v1/teams")).status_code == 200
    assert_problem(await viewer.client.post("/v1/teams", json={"name": "x"}), 403)
    assert_problem(await viewer.client.patch(f"/v1/teams/{team['id']}", json={"name": "x"}), 403)
    assert_problem(await invite(viewer, team["id"], "a@example.com"), 403)


async def test_other_tenants_teams_are_404_on_every_verb(owner: Account, stranger: Account) -> None:
    team = await new_team(owner)
    base = f"/v1/teams/{team['id']}"
    c = stranger.client
    assert_problem(await c.get(base), 404)
    assert_problem(await c.patch(base, json={"name": "mine"}), 404)
    assert_problem(await c.delete(base), 404)
    assert_problem(await c.post(f"{base}/restore"), 404)
    assert_problem(await c.get(f"{base}/history"), 404)
    assert_problem(await c.post(f"{base}/members", json={"user_id": str(stranger.id)}), 404)
    assert_problem(await c.patch(f"{base}/members/{owner.id}", json={"role": "member"}), 404)
    assert_problem(await c.delete(f"{base}/members/{owner.id}"), 404)
    assert_problem(await invite(stranger, team["id"], "x@example.com"), 404)
    assert_problem(await c.get(f"{base}/invitations"), 404)
    assert (await c.get("/v1/teams")).json()["items"] == []
    assert (await owner.client.get(base)).json()["name"] == "Listings"


async def test_list_and_member_filter(owner: Account, member: Account) -> None:
    first = await new_team(owner, "A")
    second = await new_team(member, "B")
    listed = await owner.client.get("/v1/teams")
    assert [t["id"] for t in listed.json()["items"]] == [second["id"], first["id"]]
    mine = await owner.client.get("/v1/teams", params={"member_id": str(member.id)})
    assert [t["id"] for t in mine.json()["items"]] == [second["id"]]
    assert_problem(await owner.client.get("/v1/teams", params={"member_id": "x"}), 422)
    assert_problem(await owner.client.get("/v1/teams", params={"owner": "x"}), 422)


async def test_update_delete_and_restore_need_a_manager(owner: Account, member: Account) -> None:
    team = await new_team(owner)
    base = f"/v1/teams/{team['id']}"
    assert_problem(await member.client.patch(base, json={"name": "Mine"}), 403)
    assert_problem(await member.client.delete(base), 403)
    stale = await owner.client.patch(base, json={"name": "New"}, headers={"If-Match": '"9"'})
    assert_problem(stale, 412)
    updated = await owner.client.patch(base, json={"name": "New"}, headers={"If-Match": '"1"'})
    assert updated.status_code == 200 and updated.headers["ETag"] == '"2"'
    assert (await owner.client.delete(base)).status_code == 204
    assert_problem(await owner.client.get(base), 404)
    restored = await owner.client.post(f"{base}/restore")
    assert restored.status_code == 200 and restored.json()["name"] == "New"


# -- members ----------------------------------------------------------------------------------


async def test_member_changes_are_distinct_journaled_events(
    owner: Account, member: Account
) -> None:
    team = await new_team(owner)
    base = f"/v1/teams/{team['id']}/members"
    added = await owner.client.post(base, json={"user_id": str(member.id)})
    assert added.status_code == 201
    assert [m["user_id"] for m in added.json()["members"]] == [str(owner.id), str(member.id)]
    assert_problem(await owner.client.post(base, json={"user_id": str(member.id)}), 409)
    promoted = await owner.client.patch(f"{base}/{member.id}", json={"role": "admin"})
    assert promoted.json()["members"][1]["role"] == "admin"
    paused = await owner.client.patch(f"{base}/{member.id}", json={"status": "suspended"})
    assert paused.json()["members"][1]["status"] == "suspended"
    removed = await owner.client.delete(f"{base}/{member.id}")
    assert [m["user_id"] for m in removed.json()["members"]] == [str(owner.id)]
    assert await team_events(team["id"]) == [
        "team.created",
        "team.member_added",
        "team.member_role_changed",
        "team.member_status_changed",
        "team.member_removed",
    ]


async def test_member_rules(
    owner: Account, member: Account, viewer: Account, stranger: Account
) -> None:
    team = await new_team(owner)
    base = f"/v1/teams/{team['id']}/members"
    # Only users of the tenant can be added.
    assert_problem(await owner.client.post(base, json={"user_id": str(stranger.id)}), 422)
    assert_problem(await owner.client.post(base, json={"user_id": "nope"}), 422)
    await owner.client.post(base, json={"user_id": str(member.id), "role": "admin"})
    # A team admin manages members but cannot grant team ownership.
    added = await member.client.post(base, json={"user_id": str(viewer.id)})
    assert added.status_code == 201
    assert_problem(await member.client.patch(f"{base}/{viewer.id}", json={"role": "owner"}), 403)
    assert_problem(await member.client.delete(f"{base}/{owner.id}"), 403)
    # A team always keeps an active owner.
    assert_problem(await owner.client.patch(f"{base}/{owner.id}", json={"role": "member"}), 409)
    assert_problem(await owner.client.delete(f"{base}/{owner.id}"), 409)
    # Anyone may leave, even a viewer.
    left = await viewer.client.delete(f"{base}/{viewer.id}")
    assert left.status_code == 200
    assert str(viewer.id) not in [m["user_id"] for m in left.json()["members"]]
    assert_problem(await owner.client.delete(f"{base}/{viewer.id}"), 404)


async def test_suspended_team_admin_loses_powers(
    owner: Account, member: Account, viewer: Account
) -> None:
    team = await new_team(owner)
    base = f"/v1/teams/{team['id']}/members"
    await owner.client.post(base, json={"user_id": str(member.id), "role": "admin"})
    await owner.client.patch(f"{base}/{member.id}", json={"status": "suspended"})
    assert_problem(await member.client.post(base, json={"user_id": str(viewer.id)}), 403)


# -- invitations ------------------------------------------------------------------------------


async def test_invite_then_register_with_the_token(
    client: httpx.AsyncClient, owner: Account
) -> None:
    team = await new_team(owner)
    created = await invite(owner, team["id"], "Bobby@Example.com", role="viewer")
    assert created.status_code == 201, created.text
    inv = created.json()
    assert inv["status"] == "pending" and inv["token"] and inv["email"] == "bobby@example.com"
    stored = await Invitation.find_one({"email": "bobby@example.com"})
    assert stored is not None and stored.token_hash == security.hash_token(inv["token"])
    assert inv["token"] not in str(stored.model_dump())
    tenants_before = await Tenant.find_all().count()

    joined = await register(client, "bobby@example.com", inv["token"], organization_name="Ignored")
    assert joined.status_code == 201, joined.text
    user = joined.json()
    assert user["tenant_id"] == str(owner.tenant_id) and user["role"] == "viewer"
    assert await Tenant.find_all().count() == tenants_before  # no new tenant
    members = (await owner.client.get(f"/v1/teams/{team['id']}")).json()["members"]
    assert members[-1]["user_id"] == user["id"] and members[-1]["role"] == "member"
    listed = await owner.client.get(f"/v1/teams/{team['id']}/invitations")
    [item] = listed.json()["items"]
    assert item["status"] == "accepted" and item["accepted_by"] == user["id"]
    assert "token" not in item and inv["token"] not in listed.text

    # Used twice → 409, whoever tries.
    again = await register(client, "bobby@example.com", inv["token"], username="bobby2")
    assert_problem(again, 409)
    login = await client.post("/v1/auth/token", data={"username": "bobby", "password": PASSWORD})
    assert login.status_code == 200


async def test_a_token_used_by_another_email_is_403(
    client: httpx.AsyncClient, owner: Account
) -> None:
    team = await new_team(owner)
    token = (await invite(owner, team["id"], "bobby@example.com")).json()["token"]
    assert_problem(await register(client, "eve@example.com", token), 403)
    assert await User.find_one({"email": "eve@example.com"}) is None
    assert (await register(client, "bobby@example.com", token)).status_code == 201


async def test_unknown_expired_and_revoked_tokens(
    client: httpx.AsyncClient, owner: Account
) -> None:
    team = await new_team(owner)
    assert_problem(await register(client, "bobby@example.com", "x" * 43), 404)

    expiring = (await invite(owner, team["id"], "bobby@example.com")).json()
    await Invitation.get_pymongo_collection().update_one(
        {"token_hash": security.hash_token(expiring["token"])},
        {"$set": {"expires_at": datetime.now(UTC) - timedelta(minutes=1)}},
    )
    assert_problem(await register(client, "bobby@example.com", expiring["token"]), 410)
    listed = await owner.client.get(
        f"/v1/teams/{team['id']}/invitations", params={"status": "expired"}
    )
    assert [i["id"] for i in listed.json()["items"]] == [expiring["id"]]

    revoked = (
        await invite(owner, team["id"], "bobby@example.com")
    ).json()  # expired one is no clash
    assert (await owner.client.delete(f"/v1/invitations/{revoked['id']}")).status_code == 204
    assert_problem(await register(client, "bobby@example.com", revoked["token"]), 410)
    assert_problem(await owner.client.delete(f"/v1/invitations/{revoked['id']}"), 404)
    pending = await owner.client.get(
        f"/v1/teams/{team['id']}/invitations", params={"status": "pending"}
    )
    assert pending.json()["items"] == []
    assert await User.find_one({"email": "bobby@example.com"}) is None


async def test_invitation_rules(owner: Account, member: Account, make_account: Any) -> None:
    team = await new_team(owner)
    # Team owner/admin or tenant admin only.
    assert_problem(await invite(member, team["id"], "a@example.com"), 403)
    await owner.client.post(
        f"/v1/teams/{team['id']}/members", json={"user_id": str(member.id), "role": "admin"}
    )
    assert (await invite(member, team["id"], "a@example.com")).status_code == 201
    # Never above one's own tenant role, never a tenant owner.
    assert_problem(await invite(member, team["id"], "b@example.com", role="admin"), 403)
    assert_problem(await invite(owner, team["id"], "b@example.com", role="owner"), 422)
    # One pending invitation per email and team; members cannot be invited again.
    dup = assert_problem(await invite(owner, team["id"], "A@example.com"), 409)
    assert dup["invitation_id"]
    assert_problem(await invite(owner, team["id"], member.user.email), 409)
    assert_problem(await invite(owner, team["id"], "not-an-email"), 422)
    assert_problem(await invite(owner, team["id"], "c@example.com", token="mine"), 422)
    # A tenant admin who is not in the team may invite.
    admin: Account = await make_account(role="admin", tenant_of=owner)
    assert (await invite(admin, team["id"], "d@example.com", role="admin")).status_code == 201
    assert (await member.client.get(f"/v1/teams/{team['id']}/invitations")).status_code == 200


async def test_plain_members_cannot_list_invitations(owner: Account, member: Account) -> None:
    team = await new_team(owner)
    assert_problem(await member.client.get(f"/v1/teams/{team['id']}/invitations"), 403)


async def test_accept_as_an_existing_user_of_the_tenant(
    owner: Account, member: Account, viewer: Account, stranger: Account
) -> None:
    team = await new_team(owner)
    token = (await invite(owner, team["id"], member.user.email, team_role="admin")).json()["token"]
    assert_problem(await viewer.client.post(f"/v1/invitations/{token}/accept"), 403)  # other email
    assert_problem(await stranger.client.post(f"/v1/invitations/{token}/accept"), 404)
    accepted = await member.client.post(f"/v1/invitations/{token}/accept")
    assert accepted.status_code == 200, accepted.text
    assert {"user_id": str(member.id), "role": "admin"}.items() <= accepted.json()["members"][
        -1
    ].items()
    assert_problem(await member.client.post(f"/v1/invitations/{token}/accept"), 409)
    assert (await User.get(member.id)).role == "member"  # type: ignore[union-attr]
    assert await team_events(team["id"]) == ["team.created", "team.member_added"]
    assert_problem(await member.client.post("/v1/invitations/bad token!/accept"), 422)


async def test_invitations_of_a_deleted_team_are_gone(
    client: httpx.AsyncClient, owner: Account
) -> None:
    team = await new_team(owner)
    token = (await invite(owner, team["id"], "bobby@example.com")).json()["token"]
    await owner.client.delete(f"/v1/teams/{team['id']}")
    assert_problem(await register(client, "bobby@example.com", token), 410)


async def test_cross_tenant_invitation_management_is_404(owner: Account, stranger: Account) -> None:
    team = await new_team(owner)
    inv = (await invite(owner, team["id"], "bobby@example.com")).json()
    assert_problem(await stranger.client.delete(f"/v1/invitations/{inv['id']}"), 404)
    listed = await owner.client.get(f"/v1/teams/{team['id']}/invitations")
    assert listed.json()["items"][0]["status"] == "pending"
