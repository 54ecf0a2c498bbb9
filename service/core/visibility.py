"""Who may see what of a resource and of its history: one rule per resource type.

The same rule answers a resource's own `GET`, its `/history`, its `/versions/{n}` and any feed
of journal changes (`GET /v1/changes`), so none of them can show more than the others:

- `may_read(ctx, aggregate_type, owner_id=)`: may the caller see this resource at all.
- `visible_fields(ctx, aggregate_type, owner_id)`: which top-level fields they may see of it
  (`None`: all of them).
- `visible_document(ctx, doc)`: a document's fields as the caller may see them (for `GET`).
- `visible_changes(ctx, aggregate_type, aggregate_id, changes, owner_id=)`: a journal entry's
  changes as the caller may see them, or `None` when they may not see the resource at all.

Fields the caller may not see are LEFT OUT (never replaced by a placeholder): a colleague's
`GET /v1/users/{id}` has no `billing`, so their history has no `billing.*` change either (an
event whose every change is private stays listed, with `changes: []`, so versions never skip).
Secrets are another matter: they never reach the journal at all (`"***"` there, see
service/core/journal/diff.py) and never appear in a response.

Rules are keyed by the journal's `aggregate_type`, so a consumer that only holds journal
entries can apply them. The role needed to see a type at all is its policy's `Action.read`
(service/core/policy.py `read_role`), stated there once; types without a rule here show all
their fields to whoever has that role.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar
from uuid import UUID

from documents.base import ENVELOPE_FIELDS, RootDocument
from documents.journal import DomainEvent
from service.core.context import RequestContext
from service.core.errors import Forbidden
from service.core.policy import read_role

C = TypeVar("C")
E = TypeVar("E", bound=DomainEvent)

# What every stored resource carries (see schemas/common.py ResourceRead): always visible.
ENVELOPE = ENVELOPE_FIELDS


@dataclass(frozen=True, slots=True)
class Visibility:
    """Whose resources of a type a caller sees, and which of their fields.

    `owner` names where the resource's owner is: `"id"` (a user is their own owner) or a
    field such as `"user_id"`. `owner_only`: nobody else sees it at all. `shared`: the
    top-level fields everyone else (who may read it) sees; `None` = all.
    """

    owner: str | None = None
    owner_only: bool = False
    shared: frozenset[str] | None = None


# What colleagues see of a user: the same as `GET /v1/users/{id}` (schemas/users.py UserRead).
# New fields of the User aggregate are private until added here.
USER_SHARED = ENVELOPE | {
    "username",
    "email",
    "role",
    "is_active",
    "last_login_at",
    "profile",
    "location",
    "company",
    "socials",
    "tags",
    "segments",
}

RULES: dict[str, Visibility] = {
    # A person's settings, security, subscription, billing and AI parts are theirs alone.
    "user": Visibility(owner="id", shared=USER_SHARED),
    # A kanban board is its user's own (`GET /v1/kanban` reads the caller's board only).
    "kanban_board": Visibility(owner="user_id", owner_only=True),
}

_EVERYONE = Visibility()


def rule(aggregate_type: str) -> Visibility:
    """The visibility rule of a resource type (everyone in the tenant sees all of it by default)."""
    return RULES.get(aggregate_type, _EVERYONE)


def _owns(ctx: RequestContext, owner_id: UUID | None) -> bool:
    return owner_id is not None and ctx.user_id == owner_id


def may_read(ctx: RequestContext, aggregate_type: str, *, owner_id: UUID | None = None) -> bool:
    """Whether the caller may see a resource of this type (owned by `owner_id`) at all."""
    visibility = rule(aggregate_type)
    if visibility.owner_only:
        return _owns(ctx, owner_id)
    return ctx.role >= read_role(aggregate_type) or _owns(ctx, owner_id)


def require_read(ctx: RequestContext, aggregate_type: str, *, owner_id: UUID | None = None) -> None:
    """403 unless the caller may see resources of this type."""
    if not may_read(ctx, aggregate_type, owner_id=owner_id):
        raise Forbidden(f"Your role may not see {aggregate_type.replace('_', ' ')} resources.")


def owner_of(aggregate_type: str, aggregate_id: UUID, data: Mapping[str, Any]) -> UUID | None:
    """The owner of a resource from its fields (or its id for users), when its type has one."""
    field = rule(aggregate_type).owner
    if field is None:
        return None
    if field == "id":
        return aggregate_id
    return _uuid(data.get(field))


def visible_fields(
    ctx: RequestContext, aggregate_type: str, owner_id: UUID | None
) -> frozenset[str] | None:
    """The top-level fields of the resource the caller sees (None = all)."""
    visibility = rule(aggregate_type)
    if visibility.shared is None or _owns(ctx, owner_id):
        return None
    return visibility.shared


def visible_document(ctx: RequestContext, doc: RootDocument) -> dict[str, Any]:
    """`doc` as the caller may see it (python-mode fields, secrets and internals left out).

    403 when the caller may not see it at all. The read shapes (`to_x_read`) are built from
    this, so a response can only hold what the rule lets through.
    """
    aggregate_type = doc.aggregate_type
    owner_id = owner_of(aggregate_type, doc.id, doc.__dict__)
    require_read(ctx, aggregate_type, owner_id=owner_id)
    data = doc.to_public()
    for path in doc.secret_fields:
        _drop_path(data, path.split("."))
    fields = visible_fields(ctx, aggregate_type, owner_id)
    if fields is None:
        return data
    return {k: v for k, v in data.items() if k in fields}


def _drop_path(data: dict[str, Any], parts: Sequence[str]) -> None:
    head, *rest = parts
    if not rest:
        data.pop(head, None)
    elif isinstance(data.get(head), dict):
        _drop_path(data[head], rest)


def _field_of(change: Any) -> str:
    return str(change["field"] if isinstance(change, Mapping) else change.field)


def visible_changes(
    ctx: RequestContext,
    aggregate_type: str,
    aggregate_id: UUID,
    changes: Iterable[C],
    *,
    owner_id: UUID | None = None,
) -> list[C] | None:
    """The changes of one journal entry the caller may see; None if they may not see it at all.

    `changes` are `FieldChange`s or their dicts (`{"field", "old", "new"}`), kept as given.
    `owner_id` is needed only for types owned through a field (`owner="user_id"`, kanban
    boards); users are their own owners. Use `visible_events` to filter a page of journal
    entries with their owners looked up in one query per type.
    """
    if rule(aggregate_type).owner == "id":
        owner_id = aggregate_id
    if not may_read(ctx, aggregate_type, owner_id=owner_id):
        return None
    fields = visible_fields(ctx, aggregate_type, owner_id)
    if fields is None:
        return list(changes)
    return [c for c in changes if _field_of(c).split(".", 1)[0] in fields]


async def visible_events(ctx: RequestContext, events: Sequence[E]) -> list[E]:
    """The journal entries the caller may see, each with only the changes they may see.

    For a page of a feed: the owners of field-owned resources (kanban boards) are read with
    one query per such type, not one per entry. Entries keep their order; copies are returned.
    """
    owned: dict[str, set[UUID]] = {}
    for event in events:
        field = rule(event.aggregate_type).owner
        if field is not None and field != "id":
            owned.setdefault(event.aggregate_type, set()).add(event.aggregate_id)
    owners: dict[UUID, UUID | None] = {}
    for aggregate_type, ids in owned.items():
        owners.update(await _owners(ctx, aggregate_type, ids))
    visible = []
    for event in events:
        changes = visible_changes(
            ctx,
            event.aggregate_type,
            event.aggregate_id,
            event.changes,
            owner_id=owners.get(event.aggregate_id),
        )
        if changes is not None:
            visible.append(event.model_copy(update={"changes": changes}))
    return visible


async def _owners(
    ctx: RequestContext, aggregate_type: str, ids: Iterable[UUID]
) -> dict[UUID, UUID | None]:
    from bson import Binary

    from documents import AGGREGATE_ROOTS

    field = rule(aggregate_type).owner
    model = next(m for m in AGGREGATE_ROOTS if m.aggregate_type == aggregate_type)
    cursor = model.get_pymongo_collection().find(
        # With the tenant: on a sharded collection the lookup goes to that tenant's shards.
        {
            "tenant_id": Binary.from_uuid(ctx.tenant_id),
            "_id": {"$in": [Binary.from_uuid(i) for i in ids]},
        },
        {field: 1},
    )
    return {_uuid(raw["_id"]): _uuid(raw.get(field)) async for raw in cursor}


def _uuid(value: Any) -> Any:
    if value is None or isinstance(value, UUID):
        return value
    return value.as_uuid() if hasattr(value, "as_uuid") else UUID(str(value))


__all__ = [
    "RULES",
    "USER_SHARED",
    "Visibility",
    "may_read",
    "owner_of",
    "require_read",
    "rule",
    "visible_changes",
    "visible_document",
    "visible_events",
    "visible_fields",
]
