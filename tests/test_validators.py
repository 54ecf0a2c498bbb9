"""Generated `$jsonSchema` validators: their shape, that they fail bad documents, that they pass
every document a flow through every collection stores, and how they are installed.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import httpx
import pytest
from bson import Binary

from documents.blog import Blog
from documents.campaign import CampaignBase
from documents.user import User
from service.core.settings import Settings
from service.storage.validators import (
    ROOT_ENVELOPE,
    apply_validators,
    mongosh_commands,
    validator_for,
    validators,
)
from tests.support.helpers import Account
from tests.support.validate_stored import stored_document_errors, validator_of
from tests.support.webhook_receiver import receiver

# What MongoDB's $jsonSchema accepts (draft 4 without $ref, format, default, const…).
MONGO_KEYWORDS = {
    "bsonType",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "enum",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "uniqueItems",
    "minProperties",
    "maxProperties",
    "multipleOf",
    "anyOf",
    "oneOf",
    "allOf",
    "title",
}


def keywords(node: Any, out: set[str]) -> set[str]:
    """Every keyword used anywhere in a schema (property names excluded)."""
    if isinstance(node, list):
        for item in node:
            keywords(item, out)
    elif isinstance(node, dict):
        for key, value in node.items():
            out.add(key)
            if key == "properties":
                for prop in value.values():
                    keywords(prop, out)
            elif key != "enum":
                keywords(value, out)
    return out


# -- the generated shape --------------------------------------------------------------------


def test_every_collection_has_a_validator_in_mongodbs_dialect() -> None:
    generated = validators()
    assert {"blogs", "users", "campaigns", "leads", "events", "domain_events"} <= generated.keys()
    for name, validator in generated.items():
        schema = validator["$jsonSchema"]
        assert keywords(schema, set()) <= MONGO_KEYWORDS, name
        assert schema["title"] == name and schema["bsonType"] == "object"
        assert "\\u" not in json.dumps(schema), name  # PCRE has no \u escapes


def test_bson_types_required_fields_and_extras() -> None:
    schema = validator_for(Blog)["$jsonSchema"]
    props = schema["properties"]
    assert props["_id"] == {"bsonType": "binData"}
    assert props["created_at"] == {"bsonType": "date"}
    assert props["user_id"] == {"bsonType": ["binData", "null"]}
    assert props["version"] == {"bsonType": ["int", "long"], "minimum": 1}
    assert props["status"] == {"bsonType": "string", "enum": ["planned", "scheduled", "posted"]}
    assert set(schema["required"]) == {"_id", "title", *ROOT_ENVELOPE}
    # Roots accept extra fields (older shapes); embedded parts forbid unknown keys.
    assert "additionalProperties" not in schema
    calendar = props["calendar"]
    assert calendar["bsonType"] == ["object", "null"] and calendar["additionalProperties"] is False
    assert calendar["properties"]["months"]["maxItems"] == 100
    recurrence = calendar["properties"]["recurrence"]
    assert recurrence["properties"]["count"] == {
        "bsonType": ["int", "long", "null"],
        "minimum": 1,
        "maximum": 100,
    }
    assert "\\x{3000}" in props["title"]["pattern"]  # NOT_BLANK, written for PCRE
    users = validator_for(User)["$jsonSchema"]["properties"]
    plan_change = users["subscription"]["properties"]["plan_history"]["items"]
    assert {"from", "to"} <= plan_change["properties"].keys()  # stored by alias
    temperature = users["ai_config"]["properties"]["temperature"]
    assert temperature["bsonType"] == ["double", "int", "long"]


def test_polymorphic_collections_get_one_schema_per_subtype() -> None:
    schema = validator_for(CampaignBase)["$jsonSchema"]
    variants = {v["properties"]["type"]["enum"][0]: v for v in schema["oneOf"]}
    assert set(variants) == {"call", "social", "text", "email"}
    for kind, variant in variants.items():
        assert {"_class_id", "type", *ROOT_ENVELOPE} <= set(variant["required"])
        assert variant["properties"]["_class_id"]["enum"][0].startswith("CampaignBase.")
        assert variant["properties"]["_class_id"]["enum"][0].lower().endswith(f"{kind}campaign")


def test_the_validator_refuses_what_the_model_refuses(owner_like: dict[str, Any]) -> None:
    check = validator_of("blogs")
    good = owner_like
    assert not list(check.iter_errors(good))
    bad = [
        {**good, "_id": "not-a-uuid"},
        {**good, "title": ""},
        {**good, "title": "   "},  # NOT_BLANK
        {**good, "title": "\u3000"},  # ideographic space: the PCRE escape round-trips
        {**good, "status": "draft"},
        {**good, "version": 0},
        {**good, "version": 1.5},
        {**good, "is_deleted": 0},
        {**good, "created_at": "2026-01-01T00:00:00Z"},  # a string, not a BSON date
        {**good, "plan": {"outline": [], "keywords": [], "scheduled_for": None}},  # extra key
        {**good, "calendar": {"timezone": "UTC", "months": ["2026-1"]}},
        {**good, "calendar": {"recurrence": {"frequency": "daily", "count": 500}}},
        {k: v for k, v in good.items() if k != "is_deleted"},  # invisible to every query
    ]
    for doc in bad:
        assert list(check.iter_errors(doc)), doc
    # A campaign claiming one type with another subtype's class id matches no variant.
    campaigns = validator_of("campaigns")
    campaign = {
        **{k: good[k] for k in ROOT_ENVELOPE | {"_id"}},
        "name": "C",
        "type": "call",
        "status": "draft",
        "_class_id": "CampaignBase.CallCampaign",
    }
    assert not list(campaigns.iter_errors(campaign))
    assert list(campaigns.iter_errors({**campaign, "_class_id": "CampaignBase.SocialCampaign"}))


# -- every document a flow stores validates ------------------------------------------------


async def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


async def test_every_document_stored_by_a_flow_through_every_collection_validates(
    owner: Account, member: Account, client: httpx.AsyncClient, database: Any
) -> None:
    c = owner.client
    with receiver() as rec:
        # A subscription: its deliveries and delivery state are stored as the flow goes.
        await _ok(await c.post("/v1/webhooks", json={"url": rec.url, "event_types": ["*"]}), 201)
        await _flow(owner, member, client)
        for _ in range(300):
            if rec.ok():
                break
            await asyncio.sleep(0.05)
        assert rec.ok(), "no webhook delivery reached the receiver"

    checked, errors = await stored_document_errors(database)
    assert errors == []
    # The flow reached every collection, so every validator was exercised.
    assert {name for name, n in checked.items() if n} == set(validators())


async def _flow(owner: Account, member: Account, client: httpx.AsyncClient) -> None:
    """One pass through every kind of write the API offers."""
    c = owner.client
    # Identity: profile, settings, billing, AI settings, API keys, teams, invitations, throttles.
    await _ok(await c.patch("/v1/users/me", json={"profile": {"first_name": "Ana"}}))
    await _ok(await c.put("/v1/subscription", json={"plan": "pro"}))
    await _ok(
        await c.post(
            "/v1/billing/payment-methods",
            json={
                "provider": "stripe",
                "brand": "visa",
                "last4": "4242",
                "exp_month": 12,
                "exp_year": 2099,
            },
        ),
        201,
    )
    await _ok(
        await c.post(
            "/v1/billing/history", json={"amount": 49.99, "date": "2026-01-02", "status": "paid"}
        ),
        201,
    )
    await _ok(await c.put("/v1/ai/config", json={"monthly_cost_limit": 25.5}))
    await _ok(await c.put("/v1/ai/context", json={"tone": "friendly", "goals": ["leads"]}))
    await _ok(await c.post("/v1/api-keys", json={"name": "crm"}), 201)
    team = await _ok(await c.post("/v1/teams", json={"name": "Sales"}), 201)
    await _ok(
        await c.post(
            f"/v1/teams/{team['id']}/invitations", json={"email": "x@example.com", "role": "member"}
        ),
        201,
    )
    await client.post(
        "/v1/auth/token", data={"username": owner.user.email, "password": "wrong-password-1"}
    )
    # Campaigns, leads, links and touchpoints of every type (with an idempotency key).
    campaigns = [
        await _ok(await c.post("/v1/campaigns", json={"type": kind, "name": kind}), 201)
        for kind in ("call", "social", "text", "email")
    ]
    leads = [
        await _ok(
            await c.post("/v1/leads", json={"type": "generic", "email": "g@example.com"}), 201
        ),
        await _ok(
            await c.post(
                "/v1/leads",
                json={
                    "type": "mls",
                    "mls_id": "MLS-1",
                    "list_price": 350000.5,
                    "first_name": "Bo",
                    "last_name": "Li",
                },
            ),
            201,
        ),
    ]
    for campaign in campaigns:
        await _ok(
            await c.post(
                f"/v1/campaigns/{campaign['id']}/leads",
                json={"lead_ids": [lead["id"] for lead in leads]},
            )
        )
    refs = {"campaign_id": campaigns[0]["id"], "lead_id": leads[0]["id"]}
    bodies = [
        {"type": "call", "outcome": "answered", "duration_seconds": 60},
        {"type": "text", "direction": "inbound", "body": "Yes!", "delivery_status": "received"},
        {"type": "social", "platform": "instagram", "action": "comment", "url": "https://ig/p/1"},
        {"type": "email", "subject": "Hello", "status": "opened"},
    ]
    for i, body in enumerate(bodies):
        await _ok(
            await c.post("/v1/events", json={**body, **refs}, headers={"Idempotency-Key": f"k{i}"}),
            201,
        )
    # Outreach (issue 25): a suppression, a consent change, a claim, a provider callback.
    await _ok(
        await c.post("/v1/suppressions", json={"channel": "email", "value": "s@example.com"}), 201
    )
    await _ok(await c.put(f"/v1/leads/{leads[0]['id']}/consent/text", json={"status": "opted_in"}))
    await _ok(
        await c.post(f"/v1/campaigns/{campaigns[3]['id']}/recipients/claim", json={"limit": 2})
    )
    provided = {"type": "call", "outcome": "busy", "provider": "twilio", "external_id": "CA9"}
    await _ok(await c.post("/v1/events", json={**provided, **refs}), 201)
    status = {"provider": "twilio", "external_id": "CA9", "status": "answered"}
    await _ok(await c.post("/v1/events/status", json=status))
    # Workspace: blogs (recurring, posted), kanban, research, AI usage, saved searches,
    # integrations.
    blog = await _ok(
        await c.post(
            "/v1/blogs",
            json={
                "title": "Weekly",
                "status": "scheduled",
                "scheduled_for": "2026-11-03T14:00:00Z",
                "timezone": "America/New_York",
                "channel": "newsletter",
                "recurrence": {"frequency": "weekly", "count": 4},
            },
        ),
        201,
    )
    await _ok(await c.post(f"/v1/blogs/{blog['id']}/publish"))
    posted = await _ok(await c.post("/v1/blogs", json={"title": "Now", "status": "posted"}), 201)
    await _ok(await c.delete(f"/v1/blogs/{posted['id']}"), 204)
    board = await _ok(await c.get("/v1/kanban"))
    state_id = board["states"][0]["id"] if board["states"] else None
    if state_id is None:
        state_id = (await _ok(await c.post("/v1/kanban/states", json={"name": "Todo"}), 201))["id"]
    await _ok(
        await c.post("/v1/kanban/tasks", json={"title": "Call Bo", "state_id": state_id}), 201
    )
    await _ok(await c.post("/v1/research/topics", json={"topic": "Condos"}), 201)
    for model in ("gpt-4o", "gpt-4o", "claude-3-haiku"):
        body = {
            "model": model,
            "prompt_tokens": 10,
            "completion_tokens": 5,
            "feature": "blog_writer",
            "cost": 0.02,
        }
        await _ok(await c.post("/v1/ai/usage", json=body), 201)
    await _ok(await c.get("/v1/ai/usage", params={"limit": 1}))  # keeps the walk's totals
    await _ok(
        await c.post(
            "/v1/saved-searches",
            json={"name": "New", "resource": "leads", "filters": {"status": "new"}},
        ),
        201,
    )
    await _ok(
        await c.post(
            "/v1/integrations",
            json={"type": "mailchimp", "status": "connected", "credentials": {"api_key": "s3"}},
        ),
        201,
    )
    # Read models and rollups.
    await _ok(await c.get("/v1/blogs/stats"))
    await _ok(await c.get("/v1/research/stats"))
    await _ok(await c.get("/v1/read-models/campaigns"))
    await _ok(await c.get(f"/v1/read-models/campaign-stats/{campaigns[0]['id']}"))
    await _ok(await c.get("/v1/read-models/analytics"))
    await _ok(await c.get(f"/v1/read-models/teams/{team['id']}"))
    await _ok(await member.client.get("/v1/users/me"))


# -- installing them --------------------------------------------------------------------------


@pytest.mark.embedded_only  # reads database.engine
@pytest.mark.usefixtures("app")
async def test_apply_validators_uses_collmod_with_moderate_level(database: Any) -> None:
    await database.drop_collection("ai_usage_totals")  # a missing collection is created
    applied = await apply_validators(database, action="warn")
    assert set(applied) == set(validators())
    for name in applied:
        options = database.engine.store(name).options
        assert options["validationLevel"] == "moderate"
        assert options["validationAction"] == "warn"
        assert options["validator"] == validators()[name]
    # The action defaults to the VALIDATION_ACTION setting.
    await apply_validators(database)
    assert database.engine.store("blogs").options["validationAction"] == "error"


def test_mongosh_commands_are_collmod_runcommands(monkeypatch: Any) -> None:
    monkeypatch.setenv("VALIDATION_ACTION", "warn")
    text = mongosh_commands()
    statements = [s for s in text.split(";\n") if s.strip()]
    assert len(statements) == len(validators())
    first = json.loads(statements[0].removeprefix("db.runCommand(").removesuffix(");").rstrip(")"))
    assert first["collMod"] == "tenants" and first["validationAction"] == "warn"
    assert first["validationLevel"] == "moderate" and "$jsonSchema" in first["validator"]
    assert "validationAction" in mongosh_commands(action="error")


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """Workers poll fast, so the flow's webhook delivery happens within the test."""
    return settings.model_copy(update={"worker_poll_seconds": 0.05})


def _now() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def owner_like() -> dict[str, Any]:
    """A valid stored blog, as Beanie writes it."""
    return {
        "_id": Binary.from_uuid(uuid4()),
        "tenant_id": Binary.from_uuid(uuid4()),
        "created_at": _now(),
        "updated_at": _now(),
        "created_by": None,
        "updated_by": None,
        "is_deleted": False,
        "deleted_at": None,
        "archived_at": None,
        "version": 1,
        "schema_version": 2,
        "tags": [],
        "segments": {},
        "user_id": None,
        "title": "T",
        "content": "",
        "status": "planned",
        "plan": {"outline": [], "keywords": []},
        "posted": None,
        "calendar": None,
    }
