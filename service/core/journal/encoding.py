"""Documents and journal entries as stored: BSON-ready dicts for raw driver writes."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from beanie import Document
from beanie.odm.utils.encoder import Encoder
from bson import Binary, Decimal128, ObjectId
from pydantic import BaseModel
from pydantic_core import PydanticUndefined, to_jsonable_python

from documents.base import RootDocument
from documents.journal import DomainEvent
from service.core.journal.diff import UNJOURNALED, created_leaves, shared_changes
from service.core.journal.typed import (
    is_date_path,
    is_uuid_path,
    list_kind,
    string_kind,
    typed_changes,
    typed_leaf,
    uuid_binary,
)

# Values stored as they are (str covers str-valued enums, which Beanie also keeps as they are).
_BSON_AS_IS = (str, int, float, type(None), datetime, Binary, Decimal128, ObjectId)
_IMMUTABLE = (str, int, float, type(None), Enum, frozenset)  # str/int cover their enums


def _required(model: type[RootDocument], name: str) -> Callable[[], Any]:
    def missing() -> Any:
        raise TypeError(f"{model.__name__}.{name} is required")

    return missing


_REPEATED_IDS = frozenset({"tenant_id", "created_by", "updated_by", "user_id", "assignee_id"})
# Types stored as they are, checked by exact type: the common ones, and every subclass of
# `_BSON_AS_IS` met since (str and int enums), which `to_bson` keeps whatever their value.
_BSON_EXACT: set[type] = {str, int, float, bool, type(None), datetime, Binary}


_MAX_PATHS = 1000  # nested paths whose kinds a `NewDocuments` keeps
_STR_ONLY = frozenset({str})  # `set(map(type, items)) <= _STR_ONLY`: all exactly str


def to_bson(value: Any) -> Any:
    """A value as stored, for raw driver calls: the one BSON encoder (filters, documents).

    Exactly `beanie`'s `Encoder().encode(value)` (UUIDs become BSON UUIDs, enums their values,
    models dicts), with the common types converted here without it (several times faster).
    """
    kind = type(value)
    if kind in _BSON_EXACT:  # the common types by exact type first, then the general rules
        return value
    if kind is dict:
        return {
            key if type(key) is str or isinstance(key, Enum) else str(key): inner
            if type(inner) in _BSON_EXACT
            else to_bson(inner)
            for key, inner in value.items()
        }
    if kind is list:
        return [inner if type(inner) in _BSON_EXACT else to_bson(inner) for inner in value]
    if isinstance(value, _BSON_AS_IS):
        _BSON_EXACT.add(kind)
        return value
    if isinstance(value, UUID):
        return Binary.from_uuid(value)
    if isinstance(value, Mapping):
        return {
            key if isinstance(key, Enum) else str(key): to_bson(inner)
            for key, inner in value.items()
        }
    if isinstance(value, list | tuple | set | frozenset):
        return [to_bson(inner) for inner in value]
    return Encoder().encode(value)  # rarer types (Decimal, other enums, dates…): Beanie's rules


def encode_document(doc: Document) -> dict[str, Any]:
    """A document as Beanie's Encoder stores it (without `revision_id`), for raw bulk writes.

    Same output as `Encoder().encode(doc)` (tests/test_core_documents.py checks it), about ten
    times faster: one pydantic-core dump, then only UUIDs and containers are converted.
    """
    settings = doc.get_settings()
    if settings.union_doc is not None or doc.get_link_fields():
        data: dict[str, Any] = Encoder().encode(doc)
        data.pop("revision_id", None)
        return data
    dumped = doc.model_dump(by_alias=True, exclude={"revision_id"}, warnings=False)
    out: dict[str, Any] = {settings.class_id: doc._class_id} if doc._class_id else {}
    for key, value in dumped.items():
        out[key] = to_bson(value)
    return out


class NewDocuments:
    """New documents of one class built from already-validated field values, without Beanie.

    `encode(values)` completes python-mode field values (by field name; sub-documents as
    dicts) with the class's defaults and gives, in one walk, the stored document (what
    `to_bson` makes of each field, in the class's order) and its typed creation changes (the
    generic `diff({}, ...)` of the values' JSON form, typed by `typed_changes`). For bulk
    writes of values the caller has validated: no model instance, no second validation, no
    Beanie encoder. tests/support/oracles.py holds the generic walks it is compared with.
    """

    def __init__(self, model: type[RootDocument]) -> None:
        settings = model.get_settings()
        if settings.union_doc is not None or model.get_link_fields():
            raise TypeError(f"{model.__name__}: union documents and links need Beanie's encoder")
        self.model = model
        self.class_id: tuple[str, str] | None = (
            (settings.class_id, model._class_id) if model._class_id else None
        )
        self.fields = [
            (name, info.alias or name, info)
            for name, info in model.model_fields.items()
            if name != "revision_id"
        ]
        self.names = frozenset(name for name, _, _ in self.fields)
        self._shared: dict[int, tuple[UUID, Binary]] = {}
        # Per field: the last nested sub-document encoded there (the given object, its
        # stored form, its leaves), reused while the next document gives the same object.
        self._last_dicts: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {}
        # Per aggregate type: strings' kinds by nested path, and the walk's plan.
        self._path_kinds: dict[str, dict[str, Callable[[Any], Any] | None]] = {}
        # Per aggregate type: a sub-document key's path by the sub-document's path and the
        # key, whose hash is already known (a path string made per document would be hashed
        # again in every dict it goes into: the kinds, the leaves, the sorted paths' key).
        self._key_paths: dict[str, dict[str, dict[str, str]]] = {}
        self._walks: dict[str, _Walk] = {}
        # The constant defaults (scalars, str enums) by field: given as the very object (a
        # model's default status), their stored form and leaf are the templates' already.
        self._constants: dict[str, Any] = {}
        # Defaults worked out once: constants as they are, factories called per document.
        self.defaults: list[tuple[str, Any, Callable[[], Any] | None]] = []
        for name, _, info in self.fields:
            factory = info.default_factory
            if factory is None and info.default is PydanticUndefined:
                self.defaults.append((name, None, _required(model, name)))
            elif factory is None and not isinstance(info.default, _IMMUTABLE):
                self.defaults.append((name, None, functools.partial(info.get_default)))
            else:
                self.defaults.append((name, info.default, factory))  # type: ignore[arg-type]

    def _binary(self, name: str, value: UUID) -> Binary:
        # The tenant and actor ids repeat on every document of a batch: encoded once, found
        # by the object's identity (a UUID's hash is Python code; the entry keeps the object
        # alive, so its id is not reused while the entry lasts).
        shared = self._shared
        entry = shared.get(id(value))
        if entry is not None and entry[0] is value:
            return entry[1]
        binary = uuid_binary(value.int.to_bytes(16, "big"))  # `Binary.from_uuid`, standard
        if name in _REPEATED_IDS:
            if len(shared) > 16:
                shared.clear()
            shared[id(value)] = (value, binary)
        return binary

    def encode(
        self,
        values: Mapping[str, Any],
        aggregate_type: str,
        secret_fields: Iterable[str] = (),
        common: CommonValues | None = None,
    ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
        """The stored document of `values` (completed by the defaults) and its creation's
        typed changes (secret paths redacted).

        The bulk path's one walk: the fields left to constant defaults come from a template
        made once per aggregate type (stored forms and journal leaves), and each given value
        (or factory default) makes its stored form and its typed leaves together; no `full`
        dict; a sub-document of plain values (strings, numbers, None) or a list of strings is
        taken into the stored document as it is, not copied (the caller leaves `values` alone
        afterwards; the stored document and its changes are only encoded after). `common`
        (`self.common(...)`): values every document of a batch shares, encoded once, which
        win over `values` (as if `values | common` were given); the changes of leaves every
        document holds as the same object are then one dict for the batch (`common.changes`:
        none is mutated after, all are only encoded). tests/test_repository.py,
        tests/test_fast_paths.py and tests/test_leads_bulk.py compare it byte for byte with the
        generic walks (tests/support/oracles.py).
        """
        walk = self._plan(aggregate_type)
        steps, stored_template, leaf_template, factories, factory_names, quiet = walk
        apart = common is not None and not values.keys().isdisjoint(common.names)
        if common is not None and not apart:  # (the usual batch) shared values in place
            out, flat = dict(common.stored_start), dict(common.leaves_start)
        else:  # every field in the class's order, constants in place
            out, flat = dict(stored_template), dict(leaf_template)
        missing = factory_names if common is None else common.factories
        given: Iterable[tuple[str, Any]] = values.items()
        try:
            if not missing <= values.keys():  # defaults made per document
                made = ((n, f()) for n, f in factories if n in missing and n not in values)
                # A sub-document default (a model) goes in as its python-mode dict, as given
                # ones do: the generic diff journals its leaves, not the sub-document whole.
                given = [
                    *given,
                    *((n, v.model_dump() if isinstance(v, BaseModel) else v) for n, v in made),
                ]
            self._put(given, steps, quiet, self._constants, out, flat, aggregate_type)
        except (KeyError, TypeError):  # names that are no field first (looked for only now)
            if not self.names.issuperset(values):
                unknown = sorted(set(values) - self.names)
                raise TypeError(f"{self.model.__name__} has no fields {unknown}") from None
            raise
        if common is not None:
            if apart:  # values given for shared names too: the shared ones win
                out.update(common.stored)
                flat.update(common.leaves)
                for name in common.leafless:
                    flat.pop(name, None)
            changes = created_leaves(flat, secret_fields, common.changes)
            if common.learning and not secret_fields:
                # The batch's first document: its change dicts join the shared ones, for the
                # leaves a later document holds as the very same object too (the shared
                # default consent's, the actor's id); the others never match.
                common.learning = False
                for change in changes:
                    common.changes.setdefault(change["field"], change)
            return out, changes
        return out, created_leaves(flat, secret_fields)

    def common(self, values: Mapping[str, Any], aggregate_type: str) -> CommonValues:
        """`values` every document of a batch shares (the repository's stamp), encoded once
        for `encode`: their stored forms and leaves are the same for every document."""
        if not self.names.issuperset(values):
            raise TypeError(
                f"{self.model.__name__} has no fields {sorted(set(values) - self.names)}"
            )
        steps, stored_template, leaf_template, _, factory_names, _ = self._plan(aggregate_type)
        stored: dict[str, Any] = {}
        leaves: dict[str, Any] = {}
        self._put(values.items(), steps, frozenset(), {}, stored, leaves, aggregate_type)
        leafless = frozenset(name for name in values if name not in leaves)
        # The templates as a document whose values leave the shared names alone starts:
        # the shared values in place, no template leaf where a shared value has none.
        leaves_start = {**leaf_template, **leaves}
        for name in leafless:
            leaves_start.pop(name, None)
        # The constant leaves' change dicts, made once for the batch (each batch its own).
        changes = shared_changes(leaf_template)
        changes.update(shared_changes(leaves))
        return CommonValues(
            stored=stored,
            leaves=leaves,
            names=frozenset(values),
            leafless=leafless,
            stored_start={**stored_template, **stored},
            leaves_start=leaves_start,
            factories=factory_names - values.keys(),
            changes=changes,
            learning=True,
        )

    def _plan(self, aggregate_type: str) -> _Walk:
        walk = self._walks.get(aggregate_type)
        if walk is None:
            walk = self._walks[aggregate_type] = self._walk(aggregate_type)
        return walk

    def _put(
        self,
        given: Iterable[tuple[str, Any]],
        steps: dict[str, _Step],
        quiet: frozenset[str],
        constants: Mapping[str, Any],
        out: dict[str, Any],
        flat: dict[str, Any],
        aggregate_type: str,
    ) -> None:
        # Each given value's stored form into `out` (by alias), its typed leaves into `flat`;
        # `out` and `flat` are templates when `quiet` (None in place, no leaf) and `constants`
        # (those defaults' forms and leaves in place) are given, else empty.
        kinds = self._path_kinds.setdefault(aggregate_type, {})
        keyed = self._key_paths.setdefault(aggregate_type, {})
        exact = _BSON_EXACT
        for name, value in given:
            if value is None and name in quiet:
                continue  # None in the template already, and no leaf
            alias, journaled, to_str, uuid_path, to_list, is_date = steps[name]
            kind = type(value)
            if value is None:
                out[alias] = None
                flat.pop(name, None)
            elif kind is str:
                out[alias] = value
                if journaled:
                    flat[name] = value if to_str is None else to_str(value)
            elif kind is int or kind is float or kind is bool:
                out[alias] = value
                if journaled:
                    flat[name] = value
            elif kind is dict:
                last = self._last_dicts.get(name)
                if last is not None and last[0] is value:
                    # The very object the last document had here (a batch's shared default
                    # consent): its stored form and leaves as made then, not made again.
                    out[alias] = last[1]
                    flat.update(last[2])
                elif journaled and not value:
                    out[alias] = {}
                    flat[name] = {}  # what typing an empty mapping gives
                elif journaled and set(map(type, value)) <= _STR_ONLY:
                    leaves: dict[str, Any] = {}
                    out[alias] = stored = _encode_dict(
                        value, name, leaves, aggregate_type, kinds, keyed
                    )
                    flat.update(leaves)
                    if stored is not value:  # not plain (`_encode_dict` stored a copy)
                        self._last_dicts[name] = (value, stored, leaves)
                else:  # keys to convert (or not journaled): the two walks apart
                    out[alias] = {
                        k if type(k) is str or isinstance(k, Enum) else str(k): v
                        if type(v) in exact
                        else to_bson(v)
                        for k, v in value.items()
                    }
                    if journaled:
                        _flatten_typed(value, name, flat, aggregate_type, kinds)
            elif kind is list:
                if set(map(type, value)) <= _STR_ONLY:  # tags, search tokens
                    out[alias] = value  # as it is, as `to_bson`'s copy would be
                    if journaled:
                        flat[name] = value if to_list is None else to_list(value)
                    continue
                out[alias] = [v if type(v) in exact else to_bson(v) for v in value]
                if journaled:
                    flat[name] = typed_leaf(aggregate_type, name, to_jsonable_python(value))
            elif isinstance(value, UUID):
                out[alias] = binary = self._binary(name, value)
                if journaled:
                    flat[name] = binary if uuid_path else typed_leaf(aggregate_type, name, value)
            else:
                if value is constants.get(name, _UNKNOWN):
                    continue  # the default itself (an enum member): in the templates already
                out[alias] = value if kind in exact else to_bson(value)
                if journaled:
                    flat[name] = _other_leaf(value, aggregate_type, name, to_str, is_date)

    def _walk(self, aggregate_type: str) -> _Walk:
        # Per field: its alias, whether the journal records it, how its strings, UUIDs, lists
        # of strings and dates are typed; the stored forms and leaves of the constant
        # defaults (plain scalars and str enums: immutable, shared by every document); the
        # factories (and required fields) that make the others per document.
        steps: dict[str, _Step] = {}
        stored: dict[str, Any] = dict((self.class_id,)) if self.class_id else {}
        leaves: dict[str, Any] = {}
        factories: list[tuple[str, Callable[[], Any]]] = []
        for (name, alias, _), (_, default, factory) in zip(self.fields, self.defaults, strict=True):
            to_str = string_kind(aggregate_type, name)
            is_date = is_date_path(aggregate_type, name)
            journaled = name not in UNJOURNALED and name not in self.model.derived_fields
            steps[name] = (
                alias,
                journaled,
                to_str,
                is_uuid_path(aggregate_type, name),
                list_kind(aggregate_type, name),
                is_date,
            )
            stored[alias] = None
            constant = type(default) in (str, int, float, bool) or (
                isinstance(default, str) and isinstance(default, Enum)
            )
            if factory is not None or not (default is None or constant):
                factories.append((name, factory or functools.partial(lambda d: d, default)))
            elif default is not None:
                self._constants[name] = default
                stored[alias] = to_bson(default)
                if not journaled:
                    continue
                if type(default) is str:
                    leaves[name] = default if to_str is None else to_str(default)
                elif isinstance(default, Enum):
                    leaves[name] = _other_leaf(default, aggregate_type, name, to_str, is_date)
                else:  # int, float, bool
                    leaves[name] = default
        quiet = frozenset(
            name for name, alias, _ in self.fields if stored[alias] is None and name not in leaves
        )
        return steps, stored, leaves, factories, frozenset(name for name, _ in factories), quiet


def _other_leaf(
    value: Any, aggregate_type: str, name: str, to_str: Callable[[Any], Any] | None, is_date: bool
) -> Any:
    # A top-level value's leaf that is not a str, number, dict, list or UUID.
    if isinstance(value, str) and isinstance(value, Enum):
        json_form = value._value_  # its JSON form, typed as a string is
        if type(json_form) is not str:
            return typed_leaf(aggregate_type, name, json_form)
        return json_form if to_str is None else to_str(json_form)
    if type(value) is datetime and value.tzinfo is UTC:
        return value if is_date else to_jsonable_python(value)
    return typed_leaf(aggregate_type, name, to_jsonable_python(value))


def _encode_dict(
    value: dict[str, Any],
    prefix: str,
    out: dict[str, Any],
    kind_of: str,
    kinds: dict[str, Callable[[Any], Any] | None],
    keyed: dict[str, dict[str, str]],
) -> dict[str, Any]:
    # A sub-document with string keys: its stored form (`to_bson`'s) and its typed leaves
    # (`_flatten_typed`'s) in one walk; values of other kinds go to those two apart. One
    # of plain values only (an address, a listing agent) is stored as it is: `to_bson`
    # would make an equal copy. `keyed`: the keys' paths made before (`_key_path`).
    known = keyed.get(prefix) or _EMPTY
    if set(map(type, value.values())) <= _PLAIN:
        for key, inner in value.items():
            if inner is None:
                continue
            path = known.get(key) or _key_path(keyed, prefix, key)
            if type(inner) is str:
                to_kind = kinds.get(path, _UNKNOWN)
                if to_kind is _UNKNOWN:
                    to_kind = _path_kind(kinds, kind_of, path)
                out[path] = inner if to_kind is None else to_kind(inner)
            else:
                out[path] = inner
        return value
    stored: dict[str, Any] = {}
    for key, inner in value.items():
        kind = type(inner)
        if inner is None:
            stored[key] = None
            continue
        path = known.get(key) or _key_path(keyed, prefix, key)
        if kind is str:
            stored[key] = inner
            to_kind = kinds.get(path, _UNKNOWN)
            if to_kind is _UNKNOWN:
                to_kind = _path_kind(kinds, kind_of, path)
            out[path] = inner if to_kind is None else to_kind(inner)
        elif kind is int or kind is bool:
            stored[key] = out[path] = inner
        elif kind is dict and inner and set(map(type, inner)) <= _STR_ONLY:
            stored[key] = _encode_dict(inner, path, out, kind_of, kinds, keyed)
        elif (
            kind in _BSON_EXACT
            and isinstance(inner, str)
            and isinstance(inner, Enum)
            and type(inner._value_) is str
        ):
            # A str enum met before (consent statuses…): stored as it is, journaled by value.
            stored[key] = inner
            to_kind = kinds.get(path, _UNKNOWN)
            if to_kind is _UNKNOWN:
                to_kind = _path_kind(kinds, kind_of, path)
            json_form = inner._value_
            out[path] = json_form if to_kind is None else to_kind(json_form)
        else:
            stored[key] = inner if kind in _BSON_EXACT else to_bson(inner)
            _flatten_typed({key: inner}, prefix, out, kind_of, kinds)
    return stored


def _path_kind(
    kinds: dict[str, Callable[[Any], Any] | None], kind_of: str, path: str
) -> Callable[[Any], Any] | None:
    # A nested path's string kind, kept for the next document (map keys are the clients':
    # only so many are kept).
    to_kind = string_kind(kind_of, path)
    if len(kinds) < _MAX_PATHS:
        kinds[path] = to_kind
    return to_kind


def _key_path(keyed: dict[str, dict[str, str]], prefix: str, key: str) -> str:
    # A sub-document key's path, kept for the next document: the same string object, whose
    # hash is then known (map keys are the clients': only so many are kept).
    path = f"{prefix}.{key}"
    known = keyed.get(prefix)
    if known is None and len(keyed) < _MAX_KEYED:
        known = keyed[prefix] = {}
    if known is not None and len(known) < _MAX_KEYED:
        known[key] = path
    return path


_MAX_KEYED = 64  # sub-documents, and keys of each, whose paths a `NewDocuments` keeps
_EMPTY: dict[str, str] = {}
_UNKNOWN: Any = object()  # a path whose kind is not known yet
_PLAIN = frozenset({str, int, bool, type(None)})  # stored and journaled as they are


@dataclass(slots=True)
class CommonValues:
    """Values every new document of a batch shares, encoded once (`NewDocuments.common`).

    Read-only but for `learning`, which the batch's first document turns off.
    """

    stored: dict[str, Any]  # stored forms, by alias
    leaves: dict[str, Any]  # typed journal leaves, by path
    names: frozenset[str]
    leafless: frozenset[str]  # given but without a leaf (None, unjournaled)
    stored_start: dict[str, Any]  # the stored template with `stored` in place
    leaves_start: dict[str, Any]  # the leaf template with `leaves` in place, `leafless` out
    factories: frozenset[str]  # the factory defaults still made per document
    changes: dict[str, dict[str, Any]]  # the template's and these leaves' changes, shared
    learning: bool  # until the first document's changes joined `changes`


_Step = tuple[
    str,
    bool,
    Callable[[Any], Any] | None,
    bool,
    Callable[[list[str]], list[Any]] | None,
    bool,
]
_Walk = tuple[
    dict[str, _Step],
    dict[str, Any],
    dict[str, Any],
    list[tuple[str, Callable[[], Any]]],
    frozenset[str],
    frozenset[str],
]


def _flatten_typed(
    value: dict[Any, Any],
    prefix: str,
    out: dict[str, Any],
    kind_of: str,
    kinds: dict[str, Callable[[Any], Any] | None],
) -> None:
    # `diff._flatten(to_jsonable_python(value), ...)`, each leaf typed (`typed_leaf`), without
    # converting what needs no conversion: strings, ints, bools and None as they are, UUIDs
    # and UTC dates typed as they are; anything else (enums, floats, models, lists) through
    # pydantic-core. `kind_of` is the aggregate type, `kinds` its strings' kinds by path.
    if not set(map(type, value)) <= _STR_ONLY:
        _flatten_json_typed(to_jsonable_python(value), prefix, out, kind_of)
        return
    for key, inner in value.items():
        path = f"{prefix}.{key}"
        kind = type(inner)
        if kind is int or kind is bool or inner is None:
            out[path] = inner
        elif kind is str:
            if path in kinds:
                to_kind = kinds[path]
            else:
                to_kind = string_kind(kind_of, path)
                if len(kinds) < _MAX_PATHS:  # map keys are the clients': bounded
                    kinds[path] = to_kind
            out[path] = inner if to_kind is None else to_kind(inner)
        elif kind is dict:
            if inner:
                _flatten_typed(inner, path, out, kind_of, kinds)
            else:
                out[path] = {}  # what typing an empty mapping gives
        elif isinstance(inner, str) and isinstance(inner, Enum):
            out[path] = typed_leaf(kind_of, path, inner._value_)  # its JSON form
        elif isinstance(inner, UUID) or (kind is datetime and inner.tzinfo is UTC):
            out[path] = typed_leaf(kind_of, path, inner)
        else:
            _flatten_json_typed(to_jsonable_python(inner), path, out, kind_of)


def _flatten_json_typed(value: Any, prefix: str, out: dict[str, Any], kind_of: str) -> None:
    # `diff._flatten` below a non-empty root, for JSON-mode values, each leaf typed.
    if type(value) is dict and value:
        for key, inner in value.items():
            _flatten_json_typed(inner, f"{prefix}.{key}", out, kind_of)
    else:
        out[prefix] = typed_leaf(kind_of, prefix, value)


def encode_event(event: DomainEvent) -> dict[str, Any]:
    """A journal entry as stored: `encode_document` with its change values BSON-typed."""
    data = encode_document(event)
    data["changes"] = typed_changes(event.aggregate_type, data["changes"])
    return data


def as_uuid(value: Any) -> UUID:
    """An id read back from an outbox: `Binary` when raw, already a UUID through Beanie."""
    return value.as_uuid() if isinstance(value, Binary) else UUID(str(value))
