"""API shapes of integrations; credentials are accepted on write and never returned."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import Field, StringConstraints

from documents.base import ShortText
from documents.integration import Integration, IntegrationStatus, IntegrationType
from schemas.common import IgnoreTenantId, ListParams, PatchBody, ResourceRead

CredentialKey = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
CredentialValue = Annotated[str, StringConstraints(min_length=1, max_length=4096)]
Credentials = Annotated[
    dict[CredentialKey, CredentialValue],
    Field(
        min_length=1,
        max_length=20,
        description="Write-only secrets (API keys, tokens); stored encrypted, never returned.",
        # Keys outside the pattern are refused, so OpenAPI must not allow them either.
        json_schema_extra={"additionalProperties": False},
    ),
]


class IntegrationCreate(IgnoreTenantId):
    """`POST /v1/integrations`."""

    type: IntegrationType
    status: IntegrationStatus = IntegrationStatus.pending
    name: ShortText | None = None
    credentials: Credentials | None = None


class IntegrationUpdate(PatchBody):
    """`PATCH /v1/integrations/{id}`: `credentials` replaces them all; `null` removes them."""

    nullable = frozenset({"name", "credentials"})

    status: IntegrationStatus | None = None
    name: ShortText | None = None
    credentials: Credentials | None = None


class IntegrationRead(ResourceRead):
    """An integration; `has_credentials` says whether secrets are stored (never what they are)."""

    user_id: UUID | None
    type: IntegrationType
    name: str | None
    status: IntegrationStatus
    connected_at: datetime | None
    has_credentials: bool


def to_integration_read(doc: Integration) -> IntegrationRead:
    """The response shape of a stored integration (without its credentials)."""
    return IntegrationRead(
        **doc.model_dump(include=set(ResourceRead.model_fields)),
        user_id=doc.user_id,
        type=doc.type,
        name=doc.name,
        status=doc.status,
        connected_at=doc.connected_at,
        has_credentials=doc.has_credentials,
    )


class IntegrationFilters(ListParams):
    """`GET /v1/integrations` filters."""

    type: IntegrationType | None = None
    status: IntegrationStatus | None = None
    user_id: UUID | None = None
