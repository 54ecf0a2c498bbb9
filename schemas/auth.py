"""API shapes of registration and login."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field, StringConstraints

from documents.base import Email, Name
from documents.user import Username
from schemas.common import IgnoreTenantId

Password = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
Token = Annotated[
    str, StringConstraints(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")
]


class RegisterRequest(IgnoreTenantId):
    """`POST /v1/auth/register`: a new tenant and its owner, or joining via `invitation_token`.

    The password must satisfy the default password policy (at least 12 characters with a
    digit). With `invitation_token`, `email` must be the invited address (else 403) and no
    tenant is made; `organization_name` is then ignored.
    """

    username: Username
    email: Email
    # The default policy, checked by the service (422 naming the broken rule); stated here so
    # that OpenAPI clients can build a password the service accepts.
    password: Annotated[
        Password,
        Field(json_schema_extra={"minLength": 12, "pattern": "[0-9]"}),
    ]
    organization_name: Name | None = None
    invitation_token: Token | None = None


class TokenResponse(BaseModel):
    """An OAuth2 bearer token."""

    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
