"""Webhooks: subscriptions, signed delivery to a real loopback receiver, retries, restarts,
two instances, disabling, and the SSRF rule."""

from __future__ import annotations

import asyncio
import json
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from documents.webhook import WebhookEndpoint
from service.core.settings import Settings
from service.main import create_app
from service.webhooks.urls import BlockedUrl, check_url
from tests.factories import make_lead
from tests.support.helpers import Account, assert_problem
from tests.support.webhook_receiver import (
    delivery_log,
    receiver,
    settings,
    subscribe,
    until,
    verified,
)

# The shared fixture: fast loops and short retry delays, so deliveries happen within a test.
__all__ = ["settings"]


@asynccontextmanager
async def running(settings: Settings, database: Any) -> AsyncIterator[FastAPI]:
    app = create_app(settings=settings, database=database)
    async with app.router.lifespan_context(app):
        yield app


async def test_subscriptions_are_admin_only_and_hide_the_secret(
    owner: Account, member: Account, stranger: Account
) -> None:
    created = await subscribe(owner, "http://127.0.0.1:9/hook", ["lead.*", "campaign.created"])
    assert created["secret"].startswith("whsec_") and created["enabled"] is True
    wid = created["id"]
    one = (await owner.client.get(f"/v1/webhooks/{wid}")).json()
    assert "secret" not in one and "secret_encrypted" not in one
    assert one["delivery"]["delivered"] == 0
    listed = (await owner.client.get("/v1/webhooks")).json()["items"]
    assert [w["id"] for w in listed] == [wid]
    patched = await owner.client.patch(f"/v1/webhooks/{wid}", json={"event_types": ["*"]})
    assert patched.status_code == 200 and patched.json()["event_types"] == ["*"]
    assert_problem(await member.client.get("/v1/webhooks"), 403)
    # Roles are the service's (the policy): a valid body, or the 422 would answer first.
    body = {"url": "http://127.0.0.1:9/hook", "event_types": ["*"]}
    assert_problem(await member.client.post("/v1/webhooks", json=body), 403)
    assert_problem(await stranger.client.get(f"/v1/webhooks/{wid}"), 404)
    for bad in (
        {"url": "ftp://x/y", "event_types": ["*"]},
        {"url": "http://h", "event_types": []},
        {"url": "http://h", "event_types": ["Lead created"]},
    ):
        assert_problem(await owner.client.post("/v1/webhooks", json=bad), 422)
    history = (await owner.client.get("/v1/changes", params={"aggregate_type": "webhook"})).json()
    assert "whsec_" not in json.dumps(history)  # the secret never reaches the journal
    assert (await owner.client.delete(f"/v1/webhooks/{wid}")).status_code == 204
    assert_problem(await owner.client.get(f"/v1/webhooks/{wid}"), 404)
    assert_problem(await owner.client.get(f"/v1/webhooks/{wid}/deliveries"), 404)


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com/x",  # not https
        "https://127.0.0.1/x",
        "https://localhost/x",
        "https://10.0.0.8/x",
        "https://192.168.1.1/x",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/x",
        "https://[::ffff:127.0.0.1]/x",
        "https://user:pw@example.com/x",
    ],
)
async def test_production_refuses_non_public_urls(url: str) -> None:
    with pytest.raises(BlockedUrl):
        await check_url(url, strict=True)


async def test_production_subscription_to_loopback_is_422(owner: Account, app: FastAPI) -> None:
    app.state.settings = app.state.settings.model_copy(update={"app_env": "production"})
    r = await owner.client.post(
        "/v1/webhooks", json={"url": "https://127.0.0.1/x", "event_types": ["*"]}
    )
    assert_problem(r, 422)


async def test_every_change_is_delivered_signed_and_in_order(owner: Account) -> None:
    with receiver() as rec:
        hook = await subscribe(owner, rec.url, ["lead.*", "campaign.*"])
        lead = await make_lead(owner, email="a@x.io")
        lid = lead["id"]
        await owner.client.patch(f"/v1/leads/{lid}", json={"first_name": "Ana"})
        await owner.client.delete(f"/v1/leads/{lid}")
        bulk = [{"type": "generic", "email": f"b{i}@x.io"} for i in range(5)]
        await owner.client.post("/v1/leads/bulk", json={"leads": bulk})
        await owner.client.post("/v1/campaigns", json={"type": "call", "name": "C"})
        await owner.client.post("/v1/blogs", json={"title": "not subscribed"})
        await until(lambda: len(rec.ok()) >= 9)
        bodies = verified(rec, hook["secret"])
        types = Counter(b["type"] for b in bodies)
        assert types == {
            "lead.created": 6,
            "lead.updated": 1,
            "lead.deleted": 1,
            "campaign.created": 1,
        }
        versions: dict[str, list[int]] = defaultdict(list)
        for b in bodies:
            versions[b["data"]["aggregate_id"]].append(b["data"]["version"])
        assert versions[lid] == [1, 2, 3]  # order per aggregate
        assert all(b["timestamp"] == b["data"]["occurred_at"] for b in bodies)
        log = await delivery_log(owner, hook["id"], 9)
        assert len(log) == 9 and all(d["succeeded"] and d["status_code"] == 204 for d in log)
        assert all(d["request_id"] for d in log)  # the request that made each change
        status = (await owner.client.get(f"/v1/webhooks/{hook['id']}")).json()["delivery"]
        assert status["delivered"] == 9 and status["failing_since"] is None


async def test_failures_are_retried_with_backoff_until_they_pass(owner: Account) -> None:
    with receiver(answer=lambda n: 500 if n < 3 else 200) as rec:
        hook = await subscribe(owner, rec.url, ["campaign.created"])
        await owner.client.post("/v1/campaigns", json={"type": "call", "name": "Retry me"})
        await owner.client.post("/v1/campaigns", json={"type": "call", "name": "Next"})
        await until(lambda: len(rec.ok()) == 2)
        names = [b["data"]["changes"] for b in verified(rec, hook["secret"])]
        assert ["Retry me" in str(c) for c in names] == [True, False]  # order kept
        log = await delivery_log(owner, hook["id"], 5)
        attempts = [(d["attempt"], d["status_code"], d["succeeded"]) for d in reversed(log)]
        assert attempts == [
            (1, 500, False),
            (2, 500, False),
            (3, 500, False),
            (4, 200, True),
            (1, 200, True),
        ]
        assert all(d["error"] == "HTTP 500" for d in log if not d["succeeded"])


async def test_an_endpoint_failing_for_long_is_disabled_and_says_why(
    owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    from service.webhooks import delivery

    with receiver(answer=lambda n: 503) as rec:
        hook = await subscribe(owner, rec.url)
        await owner.client.post("/v1/campaigns", json={"type": "call", "name": "Down"})
        doc = await WebhookEndpoint.get(hook["id"])
        assert doc is not None
        await until(lambda: len(rec.requests) >= 1)
    body: dict[str, Any] = {}

    async def disabled() -> bool:
        nonlocal body
        body = (await owner.client.get(f"/v1/webhooks/{hook['id']}")).json()
        return body["enabled"] is False

    real = delivery.Dispatcher.attempt

    async def impatient(self: Any, *args: Any) -> bool:
        # Make "long" short: the next failure past one second disables the endpoint.
        self.settings = self.settings.model_copy(update={"webhook_disable_after_seconds": 1})
        return await real(self, *args)

    with receiver(answer=lambda n: 503) as rec2:
        await owner.client.patch(f"/v1/webhooks/{hook['id']}", json={"url": rec2.url})
        monkeypatch.setattr(delivery.Dispatcher, "attempt", impatient)
        for _ in range(200):
            if await disabled():
                break
            await asyncio.sleep(0.05)
        monkeypatch.undo()
    assert body["enabled"] is False and "HTTP 503" in body["disabled_reason"]
    kinds = (await owner.client.get("/v1/changes", params={"aggregate_type": "webhook"})).json()
    assert "webhook.disabled" in {e["event_type"] for e in kinds["items"]}
    enabled = await owner.client.patch(f"/v1/webhooks/{hook['id']}", json={"enabled": True})
    assert enabled.json()["disabled_reason"] is None and enabled.json()["delivery"]["attempts"] == 0


async def test_at_least_once_across_a_restart(
    settings: Settings, database: Any, owner: Account, app: FastAPI
) -> None:
    """The first app delivers some, stops; changes made meanwhile arrive from the next one."""
    with receiver() as rec:
        hook = await subscribe(owner, rec.url, ["campaign.*"])
        for i in range(3):
            await owner.client.post("/v1/campaigns", json={"type": "call", "name": f"A{i}"})
        await until(lambda: len(rec.ok()) >= 3)
        await delivery_log(owner, hook["id"], 3)  # the answers recorded, not only received
    # The fixture's process "goes away": its workers stop and give their leases up.
    await app.state.background.stop()
    with receiver() as rec2:
        # The same port is gone; point the subscription at the new receiver without delivering.
        await WebhookEndpoint.get_pymongo_collection().update_one(
            {"url": rec.url}, {"$set": {"url": rec2.url}}
        )
        async with running(settings, database) as second:
            transport = httpx.ASGITransport(app=second)
            headers = {"Authorization": f"Bearer {owner.token}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://t", headers=headers
            ) as c:
                for i in range(3):
                    await c.post("/v1/campaigns", json={"type": "call", "name": f"B{i}"})

                def names() -> list[str]:
                    return [str(b["data"]["changes"]) for b in verified(rec2, hook["secret"])]

                # (Waiting for three requests let a late one stand in for a change made here.)
                await until(lambda: all(f"B{i}" in " ".join(names()) for i in range(3)))
        delivered = " ".join(names())
        assert not any(f"A{i}" in delivered for i in range(3))  # none twice after the restart


async def test_two_instances_never_double_deliver(
    settings: Settings, database: Any, owner: Account
) -> None:
    with receiver() as rec:
        hook = await subscribe(owner, rec.url, ["lead.created"])
        async with running(settings, database) as other:
            transport = httpx.ASGITransport(app=other)
            headers = {"Authorization": f"Bearer {owner.token}"}
            async with httpx.AsyncClient(
                transport=transport, base_url="http://t", headers=headers
            ) as c:
                clients = [owner.client, c]
                await asyncio.gather(
                    *(
                        clients[i % 2].post(
                            "/v1/leads", json={"type": "generic", "email": f"l{i}@x.io"}
                        )
                        for i in range(20)
                    )
                )
                await until(lambda: len(rec.ok()) >= 20)
                await asyncio.sleep(0.5)  # time for a duplicate to show up, if any
        ids = Counter(r.headers["webhook-id"] for r in rec.requests)
        assert len(ids) == 20 and set(ids.values()) == {1}
        assert len(verified(rec, hook["secret"])) == 20


async def test_a_paused_holder_cannot_move_a_position_back(owner: Account, app: FastAPI) -> None:
    """Position writes carry the lease's fence: after a newer holder delivered up to 9, the
    old holder (paused past its lease) writing 4 changes nothing."""
    from datetime import timedelta

    from documents.webhook import WebhookState
    from service.feeds import leases
    from service.webhooks.delivery import Dispatcher

    dispatcher = Dispatcher(app.state.settings)
    old = leases.Held(name="webhooks", owner="old", ttl=timedelta(seconds=30), fence=3)
    new = leases.Held(name="webhooks", owner="new", ttl=timedelta(seconds=30), fence=4)
    state = WebhookState(id=owner.id, tenant_id=owner.tenant_id, position=9)
    assert await dispatcher._save(state, new)
    stale = state.model_copy(update={"position": 4})
    assert not await dispatcher._save(stale, old)
    stored = await WebhookState.get(owner.id)
    assert stored is not None and stored.position == 9
