"""AI: own config/context get/put with validation, usage logs and per-model totals."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from documents.ai import AIUsageLog, AIUsageTotals
from documents.user import User
from tests.support.dbcalls import count_db_calls
from tests.support.helpers import Account, ServiceClient, assert_problem


def usage(model: str = "gpt-4o", **extra: Any) -> dict[str, Any]:
    return {
        "model": model,
        "prompt_tokens": 100,
        "completion_tokens": 50,
        "feature": "blog_writer",
        **extra,
    }


# -- config and context -----------------------------------------------------------------------


async def test_config_defaults_then_put_replaces(owner: Account, stranger: Account) -> None:
    response = await owner.client.get("/v1/ai/config")
    assert response.status_code == 200, response.text
    assert response.json()["default_model"] == "gpt-4o-mini"
    version = int(response.headers["ETag"].strip('"'))

    body = {
        "default_model": "claude-3-5-sonnet",
        "temperature": 0.2,
        "max_tokens": 4000,
        "monthly_cost_limit": 25.5,
        "allowed_models": ["claude-3-5-sonnet", "gpt-4o"],
        "tenant_id": str(stranger.tenant_id),
    }
    response = await owner.client.put("/v1/ai/config", json=body)
    assert response.status_code == 200, response.text
    config = response.json()
    assert config["default_model"] == "claude-3-5-sonnet" and config["temperature"] == 0.2
    assert config["monthly_cost_limit"] == 25.5
    assert response.headers["ETag"] == f'"{version + 1}"'
    stored = await User.get(owner.id)
    assert stored is not None and stored.ai_config.monthly_cost_limit_cents == 2550
    assert (await owner.client.get("/v1/ai/config")).json() == config


async def test_config_validation(owner: Account) -> None:
    bad = [
        {"temperature": 2.5},
        {"temperature": -0.1},
        {"max_tokens": 0},
        {"max_tokens": 10**9},
        {"top_p": 0},
        {"monthly_cost_limit": 1.234},
        {"monthly_cost_limit": -1},
        {"default_model": "a b"},
        {"default_model": "x", "allowed_models": ["y"]},
        {"unknown": True},
    ]
    for body in bad:
        assert_problem(await owner.client.put("/v1/ai/config", json=body), 422)
    stale = await owner.client.put("/v1/ai/config", json={}, headers={"If-Match": '"99"'})
    assert_problem(stale, 412)


async def test_context_get_put(owner: Account, viewer: Account) -> None:
    body = {"business_description": "Luxury condos", "tone": "warm", "goals": ["more leads"]}
    response = await viewer.client.put("/v1/ai/context", json=body)  # any role: their own
    assert response.status_code == 200, response.text
    assert response.json()["tone"] == "warm" and response.json()["keywords"] == []
    assert (await viewer.client.get("/v1/ai/context")).json()["goals"] == ["more leads"]
    assert (await owner.client.get("/v1/ai/context")).json()["tone"] is None  # not shared
    assert_problem(await owner.client.put("/v1/ai/context", json={"tone": "x" * 201}), 422)
    assert_problem(await owner.client.put("/v1/ai/context", json={"goals": ["g"] * 51}), 422)


async def test_api_keys_have_no_ai_config(owner: Account, service_client: ServiceClient) -> None:
    service = await service_client(owner)
    assert_problem(await service.get("/v1/ai/config"), 403)
    assert_problem(await service.put("/v1/ai/context", json={}), 403)


async def test_config_change_is_journaled(owner: Account) -> None:
    await owner.client.put("/v1/ai/config", json={"temperature": 1.1})
    from bson import Binary

    from documents.journal import DomainEvent

    events = await DomainEvent.find({"aggregate_id": Binary.from_uuid(owner.id)}).to_list()
    last = max(events, key=lambda e: e.version)
    assert last.event_type == "user.ai_config_changed"
    assert [(c.field, c.new) for c in last.changes] == [("ai_config.temperature", 1.1)]


# -- usage ------------------------------------------------------------------------------------


async def test_record_usage(owner: Account, stranger: Account) -> None:
    response = await owner.client.post(
        "/v1/ai/usage", json=usage(cost=0.42, tenant_id=str(stranger.tenant_id))
    )
    assert response.status_code == 201, response.text
    log = response.json()
    assert log["user_id"] == str(owner.id) and log["tenant_id"] == str(owner.tenant_id)
    assert log["total_tokens"] == 150 and log["cost"] == 0.42
    no_cost = (await owner.client.post("/v1/ai/usage", json=usage())).json()
    assert no_cost["cost"] == 0


async def test_usage_validation(owner: Account, member: Account) -> None:
    bad = [
        usage(prompt_tokens=-1),
        usage(cost=0.001),
        usage(cost=-1),
        usage(model=""),
        usage(model="$bad"),
        usage(occurred_at="2999-01-01T00:00:00Z"),
        {"model": "gpt-4o"},
        usage(extra_field=1),
    ]
    for body in bad:
        assert_problem(await owner.client.post("/v1/ai/usage", json=body), 422)
    # A user logs only their own usage.
    assert_problem(await owner.client.post("/v1/ai/usage", json=usage(user_id=str(member.id))), 403)


async def test_service_logs_usage_for_a_user_of_its_tenant(
    owner: Account, member: Account, stranger: Account, service_client: ServiceClient
) -> None:
    service = await service_client(owner)
    ok = await service.post("/v1/ai/usage", json=usage(user_id=str(member.id)))
    assert ok.status_code == 201 and ok.json()["user_id"] == str(member.id)
    tenant_level = await service.post("/v1/ai/usage", json=usage())
    assert tenant_level.status_code == 201 and tenant_level.json()["user_id"] is None
    foreign = await service.post("/v1/ai/usage", json=usage(user_id=str(stranger.id)))
    assert_problem(foreign, 422)


async def test_usage_list_and_totals_over_the_whole_range(
    owner: Account, member: Account, stranger: Account
) -> None:
    rows = [
        (owner, "gpt-4o", "2026-11-01T00:00:00Z", 100, 10, 0.10),
        (owner, "gpt-4o", "2026-11-02T12:00:00Z", 200, 20, 0.25),
        (member, "gpt-4o", "2026-11-03T00:00:00Z", 300, 30, 1.00),
        (owner, "claude-3-haiku", "2026-11-02T00:00:00Z", 1000, 500, 0.05),
        (owner, "gpt-4o", "2026-10-31T23:59:59Z", 9999, 9999, 9.99),  # before the range
        (owner, "gpt-4o", "2026-11-04T00:00:00Z", 9999, 9999, 9.99),  # `until` is exclusive
        (stranger, "gpt-4o", "2026-11-02T00:00:00Z", 7777, 7777, 7.77),  # another tenant
    ]
    for account, model, at, prompt, completion, cost in rows:
        body = usage(
            model, occurred_at=at, prompt_tokens=prompt, completion_tokens=completion, cost=cost
        )
        assert (await account.client.post("/v1/ai/usage", json=body)).status_code == 201

    params = {"since": "2026-11-01", "until": "2026-11-04", "limit": 2}
    response = await owner.client.get("/v1/ai/usage", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    # Newest first by occurred_at; the totals cover the whole range, not just this page.
    assert [i["occurred_at"][:10] for i in page["items"]] == ["2026-11-03", "2026-11-02"]
    assert page["next_cursor"]
    assert page["totals"] == {
        "gpt-4o": {
            "calls": 3,
            "prompt_tokens": 600,
            "completion_tokens": 60,
            "total_tokens": 660,
            "cost": 1.35,
        },
        "claude-3-haiku": {
            "calls": 1,
            "prompt_tokens": 1000,
            "completion_tokens": 500,
            "total_tokens": 1500,
            "cost": 0.05,
        },
    }
    rest = await owner.client.get("/v1/ai/usage", params={**params, "cursor": page["next_cursor"]})
    assert [i["occurred_at"][:10] for i in rest.json()["items"]] == ["2026-11-02", "2026-11-01"]
    assert rest.json()["next_cursor"] is None

    mine = await owner.client.get(
        "/v1/ai/usage",
        params={"since": "2026-11-01", "until": "2026-11-04", "user_id": str(member.id)},
    )
    assert mine.json()["totals"]["gpt-4o"]["prompt_tokens"] == 300
    by_model = await owner.client.get("/v1/ai/usage", params={"model": "claude-3-haiku"})
    assert list(by_model.json()["totals"]) == ["claude-3-haiku"]


async def test_usage_list_validation(owner: Account) -> None:
    for params in (
        {"since": "2026-11-02", "until": "2026-11-01"},
        {"since": "yesterday"},
        {"limit": 0},
        {"limit": 201},
        {"cursor": "!!"},
        {"cursor": "abc"},
        {"tenant": "x"},
    ):
        assert_problem(await owner.client.get("/v1/ai/usage", params=params), 422)
    empty = (await owner.client.get("/v1/ai/usage")).json()
    assert empty == {"items": [], "next_cursor": None, "totals": {}}


async def _log_usage(account: Account, n: int, model: str = "gpt-4o") -> None:
    for i in range(n):
        body = usage(model, occurred_at=f"2026-11-0{1 + i % 3}T0{i % 10}:00:00Z", cost=0.01)
        assert (await account.client.post("/v1/ai/usage", json=body)).status_code == 201


@pytest.mark.embedded_only  # counts calls with tests/support/dbcalls.py
async def test_usage_totals_are_computed_once_per_walk_and_repeated_on_every_page(
    owner: Account,
) -> None:
    await _log_usage(owner, 5)
    await _log_usage(owner, 2, model="claude-3-haiku")
    params = {"since": "2026-11-01", "until": "2026-11-04", "limit": 3}
    with count_db_calls() as (calls, _):
        first = (await owner.client.get("/v1/ai/usage", params=params)).json()
    assert calls["ai_usage.aggregate"] == 1 and calls["ai_usage_totals.insert_one"] == 1
    expected = first["totals"]
    assert expected["gpt-4o"]["calls"] == 5 and expected["claude-3-haiku"]["calls"] == 2
    assert expected["gpt-4o"]["cost"] == 0.05

    # Usage logged mid-walk (newer than the walk's position, so on no later page): the walk
    # keeps the totals it began with, identical on every page.
    late = usage(occurred_at="2026-11-03T23:00:00Z", cost=0.01)
    assert (await owner.client.post("/v1/ai/usage", json=late)).status_code == 201
    seen, cursor = list(first["items"]), first["next_cursor"]
    with count_db_calls() as (calls, _):
        while cursor:
            page = (
                await owner.client.get("/v1/ai/usage", params={**params, "cursor": cursor})
            ).json()
            assert page["totals"] == expected
            seen += page["items"]
            cursor = page["next_cursor"]
    assert calls["ai_usage.aggregate"] == 0  # no page after the first recomputes them
    assert len(seen) == 7 and len({i["id"] for i in seen}) == 7
    # A new walk sees the new usage.
    fresh = (await owner.client.get("/v1/ai/usage", params=params)).json()
    assert fresh["totals"]["gpt-4o"]["calls"] == 6
    # A single page needs nothing kept.
    with count_db_calls() as (calls, _):
        await owner.client.get("/v1/ai/usage", params={**params, "limit": 50})
    assert calls["ai_usage_totals.insert_one"] == 0


@pytest.mark.embedded_only  # counts calls with tests/support/dbcalls.py
async def test_usage_totals_follow_the_filters_and_the_tenant_not_just_the_cursor(
    owner: Account, stranger: Account
) -> None:
    await _log_usage(owner, 4)
    await _log_usage(owner, 2, model="claude-3-haiku")
    params = {"since": "2026-11-01", "until": "2026-11-04", "limit": 2}
    cursor = (await owner.client.get("/v1/ai/usage", params=params)).json()["next_cursor"]
    # The same cursor with another filter: totals of that filter, not of the walk's.
    narrowed = await owner.client.get(
        "/v1/ai/usage", params={**params, "model": "claude-3-haiku", "cursor": cursor}
    )
    assert narrowed.status_code == 200 and list(narrowed.json()["totals"]) == ["claude-3-haiku"]
    # Another tenant replaying the cursor gets its own (empty) data, never the cached totals.
    foreign = await stranger.client.get("/v1/ai/usage", params={**params, "cursor": cursor})
    assert foreign.status_code == 200 and foreign.json()["totals"] == {}
    assert foreign.json()["items"] == []
    # Expired totals are recomputed.
    await AIUsageTotals.get_pymongo_collection().update_many(
        {}, {"$set": {"expires_at": datetime(2000, 1, 1, tzinfo=UTC)}}
    )
    with count_db_calls() as (calls, _):
        again = await owner.client.get("/v1/ai/usage", params={**params, "cursor": cursor})
    assert again.json()["totals"]["gpt-4o"]["calls"] == 4 and calls["ai_usage.aggregate"] == 1
    # A plain page cursor (not a walk's) is refused like any foreign cursor.
    for bad in ("eyJ4IjogMX0", "eyJwIjogMSwgInQiOiBudWxsfQ", "bm90IGpzb24"):
        assert_problem(
            await owner.client.get("/v1/ai/usage", params={**params, "cursor": bad}), 422
        )


async def test_usage_by_model_and_feature_use_indexes_ending_in_id(owner: Account) -> None:
    indexes = {
        tuple(k for k, _ in spec["key"])
        for spec in (await AIUsageLog.get_pymongo_collection().index_information()).values()
    }
    assert ("tenant_id", "model", "occurred_at", "_id") in indexes
    assert ("tenant_id", "feature", "occurred_at", "_id") in indexes
    await _log_usage(owner, 3)
    for filters in ({"model": "gpt-4o"}, {"feature": "blog_writer"}):
        page = await owner.client.get("/v1/ai/usage", params={**filters, "limit": 2})
        follow = await owner.client.get(
            "/v1/ai/usage", params={**filters, "cursor": page.json()["next_cursor"]}
        )
        assert len(page.json()["items"]) + len(follow.json()["items"]) == 3
