"""`GET /v1/<coll>/{id}/versions/{n}`: every version rebuilt from the journal equals what GET said.

Each walk records the resource as `GET` answered after every step (or, while it is
soft-deleted, as the list with `include_deleted=true` shows it), then asks for every version
and compares. A second check rebuilds the whole stored document at each version (private
parts and maps included) and compares it with a snapshot of the database at that version.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import httpx
from bson import Binary

from documents.base import RootDocument
from documents.journal import DomainEvent
from documents.kanban import GlobalKanban
from documents.lead import LeadBase
from documents.user import User
from service import lifecycle
from service.core import journal
from tests.factories import make_lead, make_team
from tests.support.helpers import PASSWORD, Account, assert_problem

SECRET = "<secret>"


class Walk:
    """Records a resource's read shape at each version, through its own routes."""

    def __init__(self, client: httpx.AsyncClient, base: str, id: str, model: type[RootDocument]):
        self.client, self.base, self.id, self.model = client, base, id, model
        self.responses: dict[int, dict[str, Any]] = {}
        self.stored: dict[int, dict[str, Any]] = {}

    async def record(self) -> None:
        response = await self.client.get(f"{self.base}/{self.id}")
        if response.status_code == 404:  # soft-deleted: the list still shows it on request
            listed = await self.client.get(self.base, params={"include_deleted": "true"})
            [body] = [i for i in listed.json()["items"] if i["id"] == self.id]
        else:
            assert response.status_code == 200, response.text
            body = response.json()
        assert body["version"] not in self.responses, "a step made no new version"
        self.responses[body["version"]] = body
        self.stored[body["version"]] = await stored_snapshot(self.model, UUID(self.id))

    async def check(self, client: httpx.AsyncClient | None = None) -> None:
        reader = client or self.client
        last = max(self.responses)
        assert sorted(self.responses) == list(range(1, last + 1)), "versions were skipped"
        for n, expected in self.responses.items():
            response = await reader.get(f"{self.base}/{self.id}/versions/{n}")
            assert response.status_code == 200, response.text
            assert response.json() == expected, f"version {n}"
            assert response.headers["ETag"] == f'"{n}"'
        events = (
            await DomainEvent.find({"aggregate_id": Binary.from_uuid(UUID(self.id))})
            .sort("version")
            .to_list()
        )
        for n, snapshot in self.stored.items():
            rebuilt = lifecycle.materialize(self.model, lifecycle.state_at(self.model, events[:n]))
            assert masked(rebuilt) == snapshot, f"stored state at version {n}"
        for missing in (0, last + 1, 10**6):
            assert_problem(await reader.get(f"{self.base}/{self.id}/versions/{missing}"), 404)


def masked(doc: RootDocument) -> dict[str, Any]:
    """A document's journaled fields, secrets masked (the journal never holds them)."""
    data = journal.journal_dump(doc)
    for path in doc.secret_fields:
        node = data
        *parents, leaf = path.split(".")
        for part in parents:
            node = node.get(part) or {}
        if leaf in node:
            node[leaf] = SECRET
    return data


async def stored_snapshot(model: type[RootDocument], id: UUID) -> dict[str, Any]:
    doc = await model.find_one({"_id": Binary.from_uuid(id)}, with_children=True)
    assert doc is not None
    return masked(doc)


# -- a user: nested parts, lists, maps, secrets, private parts, delete and restore ------------


async def test_every_version_of_a_user_is_what_get_said(
    client: httpx.AsyncClient, owner: Account, member: Account, viewer: Account
) -> None:
    me = member.client
    walk = Walk(owner.client, "/v1/users", str(member.id), User)
    await walk.record()  # version 1: created

    async def step(response: httpx.Response) -> None:
        assert response.status_code < 300, response.text
        await walk.record()

    await step(
        await me.patch(
            "/v1/users/me",
            json={"profile": {"first_name": "Ana", "contact_info": {"phone": "+14155550101"}}},
        )
    )
    await step(await me.patch("/v1/users/me", json={"tags": ["north", "luxury"]}))
    await step(await me.patch("/v1/users/me", json={"marketing": {"target_markets": ["SF"]}}))
    await step(await me.patch("/v1/users/me", json={"segments": {"farm": "north", "tier": "a"}}))
    await step(await me.patch("/v1/users/me", json={"segments": {"farm": None}}))  # key removed
    await step(await me.patch("/v1/users/me", json={"segments": None}))  # map emptied
    await step(await me.patch("/v1/users/me", json={"feature_flags": {"beta": True}}))
    await step(await me.patch("/v1/users/me", json={"feature_flags": {"beta": None}}))
    await step(await me.patch("/v1/users/me", json={"tags": ["luxury"]}))
    await step(await me.patch("/v1/users/me", json={"profile": None}))  # a part reset whole
    await step(await me.post("/v1/users/me/2fa"))  # a secret: "***" in the journal
    await step(await me.put("/v1/billing/info", json={"tax_id": "TAX-1", "address": {}}))
    card = {"provider": "stripe", "last4": "4242", "exp_month": 1, "exp_year": 2031}
    await step(await me.post("/v1/billing/payment-methods", json=card))
    await step(await me.put("/v1/ai/context", json={"custom_instructions": "be brief"}))
    password = {"current_password": PASSWORD, "new_password": "another-password-7"}
    await step(await me.post("/v1/users/me/password", json=password))
    await step(await owner.client.patch(f"/v1/users/{member.id}", json={"role": "admin"}))
    await step(await owner.client.delete(f"/v1/users/{member.id}"))
    await step(await owner.client.post(f"/v1/users/{member.id}/restore"))
    login = {"username": member.user.username, "password": "another-password-7"}
    await step(await client.post("/v1/auth/token", data=login))
    assert len(walk.responses) == 20

    await walk.check()
    # A colleague sees the same versions: what their GET shows, nothing private.
    await walk.check(viewer.client)
    seen = await viewer.client.get(f"/v1/users/{member.id}/versions/13")
    assert "TAX-1" not in seen.text and "billing" not in seen.json()


# -- an MLS lead: nested address, a nullable sub-document, lists, maps, archive --------------


async def test_every_version_of_a_lead_is_what_get_said(owner: Account) -> None:
    c = owner.client
    body = {
        "type": "mls",
        "mls_id": "ML-77",
        "first_name": "Bo",
        "email": "bo@example.com",
        "address": {"line1": "1 Main St", "city": "Springfield"},
        "listing_agent": {"name": "Lu", "brokerage": "Acme"},
        "list_price": 450000.5,
        "segments": {"farm": "north"},
    }
    created = await make_lead(owner, **body)
    walk = Walk(c, "/v1/leads", created["id"], LeadBase)
    await walk.record()
    url = f"/v1/leads/{walk.id}"
    steps: list[tuple[str, dict[str, Any] | None]] = [
        ("PATCH", {"address": {"line1": "1 Main St", "city": "Shelbyville"}}),
        ("PATCH", {"listing_agent": None}),  # a sub-document becomes null
        ("PATCH", {"listing_agent": {"email": "agent@example.com"}}),
        ("PATCH", {"tags": ["hot", "pool"]}),
        ("PATCH", {"segments": {"farm": "south", "zone": "b"}}),
        ("PATCH", {"segments": {}}),
        ("PATCH", {"list_price": None, "beds": 3}),
        ("POST archive", None),
        ("POST unarchive", None),
        ("DELETE", None),
        ("POST restore", None),
        ("PATCH", {"status": "contacted", "tags": []}),
    ]
    for method, patch in steps:
        if method == "PATCH":
            response = await c.patch(url, json=patch)
        elif method == "DELETE":
            response = await c.delete(url)
        else:
            response = await c.post(f"{url}/{method.split()[1]}")
        assert response.status_code < 300, response.text
        await walk.record()
    await walk.check()


# -- a team: a list of sub-documents that grows and shrinks -----------------------------------


async def test_every_version_of_a_team_is_what_get_said(
    owner: Account, member: Account, viewer: Account
) -> None:
    from documents.team import Team

    c = owner.client
    team = await make_team(owner, name="Listings")
    walk = Walk(c, "/v1/teams", team["id"], Team)
    await walk.record()
    url = f"/v1/teams/{walk.id}"
    steps: list[tuple[str, str, dict[str, Any] | None]] = [
        ("POST", f"{url}/members", {"user_id": str(member.id), "role": "admin"}),
        ("POST", f"{url}/members", {"user_id": str(viewer.id)}),
        ("PATCH", f"{url}/members/{member.id}", {"role": "member"}),
        ("DELETE", f"{url}/members/{viewer.id}", None),
        ("PATCH", url, {"description": "Our listings", "tags": ["core"]}),
        ("DELETE", url, None),
        ("POST", f"{url}/restore", None),
    ]
    for method, path, body in steps:
        response = await c.request(method, path, json=body)
        assert response.status_code < 300, response.text
        await walk.record()
    await walk.check()


# -- a kanban board: entries of maps removed (no versions route; the rebuild itself) ----------


async def test_a_kanban_board_is_rebuilt_exactly_at_every_version(owner: Account) -> None:
    c = owner.client
    await c.get("/v1/kanban")
    board = await GlobalKanban.find_one({"user_id": Binary.from_uuid(owner.id)})
    assert board is not None
    snapshots = {board.version: masked(board)}

    async def snap() -> None:
        doc = await GlobalKanban.get(board.id)
        assert doc is not None
        snapshots[doc.version] = masked(doc)

    todo = (await c.post("/v1/kanban/states", json={"name": "Todo"})).json()
    await snap()
    done = (await c.post("/v1/kanban/states", json={"name": "Done"})).json()
    await snap()
    task = await c.post("/v1/kanban/tasks", json={"title": "Call Bo", "state_id": todo["id"]})
    assert task.status_code == 201, task.text
    await snap()
    other = (
        await c.post("/v1/kanban/tasks", json={"title": "Mail", "state_id": todo["id"]})
    ).json()
    await snap()
    moved = await c.post(
        f"/v1/kanban/tasks/{task.json()['id']}/move", json={"state_id": done["id"], "position": 0}
    )
    assert moved.status_code == 200, moved.text
    await snap()
    assert (await c.delete(f"/v1/kanban/tasks/{other['id']}")).status_code == 204
    await snap()
    assert (await c.delete(f"/v1/kanban/tasks/{task.json()['id']}")).status_code == 204
    await snap()
    events = (
        await DomainEvent.find({"aggregate_id": Binary.from_uuid(board.id)})
        .sort("version")
        .to_list()
    )
    for n, snapshot in snapshots.items():
        rebuilt = lifecycle.materialize(GlobalKanban, lifecycle.state_at(GlobalKanban, events[:n]))
        assert masked(rebuilt) == snapshot, f"version {n}"


# -- rules -----------------------------------------------------------------------------------


async def test_versions_are_tenant_scoped_and_validated(owner: Account, stranger: Account) -> None:
    blog = (await owner.client.post("/v1/blogs", json={"title": "Hello"})).json()
    url = f"/v1/blogs/{blog['id']}/versions"
    assert (await owner.client.get(f"{url}/1")).json() == blog
    assert_problem(await stranger.client.get(f"{url}/1"), 404)
    assert_problem(await owner.client.get(f"{url}/2"), 404)
    for bad in ("x", "-1", "1.5", str(2**40)):
        assert_problem(await owner.client.get(f"{url}/{bad}"), 422)


async def test_a_vanished_sub_document_is_journaled_at_its_own_path(owner: Account) -> None:
    body = {"type": "mls", "mls_id": "ML-9", "listing_agent": {"name": "Lu"}}
    lead = await make_lead(owner, **body)
    await owner.client.patch(f"/v1/leads/{lead['id']}", json={"listing_agent": None})
    history = (await owner.client.get(f"/v1/leads/{lead['id']}/history")).json()["items"]
    changes = {c["field"]: c for c in history[-1]["changes"]}
    assert changes["listing_agent"]["new"] is None
    assert changes["listing_agent"]["old"]["name"] == "Lu"
    assert changes["listing_agent.name"] == {
        "field": "listing_agent.name",
        "old": "Lu",
        "new": None,
    }
