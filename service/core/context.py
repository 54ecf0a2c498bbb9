"""Who is calling: the tenant, the actor and the role every service call is scoped by."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from documents.user import Role
from service.core.errors import Forbidden

__all__ = ["YIELD_AFTER", "RequestContext", "Role", "yield_now"]


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


YIELD_AFTER = 0.005
"""Seconds a long CPU-bound loop may hold the event loop before other requests get a turn."""
_CHECK_EVERY = 8  # items between two looks at the clock
_last_turn = [0.0]  # when a `yield_now` last gave the loop away (one event loop per process)


async def yield_now(position: int) -> None:
    """Let other requests run once a long CPU-bound loop has held the loop for YIELD_AFTER.

    A bulk import validates and encodes thousands of rows; without a pause the event loop
    would answer nothing else (health checks included) until the whole batch is done. A turn
    by time, not by a count of items: rows cost ten times more on a loaded machine, and a
    fixed count of 200 then held the loop for 50-300 ms.
    """
    if position % _CHECK_EVERY == _CHECK_EVERY - 1:
        now = time.monotonic()
        if now - _last_turn[0] >= YIELD_AFTER:
            await asyncio.sleep(0)
            _last_turn[0] = time.monotonic()
