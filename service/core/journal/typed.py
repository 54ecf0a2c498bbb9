"""Journal change values with their BSON types (dates, UUIDs) by the aggregate's schema."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from datetime import datetime
from typing import Any
from uuid import UUID

from bson import Binary
from bson.binary import UUID_SUBTYPE
from pydantic_core import to_jsonable_python

from documents import AGGREGATE_ROOTS
from documents.base import RootDocument
from documents.journal import DomainEvent

# Changes are computed and replayed in JSON mode (`journal_dump`), but stored typed: a field
# whose schema says date-time is a BSON date, a UUID a BSON UUID (money is integer cents in
# both), so pipelines over the journal compare dates and join ids without parsing strings.
# `FieldChange` turns them back into JSON mode when an entry is read through the model.


def uuid_binary(raw: bytes) -> Binary:
    """`Binary(raw, UUID_SUBTYPE)` of a UUID's 16 bytes, without its checks and buffer copy.

    What `Binary.__new__` does for them (a `bytes` of the class, its subtype attribute set),
    in half the time: the bulk path makes a few per row (tests/test_fast_paths.py).
    """
    made = bytes.__new__(Binary, raw)
    made.__dict__[_SUBTYPE] = UUID_SUBTYPE
    return made


_SUBTYPE = "_Binary__subtype"  # where `Binary.__new__` keeps the subtype (name-mangled)

_Node = Mapping[str, Any]
_PATHS: dict[tuple[str, str], list[tuple[_Node, _Node]]] = {}


def _classes(aggregate_type: str) -> list[type[RootDocument]]:
    out: list[type[RootDocument]] = []
    for root in AGGREGATE_ROOTS:
        if root.aggregate_type != aggregate_type:
            continue
        pending: list[type[RootDocument]] = [root]
        while pending:
            cls = pending.pop()
            out.append(cls)
            pending.extend(cls.__subclasses__())
    return out


@functools.cache
def _schema_of(cls: type[RootDocument]) -> _Node:
    return cls.model_json_schema(by_alias=False, mode="serialization")


def _branches(root: _Node, node: Any) -> list[_Node]:
    """The schema nodes a value may match at `node` ($ref resolved, anyOf/oneOf spread)."""
    if not isinstance(node, Mapping):
        return []
    if "$ref" in node:
        target: Any = root
        for part in str(node["$ref"]).lstrip("#/").split("/"):
            target = target.get(part, {}) if isinstance(target, Mapping) else {}
        return _branches(root, target)
    alternatives = node.get("anyOf") or node.get("oneOf") or node.get("allOf")
    if alternatives:
        return [b for alt in alternatives for b in _branches(root, alt)]
    return [node]


def _child(root: _Node, node: _Node, key: str) -> list[_Node]:
    out: list[_Node] = []
    for branch in _branches(root, node):
        props = branch.get("properties")
        if isinstance(props, Mapping) and key in props:
            out.append(props[key])
        elif isinstance(branch.get("additionalProperties"), Mapping):
            out.append(branch["additionalProperties"])
    return out


def _nodes(aggregate_type: str, field: str) -> list[tuple[_Node, _Node]]:
    """(schema root, node) pairs of a journal path in every class of the aggregate type."""
    key = (aggregate_type, field)
    found = _PATHS.get(key)
    if found is None:
        found = []
        for cls in _classes(aggregate_type):
            root = _schema_of(cls)
            nodes: list[_Node] = [root]
            for part in field.split("."):
                nodes = [c for n in nodes for c in _child(root, n, part)]
            found.extend((root, n) for n in nodes)
        _PATHS[key] = found
    return found


def _typed(root: _Node, node: _Node, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    branches = _branches(root, node)
    if isinstance(value, str):
        formats = {b.get("format") for b in branches}
        if "date-time" in formats:
            with suppress(ValueError):
                return datetime.fromisoformat(value.replace("Z", "+00:00"))
        if "uuid" in formats:
            with suppress(ValueError):
                return Binary.from_uuid(UUID(value))
        return value
    if isinstance(value, list):
        items = [b["items"] for b in branches if isinstance(b.get("items"), Mapping)]
        if not items:
            return value
        return [_typed(root, items[0], v) for v in value]
    if isinstance(value, Mapping):
        out = {}
        for k, v in value.items():
            children = [c for b in branches for c in _child(root, b, str(k))]
            out[k] = _typed(root, children[0], v) if children else v
        return out
    return value


def typed_changes(
    aggregate_type: str, changes: Iterable[Mapping[str, Any]]
) -> list[dict[str, Any]]:
    """Changes with their values BSON-typed by the aggregate's schema (idempotent).

    A string at a date-time path becomes a date, at a UUID path a BSON UUID (in lists and
    sub-documents too); anything else (redacted secrets, free text, numbers) stays.
    """
    out = []
    for change in changes:
        item = dict(change)
        field = str(item.get("field", ""))
        old, new = item.get("old"), item.get("new")
        if isinstance(old, _UNTYPED) and isinstance(new, _UNTYPED):
            pass  # numbers, booleans and nulls are stored as they are
        elif (isinstance(old, str) or old is None) and (isinstance(new, str) or new is None):
            # The common case (a bulk import's thousands of string leaves): by path alone.
            kind = _string_kind(aggregate_type, field)
            if kind is not None:
                item["old"], item["new"] = kind(old), kind(new)
        elif old is None and type(new) is list and all(type(v) is str for v in new):
            # A new list of strings (tags, search tokens): its items' kind by path alone.
            typed = _list_kind(aggregate_type, field)
            if typed is not None:
                item["new"] = typed(new)
        elif not isinstance(old, _NESTED) and not isinstance(new, _NESTED):
            pass  # other scalars (dates already typed…) are stored as they are
        else:
            nodes = _nodes(aggregate_type, field)
            if nodes:
                root, node = nodes[0]
                item["old"], item["new"] = _typed(root, node, old), _typed(root, node, new)
        out.append(item)
    return out


def string_kind(aggregate_type: str, field: str) -> Callable[[Any], Any] | None:
    """How a string at this journal path is typed (None: it stays a string)."""
    return _string_kind(aggregate_type, field)


def list_kind(aggregate_type: str, field: str) -> Callable[[list[str]], list[Any]] | None:
    """How a list of strings at this journal path is typed (None: it stays as it is)."""
    return _list_kind(aggregate_type, field)


def is_uuid_path(aggregate_type: str, field: str) -> bool:
    """Whether a string at this journal path is stored as a BSON UUID."""
    return _string_kind(aggregate_type, field) is _as_uuid_value


def is_date_path(aggregate_type: str, field: str) -> bool:
    """Whether a string at this journal path is stored as a BSON date."""
    return _string_kind(aggregate_type, field) is _as_date


def typed_leaf(aggregate_type: str, field: str, new: Any) -> Any:
    """`typed_changes`' rule for one new value of a creation's change at `field`.

    The bulk path's shortcut (`NewDocuments.encode`): values already BSON-typed
    stay as they are (idempotent). UUIDs and datetimes may also come as Python values (no
    JSON-mode string to parse back): a UUID path's UUID becomes the BSON UUID `_as_uuid_value`
    would make of its string, a date-time path's datetime stays (the caller passes only UTC
    ones: `fromisoformat` of their JSON form is equal), either elsewhere becomes its
    JSON-mode string.
    """
    exact = type(new)
    if exact is str:  # most leaves: checked by exact type first, the rules below else
        kind = _string_kind(aggregate_type, field)
        return new if kind is None else kind(new)
    if exact in _AS_THEY_ARE or new is None or isinstance(new, _UNTYPED):
        return new
    if isinstance(new, str):
        kind = _string_kind(aggregate_type, field)
        return new if kind is None else kind(new)
    if isinstance(new, UUID):
        kind = _string_kind(aggregate_type, field)
        if kind is _as_uuid_value:
            return uuid_binary(new.bytes)
        return kind(str(new)) if kind is not None else str(new)
    if isinstance(new, datetime):
        if _string_kind(aggregate_type, field) is not _as_date:
            return to_jsonable_python(new)
        return new
    if type(new) is list and all(type(v) is str for v in new):
        typed = _list_kind(aggregate_type, field)
        return new if typed is None else typed(new)
    if isinstance(new, _NESTED):
        nodes = _nodes(aggregate_type, field)
        if nodes:
            root, node = nodes[0]
            return _typed(root, node, new)
    return new


async def retype_journal(
    *, batch_size: int = 500, progress: Callable[[int], None] | None = None
) -> tuple[int, int]:
    """Migrate journal entries stored with JSON-string values to BSON types; (seen, changed).

    Pages through `domain_events` by `_id` (its primary index) and rewrites only the
    `changes` of entries whose typed form differs, guarded by the value it read (an entry
    is otherwise immutable, so the guard only matters against a concurrent erasure). Safe
    to run next to live servers, idempotent, resumable.
    """
    collection = DomainEvent.get_pymongo_collection()
    seen = changed = 0
    after: Any = None
    while True:
        query = {"_id": {"$gt": after}} if after is not None else {"_id": {"$gte": _MIN_ID}}
        page = (
            await collection.find(query, {"aggregate_type": 1, "changes": 1})
            .sort("_id", 1)
            .limit(batch_size)
            .to_list(None)
        )
        for entry in page:
            stored = entry.get("changes") or []
            typed = typed_changes(str(entry.get("aggregate_type")), stored)
            if typed != stored:
                result = await collection.update_one(
                    {"_id": entry["_id"], "changes": stored}, {"$set": {"changes": typed}}
                )
                changed += result.modified_count
        seen += len(page)
        if progress is not None:
            progress(len(page))
        if len(page) < batch_size:
            return seen, changed
        after = page[-1]["_id"]


_MIN_ID = Binary.from_uuid(UUID(int=0))
_KINDS: dict[tuple[str, str], Callable[[Any], Any] | None] = {}
_UNTYPED = (bool, int, float, type(None))
_AS_THEY_ARE = frozenset({bool, int, float, type(None), Binary})  # typed or never typed


def _string_kind(aggregate_type: str, field: str) -> Callable[[Any], Any] | None:
    """How a string at this path is typed (None: it stays a string)."""
    key = (aggregate_type, field)
    if key not in _KINDS:
        nodes = _nodes(aggregate_type, field)
        formats = {b.get("format") for root, n in nodes[:1] for b in _branches(root, n)}
        kind: Callable[[Any], Any] | None = None
        if "date-time" in formats:
            kind = _as_date
        elif "uuid" in formats:
            kind = _as_uuid_value
        _KINDS[key] = kind
    return _KINDS[key]


_NESTED = (str, list, Mapping)
_LIST_KINDS: dict[tuple[str, str], Callable[[list[str]], list[Any]] | None] = {}


def _list_kind(aggregate_type: str, field: str) -> Callable[[list[str]], list[Any]] | None:
    """How a list of strings at this path is typed (None: it stays as it is); `_typed`'s rule."""
    key = (aggregate_type, field)
    if key not in _LIST_KINDS:
        nodes = _nodes(aggregate_type, field)
        typed: Callable[[list[str]], list[Any]] | None = None
        if nodes:
            root, node = nodes[0]
            items = [
                b["items"] for b in _branches(root, node) if isinstance(b.get("items"), Mapping)
            ]
            if items:
                formats = {b.get("format") for b in _branches(root, items[0])}
                if "date-time" in formats or "uuid" in formats:
                    item = items[0]
                    typed = functools.partial(_typed_items, root, item)
                else:
                    typed = list  # a copy, as `_typed` makes
        _LIST_KINDS[key] = typed
    return _LIST_KINDS[key]


def _typed_items(root: _Node, node: _Node, values: list[str]) -> list[Any]:
    return [_typed(root, node, v) for v in values]


def _as_date(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:  # a redacted secret or a value of an older shape: left as it is
        return value


def _as_uuid_value(value: str | None) -> Any:
    if value is None:
        return None
    try:
        return Binary.from_uuid(UUID(value))
    except ValueError:
        return value
