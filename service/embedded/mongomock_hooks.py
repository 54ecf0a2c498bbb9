"""Every private part of mongomock the embedded backend leans on, in one place.

mongomock is pinned to the version tested (pyproject.toml); `tests/test_embedded_hooks.py`
checks each entry below still exists with the shape we use, so an upgrade that moves one fails
there, loudly, instead of changing answers. Nothing here mutates mongomock's module state: the
backend's matcher is a `_Filterer` of its own (engine.py) and its `$max`/`$min` live in its
collection subclass, so code elsewhere in the process that uses mongomock sees it unchanged.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

from mongomock import aggregate as _aggregate
from mongomock import collection as _collection
from mongomock import filtering as _filtering
from mongomock import helpers as _helpers

TESTED_VERSION = "4.3.0"
"""The mongomock version these hooks were checked against (pyproject pins it)."""

Filterer: Any = _filtering._Filterer
"""mongomock's matcher class; ours subclasses it to add operators to its `_operator_map`."""

in_operator: Any = _filtering._in_op
"""mongomock's `$in` (the fallback for regex and unhashable members)."""

REGEX_TYPES: tuple[type, ...] = _filtering._RE_TYPES
"""What mongomock treats as a regular expression in a filter."""

NOTHING: Any = _filtering.NOTHING
"""mongomock's marker for "no value at this path" passed to operators."""

Collection: Any = _collection.Collection
"""The class EngineCollection subclasses for its update, find-and-modify and projection code."""

UPDATERS: dict[str, Any] = _collection._updaters
"""mongomock's update operators by name (read only: ours override `$max`/`$min` per instance)."""

process_pipeline: Any = _aggregate.process_pipeline
"""mongomock's aggregation stages (called one stage at a time)."""

parse_expression: Any = _aggregate._parse_expression
"""mongomock's aggregation expression evaluator `(expression, doc)` (KeyError: missing)."""

patch_datetimes: Any = _helpers.patch_datetime_awareness_in_document
"""What mongomock's `_update` does to a filter first (naive UTC datetimes at millisecond
precision): the engine's fast update path does the same to keep mongomock's answers."""

validate_ok_for_replace: Any = _collection.validate_ok_for_replace
validate_ok_for_update: Any = _collection.validate_ok_for_update

COLLECTION_METHODS: dict[str, tuple[str, ...]] = {
    # Private methods of `Collection` that EngineCollection overrides (the mongomock code we
    # keep calls them) or calls, with the parameters it relies on.
    "__init__": ("self", "database", "name", "_db_store"),
    "_iter_documents": ("self", "filter"),
    "_ensure_uniques": ("self", "new_data"),
    "_insert": ("self", "data", "session", "ordered"),
    "_delete": ("self", "filter", "collation", "hint", "multi", "session"),
    "_update": ("self", "spec", "document", "upsert"),
    "_find_and_modify": ("self", "query", "projection", "update", "upsert", "sort"),
    "_copy_only_fields": ("self", "doc", "fields", "container"),
    "_apply_update_document": ("self", "existing_document", "spec", "document", "was_insert"),
    "_update_document_fields_with_positional_awareness": (
        "self",
        "existing_document",
        "v",
        "spec",
        "updater",
        "subdocument",
    ),
}
"""Collection methods by name, with the leading parameters we call them with."""

FILTERER_ATTRIBUTES = ("_operator_map", "apply", "_elem_match_op", "_not_op")
"""What our `Filterer` subclass relies on (`apply` recurses through `self` for `$and`,
`$or`, `$not` and `$elemMatch`, so operators added to the instance apply there too)."""


def installed_version() -> str:
    """The mongomock version installed."""
    return metadata.version("mongomock")
