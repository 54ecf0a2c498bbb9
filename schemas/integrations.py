"""API shapes of integrations; credentials are accepted on write and never returned."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator

from documents.base import ShortText
from documents.integration import IntegrationStatus, IntegrationType
from schemas.common import IgnoreTenantId, ListParams, PatchBody, ReadView, ResourceRead

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

    @model_validator(mode="before")
    @classmethod
    def _credentials_flag(cls, data: Any) -> Any:
        # Stored: the encrypted token, which the response never carries; only whether it is set.
        if isinstance(data, dict) and "has_credentials" not in data:
            data = {**data, "has_credentials": data.get("credentials_encrypted") is not None}
        return data


INTEGRATION_VIEW: ReadView[IntegrationRead] = ReadView(IntegrationRead)
"""Stored integrations → `IntegrationRead` (without credentials), one validation each."""
to_integration_read = INTEGRATION_VIEW.document
"""The response shape of an integration document in hand."""


class IntegrationFilters(ListParams):
    """`GET /v1/integrations` filters."""

    type: IntegrationType | None = None
    status: IntegrationStatus | None = None
    user_id: UUID | None = None
