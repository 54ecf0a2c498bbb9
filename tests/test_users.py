"""The users API: the whole aggregate, merge patch, mass assignment, roles, soft delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from bson import Binary

from documents.journal import DomainEvent
from documents.user import TwoFactorMethod, User
from service import lifecycle, users
from service.auth import AuthCache, authenticate
from service.core.context import Role
from service.core.errors import Unauthorized
from service.core.settings import Settings
from tests.support.helpers import PASSWORD, Account, assert_problem

PARTS = {
    "profile",
    "location",
    "company",
    "marketing",
    "socials",
    "settings",
    "onboarding",
    "security",
    "subscription",
    "billing",
    "ai_config",
    "ai_context",
    "feature_flags",
    "tags",
    "segments",
}


async def events_of(user_id: Any) -> list[DomainEvent]:
    return (
        await DomainEvent.find({"aggregate_id": Binary.from_uuid(user_id)})
        .sort("version")
        .to_list()
    )


# -- /me --------------------------------------------------------------------------------------


async def test_me_returns_the_whole_aggregate_without_secrets(owner: Account) -> None:
    response = await owner.client.get("/v1/users/me")
    assert response.status_code == 200
    body = response.json()
    assert body.keys() >= PARTS
    assert response.headers["ETag"] == f'"{body["version"]}"'
    assert body["settings"]["notifications"]["email"] is True
    assert body["security"]["security_settings"]["min_password_length"] == 12
    assert body["security"]["two_factor_auth"] == {
        "enabled": False,
        "methods": [],
        "confirmed_at": None,
    }
    # The same names and units as /v1/subscription, /v1/billing and /v1/ai/config.
    assert (
        body["subscription"]["plan"] == "free" and "subscription_type" not in body["subscription"]
    )
    assert (
        body["billing"]["billing_history"] == [] and body["ai_config"]["monthly_cost_limit"] is None
    )
    assert "password_hash" not in response.text and "$argon2" not in response.text


async def test_merge_patch_changes_only_what_is_sent(owner: Account) -> None:
    first = await owner.client.patch(
        "/v1/users/me",
        json={
            "profile": {"first_name": "Ana", "last_name": "Silva"},
            "company": {"name": "Silva Realty"},
        },
    )
    assert first.status_code == 200, first.text
    response = await owner.client.patch(
        "/v1/users/me",
        json={
            "profile": {"first_name": "Anna", "contact_info": {"phone": "(415) 555-2671"}},
            "settings": {"notifications": {"sms": True}, "preferences": {"theme": "dark"}},
            "security": {"security_settings": {"min_password_length": 16}},
            "feature_flags": {"beta": True},
            "tags": ["VIP ", "north"],
        },
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["profile"]["first_name"] == "Anna"
    assert body["profile"]["last_name"] == "Silva"  # untouched
    assert body["profile"]["contact_info"]["phone"] == "+14155552671"  # stored E.164
    assert body["company"]["name"] == "Silva Realty"
    assert body["settings"]["notifications"]["sms"] is True
    assert body["settings"]["notifications"]["email"] is True
    assert body["settings"]["preferences"]["theme"] == "dark"
    assert body["security"]["security_settings"]["min_password_length"] == 16
    assert body["security"]["security_settings"]["require_digit"] is True
    assert body["feature_flags"] == {"beta": True}
    assert body["tags"] == ["vip", "north"]
    assert response.headers["ETag"] == f'"{body["version"]}"'
    assert body["version"] == first.json()["version"] + 1
    stored = await User.get(owner.id)
    assert stored is not None and stored.profile.first_name == "Anna"


async def test_null_removes_or_resets(owner: Account) -> None:
    await owner.client.patch(
        "/v1/users/me",
        json={
            "profile": {"first_name": "Ana", "title": "Broker"},
            "settings": {"notifications": {"email": False}},
            "feature_flags": {"a": True, "b": False},
            "company": {"name": "X"},
        },
    )
    response = await owner.client.patch(
        "/v1/users/me",
        json={
            "profile": {"title": None},
            "settings": {"notifications": {"email": None}},
            "feature_flags": {"a": None},
            "company": None,
        },
    )
    body = response.json()
    assert response.status_code == 200, response.text
    assert body["profile"] == {**body["profile"], "first_name": "Ana", "title": None}
    assert body["settings"]["notifications"]["email"] is True  # back to the default
    assert body["feature_flags"] == {"b": False}
    assert body["company"]["name"] is None


async def test_resetting_security_keeps_two_factor(owner: Account) -> None:
    stored = await User.get(owner.id)
    assert stored is not None
    tfa = stored.security.two_factor_auth.model_copy(
        update={"enabled": True, "methods": [TwoFactorMethod.totp], "secret": "encrypted"}
    )
    await User.get_pymongo_collection().update_one(
        {"_id": Binary.from_uuid(owner.id)},
        {"$set": {"security.two_factor_auth": tfa.model_dump(mode="json")}},
    )
    await owner.client.patch(
        "/v1/users/me", json={"security": {"security_settings": {"min_password_length": 20}}}
    )
    response = await owner.client.patch("/v1/users/me", json={"security": None})
    assert response.status_code == 200
    security = response.json()["security"]
    assert security["security_settings"]["min_password_length"] == 12  # policy reset
    assert security["two_factor_auth"]["enabled"] is True  # 2FA untouched
    after = await User.get(owner.id)
    assert after is not None and after.security.two_factor_auth.secret == "encrypted"


@pytest.mark.parametrize(
    "patch",
    [{"security": None}, {"security": {"security_settings": None}}],
    ids=["part", "policy"],
)
async def test_resetting_the_password_policy_keeps_when_the_password_changed(
    owner: Account, patch: dict[str, Any]
) -> None:
    before = await User.get(owner.id)
    assert before is not None
    changed_at = before.security.security_settings.password_changed_at
    assert changed_at is not None  # set at registration
    await owner.client.patch(
        "/v1/users/me", json={"security": {"security_settings": {"min_password_length": 20}}}
    )
    response = await owner.client.patch("/v1/users/me", json=patch)
    assert response.status_code == 200
    assert response.json()["security"]["security_settings"]["min_password_length"] == 12
    after = await User.get(owner.id)
    assert after is not None
    assert after.security.security_settings.password_changed_at == changed_at


async def test_an_empty_patch_changes_nothing(owner: Account) -> None:
    before = (await owner.client.get("/v1/users/me")).json()["version"]
    response = await owner.client.patch("/v1/users/me", json={})
    assert response.status_code == 200 and response.json()["version"] == before


@pytest.mark.parametrize(
    "patch",
    [
        {"role": "owner"},
        {"id": "01234567-89ab-cdef-0123-456789abcdef"},
        {"password_hash": "x"},
        {"version": 99},
        {"email": "new@example.com"},
        {"is_active": False},
        {"is_deleted": True},
        {"created_at": "2020-01-01T00:00:00Z"},
        {"security": {"two_factor_auth": {"enabled": True}}},
        {"security": {"security_settings": {"password_changed_at": "2020-01-01T00:00:00Z"}}},
        {"subscription": {"subscription_type": "enterprise"}},
        {"billing": {"billing_info": {"tax_id": "1"}}},
        {"ai_config": {"temperature": 1}},
        {"profile": {"nickname": "x"}},
    ],
)
async def test_mass_assignment_is_refused(owner: Account, patch: dict[str, Any]) -> None:
    before = await User.get(owner.id)
    assert_problem(await owner.client.patch("/v1/users/me", json=patch), 422)
    after = await User.get(owner.id)
    assert before is not None and after is not None and after.version == before.version


@pytest.mark.parametrize(
    "patch",
    [
        {"profile": {"first_name": "x" * 201}},
        {"profile": {"contact_info": {"phone": "12"}}},
        {"profile": {"contact_info": {"email": "nope"}}},
        {"security": {"security_settings": {"min_password_length": 3}}},
        {"settings": {"notifications": {"quiet_hours_start": "late"}}},
        {"feature_flags": {"a.b": True}},
        {"feature_flags": {"$x": True}},
        {"tags": ["x"] * 51},
        {"marketing": {"niches": ["n"] * 51}},
        {"username": "no spaces"},
        {"username": None},
        {"profile": "not an object"},
    ],
)
async def test_bad_values_are_422(owner: Account, patch: dict[str, Any]) -> None:
    assert_problem(await owner.client.patch("/v1/users/me", json=patch), 422)


async def test_a_tenant_id_in_the_patch_is_ignored(owner: Account, stranger: Account) -> None:
    response = await owner.client.patch(
        "/v1/users/me",
        json={"tenant_id": str(stranger.tenant_id), "profile": {"first_name": "Ana"}},
    )
    assert response.status_code == 200
    assert response.json()["tenant_id"] == str(owner.tenant_id)


async def test_username_can_change_but_stays_unique(owner: Account, member: Account) -> None:
    response = await owner.client.patch("/v1/users/me", json={"username": "New.Name"})
    assert response.status_code == 200 and response.json()["username"] == "new.name"
    clash = await member.client.patch("/v1/users/me", json={"username": "new.name"})
    assert_problem(clash, 409)


async def test_if_match_guards_the_patch(owner: Account) -> None:
    etag = (await owner.client.get("/v1/users/me")).headers["ETag"]
    ok = await owner.client.patch(
        "/v1/users/me", json={"profile": {"first_name": "A"}}, headers={"If-Match": etag}
    )
    assert ok.status_code == 200
    stale = await owner.client.patch(
        "/v1/users/me", json={"profile": {"first_name": "B"}}, headers={"If-Match": etag}
    )
    assert_problem(stale, 412)
    assert (await User.get(owner.id)).profile.first_name == "A"  # type: ignore[union-attr]


async def test_a_viewer_may_change_their_own_aggregate(viewer: Account) -> None:
    response = await viewer.client.patch("/v1/users/me", json={"profile": {"first_name": "V"}})
    assert response.status_code == 200


async def test_patch_is_journaled_as_one_event(owner: Account) -> None:
    await owner.client.patch("/v1/users/me", json={"profile": {"first_name": "Ana"}})
    last = (await events_of(owner.id))[-1]
    assert last.event_type == "user.updated" and last.actor_id == owner.id
    assert [(c.field, c.new) for c in last.changes] == [("profile.first_name", "Ana")]


async def test_change_password(client: httpx.AsyncClient, owner: Account) -> None:
    wrong = await owner.client.post(
        "/v1/users/me/password",
        json={"current_password": "nope", "new_password": "another-password-7"},
    )
    assert_problem(wrong, 403)
    weak = await owner.client.post(
        "/v1/users/me/password", json={"current_password": PASSWORD, "new_password": "weak"}
    )
    assert_problem(weak, 422)
    ok = await owner.client.post(
        "/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "another-password-7"},
    )
    assert ok.status_code == 200 and "another-password-7" not in ok.text
    login = {"username": owner.user.username}
    old = await client.post("/v1/auth/token", data={**login, "password": PASSWORD})
    assert_problem(old, 401)
    new = await client.post("/v1/auth/token", data={**login, "password": "another-password-7"})
    assert new.status_code == 200


async def test_tokens_issued_before_a_password_change_stop_working(owner: Account) -> None:
    later = datetime.now(UTC) + timedelta(seconds=5)
    await User.get_pymongo_collection().update_one(
        {"_id": Binary.from_uuid(owner.id)},
        {"$set": {"security.security_settings.password_changed_at": later}},
    )
    assert_problem(await owner.client.get("/v1/users/me"), 401)


# -- the tenant's users -----------------------------------------------------------------------


async def test_list_is_tenant_scoped_and_filterable(
    owner: Account, member: Account, viewer: Account, stranger: Account
) -> None:
    response = await viewer.client.get("/v1/users")
    assert response.status_code == 200
    ids = [u["id"] for u in response.json()["items"]]
    assert ids == [str(viewer.id), str(member.id), str(owner.id)]  # newest first
    assert str(stranger.id) not in ids
    assert "password_hash" not in response.text and "billing" not in response.text
    members = await owner.client.get("/v1/users", params={"role": "member"})
    assert [u["id"] for u in members.json()["items"]] == [str(member.id)]
    page = await owner.client.get("/v1/users", params={"limit": 2})
    assert len(page.json()["items"]) == 2 and page.json()["next_cursor"]
    rest = await owner.client.get(
        "/v1/users", params={"limit": 2, "cursor": page.json()["next_cursor"]}
    )
    assert [u["id"] for u in rest.json()["items"]] == [str(owner.id)]


@pytest.mark.parametrize(
    "params", [{"limit": 201}, {"limit": 0}, {"role": "god"}, {"password_hash": "x"}]
)
async def test_list_refuses_bad_parameters(owner: Account, params: dict[str, Any]) -> None:
    assert_problem(await owner.client.get("/v1/users", params=params), 422)


async def test_get_user_in_tenant_only(owner: Account, member: Account, stranger: Account) -> None:
    response = await member.client.get(f"/v1/users/{owner.id}")
    assert response.status_code == 200 and response.json()["username"] == owner.user.username
    assert response.headers["ETag"] == f'"{response.json()["version"]}"'
    assert_problem(await stranger.client.get(f"/v1/users/{owner.id}"), 404)
    assert_problem(await owner.client.get("/v1/users/not-a-uuid"), 422)


async def test_role_change_by_an_owner_is_journaled(owner: Account, member: Account) -> None:
    response = await owner.client.patch(f"/v1/users/{member.id}", json={"role": "admin"})
    assert response.status_code == 200 and response.json()["role"] == "admin"
    last = (await events_of(member.id))[-1]
    assert last.event_type == "user.role_changed" and last.actor_id == owner.id
    # The new role applies to the member's next request (the token carries no authority).
    created = await member.client.post("/v1/api-keys", json={"name": "k"})
    assert created.status_code == 201


async def test_role_rules(
    owner: Account, member: Account, viewer: Account, make_account: Any
) -> None:
    admin: Account = await make_account(role="admin", tenant_of=owner)
    assert_problem(
        await member.client.patch(f"/v1/users/{viewer.id}", json={"role": "member"}), 403
    )
    assert_problem(await viewer.client.patch(f"/v1/users/{member.id}", json={"role": "admin"}), 403)
    assert_problem(await admin.client.patch(f"/v1/users/{owner.id}", json={"role": "viewer"}), 403)
    assert_problem(await admin.client.patch(f"/v1/users/{member.id}", json={"role": "owner"}), 403)
    assert_problem(await owner.client.patch(f"/v1/users/{owner.id}", json={"role": "viewer"}), 409)
    assert_problem(await owner.client.patch(f"/v1/users/{member.id}", json={"role": "god"}), 422)
    assert_problem(
        await owner.client.patch(f"/v1/users/{member.id}", json={"password_hash": "x"}), 422
    )
    ok = await admin.client.patch(f"/v1/users/{viewer.id}", json={"role": "member"})
    assert ok.status_code == 200 and ok.json()["role"] == "member"


async def test_deactivating_a_user_locks_them_out(owner: Account, member: Account) -> None:
    response = await owner.client.patch(f"/v1/users/{member.id}", json={"is_active": False})
    assert response.status_code == 200 and response.json()["is_active"] is False
    assert (await events_of(member.id))[-1].event_type == "user.deactivated"
    assert_problem(await member.client.get("/v1/users/me"), 401)


async def test_cross_tenant_user_management_is_404(owner: Account, stranger: Account) -> None:
    target = f"/v1/users/{owner.id}"
    assert_problem(await stranger.client.patch(target, json={"role": "viewer"}), 404)
    assert_problem(await stranger.client.delete(target), 404)
    assert_problem(await stranger.client.post(f"{target}/restore"), 404)
    assert_problem(await stranger.client.get(f"{target}/history"), 404)
    assert (await User.get(owner.id)).role == "owner"  # type: ignore[union-attr]


async def test_soft_delete_and_restore(owner: Account, member: Account) -> None:
    stale = await owner.client.delete(f"/v1/users/{member.id}", headers={"If-Match": '"99"'})
    assert_problem(stale, 412)
    assert (await owner.client.delete(f"/v1/users/{member.id}")).status_code == 204
    assert_problem(await owner.client.get(f"/v1/users/{member.id}"), 404)
    assert_problem(await owner.client.delete(f"/v1/users/{member.id}"), 404)
    assert_problem(await member.client.get("/v1/users/me"), 401)  # credentials stop working
    listed = await owner.client.get("/v1/users", params={"include_deleted": True})
    assert str(member.id) in [u["id"] for u in listed.json()["items"]]
    stored = await User.get(member.id)
    assert stored is not None and stored.is_deleted  # nothing is removed
    restored = await owner.client.post(f"/v1/users/{member.id}/restore")
    assert restored.status_code == 200 and restored.json()["is_deleted"] is False
    assert (await member.client.get("/v1/users/me")).status_code == 200
    again = await owner.client.post(f"/v1/users/{member.id}/restore")
    assert again.status_code == 200 and again.json()["version"] == restored.json()["version"]


async def test_delete_rules(owner: Account, member: Account, make_account: Any) -> None:
    admin: Account = await make_account(role="admin", tenant_of=owner)
    assert_problem(await owner.client.delete(f"/v1/users/{owner.id}"), 409)  # not oneself
    assert_problem(await member.client.delete(f"/v1/users/{admin.id}"), 403)
    assert_problem(await admin.client.delete(f"/v1/users/{owner.id}"), 403)
    assert (await admin.client.delete(f"/v1/users/{member.id}")).status_code == 204


async def test_history_lists_changes_oldest_first(owner: Account, member: Account) -> None:
    await owner.client.patch(f"/v1/users/{member.id}", json={"role": "admin"})
    response = await member.client.get(f"/v1/users/{member.id}/history")
    assert response.status_code == 200
    types = [e["event_type"] for e in response.json()["items"]]
    assert types[0] == "user.created" and types[-1] == "user.role_changed"
    assert "$argon2" not in response.text


async def test_deleting_a_user_evicts_cached_credentials(
    owner: Account, member: Account, settings: Settings
) -> None:
    cache = AuthCache(60)
    ctx = await authenticate(settings=settings, cache=cache, bearer=member.token, api_key=None)
    assert ctx.actor_id == member.id and cache.get("jwt:" + member.token) is not None
    owner_ctx = await authenticate(settings=settings, cache=cache, bearer=owner.token, api_key=None)
    await lifecycle.delete(ctx=owner_ctx, policy=users.POLICY, id=member.id)
    assert cache.get("jwt:" + member.token) is None
    with pytest.raises(Unauthorized):
        await authenticate(settings=settings, cache=cache, bearer=member.token, api_key=None)
    assert owner_ctx.role == Role.owner
