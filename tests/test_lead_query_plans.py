"""Every query of the lead, campaign and event paths has a serving index, by MongoDB's rules.

A flow drives every list, sort, filter, search, geo, count, export, merge, dedupe and ingest
path of the area while `service.embedded.observers` records each query sent to `leads`,
`campaigns`, `events` and `campaign_leads`. Each is then checked against the declared indexes
as MongoDB's planner would use them:

- an index serves a query when its leading fields are bound by equality (`$in` counts: the
  server explodes the points and merges them in order), then the sort's fields follow in
  the index's order (all in its directions, or all reversed), then at most a range;
- a partial index serves an `$or` branch only if the branch ALONE implies its filter;
- a top-level `$or` is served when every branch (with the conditions outside the `$or`) is
  served by an index that bounds one of the branch's own fields, or when the conditions
  outside it are served with the sort (the `$or` is then a residual filter, as a cursor is);
- `$nearSphere` needs a `2dsphere` index whose leading fields are bound by equality;
- an aggregation is checked by its first `$match` and a `$sort` right after it.

This is a guard for this area's paths, written so that adding an unindexed filter or sort
fails it (see the last test); the suite-wide checker is another's.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import pytest

from documents.campaign import CampaignBase, CampaignLead
from documents.event import TouchpointEvent
from documents.lead import LeadBase
from service.embedded import Operation, observers
from tests.helpers import Account

COLLECTIONS = {"leads": LeadBase, "campaigns": CampaignBase, "events": TouchpointEvent}
COLLECTIONS["campaign_leads"] = CampaignLead  # type: ignore[assignment]
RANGE = {"$gt", "$gte", "$lt", "$lte", "$ne"}


def _conditions(query: Mapping[str, Any]) -> tuple[dict[str, Any], list[list[Mapping[str, Any]]]]:
    fields: dict[str, Any] = {}
    ors: list[list[Mapping[str, Any]]] = []
    for key, value in query.items():
        if key == "$and":
            for part in value:
                more, more_ors = _conditions(part)
                fields.update(more)
                ors += more_ors
        elif key == "$or":
            ors.append(list(value))
        elif not key.startswith("$"):
            fields[key] = value
    return fields, ors


def _kind(value: Any) -> str:
    """equality, range, near, or residual (a filter no index bound comes from)."""
    if not (isinstance(value, Mapping) and value and all(k.startswith("$") for k in value)):
        return "equality"
    if "$nearSphere" in value:
        return "near"
    if "$eq" in value or "$in" in value:
        return "equality"
    if value.keys() & RANGE:
        return "range"
    return "residual"


def _implies(branch: Mapping[str, Any], partial: Mapping[str, Any]) -> bool:
    for name, wanted in partial.items():
        have = branch.get(name)
        if isinstance(wanted, Mapping):
            if not (isinstance(have, Mapping) and all(have.get(k) == v for k, v in wanted.items())):
                return False
        elif have != wanted:
            return False
    return True


def _serving(
    indexes: list[dict[str, Any]],
    fields: Mapping[str, Any],
    sort: list[tuple[str, int]],
    *,
    branch: Mapping[str, Any] | None = None,
) -> str | None:
    """The name of an index serving these conditions and sort, or None."""
    kinds = {name: _kind(value) for name, value in fields.items()}
    for index in indexes:
        keys = list(index["key"])
        partial = index.get("partialFilterExpression")
        if partial is not None and not (branch is not None and _implies(branch, partial)):
            continue
        if "near" in kinds.values():
            near = next(n for n, k in kinds.items() if k == "near")
            at = next((i for i, (f, d) in enumerate(keys) if f == near and d == "2dsphere"), None)
            if at is not None and all(kinds.get(f) == "equality" for f, _ in keys[:at]):
                return str(index["name"])
            continue
        prefix = 0
        while prefix < len(keys) and kinds.get(keys[prefix][0]) == "equality":
            prefix += 1
        if prefix == 0 and kinds.get(keys[0][0]) != "range":
            continue  # nothing bounds the walk (a range on the first key does: feed reads)
        wanted = [(f, d) for f, d in sort if kinds.get(f) != "equality"]
        rest = keys[prefix : prefix + len(wanted)]
        if wanted and not (
            [f for f, _ in rest] == [f for f, _ in wanted]
            and len({d * dir_ for (_, d), (_, dir_) in zip(wanted, rest, strict=True)}) == 1
        ):
            continue
        if branch is not None:
            bounded = {f for f, _ in keys[: prefix + 1]}
            if not bounded & {f for f in branch if kinds.get(f) in ("equality", "range")}:
                continue
        return str(index["name"])
    return None


def check(op: Operation, indexes: list[dict[str, Any]]) -> str | None:
    """None when an index serves `op`, else why not."""
    query: Mapping[str, Any] = op.filter or {}
    sort = list(op.sort)
    if op.method == "aggregate":
        stages = list(op.pipeline)
        if len(stages) > 1 and "$sort" in stages[1]:
            sort = list(stages[1]["$sort"].items())
    if "_id" in query and _kind(query["_id"]) == "equality":
        return None  # one document by its id
    fields, ors = _conditions(query)
    if not ors:
        return None if _serving(indexes, fields, sort) else "no index serves it"
    if _serving(indexes, fields, sort) and sort:
        return None  # the `$or` is a residual filter on a served, ordered walk
    for branch in ors[0]:
        own, _ = _conditions(branch)
        if not _serving(indexes, {**fields, **own}, sort, branch=own):
            return f"no index serves the $or branch {branch}"
    return None


@pytest.fixture
def recorded() -> Iterator[list[Operation]]:
    ops: list[Operation] = []

    def keep(op: Operation) -> None:
        if op.collection in COLLECTIONS and op.method in (
            "find",
            "count_documents",
            "aggregate",
            "update_one",
            "update_many",
            "delete_many",
        ):
            ops.append(op)

    observers.append(keep)
    yield ops
    observers.remove(keep)


async def _drive(owner: Account) -> None:
    c = owner.client

    async def ok(method: str, path: str, **kwargs: Any) -> Any:
        response = await c.request(method, path, **kwargs)
        assert response.status_code < 300, (path, response.text)
        if response.headers.get("content-type", "").startswith("application/json"):
            return response.json()
        return None

    campaign = await ok("POST", "/v1/campaigns", json={"type": "call", "name": "C"})
    leads = []
    for i in range(4):
        body = {"type": "mls", "mls_id": f"M-{i}", "email": f"m{i}@example.com"}
        body["location"] = {"type": "Point", "coordinates": [i * 0.01, 0]}
        leads.append(await ok("POST", "/v1/leads", json=body))
    await ok("POST", "/v1/leads/bulk", json={"leads": [{"type": "generic", "phone": "4155550101"}]})
    await ok("PATCH", f"/v1/leads/{leads[0]['id']}", json={"email": "changed@example.com"})
    ids = [x["id"] for x in leads]
    await ok("POST", f"/v1/campaigns/{campaign['id']}/leads", json={"lead_ids": ids})
    for lead_id in ids[:2]:
        event = {"type": "call", "outcome": "answered", "campaign_id": campaign["id"]}
        await ok("POST", "/v1/events", json={**event, "lead_id": lead_id})
    sorts = ["created_at", "updated_at", "last_name", "list_price", "status", "last_contacted_at"]
    for sort in [None, *sorts, *(f"-{s}" for s in sorts)]:
        for extra in ({}, {"include_deleted": "true"}, {"status": "new"}, {"type": "mls"}):
            params: dict[str, Any] = {"limit": 1, "count": "true", **extra}
            if sort:
                params["sort"] = sort
            page = await ok("GET", "/v1/leads", params=params)
            if page["next_cursor"]:
                await ok("GET", "/v1/leads", params={**params, "cursor": page["next_cursor"]})
    for params in ({"tag": "x"}, {"q": "m1"}, {"q": "m1", "sort": "-last_name"}):
        await ok("GET", "/v1/leads", params={**params, "count": "true"})
    near = {"near": "0,0", "within_km": 50, "limit": 1, "count": "true"}
    page = await ok("GET", "/v1/leads", params=near)
    await ok("GET", "/v1/leads", params={**near, "cursor": page["next_cursor"]})
    await ok("GET", "/v1/leads", params={**near, "sort": "-list_price"})
    await ok("GET", "/v1/leads/export", params={"format": "csv", "sort": "last_name"})
    await ok("GET", "/v1/leads/export", params={"format": "ndjson", "near": "0,0"})
    members = f"/v1/campaigns/{campaign['id']}/leads"
    for params in ({"limit": 1}, {"sort": "last_name", "limit": 1}):
        page = await ok("GET", members, params={**params, "count": "true"})
        assert page["next_cursor"]
        await ok("GET", members, params={**params, "cursor": page["next_cursor"]})
    for sort in [None, "name", "-status", "starts_at", "created_at", "updated_at"]:
        for extra in ({}, {"type": "call"}, {"tag": "t"}, {"include_deleted": "true"}):
            params = {"limit": 1, "count": "true", **extra, **({"sort": sort} if sort else {})}
            await ok("GET", "/v1/campaigns", params=params)
    for sort in [None, "occurred_at", "-created_at", "updated_at"]:
        for extra in (
            {},
            {"campaign_id": campaign["id"]},
            {"lead_id": ids[0]},
            {"type": "call"},
            {"since": "2024-01-01"},
            {"campaign_id": campaign["id"], "since": "2024-01-01", "until": "2099-01-01"},
        ):
            params = {"limit": 1, "count": "true", **extra, **({"sort": sort} if sort else {})}
            page = await ok("GET", "/v1/events", params=params)
            if page["next_cursor"]:
                await ok("GET", "/v1/events", params={**params, "cursor": page["next_cursor"]})
    await ok("POST", "/v1/events", json={**event, "lead_id": ids[0]})
    page = await ok("GET", f"/v1/leads/{ids[0]}/events", params={"limit": 1})
    await ok("GET", f"/v1/leads/{ids[0]}/events", params={"cursor": page["next_cursor"]})
    await ok("POST", f"/v1/leads/{ids[0]}/merge", json={"source_ids": ids[1:3]})


async def test_every_query_of_the_area_has_a_serving_index(
    owner: Account, recorded: list[Operation]
) -> None:
    await _drive(owner)
    assert len(recorded) > 200
    indexes = {name: await _indexes(model) for name, model in COLLECTIONS.items()}
    failures = [
        f"{op.collection}.{op.method} {op.filter} sort={list(op.sort)}: {why}"
        for op in recorded
        if (why := check(op, indexes[op.collection])) is not None
    ]
    assert not failures, "\n".join(failures[:10])


async def _indexes(model: Any) -> list[dict[str, Any]]:
    info = await model.get_pymongo_collection().index_information()
    return [{**entry, "name": name} for name, entry in info.items()]


async def test_the_check_fails_an_unindexed_query(owner: Account) -> None:
    indexes = await _indexes(LeadBase)
    tenant = {"tenant_id": "t", "is_deleted": False}
    assert check(Operation("leads", "find", tenant, sort=[("_id", -1)]), indexes) is None
    unsorted = Operation("leads", "find", tenant, sort=[("first_name", 1), ("_id", 1)])
    assert check(unsorted, indexes) is not None
    assert check(Operation("leads", "find", {"email": "a@b.c"}), indexes) is not None
    # The old dedupe shape: `is_deleted` outside the `$or`, so no branch implies a partial index.
    old = {**tenant, "$or": [{"email": {"$in": ["a"], "$type": "string"}}]}
    assert check(Operation("leads", "find", old), indexes) is not None
    new = {
        "tenant_id": "t",
        "$or": [{"is_deleted": False, "email": {"$in": ["a"], "$type": "string"}}],
    }
    assert check(Operation("leads", "find", new), indexes) is None
