"""Shape versions of stored documents: each document class says its `schema_version` and upcasters.

A document class declares the shape it writes by overriding the `schema_version` field's default
(`schema_version: int = 2`) and, for every older version N, an upcaster in `upcasters[N]`: a pure
function of the stored document (a dict, as the driver returns it) returning it in shape N + 1.
Everything else follows:

* **Upcast on read.** Parsing a stored document (Beanie's `find`/`get`, `model_validate` of a
  raw dict) runs the upcasters from its stored `schema_version` to the current one first, so a
  document written in an old shape reads correctly at once. Raw read paths that do not build
  the model call `upcast(model, raw)` themselves.
* **Write back whole.** A document read in an older shape remembers it (`stored_schema_version`);
  the repository's next update of it stores the whole document in the current shape
  (`rewrite_update`), because a partial `$set` of new-shape fields onto an old-shape document
  would leave a mix no upcaster could read.
* **Migrate in place.** `service/storage/migrations.py` rewrites stored documents to the
  current shape in batches (`python -m service.cli migrate`), without journaling and without bumping
  `version` (see docs/architecture.md, "Migrations").

Beanie reads only a model's own fields unless told otherwise; a document class with upcasters
sets `projection = None` in its `Settings`, so upcasters see the fields they retire.

Upcasters must also accept a document that already has some new-shape fields, and leave them
be: the journal rebuilds past versions from field-level changes (which carry no
`schema_version`, see service/core/journal/), so a rebuilt dict can mix the two shapes; such a dict
is upcast from version 1 (`upcast(model, raw)` on a dict without `schema_version`).

Queries and pipelines see stored shapes, not upcast ones: until `migrate` has run, a query on a
moved field keeps a branch for the old shape (see `service.blogs.blog_calendar`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ModelWrapValidatorHandler, PrivateAttr, model_validator

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Stored document in shape N → the same document in shape N + 1 (pure; may return a new dict)."""


class Versioned(BaseModel):
    """Mixin of stored documents whose shape is versioned (every aggregate root).

    Subclasses set the current version as the default of `schema_version` and register one
    upcaster per older version; `__pydantic_init_subclass__` refuses a gap in the chain.
    """

    schema_version: int = 1
    upcasters: ClassVar[Mapping[int, Upcaster]] = {}

    # The version the document was stored in when older than the current one (None otherwise),
    # and the top-level keys its upcasters removed (to unset when it is written back).
    _stored_schema_version: int | None = PrivateAttr(default=None)
    _retired_keys: frozenset[str] = PrivateAttr(default=frozenset())

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        current = current_schema_version(cls)
        expected = set(range(1, current))
        if set(cls.upcasters) != expected:
            raise TypeError(
                f"{cls.__name__} is at schema_version {current}: it needs exactly one upcaster "
                f"for each of versions {sorted(expected)}, has {sorted(cls.upcasters)}"
            )

    @model_validator(mode="wrap")
    @classmethod
    def _upcast_on_read(cls, data: Any, handler: ModelWrapValidatorHandler[Self]) -> Self:
        # Only stored documents carry `schema_version`; objects built in code take the default.
        stored = data.get("schema_version") if isinstance(data, dict) else None
        if isinstance(stored, int) and stored < current_schema_version(cls):
            upcast_data = upcast(cls, data)
            doc = handler(upcast_data)
            doc._stored_schema_version = stored
            doc._retired_keys = frozenset(data.keys() - upcast_data.keys())
            return doc
        return handler(data)

    @property
    def stored_schema_version(self) -> int:
        """The shape this document was read in (the current one unless it was upcast)."""
        return self._stored_schema_version or self.schema_version


def current_schema_version(model: type[BaseModel]) -> int:
    """The shape `model` writes: the default of its `schema_version` field (1 when unversioned)."""
    field = model.model_fields.get("schema_version")
    default = field.default if field is not None else 1
    return default if isinstance(default, int) else 1


def upcast(model: type[BaseModel], raw: Mapping[str, Any]) -> dict[str, Any]:
    """A stored document of `model` (raw dict) in the current shape; the input is not changed.

    The stored `schema_version` says where to start (a dict without one, such as a version
    rebuilt from the journal, starts at 1); a document at or above the current version is
    returned as a copy. The result carries the current `schema_version`.
    """
    current = current_schema_version(model)
    doc = dict(raw)
    version = doc.get("schema_version", 1)
    if not isinstance(version, int) or version >= current:
        return doc
    upcasters: Mapping[int, Upcaster] = getattr(model, "upcasters", {})
    for step in range(max(version, 1), current):
        doc = upcasters[step](doc)
    doc["schema_version"] = current
    return doc


def rewrite_update(doc: BaseModel, encoded: Mapping[str, Any]) -> dict[str, Any] | None:
    """For a document read in an older shape: the update storing it whole in the current one.

    `encoded` is the whole new state as stored (BSON-ready, `_id` included or not); the
    top-level keys the upcasters removed when it was read are unset. None when the document
    was read in the current shape, so the caller's partial `$set` is right.
    """
    if not isinstance(doc, Versioned) or doc._stored_schema_version is None:
        return None
    fields = {k: v for k, v in encoded.items() if k not in ("_id", "revision_id")}
    update: dict[str, Any] = {"$set": fields}
    stale = doc._retired_keys - fields.keys()
    if stale:
        update["$unset"] = dict.fromkeys(sorted(stale), "")
    return update
