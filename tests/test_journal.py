"""Journal completeness: every mutating route journals one event per change, by the right actor.

The routes are discovered from the app's OpenAPI document. A table of steps drives each of them
through a realistic flow; around every step the whole database is compared before and after:
each aggregate whose state changed moved up exactly ONE version, the journal gained exactly the
events of those new versions (no more, no fewer), each written by the caller, and no outbox is
left pending. A mutating route missing from the table fails `test_every_mutating_route_is_driven`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from unittest.mock import patch
from uuid import UUID

import httpx
import pyotp
import pytest
from bson import Binary
from fastapi import FastAPI

from documents import AGGREGATE_ROOTS
from documents.journal import DomainEvent
from documents.lead import LeadBase
from service import lifecycle
from service.core.repository import Repository
from tests.support.helpers import PASSWORD, Account, assert_problem

State = dict[str, Any]


@dataclass
class Step:
    """One request of the flow: which route, as whom, with what, and what it must do."""

    method: str
    route: str  # the OpenAPI path template it drives
    who: str  # "owner", "member", "admin" or "anon"
    status: int
    path: Callable[[State], str] | None = None  # default: `route` formatted with the state
    body: Callable[[State], Any] | None = None
    form: dict[str, str] | None = None
    journals: bool | None = True  # True: something changes; False: nothing; None: either
    keep: Callable[[State, httpx.Response], None] | None = None
    actor: Callable[[State, httpx.Response], UUID] | None = None  # default: the caller
    headers: Callable[[State], dict[str, str]] | None = None


def _k(name: str, key: str = "id") -> Callable[[State, httpx.Response], None]:
    def keep(state: State, response: httpx.Response) -> None:
        state[name] = response.json()[key]

    return keep


def _totp(state: State, ahead: int = 0) -> dict[str, str]:
    totp = pyotp.TOTP(state["totp_secret"])
    return {"code": totp.at(datetime.now(UTC) + timedelta(seconds=30 * ahead))}


def _keep_totp(state: State, response: httpx.Response) -> None:
    state["totp_secret"] = pyotp.parse_uri(response.json()["provisioning_uri"]).secret


def _keep_board(state: State, response: httpx.Response) -> None:
    state["kanban_state"] = response.json()["id"]


LEAD = {"type": "generic", "email": "ana@example.com", "first_name": "Ana"}

STEPS: list[Step] = [
    # -- auth and users ------------------------------------------------------------------------
    Step(
        "POST",
        "/v1/auth/register",
        "anon",
        201,
        body=lambda s: {
            "username": "newcomer",
            "email": "newcomer@example.com",
            "password": PASSWORD,
        },
        actor=lambda s, r: UUID(r.json()["id"]),
    ),
    Step(
        "POST",
        "/v1/auth/token",
        "anon",
        200,
        form={"username": "newcomer", "password": PASSWORD},
        journals=None,
        actor=lambda s, r: s["newcomer_id"],
    ),
    Step("PATCH", "/v1/users/me", "member", 200, body=lambda s: {"profile": {"first_name": "Mo"}}),
    Step("POST", "/v1/users/me/2fa", "member", 200, keep=_keep_totp),
    Step("POST", "/v1/users/me/2fa/confirm", "member", 200, body=lambda s: _totp(s)),
    Step("DELETE", "/v1/users/me/2fa", "member", 200, body=lambda s: _totp(s, ahead=1)),
    Step(
        "PATCH",
        "/v1/users/{id}",
        "owner",
        200,
        path=lambda s: f"/v1/users/{s['viewer']}",
        body=lambda s: {"role": "member"},
    ),
    Step("DELETE", "/v1/users/{id}", "owner", 204, path=lambda s: f"/v1/users/{s['viewer']}"),
    Step(
        "POST",
        "/v1/users/{id}/restore",
        "owner",
        200,
        path=lambda s: f"/v1/users/{s['viewer']}/restore",
    ),
    Step("POST", "/v1/api-keys", "owner", 201, body=lambda s: {"name": "crm"}, keep=_k("key")),
    Step("DELETE", "/v1/api-keys/{id}", "owner", 204, path=lambda s: f"/v1/api-keys/{s['key']}"),
    # -- teams and invitations -------------------------------------------------------------------
    Step("POST", "/v1/teams", "owner", 201, body=lambda s: {"name": "Sellers"}, keep=_k("team")),
    Step(
        "PATCH",
        "/v1/teams/{id}",
        "owner",
        200,
        path=lambda s: f"/v1/teams/{s['team']}",
        body=lambda s: {"description": "North side"},
    ),
    Step(
        "POST",
        "/v1/teams/{id}/members",
        "owner",
        201,
        path=lambda s: f"/v1/teams/{s['team']}/members",
        body=lambda s: {"user_id": s["viewer"]},
    ),
    Step(
        "PATCH",
        "/v1/teams/{id}/members/{user_id}",
        "owner",
        200,
        path=lambda s: f"/v1/teams/{s['team']}/members/{s['viewer']}",
        body=lambda s: {"role": "admin"},
    ),
    Step(
        "DELETE",
        "/v1/teams/{id}/members/{user_id}",
        "owner",
        200,
        path=lambda s: f"/v1/teams/{s['team']}/members/{s['viewer']}",
    ),
    Step(
        "POST",
        "/v1/teams/{id}/invitations",
        "owner",
        201,
        path=lambda s: f"/v1/teams/{s['team']}/invitations",
        body=lambda s: {"email": s["member_email"], "role": "member"},
        keep=lambda s, r: s.update(invite_token=r.json()["token"], invite=r.json()["id"]),
    ),
    Step(
        "POST",
        "/v1/invitations/{token}/accept",
        "member",
        200,
        path=lambda s: f"/v1/invitations/{s['invite_token']}/accept",
    ),
    Step(
        "POST",
        "/v1/teams/{id}/invitations",
        "owner",
        201,
        path=lambda s: f"/v1/teams/{s['team']}/invitations",
        body=lambda s: {"email": "later@example.com", "role": "member"},
        keep=_k("invite2"),
    ),
    Step(
        "DELETE",
        "/v1/invitations/{id}",
        "owner",
        204,
        path=lambda s: f"/v1/invitations/{s['invite2']}",
    ),
    Step("DELETE", "/v1/teams/{id}", "owner", 204, path=lambda s: f"/v1/teams/{s['team']}"),
    Step(
        "POST",
        "/v1/teams/{id}/restore",
        "owner",
        200,
        path=lambda s: f"/v1/teams/{s['team']}/restore",
    ),
    # -- leads, campaigns, touchpoints ----------------------------------------------------------
    Step("POST", "/v1/leads", "member", 201, body=lambda s: LEAD, keep=_k("lead")),
    Step(
        "POST",
        "/v1/leads/bulk",
        "member",
        200,
        body=lambda s: {"leads": [{"type": "mls", "mls_id": "MLS-1"}, LEAD]},
    ),
    Step(
        "PATCH",
        "/v1/leads/{id}",
        "member",
        200,
        path=lambda s: f"/v1/leads/{s['lead']}",
        body=lambda s: {"last_name": "Lima"},
    ),
    Step(
        "POST",
        "/v1/campaigns",
        "member",
        201,
        body=lambda s: {"type": "call", "name": "Spring calls"},
        keep=_k("campaign"),
    ),
    Step(
        "PATCH",
        "/v1/campaigns/{id}",
        "member",
        200,
        path=lambda s: f"/v1/campaigns/{s['campaign']}",
        body=lambda s: {"status": "active"},
    ),
    Step(
        "POST",
        "/v1/campaigns/{id}/leads",
        "member",
        200,
        path=lambda s: f"/v1/campaigns/{s['campaign']}/leads",
        body=lambda s: {"lead_ids": [s["lead"]]},
    ),
    # A touchpoint is a fact (not journaled itself); its lead moves new → contacted.
    Step(
        "POST",
        "/v1/events",
        "member",
        201,
        keep=_k("event"),
        body=lambda s: {
            "type": "call",
            "campaign_id": s["campaign"],
            "lead_id": s["lead"],
            "outcome": "answered",
        },
    ),
    Step(
        "PATCH",
        "/v1/events/{id}",
        "member",
        405,
        path=lambda s: f"/v1/events/{s['event']}",
        body=lambda s: {"notes": "x"},
        journals=False,
    ),
    Step(
        "PUT",
        "/v1/events/{id}",
        "member",
        405,
        path=lambda s: f"/v1/events/{s['event']}",
        body=lambda s: {"notes": "x"},
        journals=False,
    ),
    Step(
        "DELETE",
        "/v1/events/{id}",
        "member",
        405,
        path=lambda s: f"/v1/events/{s['event']}",
        journals=False,
    ),
    # A merge: the source is deleted (merged_into), the target gains its phone, and the
    # campaign, where both were members, counts one live lead fewer: one version each.
    Step(
        "POST",
        "/v1/leads",
        "member",
        201,
        body=lambda s: {"type": "generic", "email": "bea@example.com", "phone": "4155550100"},
        keep=_k("duplicate"),
    ),
    Step(
        "POST",
        "/v1/campaigns/{id}/leads",
        "member",
        200,
        path=lambda s: f"/v1/campaigns/{s['campaign']}/leads",
        body=lambda s: {"lead_ids": [s["duplicate"]]},
    ),
    Step(
        "POST",
        "/v1/leads/{id}/merge",
        "member",
        200,
        path=lambda s: f"/v1/leads/{s['lead']}/merge",
        body=lambda s: {"source_ids": [s["duplicate"]]},
    ),
    # Erasing the merged source: one `lead.erased` version (its values redacted in place).
    Step(
        "POST",
        "/v1/leads/{id}/erase",
        "owner",
        200,
        path=lambda s: f"/v1/leads/{s['duplicate']}/erase",
    ),
    # -- outreach (issue 25) --------------------------------------------------------------------
    Step(
        "PUT",
        "/v1/leads/{id}/consent/{channel}",
        "member",
        200,
        path=lambda s: f"/v1/leads/{s['lead']}/consent/email",
        body=lambda s: {"status": "opted_in", "source": "form"},
    ),
    Step(
        "POST",
        "/v1/leads/assign",
        "member",
        200,
        body=lambda s: {"lead_ids": [s["lead"]], "assignee_id": s["viewer"]},
    ),
    Step("PATCH", "/v1/tenant", "owner", 200, body=lambda s: {"time_zone": "America/Chicago"}),
    Step(
        "POST",
        "/v1/suppressions",
        "owner",
        201,
        keep=_k("suppression"),
        body=lambda s: {"channel": "email", "value": "nobody@example.com"},
    ),
    Step(
        "DELETE",
        "/v1/suppressions/{id}",
        "owner",
        204,
        path=lambda s: f"/v1/suppressions/{s['suppression']}",
    ),
    # Claims and provider callbacks change links and events, which are not journaled.
    Step(
        "POST",
        "/v1/campaigns/{id}/recipients/claim",
        "member",
        200,
        path=lambda s: f"/v1/campaigns/{s['campaign']}/recipients/claim",
        body=lambda s: {"limit": 1},
        journals=False,
    ),
    Step(
        "POST",
        "/v1/events",
        "member",
        201,
        body=lambda s: {
            "type": "call",
            "campaign_id": s["campaign"],
            "lead_id": s["lead"],
            "outcome": "no_answer",
            "provider": "twilio",
            "external_id": "CA1",
        },
        journals=None,
    ),
    Step(
        "POST",
        "/v1/events/status",
        "member",
        200,
        body=lambda s: {"provider": "twilio", "external_id": "CA1", "status": "answered"},
        journals=False,
    ),
    # Detaching a lead: the campaign journals it (`lead_count` follows; issue 23).
    Step(
        "DELETE",
        "/v1/campaigns/{id}/leads/{lead_id}",
        "member",
        204,
        path=lambda s: f"/v1/campaigns/{s['campaign']}/leads/{s['lead']}",
    ),
]
for _coll, _id in (("campaigns", "campaign"), ("leads", "lead")):
    STEPS += [
        Step(
            "POST",
            f"/v1/{_coll}/{{id}}/archive",
            "member",
            200,
            path=lambda s, c=_coll, i=_id: f"/v1/{c}/{s[i]}/archive",
        ),
        Step(
            "POST",
            f"/v1/{_coll}/{{id}}/unarchive",
            "member",
            200,
            path=lambda s, c=_coll, i=_id: f"/v1/{c}/{s[i]}/unarchive",
        ),
        Step(
            "DELETE",
            f"/v1/{_coll}/{{id}}",
            "member",
            204,
            path=lambda s, c=_coll, i=_id: f"/v1/{c}/{s[i]}",
        ),
        Step(
            "POST",
            f"/v1/{_coll}/{{id}}/restore",
            "member",
            200,
            path=lambda s, c=_coll, i=_id: f"/v1/{c}/{s[i]}/restore",
        ),
    ]
STEPS += [
    # -- the user's own workspace ----------------------------------------------------------------
    Step("PUT", "/v1/subscription", "owner", 200, body=lambda s: {"plan": "pro"}),
    Step("PUT", "/v1/ai/config", "owner", 200, body=lambda s: {"temperature": 0.2}),
    Step("PUT", "/v1/ai/context", "owner", 200, body=lambda s: {"tone": "warm"}),
    Step(
        "POST", "/v1/blogs", "owner", 201, body=lambda s: {"title": "Open house"}, keep=_k("blog")
    ),
    Step(
        "PATCH",
        "/v1/blogs/{id}",
        "owner",
        200,
        path=lambda s: f"/v1/blogs/{s['blog']}",
        body=lambda s: {"content": "Sunday 2pm"},
    ),
    Step(
        "POST",
        "/v1/blogs/{id}/publish",
        "owner",
        200,
        path=lambda s: f"/v1/blogs/{s['blog']}/publish",
        body=lambda s: {},
    ),
    Step(
        "POST",
        "/v1/kanban/states",
        "owner",
        201,
        body=lambda s: {"name": "To do"},
        keep=_keep_board,
    ),
    Step(
        "POST",
        "/v1/kanban/tasks",
        "owner",
        201,
        keep=_k("task"),
        body=lambda s: {"title": "Call Ana", "state_id": s["kanban_state"]},
    ),
    Step(
        "POST",
        "/v1/kanban/tasks/{task_id}/move",
        "owner",
        200,
        path=lambda s: f"/v1/kanban/tasks/{s['task']}/move",
        body=lambda s: {"state_id": s["kanban_state"], "position": 0},
        journals=None,
    ),
    Step(
        "POST",
        "/v1/research/topics",
        "owner",
        201,
        body=lambda s: {"topic": "Condos"},
        keep=_k("topic"),
    ),
    Step(
        "POST",
        "/v1/integrations",
        "owner",
        201,
        body=lambda s: {"type": "google"},
        keep=_k("integration"),
    ),
    Step(
        "PATCH",
        "/v1/integrations/{id}",
        "owner",
        200,
        path=lambda s: f"/v1/integrations/{s['integration']}",
        body=lambda s: {"name": "G"},
    ),
    Step(
        "PATCH",
        "/v1/research/topics/{id}",
        "owner",
        200,
        path=lambda s: f"/v1/research/topics/{s['topic']}",
        body=lambda s: {"market": "NYC"},
    ),
    Step(
        "POST",
        "/v1/research/topics/{id}/results",
        "owner",
        201,
        path=lambda s: f"/v1/research/topics/{s['topic']}/results",
        body=lambda s: {"keywords": ["condo"], "search_volume": 10},
    ),
    Step(
        "POST",
        "/v1/saved-searches",
        "owner",
        201,
        keep=_k("search"),
        body=lambda s: {"name": "New leads", "resource": "leads", "filters": {"status": "new"}},
    ),
    Step(
        "PATCH",
        "/v1/saved-searches/{id}",
        "owner",
        200,
        path=lambda s: f"/v1/saved-searches/{s['search']}",
        body=lambda s: {"name": "Fresh"},
    ),
    Step(
        "POST",
        "/v1/ai/usage",
        "owner",
        201,
        body=lambda s: {
            "model": "gpt-4o-mini",
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "feature": "blog",
        },
    ),
    Step("PUT", "/v1/billing/info", "owner", 200, body=lambda s: {"billing_name": "Acme"}),
    Step(
        "POST",
        "/v1/billing/payment-methods",
        "owner",
        201,
        keep=_k("card"),
        body=lambda s: {"provider": "stripe", "last4": "4242", "exp_month": 12, "exp_year": 2099},
    ),
    Step(
        "DELETE",
        "/v1/billing/payment-methods/{id}",
        "owner",
        204,
        path=lambda s: f"/v1/billing/payment-methods/{s['card']}",
    ),
    Step(
        "POST",
        "/v1/billing/history",
        "owner",
        201,
        body=lambda s: {"amount": 49.5, "date": "2024-05-01T00:00:00Z", "status": "paid"},
    ),
    Step(
        "PATCH",
        "/v1/kanban/states/{state_id}",
        "owner",
        200,
        path=lambda s: f"/v1/kanban/states/{s['kanban_state']}",
        body=lambda s: {"name": "Do"},
    ),
    Step(
        "PATCH",
        "/v1/kanban/tasks/{task_id}",
        "owner",
        200,
        path=lambda s: f"/v1/kanban/tasks/{s['task']}",
        body=lambda s: {"title": "Call Bo"},
    ),
    Step(
        "DELETE",
        "/v1/kanban/tasks/{task_id}",
        "owner",
        204,
        path=lambda s: f"/v1/kanban/tasks/{s['task']}",
    ),
    Step(
        "DELETE",
        "/v1/kanban/states/{state_id}",
        "owner",
        204,
        path=lambda s: f"/v1/kanban/states/{s['kanban_state']}",
    ),
]
for _coll, _id in (
    ("blogs", "blog"),
    ("integrations", "integration"),
    ("research/topics", "topic"),
    ("saved-searches", "search"),
):
    STEPS += [
        Step(
            "POST",
            f"/v1/{_coll}/{{id}}/archive",
            "owner",
            200,
            path=lambda s, c=_coll, i=_id: f"/v1/{c}/{s[i]}/archive",
        ),
        Step(
            "POST",
            f"/v1/{_coll}/{{id}}/unarchive",
            "owner",
            200,
            path=lambda s, c=_coll, i=_id: f"/v1/{c}/{s[i]}/unarchive",
        ),
        Step(
            "DELETE",
            f"/v1/{_coll}/{{id}}",
            "owner",
            204,
            path=lambda s, c=_coll, i=_id: f"/v1/{c}/{s[i]}",
        ),
        Step(
            "POST",
            f"/v1/{_coll}/{{id}}/restore",
            "owner",
            200,
            path=lambda s, c=_coll, i=_id: f"/v1/{c}/{s[i]}/restore",
        ),
    ]

STEPS += [
    Step(
        "POST",
        "/v1/webhooks",
        "owner",
        201,
        body=lambda s: {"url": "http://127.0.0.1:9/hook", "event_types": ["lead.*"]},
        keep=_k("webhook"),
    ),
    Step(
        "PATCH",
        "/v1/webhooks/{id}",
        "owner",
        200,
        path=lambda s: f"/v1/webhooks/{s['webhook']}",
        body=lambda s: {"event_types": ["*"], "enabled": False},
    ),
    Step(
        "DELETE", "/v1/webhooks/{id}", "owner", 204, path=lambda s: f"/v1/webhooks/{s['webhook']}"
    ),
]

# Last: changing the password ends the member's current token.
STEPS.append(
    Step(
        "POST",
        "/v1/users/me/password",
        "member",
        200,
        body=lambda s: {"current_password": PASSWORD, "new_password": PASSWORD + "x"},
    )
)

# Routes that create their aggregate lazily and then change it in the same request, so a first
# call journals "created" and the change (two consecutive versions, still gap-free).
LAZY_CREATE: set[tuple[str, str]] = {("POST", "/v1/kanban/states")}

# Mutating routes the table does not drive yet, each with the reason. Kept exact: a stale entry
# (a route that no longer exists, or is now driven) fails the coverage test too.
NOT_DRIVEN: dict[tuple[str, str], str] = {}


@dataclass
class Snapshot:
    versions: dict[tuple[str, Any], int] = field(default_factory=dict)
    pending: list[Any] = field(default_factory=list)
    events: dict[tuple[Any, int], dict[str, Any]] = field(default_factory=dict)


async def snapshot() -> Snapshot:
    """Every aggregate's version and outbox, and every journal event, as stored."""
    snap = Snapshot()
    for name in {m.get_pymongo_collection().name for m in AGGREGATE_ROOTS}:
        collection = AGGREGATE_ROOTS[0].get_pymongo_collection().database.get_collection(name)
        async for doc in collection.find({}, {"version": 1, "pending_event": 1}):
            snap.versions[(name, doc["_id"])] = doc["version"]
            if doc.get("pending_event"):
                snap.pending.append((name, doc["_id"]))
    async for e in DomainEvent.get_pymongo_collection().find({}):
        snap.events[(e["aggregate_id"], e["version"])] = e
    return snap


def _as_uuid(value: Any) -> Any:
    return value.as_uuid() if isinstance(value, Binary) else value


def mutating_routes(app: FastAPI) -> set[tuple[str, str]]:
    """(METHOD, path) of every POST/PUT/PATCH/DELETE under /v1 in the OpenAPI document."""
    paths = app.openapi()["paths"]
    return {
        (method.upper(), path)
        for path, item in paths.items()
        for method in item
        if path.startswith("/v1/") and method in {"post", "put", "patch", "delete"}
    }


def test_every_mutating_route_is_driven(app: FastAPI) -> None:
    # Steps that expect 405 drive refusals (events are facts), which need not be documented.
    driven = {(s.method, s.route) for s in STEPS if s.status != 405}
    discovered = mutating_routes(app)
    assert driven <= discovered, f"steps for unknown routes: {sorted(driven - discovered)}"
    missing = discovered - driven - NOT_DRIVEN.keys()
    assert not missing, f"mutating routes without a journal check: {sorted(missing)}"
    assert not (NOT_DRIVEN.keys() - discovered), "stale NOT_DRIVEN entries"
    for domain in ("/v1/campaigns", "/v1/leads", "/v1/users", "/v1/teams"):
        assert any(r.startswith(domain) for _, r in driven), domain


@pytest.mark.usefixtures("app")
async def test_every_mutating_route_journals_one_event_per_change(
    client: httpx.AsyncClient, owner: Account, member: Account, viewer: Account
) -> None:
    clients = {"owner": owner.client, "member": member.client, "anon": client}
    actors = {"owner": owner.id, "member": member.id}
    state: State = {"viewer": str(viewer.id), "member_email": member.user.email}
    for step in STEPS:
        before = await snapshot()
        url = step.path(state) if step.path else step.route
        kwargs: dict[str, Any] = {}
        if step.body is not None:
            kwargs["json"] = step.body(state)
        if step.form is not None:
            kwargs["data"] = step.form
        r = await clients[step.who].request(step.method, url, **kwargs)
        label = f"{step.method} {step.route}"
        assert r.status_code == step.status, f"{label}: {r.status_code} {r.text}"
        if step.keep:
            step.keep(state, r)
        if step.route == "/v1/auth/register":
            state["newcomer_id"] = UUID(r.json()["id"])
        after = await snapshot()

        changed = {
            key: (before.versions.get(key, 0), v)
            for key, v in after.versions.items()
            if before.versions.get(key) != v
        }
        for key, (old, new) in changed.items():
            if (step.method, step.route) in LAZY_CREATE and old == 0:
                continue
            assert new == old + 1, f"{label}: {key} moved {old} → {new}, not one version"
        expected = {
            (key[1], v) for key, (old, new) in changed.items() for v in range(old + 1, new + 1)
        }
        added = after.events.keys() - before.events.keys()
        assert added == expected, f"{label}: journal gained {added}, state changed {expected}"
        actor = step.actor(state, r) if step.actor else actors[step.who]
        for key in added:
            event = after.events[key]
            assert _as_uuid(event["actor_id"]) == actor, (
                f"{label}: actor {event['actor_id']} ≠ {actor}"
            )
        assert not after.pending, f"{label}: outbox left pending {after.pending}"
        if step.journals is True:
            assert changed, f"{label}: changed nothing"
        if step.journals is False:
            assert not changed, f"{label}: changed {changed}"


async def test_version_equals_last_event_for_every_aggregate(
    owner: Account, member: Account
) -> None:
    await member.client.patch("/v1/users/me", json={"profile": {"last_name": "X"}})
    await owner.client.post("/v1/teams", json={"name": "T"})
    snap = await snapshot()
    last: dict[Any, int] = {}
    for aggregate_id, version in snap.events:
        last[aggregate_id] = max(last.get(aggregate_id, 0), version)
    for (_, aggregate_id), version in snap.versions.items():
        assert last.get(aggregate_id) == version
        got = sorted(v for a, v in snap.events if a == aggregate_id)
        assert got == list(range(1, version + 1))  # no gaps


async def test_derived_fields_are_stored_with_every_write_and_never_journaled(
    owner: Account,
) -> None:
    # A lead's search fields are derived from its other fields on every validation: the
    # journal keeps what they derive from (single create, bulk create, update), every write
    # stores them, and a version rebuilt from the journal derives them again.
    assert LeadBase.derived_fields == {"search_text", "search_tokens"}
    one = await owner.client.post(
        "/v1/leads", json={"type": "generic", "first_name": "Ana", "email": "a.silva@example.com"}
    )
    bulk = await owner.client.post(
        "/v1/leads/bulk", json={"leads": [{"type": "mls", "mls_id": "B-1", "last_name": "Ito"}]}
    )
    lead_id = UUID(one.json()["id"])
    patched = await owner.client.patch(f"/v1/leads/{lead_id}", json={"first_name": "Anna"})
    assert (one.status_code, bulk.json()["created"], patched.status_code) == (201, 1, 200)
    lead_events = [e for e in (await snapshot()).events.values() if e["aggregate_type"] == "lead"]
    assert len(lead_events) == 3
    for event in lead_events:
        journaled = {c["field"].split(".")[0] for c in event["changes"]}
        assert "first_name" in journaled or "mls_id" in journaled, event
        assert not journaled & LeadBase.derived_fields, event
    stored = await LeadBase.get_pymongo_collection().find_one({"_id": Binary.from_uuid(lead_id)})
    assert stored is not None
    assert "anna" in stored["search_tokens"] and "ana" not in stored["search_tokens"]
    assert stored["search_text"].startswith("anna")
    rebuilt = await lifecycle.version(ctx=owner.ctx, model=LeadBase, id=lead_id, n=2)
    assert (rebuilt.search_text, rebuilt.search_tokens) == (
        stored["search_text"],
        stored["search_tokens"],
    )
    first = await lifecycle.version(ctx=owner.ctx, model=LeadBase, id=lead_id, n=1)
    assert "ana" in first.search_tokens and "anna" not in first.search_tokens


# -- concurrency -------------------------------------------------------------------------------


async def test_two_patches_with_the_same_if_match_one_wins(member: Account) -> None:
    r = await member.client.post("/v1/campaigns", json={"type": "call", "name": "Race"})
    cid = r.json()["id"]
    etag = r.headers["ETag"]
    # Both requests read version 1 before either writes: the guard in the write decides.
    real, arrived = Repository.update, 0
    both_read = asyncio.Event()

    async def rendezvous(self: Any, doc: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal arrived
        arrived += 1
        if arrived == 2:
            both_read.set()
        await asyncio.wait_for(both_read.wait(), timeout=5)
        return await real(self, doc, *args, **kwargs)

    with patch.object(Repository, "update", rendezvous):
        answers = await asyncio.gather(
            member.client.patch(
                f"/v1/campaigns/{cid}", json={"name": "A"}, headers={"If-Match": etag}
            ),
            member.client.patch(
                f"/v1/campaigns/{cid}", json={"name": "B"}, headers={"If-Match": etag}
            ),
        )
    assert sorted(a.status_code for a in answers) == [200, 412], [a.text for a in answers]
    loser = next(a for a in answers if a.status_code == 412)
    assert_problem(loser, 412)
    winner = next(a for a in answers if a.status_code == 200)
    history = (await member.client.get(f"/v1/campaigns/{cid}/history")).json()["items"]
    assert [e["version"] for e in history] == [1, 2]
    assert history[1]["changes"] == [{"field": "name", "old": "Race", "new": winner.json()["name"]}]


async def test_stale_if_match_is_412_and_changes_nothing(member: Account) -> None:
    cid = (await member.client.post("/v1/campaigns", json={"type": "call", "name": "N"})).json()[
        "id"
    ]
    await member.client.patch(f"/v1/campaigns/{cid}", json={"name": "N2"})
    r = await member.client.patch(
        f"/v1/campaigns/{cid}", json={"name": "N3"}, headers={"If-Match": '"1"'}
    )
    assert_problem(r, 412)
    history = (await member.client.get(f"/v1/campaigns/{cid}/history")).json()["items"]
    assert len(history) == 2


# -- history and audit log ---------------------------------------------------------------------


async def test_history_is_tenant_scoped(owner: Account, stranger: Account) -> None:
    cid = (await owner.client.post("/v1/campaigns", json={"type": "call", "name": "H"})).json()[
        "id"
    ]
    assert_problem(await stranger.client.get(f"/v1/campaigns/{cid}/history"), 404)
    items = (await owner.client.get(f"/v1/campaigns/{cid}/history")).json()["items"]
    assert [(e["version"], e["event_type"], e["actor_id"]) for e in items] == [
        (1, "campaign.created", str(owner.id))
    ]


@pytest.mark.usefixtures("viewer")
async def test_audit_log_filters_and_pages(owner: Account, member: Account) -> None:
    cid = (await member.client.post("/v1/campaigns", json={"type": "call", "name": "A"})).json()[
        "id"
    ]
    await member.client.patch(f"/v1/campaigns/{cid}", json={"name": "B"})
    await owner.client.patch("/v1/users/me", json={"profile": {"first_name": "O"}})

    mine = (await owner.client.get("/v1/audit", params={"actor_id": str(member.id)})).json()
    kinds = [(e["aggregate_type"], e["event_type"], e["version"]) for e in mine["items"]]
    assert kinds[:2] == [("campaign", "campaign.updated", 2), ("campaign", "campaign.created", 1)]
    assert all(e["actor_id"] == str(member.id) for e in mine["items"])

    only = await owner.client.get("/v1/audit", params={"aggregate_type": "campaign"})
    assert {e["aggregate_id"] for e in only.json()["items"]} == {cid}

    pages, cursor = [], None
    while True:
        params: dict[str, Any] = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = (await owner.client.get("/v1/audit", params=params)).json()
        pages += page["items"]
        cursor = page["next_cursor"]
        if not cursor:
            break
    everything = (await owner.client.get("/v1/audit", params={"limit": 200})).json()["items"]
    assert [e["id"] for e in pages] == [e["id"] for e in everything]
    # As instants: ISO text drops a zero fraction (`…:54Z` sorts after `…:54.064000Z` as text).
    times = [datetime.fromisoformat(e["occurred_at"]) for e in everything]
    assert times == sorted(times, reverse=True)

    future = {"since": "2999-01-01"}
    assert (await owner.client.get("/v1/audit", params=future)).json()["items"] == []
    password_events = [c for e in everything for c in e["changes"] if c["field"] == "password_hash"]
    assert all(c["new"] in (None, "***") for c in password_events)


async def test_audit_log_is_admin_only_and_tenant_scoped(
    owner: Account, member: Account, stranger: Account, client: httpx.AsyncClient
) -> None:
    assert_problem(await member.client.get("/v1/audit"), 403)
    assert_problem(await client.get("/v1/audit"), 401)
    theirs = (await stranger.client.get("/v1/audit", params={"limit": 200})).json()["items"]
    assert theirs and all(e["aggregate_id"] not in {str(owner.id), str(member.id)} for e in theirs)
    ours = (await owner.client.get("/v1/audit", params={"limit": 200})).json()["items"]
    assert {str(owner.id), str(member.id)} <= {e["aggregate_id"] for e in ours}
    assert not {e["id"] for e in ours} & {e["id"] for e in theirs}


async def test_audit_log_rejects_bad_input(owner: Account) -> None:
    for params in (
        {"actor_id": "nope"},
        {"limit": 500},
        {"since": "2024-01-02", "until": "2024-01-01"},
        {"aggregate_type": "$where"},
        {"cursor": "@@"},
        {"unknown": "1"},
    ):
        assert_problem(await owner.client.get("/v1/audit", params=params), 422)


def test_flow_uses_only_documented_paths() -> None:
    for step in STEPS:
        assert re.fullmatch(r"/v1/[a-z0-9/{}_-]+", step.route), step.route


async def test_audit_log_leaves_out_a_colleagues_private_parts(
    owner: Account, admin: Account
) -> None:
    await owner.client.put("/v1/ai/config", json={"temperature": 0.3})
    await owner.client.patch("/v1/users/me", json={"profile": {"first_name": "Olga"}})

    def fields(account_items: list[dict[str, Any]]) -> set[str]:
        return {
            c["field"].split(".")[0]
            for e in account_items
            if e["aggregate_type"] == "user" and e["aggregate_id"] == str(owner.id)
            for c in e["changes"]
        }

    params = {"aggregate_type": "user", "limit": 200}
    theirs = (await admin.client.get("/v1/audit", params=params)).json()["items"]
    mine = (await owner.client.get("/v1/audit", params=params)).json()["items"]
    assert {"ai_config", "profile"} <= fields(mine)
    # As in history and the change feed: the admin sees the profile, not the owner's AI setup.
    assert "profile" in fields(theirs) and "ai_config" not in fields(theirs)
