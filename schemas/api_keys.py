"""API shapes of API keys: the key itself appears only in the creation response."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from documents.api_key import ApiKey
from documents.base import Name
from documents.user import Role
from schemas.common import IgnoreTenantId, ListParams, ReadView, ResourceRead


class ApiKeyCreate(IgnoreTenantId):
    """`POST /v1/api-keys`: a name and the role the key acts with (at most the creator's)."""

    name: Name
    role: Role = Role.member


class ApiKeyRead(ResourceRead):
    """A key as listed: never the key or its hash; `prefix` tells keys apart."""

    name: str
    role: Role
    prefix: str
    last_used_at: datetime | None = None


class ApiKeyCreated(ApiKeyRead):
    """The creation response: the only time `key` is shown; store it now."""

    key: str = Field(description="Send as `X-API-Key`. Shown once, never again.")


class ApiKeyFilters(ListParams):
    """`GET /v1/api-keys`: `include_deleted=true` also lists revoked keys."""


API_KEY_VIEW: ReadView[ApiKeyRead] = ReadView(ApiKeyRead)
"""Stored keys → `ApiKeyRead` (never the key or its hash), one validation each."""
to_api_key_read = API_KEY_VIEW.document
"""The listing view of a key document in hand."""


def to_api_key_created(key: ApiKey, secret: str) -> ApiKeyCreated:
    """The creation view, with the key."""
    data = key.model_dump(exclude={"key_hash", "pending_event"})
    return ApiKeyCreated.model_validate({**data, "key": secret})
