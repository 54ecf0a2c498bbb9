"""One vocabulary: one name and one unit per concept in every schema of `/openapi.json`.

Money is a JSON number in major units with at most 2 decimals (`"type": "number",
"multipleOf": 0.01`), never integer cents nor an unconstrained float; it is stored as integer
cents (`<name>_cents`), which never reaches the API. The subscription plan is `plan`
everywhere (stored as the plan document's `subscription.subscription_type`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI

from tests.support.helpers import Account

# concept → (the one API name, names that must not be used for it).
VOCABULARY: dict[str, tuple[str, frozenset[str]]] = {
    "subscription plan": (
        "plan",
        frozenset({"subscription_type", "subscription_plan", "plan_type", "plan_name", "tier"}),
    ),
    "cost of AI usage": ("cost", frozenset({"cost_usd", "usage_cost", "price_usd", "spend"})),
    "billed amount": ("amount", frozenset({"amount_due", "amount_usd", "charge"})),
    "monthly AI cost cap": (
        "monthly_cost_limit",
        frozenset({"cost_limit", "monthly_budget", "monthly_cost_cap", "budget"}),
    ),
    "listing price": ("list_price", frozenset({"price", "asking_price", "listing_price"})),
}
MONEY_NAMES = frozenset({"cost", "amount", "monthly_cost_limit", "list_price"})
# Names that read as money must be registered above (and so be money-shaped).
MONEY_WORDS = re.compile(
    r"(?:^|_)(?:cost|amount|price|budget|fees?|revenue|spend|charge|balance|salary)(?:_|$)"
)


def properties(schema: Any, where: str = "") -> Iterator[tuple[str, str, dict[str, Any]]]:
    """Every (path, property name, property schema) inside a schema, nested ones included."""
    if not isinstance(schema, dict):
        return
    for name, prop in (schema.get("properties") or {}).items():
        yield f"{where}.{name}", name, prop
        yield from properties(prop, f"{where}.{name}")
    for key in ("items", "additionalProperties"):
        yield from properties(schema.get(key), f"{where}[]")
    for key in ("anyOf", "oneOf", "allOf"):
        for option in schema.get(key) or []:
            yield from properties(option, where)


def options(prop: dict[str, Any]) -> list[dict[str, Any]]:
    """A property's schema alternatives without `null`."""
    alternatives = prop.get("anyOf") or prop.get("oneOf") or [prop]
    return [o for o in alternatives if o.get("type") != "null"]


def is_money(prop: dict[str, Any]) -> bool:
    """A JSON number with at most 2 decimals (possibly nullable)."""
    found = options(prop)
    return bool(found) and all(
        o.get("type") == "number" and o.get("multipleOf") == 0.01 for o in found
    )


@pytest.fixture
def schemas(app: FastAPI) -> dict[str, Any]:
    components: dict[str, Any] = app.openapi()["components"]["schemas"]
    return components


def test_no_cents_and_every_money_field_is_a_two_decimal_number(schemas: dict[str, Any]) -> None:
    seen_money: set[str] = set()
    problems = []
    for component, schema in schemas.items():
        for path, name, prop in properties(schema, component):
            if name.endswith("_cents") or "cents" in (prop.get("description") or "").lower():
                problems.append(f"{path}: cents in the API")
            if name in MONEY_NAMES:
                seen_money.add(name)
                if not is_money(prop):
                    problems.append(f"{path}: money must be a number with multipleOf 0.01")
            elif any(o.get("multipleOf") == 0.01 for o in options(prop)):
                problems.append(f"{path}: money-shaped but not a registered money name")
            elif MONEY_WORDS.search(name):
                problems.append(f"{path}: reads as money; register it in MONEY_NAMES")
    assert problems == []
    assert seen_money == MONEY_NAMES  # the table describes the API as it is


def test_one_name_per_concept(schemas: dict[str, Any]) -> None:
    used: dict[str, set[str]] = {}
    for component, schema in schemas.items():
        for path, name, _ in properties(schema, component):
            used.setdefault(name, set()).add(path)
    problems = {
        f"{concept}: {alias} at {sorted(used[alias])}, use {name!r}"
        for concept, (name, aliases) in VOCABULARY.items()
        for alias in aliases & used.keys()
    }
    assert problems == set()
    assert {name for name, _ in VOCABULARY.values()} <= used.keys()


def test_response_money_is_documented_as_a_number_not_a_float(schemas: dict[str, Any]) -> None:
    # Responses are generated in serialization mode: the same shape as requests.
    for component in ("AIUsageRead", "ModelTotals", "BillingHistoryRead", "AIConfigRead"):
        money = [p for _, n, p in properties(schemas[component]) if n in MONEY_NAMES]
        assert money and all(is_money(p) for p in money), component
        assert all("decimal_places" not in o for p in money for o in options(p))


async def test_users_me_speaks_the_same_names_and_units_as_the_domain_endpoints(
    owner: Account,
) -> None:
    c = owner.client
    config = await c.put("/v1/ai/config", json={"monthly_cost_limit": 25.5})
    assert config.status_code == 200 and config.json()["monthly_cost_limit"] == 25.5
    await c.put("/v1/subscription", json={"plan": "pro"})
    item = await c.post(
        "/v1/billing/history", json={"amount": 12.34, "date": "2026-01-02", "status": "paid"}
    )
    assert item.status_code == 201, item.text

    me = (await c.get("/v1/users/me")).json()
    billing = (await c.get("/v1/billing")).json()
    assert me["ai_config"] == config.json()
    assert me["subscription"] == billing["subscription"] == (await c.get("/v1/subscription")).json()
    assert me["subscription"]["plan"] == "pro"
    assert me["billing"]["billing_history"] == billing["billing_history"]
    assert me["billing"]["billing_history"][0]["amount"] == 12.34
    assert "_cents" not in (await c.get("/v1/users/me")).text
