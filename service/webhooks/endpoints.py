"""Webhook subscriptions (admin): create with a secret shown once, list, get, update, delete.

The secret is a Standard Webhooks secret (`whsec_` + base64 of 24 random bytes), stored
Fernet-encrypted (service/core/security.py) and redacted in the journal. A new subscription starts
at the journal's current head: it receives changes made from now on, not the past (a
consumer wanting the past reads `GET /v1/changes`).
"""

from __future__ import annotations

import base64
import secrets
from typing import Any
from uuid import UUID

from documents.webhook import WebhookDelivery, WebhookEndpoint, WebhookState
from schemas.common import PageParams
from schemas.webhooks import DELIVERY_VIEW, DeliveryRead, WebhookCreate, WebhookUpdate
from service.core import security
from service.core.context import RequestContext, Role
from service.core.errors import Unprocessable
from service.core.pagination import PageResult, paginate
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository, tenant_filter, uuid_filter
from service.core.settings import Settings
from service.feeds import sequencer
from service.webhooks.urls import BlockedUrl, check_url


def strict_urls(settings: Settings) -> bool:
    """Whether the production URL rule applies (https, public addresses only)."""
    return settings.app_env == "production"


async def _checked(settings: Settings, url: str) -> str:
    try:
        await check_url(url, strict=strict_urls(settings))
    except BlockedUrl as exc:
        raise Unprocessable(str(exc), loc=["body", "url"]) from None
    return url


# Subscriptions are the tenant's admins' business: seeing them (url, delivery state) too.
POLICY: ResourcePolicy[WebhookEndpoint] = register_policy(
    ResourcePolicy(model=WebhookEndpoint, roles=dict.fromkeys(Action, Role.admin))
)


def new_secret() -> str:
    """A fresh signing secret in the Standard Webhooks form."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def secret_of(settings: Settings, endpoint: WebhookEndpoint) -> str:
    """The endpoint's signing secret, decrypted (ValueError under another FERNET_KEY)."""
    secret = security.decrypt(settings, endpoint.secret_encrypted)
    if secret is None:
        raise ValueError("the webhook secret cannot be decrypted with this FERNET_KEY")
    return secret


async def create_webhook(
    *, ctx: RequestContext, settings: Settings, data: WebhookCreate
) -> tuple[WebhookEndpoint, str]:
    """Subscribe an endpoint; returns it and its secret (the only time the secret is shown)."""
    POLICY.require(ctx, Action.create)
    url = await _checked(settings, data.url)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        tenant_id=ctx.tenant_id,
        url=url,
        event_types=list(dict.fromkeys(data.event_types)),
        description=data.description,
        secret_encrypted=security.encrypt(settings, secret),
    )
    endpoint = await Repository(WebhookEndpoint, ctx).create(endpoint)
    state = WebhookState(
        id=endpoint.id, tenant_id=ctx.tenant_id, position=await sequencer.head(sequencer.JOURNAL)
    )
    await state.insert()
    return endpoint, secret


async def get_webhook(*, ctx: RequestContext, id: UUID) -> WebhookEndpoint:
    """One live subscription of the tenant (404 otherwise)."""
    POLICY.require(ctx, Action.read)
    return await Repository(WebhookEndpoint, ctx).get(id)


async def list_webhooks(*, ctx: RequestContext, params: PageParams) -> PageResult[dict[str, Any]]:
    """The tenant's live subscriptions, newest first, each with its delivery state."""
    POLICY.require(ctx, Action.read)
    page = await Repository(WebhookEndpoint, ctx).page_for(None, params)
    states = await states_of(ctx, [e.id for e in page.items])
    return PageResult([to_read(e, states.get(e.id)) for e in page.items], page.next_cursor)


async def update_webhook(
    *,
    ctx: RequestContext,
    settings: Settings,
    id: UUID,
    data: WebhookUpdate,
    expected_version: int | None = None,
) -> WebhookEndpoint:
    """Change url, event types, description or enabled; re-enabling resets the retry state."""
    POLICY.require(ctx, Action.update)
    repo = Repository(WebhookEndpoint, ctx)
    endpoint = await repo.get(id)
    changes = data.changes()
    if "url" in changes:
        changes["url"] = await _checked(settings, changes["url"])
    if "event_types" in changes:
        changes["event_types"] = list(dict.fromkeys(changes["event_types"]))
    reenabled = changes.get("enabled") is True and not endpoint.enabled
    if reenabled:
        changes["disabled_reason"] = None
    updated = await repo.update(endpoint, changes, expected_version=expected_version)
    if reenabled:
        await WebhookState.get_pymongo_collection().update_one(
            {"_id": uuid_filter(id), "tenant_id": uuid_filter(ctx.tenant_id)},
            {"$set": {"attempt": 0, "next_attempt_at": None, "failing_since": None}},
        )
    return updated


async def delete_webhook(
    *, ctx: RequestContext, id: UUID, expected_version: int | None = None
) -> None:
    """Soft-delete a subscription: nothing more is delivered to it."""
    POLICY.require(ctx, Action.delete)
    repo = Repository(WebhookEndpoint, ctx)
    await repo.soft_delete(await repo.get(id), expected_version=expected_version)


async def states_of(ctx: RequestContext, ids: list[UUID]) -> dict[UUID, WebhookState]:
    """The delivery state of these endpoints of the tenant, in one query."""
    query = tenant_filter(ctx, {"_id": {"$in": [uuid_filter(i) for i in ids]}})
    return {s.id: s for s in await WebhookState.find(query).to_list()}


async def list_deliveries(
    *, ctx: RequestContext, id: UUID, params: PageParams
) -> PageResult[DeliveryRead]:
    """A subscription's delivery attempts, newest first (kept 30 days)."""
    POLICY.require(ctx, Action.read)
    await Repository(WebhookEndpoint, ctx).get(id)
    query = tenant_filter(ctx, {"endpoint_id": uuid_filter(id)})
    return await paginate(
        WebhookDelivery, query, limit=params.limit, cursor=params.cursor, view=DELIVERY_VIEW
    )


def to_read(endpoint: WebhookEndpoint, state: WebhookState | None) -> dict[str, Any]:
    """The API view of a subscription and how its delivery stands."""
    s = state or WebhookState(id=endpoint.id, tenant_id=endpoint.tenant_id)
    data = endpoint.to_public()
    data.pop("secret_encrypted", None)
    data["delivery"] = {
        "delivered": s.delivered,
        "last_success_at": s.last_success_at,
        "failing_since": s.failing_since,
        "attempts": s.attempt,
        "next_attempt_at": s.next_attempt_at,
        "last_status": s.last_status,
        "last_error": s.last_error,
    }
    return data


__all__ = [
    "create_webhook",
    "delete_webhook",
    "get_webhook",
    "list_deliveries",
    "list_webhooks",
    "new_secret",
    "secret_of",
    "states_of",
    "strict_urls",
    "to_read",
    "update_webhook",
]
