"""What every aggregate root shares: soft delete, restore, archive, history and versions.

Each command takes the resource's `ResourcePolicy` (service/core/policy.py): the role its action
needs, the resource's data-dependent rules, and its hooks after a delete or a restore. Reads
apply the resource's visibility (service/core/visibility.py): history and versions show what the
resource's own `GET` shows the caller, no more.

Versions are rebuilt from the journal: the creation event's changes, then each later event's,
applied in order (`state_at`). Changes are JSON-mode leaves at dotted paths (lists and empty
maps are whole leaf values, see service/core/journal/diff.py `diff`); a `null` at a path inside a
free-form map (segments, feature flags, kanban tasks…) means the entry was removed, anywhere
else the field became null. The document model tells which is which.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar
from uuid import UUID

from pydantic import ValidationError
from pymongo.errors import DuplicateKeyError

from documents.base import RootDocument
from documents.journal import DomainEvent
from documents.migrations import upcast
from schemas.common import HistoryChange, HistoryEntry, ReadView
from service.core import journal, journal_view, visibility
from service.core.context import RequestContext
from service.core.errors import Conflict, NotFound
from service.core.pagination import OLDEST_FIRST, PageResult, Sort, paginate
from service.core.policy import Action, ResourcePolicy, policy_for
from service.core.repository import Repository, tenant_filter, uuid_filter
from service.leads import privacy

D = TypeVar("D", bound=RootDocument)
# History entries are validated once, straight from the stored journal entries.
HISTORY_VIEW: ReadView[HistoryEntry] = ReadView(HistoryEntry)


def _policy(policy: ResourcePolicy[D] | None, model: type[D] | None) -> ResourcePolicy[D]:
    # Callers name the policy, or just the model (its registered or default policy).
    if policy is not None:
        return policy
    assert model is not None, "pass policy= or model="
    return policy_for(model)


async def delete(
    *,
    ctx: RequestContext,
    id: UUID,
    policy: ResourcePolicy[D] | None = None,
    model: type[D] | None = None,
    expected_version: int | None = None,
) -> D:
    """Soft-delete a live resource (404 if missing or already deleted, 412 if stale)."""
    policy = _policy(policy, model)
    repo = Repository(policy.model, ctx)
    doc = await repo.get(id)
    await policy.check(ctx, Action.delete, doc)
    deleted = await repo.soft_delete(doc, expected_version=expected_version)
    if policy.after_delete is not None:
        await policy.after_delete(ctx, deleted)
    return deleted


async def restore(
    *,
    ctx: RequestContext,
    id: UUID,
    policy: ResourcePolicy[D] | None = None,
    model: type[D] | None = None,
) -> D:
    """Bring back a soft-deleted resource; 409 when it now clashes with a live duplicate."""
    policy = _policy(policy, model)
    repo = Repository(policy.model, ctx)
    doc = await repo.get(id, include_deleted=True)
    await policy.check(ctx, Action.restore, doc)
    if not doc.is_deleted:
        return doc  # restoring a live resource changes nothing
    if policy.clash is not None and (clash := await policy.clash(ctx, doc)) is not None:
        raise clash
    try:
        restored = await repo.restore(doc)
    except DuplicateKeyError:
        clash = await policy.clash(ctx, doc) if policy.clash is not None else None
        raise clash or Conflict("Restoring it would duplicate a live resource.") from None
    if policy.after_restore is not None:
        await policy.after_restore(ctx, restored)
    return restored


async def archive(
    *,
    ctx: RequestContext,
    id: UUID,
    policy: ResourcePolicy[D] | None = None,
    model: type[D] | None = None,
) -> D:
    """Set `archived_at`."""
    return await _set_archived(ctx, id, _policy(policy, model), archived=True)


async def unarchive(
    *,
    ctx: RequestContext,
    id: UUID,
    policy: ResourcePolicy[D] | None = None,
    model: type[D] | None = None,
) -> D:
    """Clear `archived_at`."""
    return await _set_archived(ctx, id, _policy(policy, model), archived=False)


async def _set_archived(
    ctx: RequestContext, id: UUID, policy: ResourcePolicy[D], *, archived: bool
) -> D:
    repo = Repository(policy.model, ctx)
    doc = await repo.get(id)
    await policy.check(ctx, Action.archive, doc)
    changed = await (repo.archive(doc) if archived else repo.unarchive(doc))
    if policy.after_archive is not None:
        await policy.after_archive(ctx, changed)
    return changed


async def _readable(ctx: RequestContext, model: type[D], id: UUID) -> D:
    """The resource (deleted ones too) after checking the caller may see it (404/403)."""
    doc = await Repository(model, ctx).get(id, include_deleted=True)
    owner = visibility.owner_of(model.aggregate_type, doc.id, doc.__dict__)
    visibility.require_read(ctx, model.aggregate_type, owner_id=owner)
    return doc


async def history(
    *,
    ctx: RequestContext,
    model: type[D],
    id: UUID,
    limit: int,
    cursor: str | None = None,
) -> PageResult[HistoryEntry]:
    """A resource's change events, oldest first (also for soft-deleted resources).

    Each event keeps only the changes the caller may see (service/core/visibility.py): a
    colleague's private parts are left out, as `GET` leaves them out.
    """
    doc = await _readable(ctx, model, id)
    query = tenant_filter(
        ctx, {"aggregate_type": model.aggregate_type, "aggregate_id": uuid_filter(id)}
    )
    # `version` is unique per aggregate (index `aggregate_version`), which also serves the order.
    by_version = Sort("version", OLDEST_FIRST.direction, unique=True)
    page = await paginate(
        DomainEvent, query, limit=limit, cursor=cursor, sort=by_version, view=HISTORY_VIEW
    )
    owner = visibility.owner_of(model.aggregate_type, doc.id, doc.__dict__)
    items = []
    for entry in page.items:
        changes = visibility.visible_changes(
            ctx, model.aggregate_type, id, entry.changes, owner_id=owner
        )
        shown = journal_view.api_changes(
            model.aggregate_type, [c.model_dump() for c in changes or []]
        )
        entry = entry.model_copy(update={"changes": [HistoryChange(**c) for c in shown]})
        items.append(entry)
    return PageResult(items=items, next_cursor=page.next_cursor)


async def version(*, ctx: RequestContext, model: type[D], id: UUID, n: int) -> D:
    """The resource as it was at version `n`, rebuilt from the journal (404 if never there).

    The caller sees it as `GET` shows it (the route shapes it with the resource's read model,
    and the resource's visibility applies as for `GET` and history).
    """
    doc = await _readable(ctx, model, id)
    if not 1 <= n <= doc.version:
        raise NotFound(f"{model.aggregate_type} {id} has no version {n}.")
    if doc.pending_event is not None:  # a crash left the latest event in the outbox
        await journal.flush_pending(model, doc.pending_event)
    query = tenant_filter(
        ctx,
        {
            "aggregate_type": model.aggregate_type,
            "aggregate_id": uuid_filter(id),
            "version": {"$lte": n},
        },
    )
    events = await DomainEvent.find(query).sort("version").to_list()
    if [e.version for e in events] != list(range(1, n + 1)):
        raise NotFound(f"The journal of {model.aggregate_type} {id} lacks version {n}.")
    state = state_at(model, events)
    erased_at = getattr(doc, "erased_at", None)
    if (
        erased_at is not None
    ):  # the journal's personal values were erased (service/leads/privacy.py)
        state = privacy.erased_state(state, erased_at)
    return materialize(model, state)


# -- rebuilding a state from journal events ---------------------------------------------------


def state_at(model: type[RootDocument], events: Sequence[DomainEvent]) -> dict[str, Any]:
    """The JSON-mode state after `events` (the creation event first, in version order)."""
    state: dict[str, Any] = {}
    schema: dict[str, Any] | None = None
    for event in events:
        if schema is None:
            schema = _schema(_concrete(model, _created_type(event)))
        for change in event.changes:
            _apply(state, schema, change.field.split("."), change.new)
        state["version"] = event.version
        state["updated_at"] = event.occurred_at
        state["updated_by"] = event.actor_id
    return state


def materialize(model: type[D], state: Mapping[str, Any]) -> D:
    """A document of the right subclass from a rebuilt state.

    Secrets are `"***"` in the journal: kept where the field takes text (a read shape may say
    whether one is set), null where it cannot hold them.
    """
    cls = _concrete(model, state.get("type"))
    # The journal holds each version in the shape of its time: upcast it like a stored one.
    data = upcast(cls, copy.deepcopy(dict(state)))
    for _ in range(len(model.secret_fields) + 1):
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            nulled = False
            for error in exc.errors():
                path = ".".join(str(p) for p in error["loc"])
                if any(path == s or path.startswith(f"{s}.") for s in model.secret_fields):
                    _put(data, str(path).split("."), None)
                    nulled = True
            if not nulled:
                raise
    return cls.model_validate(data)


def _created_type(event: DomainEvent) -> Any:
    return next((c.new for c in event.changes if c.field == "type"), None)


def _concrete(model: type[D], type_value: Any) -> type[D]:
    """The subclass of a polymorphic root whose `type` is `type_value` (else the model)."""
    if type_value is None:
        return model
    pending = list(model.__subclasses__())
    while pending:
        cls = pending.pop()
        field = cls.model_fields.get("type")
        if field is not None and str(getattr(field.default, "value", field.default)) == str(
            type_value
        ):
            return cls  # type: ignore[no-any-return]
        pending.extend(cls.__subclasses__())
    return model


_SCHEMAS: dict[type[RootDocument], dict[str, Any]] = {}


def _schema(cls: type[RootDocument]) -> dict[str, Any]:
    # Built once per document class (a few milliseconds each).
    if cls not in _SCHEMAS:
        _SCHEMAS[cls] = cls.model_json_schema(by_alias=False, mode="serialization")
    return _SCHEMAS[cls]


def _resolve(root: Mapping[str, Any], node: Any) -> Mapping[str, Any]:
    """A schema node with `$ref`s followed and nullable unions reduced to their object branch."""
    while isinstance(node, Mapping):
        if "$ref" in node:
            node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
            continue
        options = node.get("anyOf") or node.get("oneOf")
        if options:
            objects = [o for o in options if o.get("type") != "null"]
            node = objects[0] if len(objects) == 1 else {}
            continue
        return node
    return {}


def _entries(node: Mapping[str, Any]) -> Any:
    """The schema of a map's values (`additionalProperties`, or a key-pattern's), if a map."""
    if "properties" in node:
        return None
    if isinstance(node.get("additionalProperties"), Mapping):
        return node["additionalProperties"]
    patterns = node.get("patternProperties")
    if isinstance(patterns, Mapping) and patterns:
        return next(iter(patterns.values()))
    return None


def _is_map(root: Mapping[str, Any], parts: Sequence[str]) -> bool:
    """Whether the container at `parts` is a free-form map (keys are data, not fields)."""
    node = _resolve(root, root)
    for part in parts:
        properties = node.get("properties", {})
        if part in properties:
            node = _resolve(root, properties[part])
        elif (entries := _entries(node)) is not None:
            node = _resolve(root, entries)
        else:
            return False
    return _entries(node) is not None


def _apply(state: dict[str, Any], schema: Mapping[str, Any], parts: list[str], new: Any) -> None:
    node = state
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            if new is None:
                return  # nothing to clear under a parent that is null or gone
            child = node[part] = {}
        node = child
    if new is None and _is_map(schema, parts[:-1]):
        node.pop(parts[-1], None)  # an entry removed from a map
    else:
        node[parts[-1]] = copy.deepcopy(new)


def _put(data: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        inner = data.get(part)
        if not isinstance(inner, dict):
            return
        data = inner
    data[parts[-1]] = value
