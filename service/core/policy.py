"""Who may do what to a resource: one `ResourcePolicy` per aggregate root.

A policy holds the lowest tenant role for each write action, the resource's data-dependent
rules (`guard`), and what the shared lifecycle does around a soft delete or a restore
(`after_delete`, `after_restore`, `clash`). The lifecycle routes and commands
(routes/lifecycle.py, service/lifecycle.py) take it from `policy_for(model)`; a domain's own
commands call `POLICY.require(ctx, Action.create)` with the same object, so each role is
written once. `ctx.require(...)` stays only where a rule depends on data (a team manager, a
target's rank). Which fields and whose resources a reader sees is service/core/visibility.py;
the role needed to see a kind at all is the policy's `read`, there too (`read_role`).

Registering: a domain module declares `POLICY = register_policy(ResourcePolicy(model=X, ...))`;
every root does (tests/test_conventions.py), and `policy_for` falls back to the default
(members write) only for a model no module declared. A second policy for one model is an error
at import: there is exactly one per resource.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Generic, TypeVar

from documents.base import RootDocument
from documents.user import Role
from service.core.context import RequestContext
from service.core.errors import Conflict

D = TypeVar("D", bound=RootDocument)


class Action(StrEnum):
    """What a caller does to a resource.

    `read` is the role a caller needs to list or get a resource kind at all, or to see its
    changes in the journal's feeds (viewer by default; admin-only kinds such as webhooks raise
    it). Which fields and whose resources a reader sees is service/core/visibility.py's.
    """

    read = "read"
    create = "create"
    update = "update"
    delete = "delete"
    restore = "restore"
    archive = "archive"  # and unarchive
    personal_data = "personal_data"  # erase or export a resource's personal data (privacy)


DEFAULT_ROLES: Mapping[Action, Role] = {
    **dict.fromkeys(Action, Role.member),
    Action.read: Role.viewer,
    Action.personal_data: Role.admin,
}
"""Members and above write shared resources; viewers read only (the contract's rule); only
admins erase or export a resource's personal data."""

Guard = Callable[[RequestContext, Action, Any], Awaitable[None]]
Hook = Callable[[RequestContext, Any], Awaitable[None]]
Clash = Callable[[RequestContext, Any], Awaitable[Conflict | None]]


@dataclass(frozen=True, kw_only=True)
class ResourcePolicy(Generic[D]):
    """The rules of one aggregate root.

    - `roles`: the lowest role per action (missing actions: `DEFAULT_ROLES`).
    - `guard(ctx, action, doc)`: data-dependent rules on one document; raises (403/409).
    - `after_delete(ctx, doc)` / `after_restore(ctx, doc)`: run after the journaled soft
      delete / restore (only when something changed), e.g. to keep a count elsewhere right.
      They run after the write, so a crash in between leaves them undone: keep what they
      maintain recomputable (a recount), and make them idempotent.
    - `after_archive(ctx, doc)`: run after an archive or unarchive (`doc` as stored after
      it; also when nothing changed, so it must be idempotent), e.g. to copy the state.
    - `clash(ctx, doc) -> Conflict | None`: before restoring a soft-deleted document, the
      409 to answer when it would duplicate a live one (e.g. the create route's body with
      `existing_id` and `field`); also asked when the restore loses a unique-index race.
    """

    model: type[D]
    roles: Mapping[Action, Role] = field(default_factory=dict)
    guard: Guard | None = None
    after_delete: Hook | None = None
    after_restore: Hook | None = None
    after_archive: Hook | None = None
    clash: Clash | None = None

    def role(self, action: Action) -> Role:
        """The lowest role allowed to `action`."""
        return self.roles.get(action, DEFAULT_ROLES[action])

    def require(self, ctx: RequestContext, action: Action) -> None:
        """403 unless the caller's role allows `action` on this kind of resource."""
        ctx.require(self.role(action))

    async def check(self, ctx: RequestContext, action: Action, doc: D) -> None:
        """The role rule, then the data-dependent rules on `doc` (403/409)."""
        self.require(ctx, action)
        if self.guard is not None:
            await self.guard(ctx, action, doc)


_POLICIES: dict[type[RootDocument], ResourcePolicy[Any]] = {}
# The same policies by the journal's `aggregate_type`, for readers holding only journal entries.
_BY_TYPE: dict[str, ResourcePolicy[Any]] = {}


def register_policy(policy: ResourcePolicy[D]) -> ResourcePolicy[D]:
    """Make `policy` the one policy of its model (an error if the model has one already)."""
    existing = _POLICIES.get(policy.model)
    if existing is not None and existing is not policy:
        raise RuntimeError(f"{policy.model.__name__} already has a policy")
    _POLICIES[policy.model] = policy
    if policy.model.aggregate_type:
        _BY_TYPE[policy.model.aggregate_type] = policy
    return policy


def declared_models() -> frozenset[type[RootDocument]]:
    """The aggregate roots that have a policy so far (tests/test_conventions.py checks them)."""
    return frozenset(_POLICIES)


def read_role(aggregate_type: str) -> Role:
    """The role needed to see resources of a journal type at all: its policy's `read`."""
    policy = _BY_TYPE.get(aggregate_type)
    return DEFAULT_ROLES[Action.read] if policy is None else policy.role(Action.read)


def policy_for(model: type[D]) -> ResourcePolicy[D]:
    """The policy of an aggregate root (the default one if its domain declares none)."""
    policy = _POLICIES.get(model)
    if policy is None:
        policy = register_policy(ResourcePolicy(model=model))
    return policy


__all__ = [
    "DEFAULT_ROLES",
    "Action",
    "ResourcePolicy",
    "declared_models",
    "policy_for",
    "read_role",
    "register_policy",
]
