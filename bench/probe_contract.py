"""A broad random walk over the whole contract against a running service; records every 5xx.

Issue 30 asked for the cause of one 500 on `GET /v1/read-models/teams/{id}` seen by an outside
probe suite that walked the whole contract. This driver does the same from outside: it
registers a few tenants (owners, then invitees through invitation tokens), then runs
`--concurrency` clients, each picking a tenant and an endpoint kind at random (teams, members,
invitations, users, API keys, leads, bulk imports, merges, campaigns, events, blogs,
research, saved searches, kanban, webhooks, integrations, billing, AI, changes, and with
`--outreach` the tenant/consent/suppression/recipient/privacy endpoints), with about one
request in seven hostile (wrong types, odd strings, unknown or other tenants' ids, stale
If-Match, repeated Idempotency-Keys, bad query values). After every team, member, invitation
and user change it reads `GET /v1/read-models/teams/{team_id}` as a control, plus the other
read models now and then. Every 5xx is printed and appended to `<out>/5xx.jsonl`; look its
request id up in the server's log (`unhandled error` carries the traceback).

Start the service as `make run` does (`python -m service.serve`, one worker, embedded file
database), then:

    .venv/bin/python bench/probe_contract.py --base-url http://127.0.0.1:8000 \
        --requests 50000 --concurrency 12 --seed 1 --out /tmp/probe

`--team-cap 3` keeps few live teams per tenant (more writers on the same team); `--burst 20`
adds bursts of 3-8 concurrent writes on ONE team (members, rename, delete/restore, invitations,
its users) or ONE lead (patch, delete/restore, merge both ways, attach/detach, event with an
Idempotency-Key, consent, erase, claim), each followed by the read models.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import string
import time
import uuid
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import httpx

BASE = "http://127.0.0.1:8000"
TOTAL = 10_000
CONC = 12
NTEN = 4
TEAMCAP = 1_000_000
OUT = Path("/tmp/probe")
rng = random.Random(0)
RUN = "0"
PW = "Passw0rd!long-enough"

stats: Counter[str] = Counter()
kinds: Counter[str] = Counter()
fivexx: list[dict[str, Any]] = []
sent = 0
stop = False


def rs(n: int = 8) -> str:
    return "".join(rng.choice(string.ascii_lowercase) for _ in range(n))


ODD = [
    "",
    " ",
    "x" * 5000,
    "\u0000",
    "\ud800",
    "é" * 300,
    "💥" * 50,
    "<script>",
    "$where",
    "{'$gt': ''}",
    "a.b",
    "$set",
    "null",
    "\n\t",
    "Ω" * 2,
]
ODDV: list[Any] = [None, 1, -1, 2**63, 1.5, True, [], {}, ["x"], {"$gt": ""}, "x" * 3000, ""]


def odd() -> Any:
    return rng.choice(ODD) if rng.random() < 0.6 else rng.choice(ODDV)


class Tenant:
    def __init__(self, idx: int) -> None:
        self.idx = idx
        self.owner_tok: str | None = None
        self.users: dict[str, dict[str, Any]] = {}  # user_id -> {tok, email, username, pw}
        self.keys: dict[str, str] = {}  # key id -> key
        self.teams: list[str] = []
        self.invites: list[dict[str, Any]] = []
        self.ids: dict[str, list[str]] = defaultdict(list)
        self.versions: dict[str, int] = {}
        self.pending_regs: list[dict[str, Any]] = []


tenants: list[Tenant] = []


def log5xx(
    method: str, url: str, body: Any, r: httpx.Response | None, exc: str | None = None
) -> None:
    rec = {
        "t": time.strftime("%H:%M:%S", time.gmtime()),
        "method": method,
        "url": url,
        "body": body if not isinstance(body, (bytes, str)) else str(body)[:2000],
        "status": r.status_code if r is not None else None,
        "resp": r.text[:2000] if r is not None else exc,
    }
    fivexx.append(rec)
    with (OUT / "5xx.jsonl").open("a") as f:
        f.write(json.dumps(rec, default=str) + "\n")
    print("5XX", json.dumps(rec, default=str)[:600], flush=True)


async def req(
    c: httpx.AsyncClient,
    method: str,
    path: str,
    *,
    tok: str | None = None,
    key: str | None = None,
    kind: str,
    json_body: Any = None,
    data: Any = None,
    params: Any = None,
    headers: dict[str, str] | None = None,
    content: bytes | None = None,
) -> httpx.Response | None:
    global sent
    h = dict(headers or {})
    if tok:
        h["Authorization"] = f"Bearer {tok}"
    if key:
        h["X-API-Key"] = key
    sent += 1
    kinds[kind] += 1
    if json_body is not None and content is None:
        content = json.dumps(json_body).encode()  # ASCII escapes, as most clients send
        h.setdefault("Content-Type", "application/json")
    try:
        r = await c.request(
            method, BASE + path, data=data, params=params, headers=h, content=content, timeout=60
        )
    except Exception as e:
        stats["exc:" + type(e).__name__] += 1
        if isinstance(e, (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError)):
            await asyncio.sleep(0.5)  # a restart in progress
        elif not isinstance(e, UnicodeEncodeError):
            log5xx(method, path, json_body or data, None, repr(e))
        return None
    stats[str(r.status_code)] += 1
    if r.status_code >= 500:
        log5xx(method, path + ("?" + str(params) if params else ""), json_body or data, r)
    return r


def ok(r: httpx.Response | None) -> bool:
    return r is not None and r.status_code < 300


async def login(c: httpx.AsyncClient, ident: str, pw: str) -> str | None:
    r = await req(
        c, "POST", "/v1/auth/token", data={"username": ident, "password": pw}, kind="auth.token"
    )
    if ok(r):
        return r.json()["access_token"]
    return None


async def setup(c: httpx.AsyncClient) -> None:
    """Wait for the service, then register the tenants' owners."""
    for _ in range(120):
        try:
            if (await c.get(BASE + "/health")).status_code == 200:
                break
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.5)
    for i in range(NTEN):
        t = Tenant(i)
        u = f"p{RUN}t{i}o"
        r = await req(
            c,
            "POST",
            "/v1/auth/register",
            json_body={
                "username": u,
                "email": f"{u}@ex.com",
                "password": PW,
                "organization_name": f"org {i}",
            },
            kind="auth.register",
        )
        assert ok(r), r.text if r else None
        uid = r.json()["id"]
        tok = await login(c, u, PW)
        t.owner_tok = tok
        t.users[uid] = {"tok": tok, "username": u, "email": f"{u}@ex.com", "pw": PW, "owner": True}
        tenants.append(t)


def actor(t: Tenant, admin: bool = False) -> dict[str, str]:
    """Credentials: mostly the owner, sometimes another user or an API key."""
    x = rng.random()
    if admin or x < 0.55:
        return {"tok": t.owner_tok}
    if x < 0.8 and t.keys:
        return {"key": rng.choice(list(t.keys.values()))}
    u = rng.choice(list(t.users.values()))
    return {"tok": u["tok"]}


def some(t: Tenant, coll: str) -> str:
    """A known id, sometimes an unknown one or another tenant's."""
    x = rng.random()
    if x < 0.07:
        return str(uuid.uuid4())
    if x < 0.12 and len(tenants) > 1:
        o = rng.choice(tenants)
        if o.ids.get(coll):
            return rng.choice(o.ids[coll])
    if x < 0.14:
        return rng.choice(["not-a-uuid", "0", "%00", "..", "00000000-0000-0000-0000-000000000000"])
    ids = t.ids.get(coll) or [str(uuid.uuid4())]
    return rng.choice(ids)


def hostile() -> bool:
    return rng.random() < 0.15


# ------------------------------------------------------------------- actions -------------


async def control(c: httpx.AsyncClient, t: Tenant, team: str | None = None) -> None:
    team = team or (rng.choice(t.teams) if t.teams else None)
    if team:
        await req(
            c, "GET", f"/v1/read-models/teams/{team}", tok=t.owner_tok, kind="rm.team.control"
        )
    if rng.random() < 0.3:
        await req(c, "GET", "/v1/read-models/campaigns", tok=t.owner_tok, kind="rm.campaigns")
    if rng.random() < 0.2:
        await req(c, "GET", "/v1/read-models/analytics", tok=t.owner_tok, kind="rm.analytics")
    if rng.random() < 0.2 and t.ids["campaigns"]:
        await req(
            c,
            "GET",
            f"/v1/read-models/campaign-stats/{rng.choice(t.ids['campaigns'])}",
            tok=t.owner_tok,
            kind="rm.cstats",
        )


async def a_team(c: httpx.AsyncClient, t: Tenant) -> None:
    x = rng.random()
    a = actor(t)
    if (x < 0.18 and len(t.teams) < TEAMCAP) or not t.teams:
        body: Any = {
            "name": "team " + rs(),
            "description": rng.choice([None, "d", rs(30)]),
            "tags": [rs(3)],
        }
        if hostile():
            body = rng.choice(
                [
                    {"name": odd()},
                    {"name": "x", "tags": odd()},
                    {"name": "n", "tenant_id": str(uuid.uuid4())},
                    odd(),
                ]
            )
        r = await req(c, "POST", "/v1/teams", json_body=body, kind="team.create", **a)
        if ok(r):
            tid = r.json()["id"]
            t.teams.append(tid)
            t.ids["teams"].append(tid)
            await control(c, t, tid)
        return
    team = some(t, "teams")
    if x < 0.30:
        body = (
            {"name": "renamed " + rs()} if not hostile() else {"name": odd(), "description": odd()}
        )
        h = {}
        if rng.random() < 0.2:
            h["If-Match"] = rng.choice(['"1"', '"999"', "*", "garbage", '"0"'])
        await req(
            c, "PATCH", f"/v1/teams/{team}", json_body=body, headers=h, kind="team.patch", **a
        )
    elif x < 0.36:
        await req(c, "DELETE", f"/v1/teams/{team}", kind="team.delete", **a)
    elif x < 0.40:
        await req(c, "POST", f"/v1/teams/{team}/restore", kind="team.restore", **a)
    elif x < 0.55:
        uid = rng.choice(list(t.users)) if rng.random() < 0.85 else some(t, "users")
        body = {"user_id": uid, "role": rng.choice(["owner", "admin", "member"])}
        if hostile():
            body = rng.choice([{"user_id": odd()}, {"user_id": uid, "role": odd()}, {}])
        await req(
            c, "POST", f"/v1/teams/{team}/members", json_body=body, kind="team.member.add", **a
        )
    elif x < 0.63:
        uid = rng.choice(list(t.users)) if rng.random() < 0.9 else some(t, "users")
        await req(c, "DELETE", f"/v1/teams/{team}/members/{uid}", kind="team.member.remove", **a)
    elif x < 0.72:
        uid = rng.choice(list(t.users))
        body = {
            "role": rng.choice(["owner", "admin", "member", None]),
            "status": rng.choice(["active", "suspended", None]),
        }
        if hostile():
            body = {"role": odd(), "status": odd()}
        await req(
            c,
            "PATCH",
            f"/v1/teams/{team}/members/{uid}",
            json_body=body,
            kind="team.member.patch",
            **a,
        )
    elif x < 0.86:
        await a_invite(c, t, team)
        return
    elif x < 0.90:
        await req(
            c,
            "GET",
            f"/v1/teams/{team}/history",
            params={"limit": rng.choice([1, 50, 200])},
            kind="team.history",
            **a,
        )
    elif x < 0.93:
        await req(
            c,
            "GET",
            f"/v1/teams/{team}/versions/{rng.choice([1, 2, 3, 0, 99, -1])}",
            kind="team.version",
            **a,
        )
    elif x < 0.96:
        await req(c, "GET", f"/v1/teams/{team}/invitations", kind="team.invites.list", **a)
    else:
        await req(
            c,
            "GET",
            "/v1/teams",
            params={
                "limit": rng.choice([1, 10, 200]),
                "include_deleted": rng.choice(["true", "false"]),
            },
            kind="team.list",
            **a,
        )
    await control(c, t, team if team in t.teams else None)


async def a_invite(c: httpx.AsyncClient, t: Tenant, team: str) -> None:
    x = rng.random()
    if x < 0.45 or not t.invites:
        email = f"i{RUN}{rs(6)}@ex.com"
        body: Any = {
            "email": email,
            "role": rng.choice(["member", "viewer", "admin"]),
            "team_role": rng.choice(["member", "admin"]),
        }
        if hostile():
            body = rng.choice(
                [
                    {"email": odd()},
                    {"email": email, "role": odd()},
                    {"email": email, "team_role": "owner"},
                    {"email": "x@y"},
                ]
            )
        r = await req(
            c,
            "POST",
            f"/v1/teams/{team}/invitations",
            json_body=body,
            kind="invite.create",
            tok=t.owner_tok,
        )
        if ok(r):
            inv = r.json()
            t.invites.append(
                {"id": inv["id"], "token": inv.get("token"), "email": email, "team": team}
            )
            t.ids["invitations"].append(inv["id"])
    elif x < 0.7:
        inv = rng.choice(t.invites)
        # register with the token (sometimes with another email or twice)
        email = inv["email"] if rng.random() < 0.85 else f"o{rs()}@ex.com"
        u = "u" + RUN + rs(6)
        r = await req(
            c,
            "POST",
            "/v1/auth/register",
            json_body={
                "username": u,
                "email": email,
                "password": PW,
                "invitation_token": inv["token"],
            },
            kind="auth.register.invited",
        )
        if ok(r):
            uid = r.json()["id"]
            tok = await login(c, u, PW)
            if tok:
                t.users[uid] = {"tok": tok, "username": u, "email": email, "pw": PW}
                t.ids["users"].append(uid)
    elif x < 0.85:
        inv = rng.choice(t.invites)
        # accept as an existing user of the tenant
        u = rng.choice(list(t.users.values()))
        await req(
            c, "POST", f"/v1/invitations/{inv['token']}/accept", tok=u["tok"], kind="invite.accept"
        )
    else:
        inv = rng.choice(t.invites)
        await req(
            c,
            "DELETE",
            f"/v1/invitations/{inv['id'] if rng.random() < 0.9 else some(t, 'invitations')}",
            tok=t.owner_tok,
            kind="invite.revoke",
        )
    await control(c, t, inv["team"] if t.invites and (inv := t.invites[-1]) else team)


async def a_user(c: httpx.AsyncClient, t: Tenant) -> None:
    x = rng.random()
    uid, u = rng.choice(list(t.users.items()))
    if x < 0.35:
        body: Any = rng.choice(
            [
                {"profile": {"first_name": rs(), "last_name": rs()}},
                {"profile": {"display_name": rs(12)}},
                {"username": "n" + RUN + rs(6)},
                {"settings": {"theme": "dark"}},
                {"company": {"name": rs()}},
                {"feature_flags": {rs(3): True}},
                {"tags": [rs(3)]},
                {"profile": {"first_name": None}},
            ]
        )
        if hostile():
            body = rng.choice(
                [
                    {"profile": odd()},
                    {"username": odd()},
                    {"profile": {"first_name": odd()}},
                    odd(),
                    {"security": odd()},
                ]
            )
        r = await req(
            c, "PATCH", "/v1/users/me", json_body=body, tok=u["tok"], kind="user.me.patch"
        )
        if ok(r) and isinstance(body, dict) and isinstance(body.get("username"), str):
            u["username"] = body["username"]
    elif x < 0.45:
        await req(c, "GET", "/v1/users/me", tok=u["tok"], kind="user.me")
    elif x < 0.60:
        if u.get("owner"):
            return
        body = {
            "role": rng.choice(["viewer", "member", "admin", None]),
            "is_active": rng.choice([True, True, False, None]),
        }
        if hostile():
            body = {"role": odd(), "is_active": odd()}
        await req(
            c,
            "PATCH",
            f"/v1/users/{uid if rng.random() < 0.9 else some(t, 'users')}",
            json_body=body,
            tok=t.owner_tok,
            kind="user.admin.patch",
        )
    elif x < 0.66:
        if u.get("owner"):
            return
        await req(c, "DELETE", f"/v1/users/{uid}", tok=t.owner_tok, kind="user.delete")
    elif x < 0.72:
        await req(c, "POST", f"/v1/users/{uid}/restore", tok=t.owner_tok, kind="user.restore")
    elif x < 0.76:
        # password change and relog (rare: Argon2)
        new = PW if rng.random() < 0.5 else PW + "2"
        cur = u["pw"] if rng.random() < 0.9 else "wrong-password!!"
        r = await req(
            c,
            "POST",
            "/v1/users/me/password",
            json_body={"current_password": cur, "new_password": new},
            tok=u["tok"],
            kind="user.password",
        )
        if ok(r):
            u["pw"] = new
            tok = await login(c, u["username"], new)
            if tok:
                u["tok"] = tok
                if u.get("owner"):
                    t.owner_tok = tok
    elif x < 0.82:
        await req(
            c, "GET", f"/v1/users/{some(t, 'users')}/history", tok=t.owner_tok, kind="user.history"
        )
    elif x < 0.86:
        await req(
            c,
            "GET",
            f"/v1/users/{uid}/versions/{rng.choice([1, 2, 5])}",
            tok=t.owner_tok,
            kind="user.version",
        )
    elif x < 0.92:
        await req(
            c,
            "GET",
            "/v1/users",
            params={"limit": rng.choice([5, 50, 201, 0])},
            tok=u["tok"],
            kind="user.list",
        )
    elif x < 0.95:
        await req(c, "POST", "/v1/users/me/2fa", tok=u["tok"], kind="user.2fa")
    else:
        await req(
            c,
            "POST",
            "/v1/users/me/2fa/confirm",
            json_body={"code": rng.choice(["000000", "abc", odd()])},
            tok=u["tok"],
            kind="user.2fa.confirm",
        )
    await control(c, t)


async def a_apikey(c: httpx.AsyncClient, t: Tenant) -> None:
    x = rng.random()
    if x < 0.4 or len(t.keys) < 2:
        body: Any = {"name": "k" + rs(), "role": rng.choice(["member", "admin", "viewer", "owner"])}
        if hostile():
            body = {"name": odd(), "role": odd()}
        r = await req(
            c, "POST", "/v1/api-keys", json_body=body, tok=t.owner_tok, kind="apikey.create"
        )
        if ok(r):
            t.keys[r.json()["id"]] = r.json()["key"]
            t.ids["api-keys"].append(r.json()["id"])
    elif x < 0.6:
        kid = rng.choice(list(t.keys))
        r = await req(c, "DELETE", f"/v1/api-keys/{kid}", tok=t.owner_tok, kind="apikey.revoke")
        if rng.random() < 0.5:
            # use the revoked key right away
            await req(c, "GET", "/v1/teams", key=t.keys[kid], kind="apikey.use.revoked")
        t.keys.pop(kid, None)
    elif x < 0.8:
        await req(c, "GET", "/v1/api-keys", tok=t.owner_tok, kind="apikey.list")
    else:
        await req(c, "GET", "/v1/users/me", key=rng.choice(list(t.keys.values())), kind="apikey.me")


def lead_body() -> dict[str, Any]:
    if rng.random() < 0.3:
        return {
            "type": "mls",
            "mls_id": "M" + rs(10),
            "list_price": rng.choice([100000, 12.5, 0.01]),
            "beds": rng.randint(0, 9),
        }
    b: dict[str, Any] = {
        "type": "generic",
        "email": f"l{rs(10)}@ex.com",
        "first_name": rs(),
        "last_name": rs(),
    }
    if rng.random() < 0.4:
        b["phone"] = "+1415555" + "".join(rng.choice(string.digits) for _ in range(4))
    return b


async def a_lead(c: httpx.AsyncClient, t: Tenant) -> None:
    x = rng.random()
    a = actor(t)
    if (x < 0.2 and len(t.ids["leads"]) < 400) or not t.ids["leads"]:
        body: Any = lead_body()
        if hostile():
            body = rng.choice(
                [
                    {"type": "generic"},
                    {"type": "weird", "email": "a@b.c"},
                    {"type": "generic", "email": odd()},
                    {"type": "generic", "phone": odd()},
                    {"type": "mls", "mls_id": odd(), "list_price": odd()},
                    {"type": "generic", "email": "dup@ex.com"},
                    odd(),
                ]
            )
        r = await req(c, "POST", "/v1/leads", json_body=body, kind="lead.create", **a)
        if ok(r):
            t.ids["leads"].append(r.json()["id"])
        return
    lid = some(t, "leads")
    if x < 0.27:
        rows = [lead_body() for _ in range(rng.randint(1, 15))]
        for _ in range(rng.randint(0, 3)):
            rows.insert(
                rng.randint(0, len(rows)),
                rng.choice(
                    [{"type": "generic"}, {"type": "x"}, odd(), {"type": "mls", "mls_id": ""}]
                ),
            )
        if rng.random() < 0.3 and rows:
            rows.append(dict(rows[0]))
        r = await req(c, "POST", "/v1/leads/bulk", json_body={"leads": rows}, kind="lead.bulk", **a)
    elif x < 0.37:
        body = rng.choice(
            [
                {"status": rng.choice(["new", "contacted", "qualified", "converted", "lost"])},
                {"first_name": rs()},
                {"tags": [rs(3)]},
                {"notes": rs(40)},
            ]
        )
        if hostile():
            body = rng.choice(
                [
                    {"status": odd()},
                    {"email": odd()},
                    {"type": "mls"},
                    {"assignee_id": odd()},
                    odd(),
                ]
            )
        h = {}
        if rng.random() < 0.2:
            h["If-Match"] = rng.choice(['"1"', '"2"', '"999"'])
        await req(c, "PATCH", f"/v1/leads/{lid}", json_body=body, headers=h, kind="lead.patch", **a)
    elif x < 0.43:
        await req(c, "DELETE", f"/v1/leads/{lid}", kind="lead.delete", **a)
    elif x < 0.47:
        await req(c, "POST", f"/v1/leads/{lid}/restore", kind="lead.restore", **a)
    elif x < 0.51:
        await req(
            c,
            "POST",
            f"/v1/leads/{lid}/{rng.choice(['archive', 'unarchive'])}",
            kind="lead.archive",
            **a,
        )
    elif x < 0.55:
        src = [some(t, "leads") for _ in range(rng.randint(1, 3))]
        if hostile():
            src = rng.choice([[lid], [], odd()])
        await req(
            c,
            "POST",
            f"/v1/leads/{lid}/merge",
            json_body={"source_ids": src},
            kind="lead.merge",
            **a,
        )
    elif x < 0.75:
        params: dict[str, Any] = {"limit": rng.choice([1, 10, 50, 200])}
        if rng.random() < 0.5:
            params[
                rng.choice(
                    [
                        "type",
                        "status",
                        "tag",
                        "q",
                        "campaign_id",
                        "sort",
                        "count",
                        "include_deleted",
                        "include_archived",
                    ]
                )
            ] = rng.choice(
                [
                    "mls",
                    "new",
                    "x",
                    "l",
                    some(t, "campaigns"),
                    "-created_at",
                    "last_name",
                    "true",
                    "bogus",
                    odd() if isinstance(odd(), str) else "z",
                ]
            )
        await req(c, "GET", "/v1/leads", params=params, kind="lead.list", **a)
    elif x < 0.82:
        await req(c, "GET", f"/v1/leads/{lid}", kind="lead.get", **a)
    elif x < 0.86:
        await req(c, "GET", f"/v1/leads/{lid}/history", kind="lead.history", **a)
    elif x < 0.89:
        await req(
            c, "GET", f"/v1/leads/{lid}/versions/{rng.choice([1, 2, 3])}", kind="lead.version", **a
        )
    elif x < 0.93:
        await req(c, "GET", f"/v1/leads/{lid}/events", kind="lead.events", **a)
    else:
        await req(
            c,
            "GET",
            "/v1/leads/export",
            params={
                "format": rng.choice(["csv", "ndjson", "xml"]),
                "status": rng.choice(["new", "lost"]),
            },
            kind="lead.export",
            **a,
        )


async def a_campaign(c: httpx.AsyncClient, t: Tenant) -> None:
    x = rng.random()
    a = actor(t)
    if x < 0.15 or not t.ids["campaigns"]:
        body: Any = {
            "type": rng.choice(["call", "social", "text", "email"]),
            "name": "c " + rs(),
            "status": rng.choice(["draft", "active"]),
            "tags": [rs(3)],
        }
        if hostile():
            body = rng.choice(
                [
                    {"type": "fax", "name": "x"},
                    {"type": "call"},
                    {"type": "call", "name": odd()},
                    odd(),
                ]
            )
        r = await req(c, "POST", "/v1/campaigns", json_body=body, kind="campaign.create", **a)
        if ok(r):
            t.ids["campaigns"].append(r.json()["id"])
        return
    cid = some(t, "campaigns")
    if x < 0.35:
        lids = [some(t, "leads") for _ in range(rng.randint(1, 6))]
        if hostile():
            lids = rng.choice([[], odd(), ["x"]])
        r = await req(
            c,
            "POST",
            f"/v1/campaigns/{cid}/leads",
            json_body={"lead_ids": lids},
            kind="campaign.attach",
            **a,
        )
        if ok(r) and isinstance(lids, list):
            for lead in lids:
                t.ids["pairs"].append(f"{cid}|{lead}")
    elif x < 0.45:
        body = rng.choice(
            [
                {"status": rng.choice(["draft", "active", "paused", "completed"])},
                {"name": rs()},
                {"max_attempts": rng.randint(1, 5)},
            ]
        )
        if hostile():
            body = rng.choice([{"status": odd()}, {"type": "text"}, {"max_attempts": odd()}])
        await req(c, "PATCH", f"/v1/campaigns/{cid}", json_body=body, kind="campaign.patch", **a)
    elif x < 0.5:
        await req(c, "DELETE", f"/v1/campaigns/{cid}", kind="campaign.delete", **a)
    elif x < 0.54:
        await req(
            c,
            "POST",
            f"/v1/campaigns/{cid}/{rng.choice(['restore', 'archive', 'unarchive'])}",
            kind="campaign.restore",
            **a,
        )
    elif x < 0.64:
        await req(
            c,
            "GET",
            f"/v1/campaigns/{cid}/leads",
            params={"limit": rng.choice([5, 50])},
            kind="campaign.leads",
            **a,
        )
    elif x < 0.72:
        await req(c, "GET", f"/v1/analytics/campaigns/{cid}", kind="analytics.campaign", **a)
    elif x < 0.78:
        p = {
            "interval": rng.choice(["day", "week", "month", "year"]),
            "since": rng.choice(["2026-01-01", "2026-12-01", "bad", None]),
            "tz": rng.choice([None, "UTC", "America/New_York", "Mars/Base", "America"]),
        }
        await req(
            c,
            "GET",
            "/v1/analytics/overview",
            params={k: v for k, v in p.items() if v},
            kind="analytics.overview",
            **a,
        )
    elif x < 0.86:
        await req(
            c,
            "GET",
            "/v1/campaigns",
            params={
                "limit": 20,
                rng.choice(["type", "status", "tag", "sort"]): rng.choice(
                    ["call", "active", "x", "-updated_at", "nope"]
                ),
            },
            kind="campaign.list",
            **a,
        )
    elif x < 0.9:
        await req(c, "GET", f"/v1/campaigns/{cid}/history", kind="campaign.history", **a)
    else:
        await req(c, "GET", f"/v1/read-models/campaign-stats/{cid}", kind="rm.cstats", **a)


async def a_event(c: httpx.AsyncClient, t: Tenant) -> None:
    x = rng.random()
    a = actor(t)
    if x < 0.5 and t.ids["pairs"]:
        cid, lid = rng.choice(t.ids["pairs"]).split("|")
        typ = rng.choice(["call", "text", "social", "email"])
        body: dict[str, Any] = {"type": typ, "campaign_id": cid, "lead_id": lid}
        if typ == "call":
            body["outcome"] = rng.choice(["answered", "no_answer", "voicemail"])
        elif typ == "text":
            body["direction"] = rng.choice(["inbound", "outbound"])
            body["body"] = rng.choice(["hi", "STOP", "x"])
        elif typ == "social":
            body["platform"] = "facebook"
            body["action"] = "like"
        else:
            body["status"] = rng.choice(["sent", "opened", "unsubscribed"])
        if hostile():
            body[rng.choice(["occurred_at", "campaign_id", "type", "notes"])] = rng.choice(
                ["2999-01-01T00:00:00Z", "bad", odd(), str(uuid.uuid4())]
            )
        h = {}
        if rng.random() < 0.3:
            h["Idempotency-Key"] = rng.choice(["k1", "k2", rs(4), "x" * 300])
        r = await req(c, "POST", "/v1/events", json_body=body, headers=h, kind="event.create", **a)
        if ok(r):
            t.ids["events"].append(r.json()["id"])
    elif x < 0.75:
        p = {
            "limit": rng.choice([10, 50]),
            rng.choice(["campaign_id", "lead_id", "type", "since", "until"]): rng.choice(
                [some(t, "campaigns"), "call", "2026-01-01", "bad"]
            ),
        }
        await req(c, "GET", "/v1/events", params=p, kind="event.list", **a)
    elif x < 0.9:
        await req(c, "GET", f"/v1/events/{some(t, 'events')}", kind="event.get", **a)
    else:
        await req(
            c,
            rng.choice(["PATCH", "PUT", "DELETE"]),
            f"/v1/events/{some(t, 'events')}",
            json_body={},
            kind="event.405",
            **a,
        )


async def a_workspace(c: httpx.AsyncClient, t: Tenant) -> None:
    x = rng.random()
    a = actor(t)
    if x < 0.12:
        body: Any = {
            "title": "b " + rs(),
            "content": rs(50),
            "status": rng.choice(["planned", "scheduled", "posted"]),
        }
        if body["status"] == "scheduled":
            body["scheduled_for"] = f"2027-01-0{rng.randint(1, 9)}T10:00:00Z"
        if hostile():
            body = rng.choice(
                [
                    {"title": odd()},
                    {"title": "t", "status": "scheduled"},
                    {"title": "t", "scheduled_for": "bad"},
                    {"title": "t", "timezone": "Nope/Zone"},
                ]
            )
        r = await req(c, "POST", "/v1/blogs", json_body=body, kind="blog.create", **a)
        if ok(r):
            t.ids["blogs"].append(r.json()["id"])
    elif x < 0.22:
        bid = some(t, "blogs")
        op = rng.choice(
            ["publish", "archive", "unarchive", "restore", "delete", "patch", "get", "history"]
        )
        if op == "delete":
            await req(c, "DELETE", f"/v1/blogs/{bid}", kind="blog.delete", **a)
        elif op == "patch":
            await req(
                c,
                "PATCH",
                f"/v1/blogs/{bid}",
                json_body={"title": rs()} if not hostile() else {"status": odd()},
                kind="blog.patch",
                **a,
            )
        elif op == "get":
            await req(c, "GET", f"/v1/blogs/{bid}", kind="blog.get", **a)
        elif op == "history":
            await req(c, "GET", f"/v1/blogs/{bid}/history", kind="blog.history", **a)
        else:
            await req(c, "POST", f"/v1/blogs/{bid}/{op}", kind="blog." + op, **a)
    elif x < 0.27:
        await req(
            c,
            "GET",
            rng.choice(["/v1/blogs/calendar", "/v1/blogs/stats", "/v1/blogs"]),
            params={"month": rng.choice(["2027-01", "2026-13", "x"])},
            kind="blog.read",
            **a,
        )
    elif x < 0.37:
        if rng.random() < 0.4 or not t.ids["research"]:
            body = {"topic": "r " + rs(), "tags": [rs(3)]}
            if hostile():
                body = {"topic": odd()}
            r = await req(
                c, "POST", "/v1/research/topics", json_body=body, kind="research.create", **a
            )
            if ok(r):
                t.ids["research"].append(r.json()["id"])
        else:
            rid = some(t, "research")
            op = rng.choice(["results", "archive", "restore", "delete", "patch", "stats", "list"])
            if op == "results":
                await req(
                    c,
                    "POST",
                    f"/v1/research/topics/{rid}/results",
                    json_body={"keywords": [rs()], "search_volume": rng.choice([1, -1, 10**12])},
                    kind="research.results",
                    **a,
                )
            elif op == "delete":
                await req(c, "DELETE", f"/v1/research/topics/{rid}", kind="research.delete", **a)
            elif op == "patch":
                await req(
                    c,
                    "PATCH",
                    f"/v1/research/topics/{rid}",
                    json_body={"topic": rs()},
                    kind="research.patch",
                    **a,
                )
            elif op == "stats":
                await req(c, "GET", "/v1/research/stats", kind="research.stats", **a)
            elif op == "list":
                await req(c, "GET", "/v1/research/topics", kind="research.list", **a)
            else:
                await req(c, "POST", f"/v1/research/topics/{rid}/{op}", kind="research." + op, **a)
    elif x < 0.47:
        if rng.random() < 0.3 or not t.ids["saved"]:
            res = rng.choice(["leads", "campaigns", "events"])
            filters = rng.choice(
                [
                    {},
                    {"status": "new"},
                    {"type": "call"},
                    {"bogus": 1},
                    {"limit": 500},
                    {"q": "a"},
                    {"sort": "nope"},
                ]
            )
            r = await req(
                c,
                "POST",
                "/v1/saved-searches",
                json_body={
                    "name": rs(),
                    "resource": res if not hostile() else "users",
                    "filters": filters,
                },
                kind="saved.create",
                **a,
            )
            if ok(r):
                t.ids["saved"].append(r.json()["id"])
        else:
            sid = some(t, "saved")
            op = rng.choice(["run", "run", "delete", "restore", "patch", "list"])
            if op == "run":
                await req(c, "GET", f"/v1/saved-searches/{sid}/run", kind="saved.run", **a)
            elif op == "delete":
                await req(c, "DELETE", f"/v1/saved-searches/{sid}", kind="saved.delete", **a)
            elif op == "patch":
                await req(
                    c,
                    "PATCH",
                    f"/v1/saved-searches/{sid}",
                    json_body={"filters": rng.choice([{"status": "lost"}, {"zzz": 1}])},
                    kind="saved.patch",
                    **a,
                )
            elif op == "list":
                await req(c, "GET", "/v1/saved-searches", kind="saved.list", **a)
            else:
                await req(c, "POST", f"/v1/saved-searches/{sid}/restore", kind="saved.restore", **a)
    elif x < 0.6:
        u = rng.choice(list(t.users.values()))
        op = rng.choice(["board", "state", "task", "move", "patchtask", "deltask", "delstate"])
        if op == "board":
            r = await req(c, "GET", "/v1/kanban", tok=u["tok"], kind="kanban.get")
            if ok(r):
                u["states"] = [s["id"] for s in r.json().get("states", [])]
                u["tasks"] = [s["id"] for s in r.json().get("tasks", [])]
        elif op == "state":
            await req(
                c,
                "POST",
                "/v1/kanban/states",
                json_body={
                    "name": rs() if not hostile() else odd(),
                    "position": rng.choice([None, 0, 5, -1]),
                },
                tok=u["tok"],
                kind="kanban.state",
            )
        elif op == "task" and u.get("states"):
            await req(
                c,
                "POST",
                "/v1/kanban/tasks",
                json_body={"title": rs(), "state_id": rng.choice(u["states"])},
                tok=u["tok"],
                kind="kanban.task",
            )
        elif op == "move" and u.get("tasks") and u.get("states"):
            await req(
                c,
                "POST",
                f"/v1/kanban/tasks/{rng.choice(u['tasks'])}/move",
                json_body={
                    "state_id": rng.choice(u["states"]),
                    "position": rng.choice([0, 1, 99, -1]),
                },
                tok=u["tok"],
                kind="kanban.move",
            )
        elif op == "patchtask" and u.get("tasks"):
            await req(
                c,
                "PATCH",
                f"/v1/kanban/tasks/{rng.choice(u['tasks'])}",
                json_body={"title": rs()},
                tok=u["tok"],
                kind="kanban.patchtask",
            )
        elif op == "deltask" and u.get("tasks"):
            await req(
                c,
                "DELETE",
                f"/v1/kanban/tasks/{rng.choice(u['tasks'])}",
                tok=u["tok"],
                kind="kanban.deltask",
            )
        elif op == "delstate" and u.get("states"):
            await req(
                c,
                "DELETE",
                f"/v1/kanban/states/{rng.choice(u['states'])}",
                tok=u["tok"],
                kind="kanban.delstate",
            )
    elif x < 0.68:
        op = rng.choice(["create", "list", "get", "patch", "delete", "deliveries"])
        if op == "create" or not t.ids["webhooks"]:
            body = {
                "url": rng.choice(
                    ["https://example.com/h", "http://127.0.0.1/x", "ftp://x", "https://10.0.0.1/"]
                ),
                "event_types": rng.choice([["*"], ["lead.*"], ["team.created"], [], ["x" * 300]]),
            }
            r = await req(
                c, "POST", "/v1/webhooks", json_body=body, tok=t.owner_tok, kind="webhook.create"
            )
            if ok(r):
                t.ids["webhooks"].append(r.json()["id"])
        else:
            wid = some(t, "webhooks")
            if op == "list":
                await req(c, "GET", "/v1/webhooks", tok=t.owner_tok, kind="webhook.list")
            elif op == "get":
                await req(c, "GET", f"/v1/webhooks/{wid}", tok=t.owner_tok, kind="webhook.get")
            elif op == "patch":
                await req(
                    c,
                    "PATCH",
                    f"/v1/webhooks/{wid}",
                    json_body={"enabled": rng.choice([True, False]), "event_types": ["*"]},
                    tok=t.owner_tok,
                    kind="webhook.patch",
                )
            elif op == "delete":
                await req(
                    c, "DELETE", f"/v1/webhooks/{wid}", tok=t.owner_tok, kind="webhook.delete"
                )
            else:
                await req(
                    c,
                    "GET",
                    f"/v1/webhooks/{wid}/deliveries",
                    tok=t.owner_tok,
                    kind="webhook.deliveries",
                )
    elif x < 0.76:
        op = rng.choice(["create", "list", "patch", "delete", "restore", "get"])
        if op == "create" or not t.ids["integrations"]:
            body = {
                "type": rng.choice(["google", "twilio", "custom", "nope"]),
                "status": rng.choice(["pending", "connected"]),
                "credentials": rng.choice([None, {"k": "v"}, {"$x": 1}, {"a.b": 2}]),
            }
            r = await req(
                c,
                "POST",
                "/v1/integrations",
                json_body=body,
                tok=t.owner_tok,
                kind="integration.create",
            )
            if ok(r):
                t.ids["integrations"].append(r.json()["id"])
        else:
            iid = some(t, "integrations")
            if op == "patch":
                await req(
                    c,
                    "PATCH",
                    f"/v1/integrations/{iid}",
                    json_body={"status": rng.choice(["error", "connected", "x"])},
                    tok=t.owner_tok,
                    kind="integration.patch",
                )
            elif op == "delete":
                await req(
                    c,
                    "DELETE",
                    f"/v1/integrations/{iid}",
                    tok=t.owner_tok,
                    kind="integration.delete",
                )
            elif op == "restore":
                await req(
                    c,
                    "POST",
                    f"/v1/integrations/{iid}/restore",
                    tok=t.owner_tok,
                    kind="integration.restore",
                )
            elif op == "get":
                await req(
                    c, "GET", f"/v1/integrations/{iid}", tok=t.owner_tok, kind="integration.get"
                )
            else:
                await req(c, "GET", "/v1/integrations", tok=t.owner_tok, kind="integration.list")
    elif x < 0.84:
        op = rng.choice(["billing", "sub", "info", "pm", "hist", "subget"])
        if op == "billing":
            await req(c, "GET", "/v1/billing", tok=t.owner_tok, kind="billing.get")
        elif op == "sub":
            await req(
                c,
                "PUT",
                "/v1/subscription",
                json_body={
                    "plan": rng.choice(["free", "starter", "pro", "team", "enterprise", "gold"])
                },
                tok=t.owner_tok,
                kind="billing.sub",
            )
        elif op == "subget":
            await req(c, "GET", "/v1/subscription", tok=t.owner_tok, kind="billing.subget")
        elif op == "info":
            await req(
                c,
                "PUT",
                "/v1/billing/info",
                json_body={"billing_name": rs(), "billing_email": rng.choice(["a@b.com", "bad"])},
                tok=t.owner_tok,
                kind="billing.info",
            )
        elif op == "pm":
            await req(
                c,
                "POST",
                "/v1/billing/payment-methods",
                json_body={
                    "provider": "stripe",
                    "last4": rng.choice(["4242", "42", "abcd"]),
                    "exp_month": rng.choice([1, 13]),
                    "exp_year": 2030,
                },
                tok=t.owner_tok,
                kind="billing.pm",
            )
        else:
            await req(
                c,
                "POST",
                "/v1/billing/history",
                json_body={
                    "amount": rng.choice([10, 10.123, -5, 1e20]),
                    "date": "2026-11-01T00:00:00Z",
                    "status": "paid",
                },
                tok=t.owner_tok,
                kind="billing.history",
            )
    elif x < 0.92:
        op = rng.choice(["cfg", "putcfg", "ctx", "putctx", "usage", "getusage"])
        u = rng.choice(list(t.users.values()))
        if op == "cfg":
            await req(c, "GET", "/v1/ai/config", tok=u["tok"], kind="ai.cfg")
        elif op == "putcfg":
            await req(
                c,
                "PUT",
                "/v1/ai/config",
                json_body={
                    "default_model": "gpt",
                    "temperature": rng.choice([0.5, 5, -1]),
                    "max_tokens": rng.choice([100, 0]),
                },
                tok=u["tok"],
                kind="ai.putcfg",
            )
        elif op == "ctx":
            await req(c, "GET", "/v1/ai/context", tok=u["tok"], kind="ai.ctx")
        elif op == "putctx":
            await req(
                c,
                "PUT",
                "/v1/ai/context",
                json_body={"tone": rng.choice(["x", odd()]), "goals": [rs()]},
                tok=u["tok"],
                kind="ai.putctx",
            )
        elif op == "usage":
            await req(
                c,
                "POST",
                "/v1/ai/usage",
                json_body={
                    "model": rng.choice(["gpt", "claude"]),
                    "prompt_tokens": rng.choice([10, -1]),
                    "completion_tokens": 5,
                    "feature": "x",
                    "cost": rng.choice([None, 0.01, 0.001]),
                },
                tok=u["tok"],
                kind="ai.usage",
            )
        else:
            await req(
                c,
                "GET",
                "/v1/ai/usage",
                params={"since": rng.choice(["2026-01-01", "bad"])},
                tok=u["tok"],
                kind="ai.getusage",
            )
    else:
        p: dict[str, Any] = {"limit": rng.choice([10, 200, 201])}
        if rng.random() < 0.5:
            p["aggregate_type"] = rng.choice(["team", "user", "lead", "x"])
        if rng.random() < 0.3:
            p["after"] = rng.choice(["garbage", "", "0"])
        await req(
            c,
            "GET",
            rng.choice(["/v1/changes", "/v1/changes", "/v1/audit"]),
            params=p,
            tok=t.owner_tok,
            kind="changes",
        )


async def a_misc_hostile(c: httpx.AsyncClient, t: Tenant) -> None:
    x = rng.random()
    if x < 0.2:
        await req(c, "GET", "/v1/teams", kind="noauth")
    elif x < 0.35:
        await req(c, "GET", "/v1/teams", tok="eyJhbGciOiJIUzI1NiJ9.e30.bad", kind="badtoken")
    elif x < 0.5:
        await req(
            c,
            "POST",
            "/v1/teams",
            content=b"{not json",
            headers={"Content-Type": "application/json"},
            tok=t.owner_tok,
            kind="badjson",
        )
    elif x < 0.6:
        await req(
            c,
            "GET",
            "/v1/leads",
            params={
                "limit": rng.choice(["-1", "abc", "100000", "1e3"]),
                "cursor": rng.choice(["abc", "=====", "eyJ4IjoxfQ"]),
            },
            tok=t.owner_tok,
            kind="badquery",
        )
    elif x < 0.7:
        await req(
            c,
            "POST",
            "/v1/auth/token",
            data={"username": rng.choice(list(t.users.values()))["username"], "password": "wrong"},
            kind="auth.badpw",
        )
    elif x < 0.8:
        await req(
            c,
            "GET",
            f"/v1/read-models/teams/{some(t, 'teams')}",
            tok=t.owner_tok,
            kind="rm.team.any",
        )
    elif x < 0.9:
        await req(
            c,
            "GET",
            "/v1/read-models/campaigns",
            params={"user_id": some(t, "users")},
            **actor(t),
            kind="rm.campaigns.user",
        )
    else:
        await req(c, "GET", "/health", kind="health")


async def a_outreach(c: httpx.AsyncClient, t: Tenant) -> None:
    """Newer contract parts (tenant settings, consent, suppressions, recipients, privacy)."""
    x = rng.random()
    a = actor(t)
    lid = some(t, "leads")
    if x < 0.1:
        await req(c, "GET", "/v1/tenant", kind="tenant.get", **a)
    elif x < 0.2:
        body: Any = rng.choice(
            [
                {"name": rs()},
                {"time_zone": rng.choice(["America/Chicago", "UTC", "Nope/X", "America"])},
                {"quiet_hours": {"start": rng.choice(["08:00", "25:00", "7"]), "end": "21:00"}},
                {"default_phone_region": rng.choice(["US", "GB", "xx"])},
                {"retention": {"erase_deleted_after_days": rng.choice([None, 30, -1, 0])}},
            ]
        )
        await req(c, "PATCH", "/v1/tenant", json_body=body, tok=t.owner_tok, kind="tenant.patch")
    elif x < 0.32:
        ch = rng.choice(["call", "text", "email", "fax"])
        await req(
            c,
            "PUT",
            f"/v1/leads/{lid}/consent/{ch}",
            json_body={
                "status": rng.choice(["opted_in", "opted_out", "unknown", "maybe"]),
                "source": rs(),
            },
            kind="lead.consent",
            **a,
        )
    elif x < 0.45:
        await req(
            c,
            "GET",
            f"/v1/leads/{lid}/contactability",
            params={
                "channel": rng.choice(["call", "text", "email", "x"]),
                "at": rng.choice(
                    ["2026-12-05T03:00:00Z", "2026-12-05T15:00:00Z", "bad", "2026-12-05"]
                ),
            },
            kind="lead.contactability",
            **a,
        )
    elif x < 0.55:
        if rng.random() < 0.6 or not t.ids["suppressions"]:
            ch = rng.choice(["call", "text", "email"])
            val = rng.choice(
                [
                    "+14155550123",
                    "4155550123",
                    "a@b.com",
                    "A@B.COM ",
                    "bad",
                    "+1415555" + str(rng.randint(1000, 9999)),
                ]
            )
            r = await req(
                c,
                "POST",
                "/v1/suppressions",
                json_body={"channel": ch, "value": val, "reason": "x"},
                tok=t.owner_tok,
                kind="suppression.create",
            )
            if ok(r):
                t.ids["suppressions"].append(r.json()["id"])
        elif rng.random() < 0.5:
            await req(
                c,
                "GET",
                "/v1/suppressions",
                params={"channel": rng.choice(["call", "email"])},
                tok=t.owner_tok,
                kind="suppression.list",
            )
        else:
            await req(
                c,
                "DELETE",
                f"/v1/suppressions/{some(t, 'suppressions')}",
                tok=t.owner_tok,
                kind="suppression.delete",
            )
    elif x < 0.68:
        cid = some(t, "campaigns")
        if rng.random() < 0.5:
            await req(
                c,
                "GET",
                f"/v1/campaigns/{cid}/recipients",
                params={"state": rng.choice(["queued", "claimed", "bogus"])},
                kind="recipients.list",
                **a,
            )
        else:
            await req(
                c,
                "POST",
                f"/v1/campaigns/{cid}/recipients/claim",
                json_body={
                    "limit": rng.choice([1, 5, 100, 0, 101]),
                    "lease_seconds": rng.choice([None, 1, 60]),
                },
                kind="recipients.claim",
                **a,
            )
    elif x < 0.72:
        await req(
            c,
            "DELETE",
            f"/v1/campaigns/{some(t, 'campaigns')}/leads/{lid}",
            kind="campaign.detach",
            **a,
        )
    elif x < 0.78:
        await req(
            c,
            "POST",
            "/v1/leads/assign",
            json_body={
                "lead_ids": [some(t, "leads") for _ in range(3)],
                "assignee_id": rng.choice([*t.users, str(uuid.uuid4())]),
            },
            kind="lead.assign",
            **a,
        )
    elif x < 0.84:
        await req(
            c,
            "POST",
            "/v1/events/status",
            json_body={
                "provider": rng.choice(["twilio", "sg"]),
                "external_id": rng.choice(["e1", "e2", rs()]),
                "status": rng.choice(["delivered", "sent", "failed", "zzz"]),
            },
            kind="event.status",
            **a,
        )
    elif x < 0.9:
        await req(c, "POST", f"/v1/leads/{lid}/erase", tok=t.owner_tok, kind="lead.erase")
    elif x < 0.95:
        await req(c, "GET", f"/v1/leads/{lid}/data-export", tok=t.owner_tok, kind="lead.dataexport")
    else:
        await req(
            c,
            "GET",
            "/v1/leads",
            params={"assignee_id": rng.choice(["me", some(t, "users")])},
            kind="lead.list.assignee",
            **a,
        )


async def a_burst(c: httpx.AsyncClient, t: Tenant) -> None:
    """Several writes on ONE resource at once (plus its read model), to provoke races."""
    if rng.random() < 0.6 and t.teams:
        team = rng.choice(t.teams[-4:])
        uids = list(t.users)
        ops = [
            lambda: req(
                c,
                "POST",
                f"/v1/teams/{team}/members",
                json_body={"user_id": rng.choice(uids), "role": rng.choice(["member", "admin"])},
                tok=t.owner_tok,
                kind="burst.team.add",
            ),
            lambda: req(
                c,
                "DELETE",
                f"/v1/teams/{team}/members/{rng.choice(uids)}",
                tok=t.owner_tok,
                kind="burst.team.remove",
            ),
            lambda: req(
                c,
                "PATCH",
                f"/v1/teams/{team}/members/{rng.choice(uids)}",
                json_body={
                    "role": rng.choice(["member", "admin", "owner"]),
                    "status": rng.choice(["active", "suspended"]),
                },
                tok=t.owner_tok,
                kind="burst.team.mpatch",
            ),
            lambda: req(
                c,
                "PATCH",
                f"/v1/teams/{team}",
                json_body={"name": "b " + rs()},
                tok=t.owner_tok,
                kind="burst.team.patch",
            ),
            lambda: req(
                c, "DELETE", f"/v1/teams/{team}", tok=t.owner_tok, kind="burst.team.delete"
            ),
            lambda: req(
                c, "POST", f"/v1/teams/{team}/restore", tok=t.owner_tok, kind="burst.team.restore"
            ),
            lambda: req(
                c,
                "POST",
                f"/v1/teams/{team}/invitations",
                json_body={"email": f"b{rs()}@ex.com", "team_role": "member"},
                tok=t.owner_tok,
                kind="burst.team.invite",
            ),
            lambda: req(
                c,
                "PATCH",
                "/v1/users/me",
                json_body={"profile": {"first_name": rs()}},
                tok=rng.choice(list(t.users.values()))["tok"],
                kind="burst.user.patch",
            ),
            lambda: req(
                c,
                "PATCH",
                f"/v1/users/{rng.choice(uids)}",
                json_body={
                    "role": rng.choice(["member", "viewer"]),
                    "is_active": rng.choice([True, True, False]),
                },
                tok=t.owner_tok,
                kind="burst.user.admin",
            ),
            lambda: req(
                c, "GET", f"/v1/read-models/teams/{team}", tok=t.owner_tok, kind="burst.rm.team"
            ),
            lambda: req(
                c, "GET", f"/v1/read-models/teams/{team}", tok=t.owner_tok, kind="burst.rm.team"
            ),
            lambda: req(c, "GET", f"/v1/teams/{team}", tok=t.owner_tok, kind="burst.team.get"),
        ]
        if t.invites:
            inv = rng.choice(t.invites[-5:])
            ops.append(
                lambda: req(
                    c,
                    "POST",
                    f"/v1/invitations/{inv['token']}/accept",
                    tok=rng.choice(list(t.users.values()))["tok"],
                    kind="burst.invite.accept",
                )
            )
            ops.append(
                lambda: req(
                    c,
                    "DELETE",
                    f"/v1/invitations/{inv['id']}",
                    tok=t.owner_tok,
                    kind="burst.invite.revoke",
                )
            )
        chosen = [rng.choice(ops) for _ in range(rng.randint(3, 8))]
        await asyncio.gather(*(op() for op in chosen))
        await control(c, t, team)
        return
    if not t.ids["leads"]:
        return
    lid = rng.choice(t.ids["leads"][-20:])
    other = rng.choice(t.ids["leads"][-20:])
    cid = rng.choice(t.ids["campaigns"]) if t.ids["campaigns"] else str(uuid.uuid4())
    ops = [
        lambda: req(
            c,
            "PATCH",
            f"/v1/leads/{lid}",
            json_body={"status": rng.choice(["contacted", "lost"])},
            tok=t.owner_tok,
            kind="burst.lead.patch",
        ),
        lambda: req(c, "DELETE", f"/v1/leads/{lid}", tok=t.owner_tok, kind="burst.lead.delete"),
        lambda: req(
            c, "POST", f"/v1/leads/{lid}/restore", tok=t.owner_tok, kind="burst.lead.restore"
        ),
        lambda: req(
            c,
            "POST",
            f"/v1/leads/{other}/merge",
            json_body={"source_ids": [lid]},
            tok=t.owner_tok,
            kind="burst.lead.merge",
        ),
        lambda: req(
            c,
            "POST",
            f"/v1/leads/{lid}/merge",
            json_body={"source_ids": [other]},
            tok=t.owner_tok,
            kind="burst.lead.merge",
        ),
        lambda: req(
            c,
            "POST",
            f"/v1/campaigns/{cid}/leads",
            json_body={"lead_ids": [lid, other]},
            tok=t.owner_tok,
            kind="burst.campaign.attach",
        ),
        lambda: req(
            c,
            "DELETE",
            f"/v1/campaigns/{cid}/leads/{lid}",
            tok=t.owner_tok,
            kind="burst.campaign.detach",
        ),
        lambda: req(
            c,
            "POST",
            "/v1/events",
            json_body={"type": "call", "campaign_id": cid, "lead_id": lid, "outcome": "answered"},
            headers={"Idempotency-Key": "burst-" + lid[:8]},
            tok=t.owner_tok,
            kind="burst.event",
        ),
        lambda: req(
            c,
            "PUT",
            f"/v1/leads/{lid}/consent/text",
            json_body={"status": rng.choice(["opted_in", "opted_out"])},
            tok=t.owner_tok,
            kind="burst.consent",
        ),
        lambda: req(c, "POST", f"/v1/leads/{lid}/erase", tok=t.owner_tok, kind="burst.erase"),
        lambda: req(
            c,
            "POST",
            f"/v1/campaigns/{cid}/recipients/claim",
            json_body={"limit": 5},
            tok=t.owner_tok,
            kind="burst.claim",
        ),
        lambda: req(
            c,
            "GET",
            f"/v1/read-models/campaign-stats/{cid}",
            tok=t.owner_tok,
            kind="burst.rm.cstats",
        ),
        lambda: req(
            c, "GET", f"/v1/analytics/campaigns/{cid}", tok=t.owner_tok, kind="burst.analytics"
        ),
    ]
    chosen = [rng.choice(ops) for _ in range(rng.randint(3, 8))]
    await asyncio.gather(*(op() for op in chosen))


ACTIONS = [
    (a_team, 22),
    (a_user, 12),
    (a_apikey, 4),
    (a_lead, 18),
    (a_campaign, 10),
    (a_event, 8),
    (a_workspace, 18),
    (a_misc_hostile, 6),
    (a_outreach, 0),  # --outreach sets the weight
    (a_burst, 0),  # --burst sets the weight
]
FNS = [f for f, _ in ACTIONS]
WEIGHTS = [w for _, w in ACTIONS]


async def worker(c: httpx.AsyncClient) -> None:
    while not stop and sent < TOTAL:
        t = rng.choice(tenants)
        fn = rng.choices(FNS, WEIGHTS)[0]
        try:
            await fn(c, t)
        except Exception as e:
            stats["driver:" + type(e).__name__] += 1


async def report() -> None:
    t0 = time.time()
    while not stop:
        await asyncio.sleep(30)
        el = time.time() - t0
        print(
            f"[{time.strftime('%H:%M:%S', time.gmtime())}] sent={sent} "
            f"rate={sent / el:.0f}/s statuses={dict(stats)} 5xx={len(fivexx)}",
            flush=True,
        )


async def main() -> None:
    global stop
    limits = httpx.Limits(max_connections=CONC + 2, max_keepalive_connections=CONC + 2)
    async with httpx.AsyncClient(limits=limits) as c:
        await setup(c)
        rep = asyncio.create_task(report())
        await asyncio.gather(*(worker(c) for _ in range(CONC)))
        stop = True
        rep.cancel()
    summary = {"sent": sent, "stats": stats, "kinds": kinds, "fivexx": len(fivexx)}
    (OUT / "summary.json").write_text(json.dumps(summary, indent=1))
    print("DONE", sent, dict(stats), "5xx", len(fivexx))


def cli() -> None:
    """Parse the options into the module's settings and run the walk."""
    global BASE, TOTAL, CONC, NTEN, TEAMCAP, OUT, RUN
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default=BASE)
    parser.add_argument("--requests", type=int, default=TOTAL)
    parser.add_argument("--concurrency", type=int, default=CONC)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tenants", type=int, default=NTEN)
    parser.add_argument("--team-cap", type=int, default=TEAMCAP, help="live teams per tenant")
    parser.add_argument("--outreach", type=int, default=0, help="weight of the newer endpoints")
    parser.add_argument("--burst", type=int, default=0, help="weight of same-resource bursts")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    BASE, TOTAL, CONC, NTEN = args.base_url, args.requests, args.concurrency, args.tenants
    TEAMCAP, OUT = args.team_cap, args.out
    OUT.mkdir(parents=True, exist_ok=True)
    rng.seed(args.seed)
    RUN = f"{args.seed}x{int(time.time()) % 100000}"
    WEIGHTS[FNS.index(a_outreach)] = args.outreach
    WEIGHTS[FNS.index(a_burst)] = args.burst
    asyncio.run(main())


if __name__ == "__main__":
    cli()
