"""Field-level changes: what the journal records of a write (JSON mode, secrets redacted)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from documents.base import RootDocument
from documents.journal import FieldChange

REDACTED = "***"


# Bookkeeping fields that every change touches: the event itself records who/when/version.
UNJOURNALED = frozenset(
    {"version", "updated_at", "updated_by", "pending_event", "revision_id", "schema_version"}
)


def _flatten(value: Any, prefix: str, out: dict[str, Any]) -> None:
    # The root is always walked: an empty root (a creation's "before") has no leaves, where
    # an empty nested mapping is a leaf value of its own.
    if isinstance(value, Mapping) and (value or not prefix):
        for key, inner in value.items():
            _flatten(inner, f"{prefix}.{key}" if prefix else str(key), out)
    else:
        out[prefix] = value


def diff(
    before: Mapping[str, Any], after: Mapping[str, Any], secret_fields: Iterable[str] = ()
) -> list[FieldChange]:
    """Field-level changes between two JSON-mode dumps; secret paths are redacted."""
    old: dict[str, Any] = {}
    new: dict[str, Any] = {}
    _flatten({k: v for k, v in before.items() if k not in UNJOURNALED}, "", old)
    _flatten({k: v for k, v in after.items() if k not in UNJOURNALED}, "", new)
    secrets = tuple(secret_fields)
    changes = []
    for field in sorted(old.keys() | new.keys()):
        a, b = old.get(field), new.get(field)
        if a == b:
            continue
        if _is_secret(field, secrets):
            a, b = (REDACTED if a is not None else None), (REDACTED if b is not None else None)
        changes.append(FieldChange(field=field, old=a, new=b))
    changes.extend(_vanished_subdocuments(old, new, secrets, {c.field for c in changes}))
    changes.sort(key=lambda c: c.field)
    return changes


def _is_secret(field: str, secrets: tuple[str, ...]) -> bool:
    return any(field == s or field.startswith(f"{s}.") for s in secrets)


def _parents(flat: Mapping[str, Any]) -> set[str]:
    return {key.rsplit(".", n)[0] for key in flat for n in range(1, key.count(".") + 1)}


def _vanished_subdocuments(
    old: Mapping[str, Any], new: Mapping[str, Any], secrets: tuple[str, ...], recorded: set[str]
) -> list[FieldChange]:
    """Changes for sub-documents that stop being sub-documents, at their own path.

    When a sub-document becomes null (`posted: {...} → null`) or leaves a map (a kanban task
    removed), its leaves alone say "each leaf became null", which a sub-document full of
    nulls says too; the change at its own path (old: the sub-document, new: null or its new
    value) is what lets a state be rebuilt exactly (service/lifecycle.py `state_at`). Only
    the outermost vanished path is recorded, and none where the leaf loop already did.
    """
    vanished = _parents(old) - _parents(new)
    out = []
    for path in sorted(vanished):
        if path in recorded or any(path.startswith(f"{p}.") for p in vanished):
            continue
        prefix = f"{path}."
        subtree: dict[str, Any] = {}
        for key, value in old.items():
            if key.startswith(prefix):
                _set_path(subtree, key[len(prefix) :].split("."), value)
        before: Any = REDACTED if _is_secret(path, secrets) else _redacted(subtree, path, secrets)
        after = new.get(path)
        if _is_secret(path, secrets) and after is not None:
            after = REDACTED
        out.append(FieldChange(field=path, old=before, new=after))
    return out


def _set_path(target: dict[str, Any], parts: list[str], value: Any) -> None:
    for part in parts[:-1]:
        target = target.setdefault(part, {})
    target[parts[-1]] = value


def _redacted(subtree: dict[str, Any], path: str, secrets: tuple[str, ...]) -> dict[str, Any]:
    # Secret leaves inside a vanished sub-document stay out of the journal as everywhere.
    out: dict[str, Any] = {}
    for key, value in subtree.items():
        inner = f"{path}.{key}"
        if _is_secret(inner, secrets):
            out[key] = REDACTED if value is not None else None
        elif isinstance(value, dict) and value:
            out[key] = _redacted(value, inner, secrets)
        else:
            out[key] = value
    return out


def journal_dump(doc: RootDocument) -> dict[str, Any]:
    """The part of a document the journal compares (JSON mode): no bookkeeping, nothing
    derived (`RootDocument.derived_fields`)."""
    return doc.model_dump(mode="json", exclude=set(UNJOURNALED | doc.derived_fields))


# Sorted paths by the paths in their given order: a bulk import's rows of one class come
# with their leaves in the same order (the encoder's template), so each sort is done once.
_SORTED_PATHS: dict[tuple[str, ...], list[str]] = {}
_SORTED_PATHS_MAX = 256  # distinct shapes (optional fields present or not) kept at most
_NO_SHARED: Mapping[str, dict[str, Any]] = {}


def _sorted_paths(flat: Mapping[str, Any]) -> list[str]:
    # `sorted(flat)`, remembered by the paths' given order.
    given = tuple(flat)
    order = _SORTED_PATHS.get(given)
    if order is None:
        if len(_SORTED_PATHS) >= _SORTED_PATHS_MAX:
            _SORTED_PATHS.clear()
        order = _SORTED_PATHS[given] = sorted(given)
    return order


def created_leaves(
    flat: Mapping[str, Any],
    secret_fields: Iterable[str],
    shared: Mapping[str, dict[str, Any]] = _NO_SHARED,
) -> list[dict[str, Any]]:
    """A creation's changes from its flattened JSON-mode leaves: `diff({}, ...)` as dicts.

    Every non-null leaf (sorted by path) becomes `old: None`, `new: value`; secret paths are
    redacted. The bulk path's shortcut (`NewDocuments.encode`): no models, no second dump.
    `shared`: change dicts by path made once for a batch's constant leaves (defaults, the
    stamp), taken as they are where the leaf is the very object their `new` holds (an
    equal dict: a creation's changes are never mutated after, they are only encoded).
    """
    secrets = tuple(secret_fields)
    changes = []
    if not secrets:  # most aggregates (leads): no path to check
        # A plain loop: a comprehension over zipped maps took a fifth longer (≈35 leaves).
        get = shared.get
        for field in _sorted_paths(flat):
            value = flat[field]
            if value is None:
                continue
            made = get(field)
            if made is None or made["new"] is not value:
                made = {"field": field, "old": None, "new": value}
            changes.append(made)
        return changes
    for field in _sorted_paths(flat):
        value = flat[field]
        if value is None:  # `diff` skips fields equal on both sides: absent (None) → None
            continue
        if secrets and any(field == s or field.startswith(f"{s}.") for s in secrets):
            value = REDACTED
        changes.append({"field": field, "old": None, "new": value})
    return changes


def shared_changes(leaves: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """`created_leaves`' `shared` for leaves every document of a batch has (made once)."""
    return {
        path: {"field": path, "old": None, "new": value}
        for path, value in leaves.items()
        if value is not None
    }
