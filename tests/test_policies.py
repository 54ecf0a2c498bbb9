"""Resource policies: one per resource, roles per action, data-dependent guards, lifecycle hooks."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from documents.api_key import ApiKey
from documents.blog import Blog
from documents.lead import LeadBase
from documents.team import Team
from documents.user import Role, User
from service import api_keys, lifecycle, teams, users
from service.core.context import RequestContext
from service.core.errors import Conflict, Forbidden
from service.core.policy import (
    Action,
    ResourcePolicy,
    policy_for,
    read_role,
    register_policy,
)
from service.core.repository import Repository, uuid_filter
from tests.factories import make_lead, make_team
from tests.support.helpers import Account, assert_problem


def test_each_resource_has_one_policy() -> None:
    assert policy_for(User) is users.POLICY
    assert policy_for(Team) is teams.POLICY
    assert policy_for(ApiKey) is api_keys.POLICY
    assert policy_for(Blog) is policy_for(Blog)  # the default, made once
    with pytest.raises(RuntimeError):
        register_policy(ResourcePolicy(model=User))


def test_the_read_role_of_a_journal_type_is_its_policys() -> None:
    # Visibility (who sees a type's changes in the feeds) asks the policy: one statement.
    # Importing the domain modules declares their policies.
    import service.invitations
    import service.suppressions
    import service.webhooks.endpoints  # noqa: F401 - the name `service` is bound already

    for kind in ("api_key", "invitation", "suppression", "webhook"):
        assert read_role(kind) is Role.admin, kind
    assert read_role("lead") is Role.viewer
    assert read_role("no_such_type") is Role.viewer
    assert read_role("api_key") is api_keys.POLICY.role(Action.read)


async def test_the_feeds_hide_what_the_policy_lets_only_admins_read(
    owner: Account, member: Account
) -> None:
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}
    assert (await owner.client.post("/v1/webhooks", json=body)).status_code == 201
    invited = {"email": "new@example.com", "role": "member"}
    team = await make_team(owner)
    r = await owner.client.post(f"/v1/teams/{team['id']}/invitations", json=invited)
    assert r.status_code == 201, r.text

    async def kinds(account: Account) -> set[str]:
        r = await account.client.get("/v1/changes", params={"limit": 200})
        assert r.status_code == 200, r.text
        return {e["aggregate_type"] for e in r.json()["items"]}

    assert {"webhook", "invitation", "team"} <= await kinds(owner)
    seen = await kinds(member)
    assert "team" in seen and not seen & {"webhook", "invitation"}
    assert users.POLICY.role(Action.delete) == Role.admin
    assert policy_for(Blog).role(Action.delete) == Role.member


async def test_lifecycle_routes_follow_the_policy_roles(
    owner: Account, member: Account, viewer: Account, make_account: Any
) -> None:
    blog = (await member.client.post("/v1/blogs", json={"title": "Hi"})).json()
    url = f"/v1/blogs/{blog['id']}"
    for path in ("archive", "unarchive"):
        assert_problem(await viewer.client.post(f"{url}/{path}"), 403)
    assert_problem(await viewer.client.delete(url), 403)
    assert (await member.client.delete(url)).status_code == 204
    assert_problem(await viewer.client.post(f"{url}/restore"), 403)
    assert (await member.client.post(f"{url}/restore")).status_code == 200
    # Users: admin+ and the outranking rule, through the same shared routes.
    admin: Account = await make_account(role="admin", tenant_of=owner)
    assert_problem(await member.client.delete(f"/v1/users/{viewer.id}"), 403)
    assert_problem(await admin.client.delete(f"/v1/users/{owner.id}"), 403)
    assert_problem(await admin.client.delete(f"/v1/users/{admin.id}"), 409)
    assert (await admin.client.delete(f"/v1/users/{viewer.id}")).status_code == 204
    assert_problem(await member.client.post(f"/v1/users/{viewer.id}/restore"), 403)
    assert (await admin.client.post(f"/v1/users/{viewer.id}/restore")).status_code == 200
    # Keys: admins only, for reading too.
    assert_problem(await member.client.get("/v1/api-keys"), 403)
    assert (await admin.client.get("/v1/api-keys")).status_code == 200


async def test_team_delete_needs_a_team_owner_or_a_tenant_admin(
    owner: Account, member: Account, make_account: Any
) -> None:
    other: Account = await make_account(role="member", tenant_of=owner)
    team = await make_team(member)
    url = f"/v1/teams/{team['id']}"
    assert_problem(await other.client.delete(url), 403)
    assert (await member.client.delete(url)).status_code == 204  # its owner member
    assert_problem(await other.client.post(f"{url}/restore"), 403)
    assert (await owner.client.post(f"{url}/restore")).status_code == 200  # a tenant owner


async def test_hooks_run_after_delete_and_restore_only_when_something_changed(
    owner: Account,
) -> None:
    calls: list[tuple[str, UUID, bool]] = []

    async def after_delete(ctx: RequestContext, doc: Blog) -> None:  # noqa: ARG001  (a policy hook)
        calls.append(("deleted", doc.id, doc.is_deleted))

    async def after_restore(ctx: RequestContext, doc: Blog) -> None:  # noqa: ARG001  (a policy hook)
        calls.append(("restored", doc.id, doc.is_deleted))

    policy = ResourcePolicy(model=Blog, after_delete=after_delete, after_restore=after_restore)
    blog = await Repository(Blog, owner.ctx).create(Blog(tenant_id=owner.tenant_id, title="x"))
    await lifecycle.restore(ctx=owner.ctx, policy=policy, id=blog.id)  # live: no change
    await lifecycle.delete(ctx=owner.ctx, policy=policy, id=blog.id)
    await lifecycle.restore(ctx=owner.ctx, policy=policy, id=blog.id)
    assert calls == [("deleted", blog.id, True), ("restored", blog.id, False)]


async def test_a_guard_runs_after_the_role_and_before_the_write(
    owner: Account, viewer: Account
) -> None:
    seen: list[Action] = []

    async def guard(ctx: RequestContext, action: Action, doc: Blog) -> None:  # noqa: ARG001  (policy guard)
        seen.append(action)
        raise Forbidden("not this one")

    policy = ResourcePolicy(model=Blog, guard=guard)
    blog = await Repository(Blog, owner.ctx).create(Blog(tenant_id=owner.tenant_id, title="x"))
    with pytest.raises(Forbidden):
        await lifecycle.delete(ctx=viewer.ctx, policy=policy, id=blog.id)
    assert seen == []  # the role said no first
    with pytest.raises(Forbidden):
        await lifecycle.archive(ctx=owner.ctx, policy=policy, id=blog.id)
    assert seen == [Action.archive]
    stored = await Repository(Blog, owner.ctx).get(blog.id)
    assert stored.version == 1 and stored.archived_at is None


async def test_a_restore_clash_answers_the_policys_conflict(owner: Account) -> None:
    async def clash(ctx: RequestContext, doc: LeadBase) -> Conflict | None:
        live = await Repository(LeadBase, ctx).find_one({"email": doc.email})
        if live is None:
            return None
        return Conflict("A live lead has that email.", existing_id=str(live.id), field="email")

    policy = ResourcePolicy(model=LeadBase, clash=clash)
    first = await make_lead(owner, email="a@x.co")
    assert (await owner.client.delete(f"/v1/leads/{first['id']}")).status_code == 204
    second = await owner.client.post("/v1/leads", json={"type": "generic", "email": "a@x.co"})
    assert second.status_code == 201, second.text
    with pytest.raises(Conflict) as exc:
        await lifecycle.restore(ctx=owner.ctx, policy=policy, id=UUID(first["id"]))
    assert exc.value.extra == {"existing_id": second.json()["id"], "field": "email"}
    # Without a clash hook the unique index still answers 409 (the generic body).
    plain = await owner.client.post(f"/v1/leads/{first['id']}/restore")
    assert_problem(plain, 409)
    stored = await Repository(LeadBase, owner.ctx).find_one(
        {"_id": uuid_filter(UUID(first["id"]))}, include_deleted=True
    )
    assert stored is not None and stored.is_deleted


# -- visibility: one rule per resource type, for GET, history, versions and feeds -------------


def test_what_colleagues_see_of_a_user_is_the_rule() -> None:
    from schemas.users import UserRead
    from service.core.visibility import USER_SHARED

    assert set(UserRead.model_fields) == USER_SHARED


async def test_visible_events_filters_a_feed_page(
    owner: Account, member: Account, viewer: Account
) -> None:
    from bson import Binary

    from documents.journal import DomainEvent
    from service.core.visibility import visible_changes, visible_events

    await member.client.put("/v1/billing/info", json={"tax_id": "TAX-7", "address": {}})
    await member.client.patch("/v1/users/me", json={"profile": {"first_name": "Mo"}})
    await member.client.get("/v1/kanban")  # creates the member's board
    await owner.client.post("/v1/api-keys", json={"name": "svc"})
    page = (
        await DomainEvent.find({"tenant_id": Binary.from_uuid(owner.tenant_id)})
        .sort("occurred_at")
        .to_list()
    )

    def summary(events: list[DomainEvent]) -> set[tuple[str, str]]:
        # What shows of the member's own user aggregate.
        return {
            (e.aggregate_type, c.field.split(".")[0])
            for e in events
            if e.aggregate_id == member.id
            for c in e.changes
        }

    as_viewer = await visible_events(viewer.ctx, page)
    types = {e.aggregate_type for e in as_viewer}
    assert "api_key" not in types and "kanban_board" not in types
    assert ("user", "profile") in summary(as_viewer)
    assert ("user", "billing") not in summary(as_viewer)
    as_member = await visible_events(member.ctx, page)
    assert {"kanban_board", "user"} <= {e.aggregate_type for e in as_member}
    assert ("user", "billing") in summary(as_member)  # their own
    as_owner = await visible_events(owner.ctx, page)
    assert "api_key" in {e.aggregate_type for e in as_owner}
    assert "kanban_board" not in {e.aggregate_type for e in as_owner}  # the member's own board
    assert len(as_viewer) < len(page) and all(e.changes is not None for e in as_viewer)
    # The per-entry function, with plain dicts as a feed stores them.
    changes = [{"field": "billing.billing_info.tax_id", "old": None, "new": "TAX-7"}]
    assert visible_changes(viewer.ctx, "user", member.id, changes) == []
    assert visible_changes(member.ctx, "user", member.id, changes) == changes
    assert visible_changes(member.ctx, "api_key", member.id, changes) is None
