"""Billing and subscription: plan changes, billing info, payment methods, no card data stored."""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import patch

from bson import Binary, json_util

from documents.journal import DomainEvent
from documents.user import User
from schemas.billing import looks_like_pan, luhn_valid
from tests.support.helpers import Account, ServiceClient, assert_problem, stored_form

CARD = {"provider": "stripe", "brand": "visa", "last4": "4242", "exp_month": 12, "exp_year": 2099}
PANS = ["4111111111111111", "4242 4242 4242 4242", "5555-5555-5555-4444", "378282246310005"]


async def raw_user_and_journal(account: Account) -> str:
    """Everything stored about the user: the raw document and its journal, as text."""
    raw = await stored_form(User.get_pymongo_collection()).find_one(
        {"_id": Binary.from_uuid(account.id)}
    )
    events = (
        await stored_form(DomainEvent.get_pymongo_collection())
        .find({"aggregate_id": Binary.from_uuid(account.id)})
        .to_list(None)
    )
    return json_util.dumps([raw, events])


def test_luhn_and_pan_detection() -> None:
    assert luhn_valid("4111111111111111") and not luhn_valid("4111111111111112")
    for pan in PANS:
        assert looks_like_pan(pan) and looks_like_pan(f"my card is {pan}, thanks")
    for safe in ("4242", "4111111111111112", "12345678901", "+1 415 555 0100", "2099"):
        assert not looks_like_pan(safe)


async def test_get_billing_defaults(owner: Account) -> None:
    response = await owner.client.get("/v1/billing")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["subscription"]["plan"] == "free" and body["subscription"]["plan_history"] == []
    assert body["payment_methods"] == [] and body["billing_history"] == []
    assert body["billing_info"]["address"]["city"] is None
    assert response.headers["ETag"].startswith('"')


async def test_plan_changes_append_history(owner: Account) -> None:
    response = await owner.client.put("/v1/subscription", json={"plan": "pro"})
    assert response.status_code == 200, response.text
    sub = response.json()
    assert sub["plan"] == "pro"
    assert [(c["from"], c["to"]) for c in sub["plan_history"]] == [("free", "pro")]
    assert sub["plan_history"][0]["changed_at"]
    version = response.headers["ETag"]

    same = await owner.client.put("/v1/subscription", json={"plan": "pro"})
    assert same.headers["ETag"] == version and len(same.json()["plan_history"]) == 1

    await owner.client.put("/v1/subscription", json={"plan": "team"})
    billing = (await owner.client.get("/v1/billing")).json()
    assert [(c["from"], c["to"]) for c in billing["subscription"]["plan_history"]] == [
        ("free", "pro"),
        ("pro", "team"),
    ]
    events = await DomainEvent.find(
        {"aggregate_id": Binary.from_uuid(owner.id), "event_type": "user.plan_changed"}
    ).to_list()
    assert len(events) == 2


async def test_plan_history_keeps_the_newest(owner: Account) -> None:
    with patch("service.billing.MAX_PLAN_HISTORY", 2):
        for plan in ("starter", "pro", "team", "enterprise"):
            await owner.client.put("/v1/subscription", json={"plan": plan})
    history = (await owner.client.get("/v1/subscription")).json()["plan_history"]
    assert [(c["from"], c["to"]) for c in history] == [("pro", "team"), ("team", "enterprise")]


async def test_subscription_validation(owner: Account) -> None:
    for body in ({}, {"plan": "platinum"}, {"plan": "pro", "status": "active"}):
        assert_problem(await owner.client.put("/v1/subscription", json=body), 422)
    ok = await owner.client.put("/v1/subscription", json={"plan": "pro", "tenant_id": "x"})
    assert ok.status_code == 200
    stale = await owner.client.put(
        "/v1/subscription", json={"plan": "team"}, headers={"If-Match": '"1"'}
    )
    assert_problem(stale, 412)


async def test_billing_info(owner: Account) -> None:
    body = {
        "billing_name": "Acme Realty",
        "billing_email": " Billing@Acme.com ",
        "address": {"line1": "1 Main St", "city": "Miami", "country": "US"},
        "tax_id": "12-3456789",
    }
    response = await owner.client.put("/v1/billing/info", json=body)
    assert response.status_code == 200, response.text
    info = response.json()
    assert info["billing_email"] == "billing@acme.com" and info["address"]["city"] == "Miami"
    assert_problem(await owner.client.put("/v1/billing/info", json={"billing_email": "no"}), 422)
    assert_problem(
        await owner.client.put("/v1/billing/info", json={"address": {"planet": "Mars"}}), 422
    )


async def test_payment_methods_add_default_and_remove(owner: Account) -> None:
    first = await owner.client.post("/v1/billing/payment-methods", json=CARD)
    assert first.status_code == 201, first.text
    assert first.json()["is_default"] is True  # the first becomes the default
    second = await owner.client.post(
        "/v1/billing/payment-methods", json={**CARD, "last4": "0005", "is_default": True}
    )
    billing = (await owner.client.get("/v1/billing")).json()
    assert [(m["last4"], m["is_default"]) for m in billing["payment_methods"]] == [
        ("4242", False),
        ("0005", True),
    ]
    assert billing["billing_info"]["default_payment_method_id"] == second.json()["id"]

    url = f"/v1/billing/payment-methods/{second.json()['id']}"
    assert (await owner.client.delete(url)).status_code == 204
    assert_problem(await owner.client.delete(url), 404)
    billing = (await owner.client.get("/v1/billing")).json()
    assert [m["last4"] for m in billing["payment_methods"]] == ["4242"]
    assert billing["billing_info"]["default_payment_method_id"] is None


async def test_payment_method_validation_and_cap(owner: Account) -> None:
    bad = [
        {**CARD, "last4": "42"},
        {**CARD, "last4": "abcd"},
        {**CARD, "exp_month": 13},
        {**CARD, "exp_year": 2001},  # expired
        {k: v for k, v in CARD.items() if k != "provider"},
        {**CARD, "token": "x"},
    ]
    for body in bad:
        assert_problem(await owner.client.post("/v1/billing/payment-methods", json=body), 422)
    with patch("service.billing.MAX_PAYMENT_METHODS", 1):
        await owner.client.post("/v1/billing/payment-methods", json=CARD)
        assert_problem(await owner.client.post("/v1/billing/payment-methods", json=CARD), 409)


async def test_card_numbers_and_cvc_are_refused_and_never_stored(owner: Account) -> None:
    attempts: list[tuple[str, dict[str, Any]]] = []
    for pan in PANS:
        attempts += [
            ("/v1/billing/payment-methods", {**CARD, "brand": pan}),
            ("/v1/billing/payment-methods", {**CARD, "number": pan}),
            ("/v1/billing/payment-methods", {**CARD, "card_number": pan}),
            ("/v1/billing/info", {"billing_name": f"card {pan}"}),
            ("/v1/billing/info", {"address": {"line2": pan}}),
        ]
    attempts.append(("/v1/billing/payment-methods", {**CARD, "number": int(PANS[0])}))
    for key in ("cvc", "cvv", "CVV2", "security_code"):
        attempts.append(("/v1/billing/payment-methods", {**CARD, key: "123"}))
    for url, body in attempts:
        method = owner.client.put if url.endswith("/info") else owner.client.post
        response = await method(url, json=body)
        problem = assert_problem(response, 422)
        text = json.dumps(problem)
        assert all(p not in text and p.replace(" ", "") not in text for p in PANS), text
        assert "123" not in text
    stored = await raw_user_and_journal(owner)
    for pan in PANS:
        assert pan not in stored and pan.replace(" ", "").replace("-", "") not in stored
    assert (await owner.client.get("/v1/billing")).json()["payment_methods"] == []


async def test_safe_data_in_responses_storage_and_journal(owner: Account) -> None:
    await owner.client.post("/v1/billing/payment-methods", json=CARD)
    body = (await owner.client.get("/v1/billing")).json()
    assert set(body["payment_methods"][0]) == {
        "id",
        "provider",
        "brand",
        "last4",
        "exp_month",
        "exp_year",
        "is_default",
    }
    assert "cvc" not in await raw_user_and_journal(owner)


async def test_billing_history_recorded_by_admin_or_service(
    owner: Account,
    member: Account,
    stranger: Account,
    service_client: ServiceClient,
) -> None:
    item = {"amount": 49.99, "date": "2026-11-01", "status": "paid", "description": "Pro plan"}
    service = await service_client(owner)
    response = await service.post("/v1/billing/history", json={**item, "user_id": str(member.id)})
    assert response.status_code == 201, response.text
    assert response.json()["amount"] == 49.99 and response.json()["currency"] == "USD"
    history = (await member.client.get("/v1/billing")).json()["billing_history"]
    assert [(h["amount"], h["status"]) for h in history] == [(49.99, "paid")]
    stored = await User.get(member.id)
    assert stored is not None and stored.billing.billing_history[0].amount_cents == 4999

    assert_problem(await member.client.post("/v1/billing/history", json=item), 403)
    foreign = await service.post("/v1/billing/history", json={**item, "user_id": str(stranger.id)})
    assert_problem(foreign, 422)
    assert_problem(await service.post("/v1/billing/history", json={**item, "amount": 1.001}), 422)
    assert_problem(await service.get("/v1/billing"), 403)  # an API key has no billing of its own


async def test_billing_is_per_user(owner: Account, member: Account, stranger: Account) -> None:
    await owner.client.put("/v1/subscription", json={"plan": "pro"})
    method = (await owner.client.post("/v1/billing/payment-methods", json=CARD)).json()
    for other in (member, stranger):
        assert (await other.client.get("/v1/billing")).json()["subscription"]["plan"] == "free"
        assert_problem(
            await other.client.delete(f"/v1/billing/payment-methods/{method['id']}"), 404
        )
