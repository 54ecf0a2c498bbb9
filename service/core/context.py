"""Who is calling: the tenant, the actor and the role every service call is scoped by."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from documents.user import Role
from service.core.errors import Forbidden

__all__ = ["YIELD_EVERY", "RequestContext", "Role", "yield_now"]


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The authenticated caller. Built once per request from its credentials, never from a body."""

    tenant_id: UUID
    actor_id: UUID  # the user's id, or the API key's id for internal services
    role: Role
    actor_type: Literal["user", "api_key"] = "user"
    phone_region: str = "US"

    @property
    def user_id(self) -> UUID | None:
        """The calling user, or None when an API key calls."""
        return self.actor_id if self.actor_type == "user" else None

    def require(self, role: Role) -> None:
        """Raise 403 unless the caller has at least `role`."""
        if not self.role >= role:
            raise Forbidden(f"This action needs the {role.value} role or higher.")

    def require_user(self) -> UUID:
        """The calling user's id; API keys have no user aggregate of their own (403)."""
        if self.user_id is None:
            raise Forbidden("This endpoint needs a user's token, not an API key.")
        return self.user_id


YIELD_EVERY = 200


async def yield_now(position: int) -> None:
    """Let other requests run every YIELD_EVERY items of a long CPU-bound loop.

    A bulk import validates and encodes thousands of rows; without a pause the event loop
    would answer nothing else (health checks included) until the whole batch is done.
    """
    if position % YIELD_EVERY == YIELD_EVERY - 1:
        await asyncio.sleep(0)
