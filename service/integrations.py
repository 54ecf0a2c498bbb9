"""Integrations: connections to outside systems with write-only, encrypted credentials.

Credentials are serialised to JSON and encrypted with Fernet (`FERNET_KEY`) before they reach
the document, so neither the collection nor the journal (which also redacts the field) holds
them in clear. `connected_at` is when the integration last became `connected`.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import UUID

from documents.base import utcnow
from documents.integration import Integration, IntegrationStatus
from schemas.integrations import (
    INTEGRATION_VIEW,
    IntegrationCreate,
    IntegrationFilters,
    IntegrationRead,
    IntegrationUpdate,
)
from service.core import security
from service.core.context import RequestContext
from service.core.pagination import PageResult
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository, equal_to
from service.core.settings import Settings

POLICY: ResourcePolicy[Integration] = register_policy(ResourcePolicy(model=Integration))
"""Members and above write Integration documents (the default roles)."""


def _seal(settings: Settings, credentials: dict[str, str] | None) -> str | None:
    if credentials is None:
        return None
    return security.encrypt(settings, json.dumps(credentials, sort_keys=True))


async def create_integration(
    *, ctx: RequestContext, settings: Settings, data: IntegrationCreate
) -> Integration:
    """Connect an outside system for the caller (credentials encrypted at rest)."""
    POLICY.require(ctx, Action.create)
    connected = data.status == IntegrationStatus.connected
    integration = Integration(
        tenant_id=ctx.tenant_id,
        user_id=ctx.user_id,
        type=data.type,
        name=data.name,
        status=data.status,
        connected_at=utcnow() if connected else None,
        credentials_encrypted=_seal(settings, data.credentials),
    )
    return await Repository(Integration, ctx).create(integration)


async def get_integration(*, ctx: RequestContext, id: UUID) -> IntegrationRead:
    """One integration of the tenant."""
    return await Repository(Integration, ctx).read(id, INTEGRATION_VIEW)


async def list_integrations(
    *, ctx: RequestContext, filters: IntegrationFilters
) -> PageResult[IntegrationRead]:
    """A page of the tenant's integrations, newest first."""
    query = equal_to(filters, {"type": "type", "status": "status", "user_id": "user_id"})
    return await Repository(Integration, ctx).page_for(query, filters, view=INTEGRATION_VIEW)


async def update_integration(
    *,
    ctx: RequestContext,
    settings: Settings,
    id: UUID,
    patch: IntegrationUpdate,
    expected_version: int | None,
) -> Integration:
    """Change status, name or credentials (replaced whole; `null` removes them)."""
    POLICY.require(ctx, Action.update)
    repo = Repository(Integration, ctx)
    integration = await repo.get(id)
    sent = patch.changes()
    changes: dict[str, Any] = {k: sent[k] for k in ("status", "name") if k in sent}
    if "credentials" in sent:
        changes["credentials_encrypted"] = _seal(settings, sent["credentials"])
    becomes_connected = (
        sent.get("status") == IntegrationStatus.connected
        and integration.status != IntegrationStatus.connected
    )
    if becomes_connected:
        changes["connected_at"] = utcnow()
    return await repo.update(integration, changes, expected_version=expected_version)


async def reveal_credentials(
    *, ctx: RequestContext, settings: Settings, id: UUID
) -> dict[str, str] | None:
    """The decrypted credentials, for the service's own connectors only (never routed).

    None when there are none or they were sealed with another key (rotate by re-entering them).
    """
    integration = await Repository(Integration, ctx).get(id)
    if integration.credentials_encrypted is None:
        return None
    plain = security.decrypt(settings, integration.credentials_encrypted)
    return None if plain is None else dict(json.loads(plain))
