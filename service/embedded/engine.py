"""The synchronous engine: mongomock's query, update and aggregation semantics on indexed storage.

mongomock decides what a filter matches (`filter_applies`), how an update document changes a
document (`Collection._update`) and what an aggregation stage computes (`process_pipeline`).
This module replaces the parts of mongomock that make it a toy: its storage (a full scan per
query, a full scan per unique-index check, a deep copy of every matching document before a
`limit`) becomes `store.CollectionStore` with real indexes, chosen by `planner.plan`, and its
index creation keeps `partialFilterExpression`. Everything here runs in the backend's one
worker thread (see aio.py), so no locking is needed inside.

The hot shapes skip mongomock's general code where the answer is provably the same
(`FAST_PATHS`; tests/test_embedded_fast_paths.py compares both routes): `$set`/`$unset` of
top-level fields (`_update_simply`, spliced into the stored BSON by `_Splice`), candidates of
an exact plan (no re-match), inclusion and exclusion projections of top-level names
(`_inclusion`, `_exclusion`: only the kept fields decoded), candidates of a cursor's find
decoded in the fields the filter and sort read (`_read_by`), inserts indexed from the
caller's values (`storable`), index keys picked per index (`store.Scalars`), numeric ranges
tested without the matcher (`quick_matcher`) and a read's numeric range decided on the index
entries (`planner._range_test`).

Where mongomock's answer is not MongoDB's, the engine corrects it without touching
mongomock's module state (its matcher here is an instance of our own; the private parts used
are listed in mongomock_hooks.py):

- equality never makes a boolean equal a number (`Same`); NaN equals NaN;
- `{"a.b": null}` matches below a scalar (`{a: 4}`) as MongoDB does, `$ne: null` is its
  negation; arrays keep mongomock's (and MongoDB's) answer;
- an update is "modified" when its BSON changes (1 -> true is a change, and re-indexed);
- `$max`/`$min` compare in BSON order;
- `$group` is our own (group.py): missing values are skipped or null as MongoDB has them;
- a partial index covers a document when its filter matches it as a query would (arrays);
- an array or regex `_id` is refused (WriteError, code 2); the same key pattern under
  another name is IndexOptionsConflict (code 85); a collation is refused;
- `maxTimeMS` is checked while candidates are read and between aggregation stages
  (`time_limit`, ExecutionTimeout code 50).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from bson import Binary, Decimal128, Int64, ObjectId, Regex
from bson.codec_options import CodecOptions
from pymongo.errors import (
    BulkWriteError,
    CollectionInvalid,
    DocumentTooLarge,
    ExecutionTimeout,
    InvalidName,
    OperationFailure,
    WriteError,
)

from service.embedded import codec, geo, wal, work
from service.embedded import mongomock_hooks as mm
from service.embedded.group import group
from service.embedded.keys import (
    EMPTY_ARRAY,
    HIGHEST,
    has_path,
    path_values,
    sort_key,
    sort_value,
)
from service.embedded.planner import Plan, numeric_ranges, plan, point_key
from service.embedded.planner import analyse as planner_analyse
from service.embedded.store import CollectionStore, Index, Recorder

SERVER_VERSION = "7.0.0"
"""The MongoDB version the engine answers `buildInfo` with (mongomock's feature level)."""

# Stages after which a document may have outgrown 16 MiB (MongoDB checks every document).
_GROWING_STAGES = frozenset(
    {"$lookup", "$group", "$facet", "$bucket", "$bucketAuto", "$graphLookup", "$addFields"}
)

Sort = Sequence[tuple[str, int]]

_MISSING = object()


def _extremum(pick_new: Any) -> Any:
    def updater(doc: Any, field: str, value: Any) -> None:
        if isinstance(doc, dict):
            current = doc.get(field, _MISSING)
            if current is _MISSING or pick_new(sort_key(value), sort_key(current)):
                doc[field] = value

    return updater


class InList(list):  # type: ignore[type-arg]
    """An `$in`/`$nin` array with a hash set of its members, built once per query.

    mongomock tests membership with a linear scan (and re-checks every element for regexes)
    per document, which makes `_id: {$in: [thousands]}` quadratic; equality is unchanged.
    """

    def __init__(self, values: list[Any]) -> None:
        super().__init__(values)
        self.has_regex = any(isinstance(v, mm.REGEX_TYPES) for v in values)
        self.has_none = None in values
        members = set()
        for v in values:
            try:
                members.add(v)
            except TypeError:  # unhashable (documents, arrays): found by the linear fallback
                continue
        self.members = members


class Same:
    """An equality operand that equals only values of its own BSON kind.

    Python says `True == 1`; MongoDB says a boolean never equals a number. Numbers and
    booleans in a filter's equality positions are wrapped in `Same` before matching, so
    mongomock's `==` and `in` give MongoDB's answer (1 still equals 1.0).
    """

    __slots__ = ("boolean", "value")

    def __init__(self, value: bool | int | float) -> None:
        self.value = value
        self.boolean = isinstance(value, bool)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Same):
            other = other.value
        if isinstance(other, bool) != self.boolean or not isinstance(other, int | float):
            return False
        if other != other:  # NaN equals NaN in MongoDB's matching
            return bool(self.value != self.value)
        return bool(other == self.value)

    def __hash__(self) -> int:
        if self.value != self.value:
            return hash((self.boolean, "NaN"))  # every NaN alike (Python hashes NaN by id)
        return hash((self.boolean, self.value))

    def __repr__(self) -> str:
        return repr(self.value)


def _probe(value: Any) -> Any:
    return Same(value) if isinstance(value, bool | int | float) else value


def _in(doc_val: Any, search_val: Any) -> bool:
    if not isinstance(search_val, InList) or search_val.has_regex:
        return mm.in_operator(doc_val, search_val)  # type: ignore[no-any-return]
    if doc_val is mm.NOTHING:
        return search_val.has_none
    for value in doc_val if isinstance(doc_val, list | tuple) else (doc_val,):
        try:
            if _probe(value) in search_val.members:
                return True
        except TypeError:
            if list.__contains__(search_val, value):
                return True
    return False


class _Matcher(mm.Filterer):  # type: ignore[misc]
    """mongomock's matcher with our `$in`/`$nin` (hashed) and `$geoWithin` (geo.py).

    An instance of our own: mongomock's module-level matcher stays as it ships.
    """

    def __init__(self) -> None:
        super().__init__()
        self._operator_map["$in"] = _in
        self._operator_map["$nin"] = lambda dv, sv: not _in(dv, sv)
        self._operator_map["$geoWithin"] = geo.geo_within


_MATCHER = _Matcher()


def filter_applies(query: Mapping[str, Any], doc: Mapping[str, Any]) -> bool:
    """Whether `doc` matches a `prepared` filter (mongomock's rules, our operators)."""
    return bool(_MATCHER.apply(query, doc))


def candidate_test(
    query: Mapping[str, Any], exact: bool, decided: str | None = None
) -> Callable[[Mapping[str, Any]], bool] | None:
    """How a plan's candidate is checked against `query`: None when nothing needs checking
    (an exact plan's bounds decided it, or an empty filter); else the quick matcher where it
    is sure and mongomock's matcher where it is not. `decided`: a top-level field whose
    condition the plan's candidates all meet (`Plan.decided`), left out of the test."""
    if (exact and FAST_PATHS) or not query:
        return None  # (`prepared` of an empty filter is empty: nothing to check)
    shape = None
    if FAST_PATHS:
        if decided is not None and len(query) > 1 and decided in query:
            query = {name: value for name, value in query.items() if name != decided}
        # A filter of plain scalars (a sequencer's `{seq: null}` once its `_id` is decided)
        # gets the test built for an equal filter before.
        shape = _test_shape(query)
        if shape is not None:
            found = _TESTS.get(shape)
            if found is not None:
                return found
    quick = quick_matcher(query) if FAST_PATHS else None
    if quick is not None and shape is not None:
        if len(_TESTS) >= 256:
            _TESTS.clear()
        _TESTS[shape] = built = _quick_test(dict(query), quick)  # (the caller's dict may change)
        return built
    if quick is None:
        matcher = prepared(query)
        if not matcher:
            return None
        return functools.partial(filter_applies, matcher)
    return _quick_test(query, quick)


def _recheck(query: Mapping[str, Any], raw: bytes) -> bool:
    # A stored document tested with the whole filter (an exact plan's odd entry, see
    # `planner._range_test`): as `candidate_test`'s matcher would test it.
    return filter_applies(prepared(query), codec.to_canonical(raw))


def _quick_test(
    query: Mapping[str, Any], quick: Callable[[Mapping[str, Any]], bool | None]
) -> Callable[[Mapping[str, Any]], bool]:
    # A quick matcher's filter is a non-empty dict of plain equalities: mongomock's form of
    # it is needed only for a document the quick test is unsure of (most never are).
    prepared_once: list[Any] = []

    def test(doc: Mapping[str, Any]) -> bool:
        hit = quick(doc)
        if hit is not None:
            return hit
        if not prepared_once:
            prepared_once.append(prepared(query))
        return filter_applies(prepared_once[0], doc)

    return test


# Tests of plain-scalar filters by `_test_shape` (bounded: a full table starts again).
_TESTS: dict[tuple[Any, ...], Callable[[Mapping[str, Any]], bool]] = {}
_SHAPE_KINDS = frozenset({type(None), bool, int, str})


def _test_shape(query: Mapping[str, Any]) -> tuple[Any, ...] | None:
    # The filter's names, value kinds and values, when every value is a scalar whose kind
    # and value decide its equality test; else None (not cached).
    if type(query) is not dict or len(query) > 8:
        return None
    shape = []
    for name, value in query.items():
        kind = type(value)
        if kind not in _SHAPE_KINDS or type(name) is not str or (kind is str and len(value) > 64):
            return None
        shape.append((name, kind, value))
    return tuple(shape)


# Scalars whose equality `quick_matcher` decides as the matcher (with `Same`) does.
_QUICK_KINDS = frozenset({str, bool, int, float, Int64, ObjectId, datetime, Binary, type(None)})
_NUMBERS = frozenset({int, float, Int64})


def quick_matcher(query: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool | None] | None:
    """A test for filters of equalities (`{f: v}`, `{f: {$eq: v}}`, `{f: {$in: [...]}}` of
    scalars; dotted names through embedded documents, null on top-level names only) and of
    numeric ranges on top-level names (`{f: {$gt: 1, $lte: 9}}`, `$gt`/`$gte`/`$lt`/`$lte`
    of numbers but NaN: a feed's `seq` window) that answers as `filter_applies(prepared(query),
    doc)` does, without mongomock's machinery; None (ask the matcher) for a document where it
    is not sure (an array on a dotted path, an array with null, a value of another kind, a
    ranged field holding anything but a number). None for any other filter."""
    conditions = []
    ranges: list[tuple[str, tuple[tuple[Any, Any], ...]]] = []
    for key, value in query.items():
        if type(key) is not str or not key or key[0] == "$":
            return None
        if type(value) in _QUICK_KINDS and "." not in key and not key.isdigit():
            # The common case (a top-level field equal to a scalar), decided without the
            # general loop below: the same condition it builds.
            conditions.append(([key], frozenset((_quick_key(value),)), value is None))
            continue
        if type(value) is dict and value and "." not in key and not key.isdigit():
            checks = numeric_ranges(value)
            if checks is not None:
                ranges.append((key, checks))
                continue
        path = key.split(".")
        if any(not part or part.isdigit() for part in path):
            return None
        literals: Any = [value]
        if type(value) is dict:
            if len(value) != 1:
                return None
            op, arg = next(iter(value.items()))
            if op == "$in" and type(arg) is list:
                literals = arg
            elif op == "$eq":
                literals = [arg]
            else:
                return None
        if any(type(literal) not in _QUICK_KINDS for literal in literals):
            return None
        if len(path) > 1 and None in literals:
            return None  # `{"a.b": null}` has the engine's own rule (`_dotted_null`)
        keys = frozenset(_quick_key(literal) for literal in literals)
        conditions.append((path, keys, None in literals))
    if ranges:
        return functools.partial(_quick_ranged, tuple(ranges), conditions)
    return functools.partial(_quick, conditions)


def _quick_ranged(
    ranges: tuple[tuple[str, tuple[tuple[Any, Any], ...]], ...],
    conditions: list[tuple[list[str], frozenset[tuple[Any, ...]], bool]],
    doc: Mapping[str, Any],
) -> bool | None:
    # mongomock compares a number with a number by value and a missing field or null with a
    # number as unequal types: no match (as `_range_test`). A NaN value compares false with
    # every bound. Arrays and other kinds (booleans, Decimal128, which mongomock refuses to
    # order) go to the matcher, looked for first: no early "no" where the matcher raises.
    values = [doc.get(name) for name, _ in ranges]
    for value in values:
        if value is not None and type(value) not in _NUMBERS:
            return None
    for (_, checks), value in zip(ranges, values, strict=True):
        if value is None:
            return False
        for compare, bound in checks:
            if not compare(value, bound):
                return False
    return _quick(conditions, doc) if conditions else True


def _quick_key(value: Any) -> tuple[Any, ...]:
    # Equal for values MongoDB's equality calls equal: numbers by value across int, float
    # and Int64 (NaN equals NaN), a boolean never a number, other kinds by kind and value.
    kind = type(value)
    if kind in _NUMBERS:
        return ("NaN",) if value != value else (0, value)
    return (kind, value)


def _quick(
    conditions: list[tuple[list[str], frozenset[tuple[Any, ...]], bool]], doc: Mapping[str, Any]
) -> bool | None:
    for path, keys, null in conditions:
        value: Any = doc
        for part in path:
            if isinstance(value, dict):
                value = value.get(part, _MISSING)
            elif value is _MISSING:
                break
            elif type(value) is list:
                return None  # through an array: the matcher's rules
            else:
                value = _MISSING  # below a scalar: nothing there
                break
        if value is _MISSING:
            if not null:
                return False
            continue
        kind = type(value)
        if kind is list:
            if null:
                return None
            found = False
            for element in value:
                hit = _quick_equal(element, keys)
                if hit is None:
                    return None
                found = found or hit
            if not found:
                return False
            continue
        hit = _quick_equal(value, keys)
        if not hit:
            return hit
    return True


def _quick_equal(value: Any, keys: frozenset[tuple[Any, ...]]) -> bool | None:
    # Whether a scalar equals one of the literals (see `_quick_key`); None for a value of a
    # kind not decided here.
    if type(value) not in _QUICK_KINDS:
        return None
    return _quick_key(value) in keys


_EQUALITY_OPERATORS = frozenset({"$eq", "$ne"})
_MEMBERSHIP_OPERATORS = frozenset({"$in", "$nin", "$all"})
_FILTER_OPERATORS = frozenset({"$elemMatch", "$not"})


def prepared(query: Any) -> Any:
    """A filter ready for mongomock's matcher with MongoDB's meaning and speed.

    Equality operands compare within their BSON kind (`Same`), and `$in`/`$nin` arrays
    become `InList`s with a hash set.
    """
    if not isinstance(query, dict):
        return query
    out: dict[str, Any] = {}
    extra: list[dict[str, Any]] = []
    for key, value in query.items():
        if key in ("$and", "$or", "$nor") and isinstance(value, list):
            out[key] = [prepared(part) for part in value]
        elif key.startswith("$"):
            out[key] = value  # $expr, $where, $comment...: left as given
        elif isinstance(value, dict) and value and all(k.startswith("$") for k in value):
            out[key] = _operators(value)
        else:
            out[key] = _operand(value)
        null = _null_condition(key, value)
        if null is not None:
            extra.append(_dotted_null(key, {key: out.pop(key)}, positive=null))
    if extra:
        return {"$and": [out, *extra] if out else extra}
    return out


def _null_condition(key: str, value: Any) -> bool | None:
    # True for `{"a.b": null}` (or `$eq: null`, `$in: [null, ...]`), False for `$ne: null`
    # or `$nin: [null, ...]`, None for anything else (or a path with array positions).
    if key.startswith("$") or "." not in key or any(p.isdigit() for p in key.split(".")):
        return None
    if value is None:
        return True
    if not isinstance(value, dict) or len(value) != 1:
        return None
    op, arg = next(iter(value.items()))
    if op in ("$eq", "$ne") and arg is None:
        return op == "$eq"
    if op in ("$in", "$nin") and isinstance(arg, list) and None in arg:
        return op == "$in"
    return None


def _dotted_null(key: str, condition: dict[str, Any], *, positive: bool) -> dict[str, Any]:
    """MongoDB's `{"a.b": null}`: also true where a prefix of the path holds a scalar.

    mongomock finds no value below a scalar and so no match; MongoDB matches `{a: 4}` and
    `{a: null}` (jstests/core/query/null_query_semantics.js, testDottedEqualsNull), and
    `$ne: null` is its negation. Arrays keep mongomock's answer, which is MongoDB's
    (jstests/core/null2.js: `[]` and arrays of scalars do not match).
    """
    parts = key.split(".")
    scalar = {
        "$or": [
            {
                "$and": [
                    {prefix: {"$exists": True}},
                    {prefix: {"$not": {"$type": "object"}}},
                    {prefix: {"$not": {"$type": "array"}}},
                ]
            }
            for prefix in (".".join(parts[:n]) for n in range(1, len(parts)))
        ]
    }
    if positive:
        return {"$or": [condition, scalar]}
    return {"$and": [condition, {"$nor": [scalar]}]}


def _operators(ops: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for op, arg in ops.items():
        if op in _EQUALITY_OPERATORS:
            out[op] = _operand(arg)
        elif op in _MEMBERSHIP_OPERATORS and isinstance(arg, list):
            members = [_operand(v) for v in arg]
            out[op] = InList(members) if op != "$all" else members
        elif op in _FILTER_OPERATORS and isinstance(arg, dict):
            out[op] = prepared(arg) if not all(k.startswith("$") for k in arg) else _operators(arg)
        else:
            out[op] = arg
    return out


def _operand(value: Any) -> Any:
    # Embedded documents and arrays compare element by element: wrap inside them too.
    if isinstance(value, bool | int | float):
        return Same(value)
    if isinstance(value, dict):
        return {k: _operand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_operand(v) for v in value]
    return value


# mongomock's `$max`/`$min` compare with Python's `max`/`min`, which fail on null and mixed
# types; MongoDB compares in BSON order (null below every date).
_EXTREMA = {
    "$max": _extremum(lambda new, old: new > old),
    "$min": _extremum(lambda new, old: new < old),
}


# How mongomock's update refuses a changed `_id` (the server answers with code 66).
_ALTERED_ID = "After applying the update, the (immutable) field '_id'"


def _id_altered(message: str) -> WriteError:
    """The server's refusal of an update that changes a document's `_id`."""
    return WriteError(message, code=66, details={"codeName": "ImmutableField"})


class WorkingCopy(dict):  # type: ignore[type-arg]
    """A stored document decoded for an update, remembering the BSON it came from.

    mongomock snapshots each document it updates with `copy.deepcopy` (to detect a change and
    to roll back): decoding the original BSON again is the same copy, many times faster.
    """

    __slots__ = ("raw", "snapshot")
    raw: bytes
    snapshot: dict[str, Any] | None

    @classmethod
    def of(cls, raw: bytes) -> WorkingCopy:
        copy = cls(codec.to_canonical(raw))
        copy.raw = raw
        copy.snapshot = None
        return copy

    def __deepcopy__(self, memo: Any) -> dict[str, Any]:
        # Kept: it is the stored version `_ensure_uniques` compares with (never mutated:
        # mongomock only compares it, or stores it back to roll a failed update back).
        self.snapshot = codec.to_canonical(self.raw)
        return _Snapshot(self.snapshot)

    # mongomock decides "modified" with `!=` against its snapshot: Python's equality says
    # `1 == True == 1.0`, BSON does not (an update from 1 to true must be stored).
    def __eq__(self, other: object) -> bool:
        return identical(self, other)

    def __ne__(self, other: object) -> bool:
        return not identical(self, other)

    __hash__ = None  # type: ignore[assignment]


class _Snapshot(dict):  # type: ignore[type-arg]
    """A working copy's stored version as mongomock holds it: its `_id` compares as BSON.

    mongomock refuses an update when `snapshot.get("_id") != doc.get("_id")`; the server
    when the new `_id` compares unequal to the old in BSON order (where NaN equals NaN and
    1 equals 1.0). With Python's `!=`, an `_id` holding NaN (a copy's NaN is another float)
    was "altered" by any update.
    """

    __slots__ = ()

    def get(self, key: Any, default: Any = None) -> Any:
        value = dict.get(self, key, default)
        return _ComparedAsBson(value) if key == "_id" else value


class _ComparedAsBson:
    """A value whose `==` and `!=` are BSON comparison's, for the other side's `!=`."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return sort_key(self.value) == sort_key(other)

    def __ne__(self, other: object) -> bool:
        return sort_key(self.value) != sort_key(other)

    __hash__ = None  # type: ignore[assignment]


def identical(a: Any, b: Any) -> bool:
    """Whether two canonical values are the same BSON (type, value and field order)."""
    if isinstance(a, dict):
        if not isinstance(b, dict):
            return False
        if not dict.__eq__(a, b) and not _has_nan(a):
            return False  # unequal in Python: unequal in BSON too, unless NaN (!= itself)
        return codec.encode(a) == codec.encode(b)  # equal in Python; the same BSON too?
    if isinstance(a, list):
        if not isinstance(b, list) or (not list.__eq__(a, b) and not _has_nan(a)):
            return False
        return codec.encode({"v": a}) == codec.encode({"v": b})
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and a != a:
        return b != b  # NaN is NaN
    return bool(a == b)


def _has_nan(value: Any) -> bool:
    # Anywhere: a NaN inside an embedded document or array makes it unequal to its copy too.
    if type(value) is float:
        return value != value
    if isinstance(value, dict):  # a WorkingCopy too
        return any(_has_nan(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_nan(v) for v in value)
    return False


class EngineClient:
    """A server: databases by name. mongomock's update code asks it for `server_info()`."""

    _ids = itertools.count()

    def __init__(self) -> None:
        self._id = next(self._ids)
        self.databases: dict[str, EngineDatabase] = {}
        self.recorder = Recorder()  # the write-ahead log's entry point (snapshot.py attaches it)
        # Guards `databases` and each database's `stores`: the event loop creates databases
        # (EmbeddedDatabase) while the worker may be iterating them for a snapshot.
        self.lock = threading.Lock()

    def database(self, name: str) -> EngineDatabase:
        """The database of this name (created on first use, as MongoDB does)."""
        with self.lock:
            if name not in self.databases:
                self.databases[name] = EngineDatabase(self, name)
            return self.databases[name]

    def drop_database(self, name: str) -> bool:
        """Drop a database with all its collections; whether there was one."""
        with self.lock:
            dropped = self.databases.pop(name, None)
        if dropped is not None:
            self.recorder(wal.DROP_DATABASE, name, "")
        return dropped is not None

    def sweep(self, now: datetime) -> int:
        """Delete expired documents in every collection with a TTL index (insert-only ones too)."""
        with self.lock:
            stores = [s for db in self.databases.values() for s in db.stores.values()]
        return sum(store.sweep(now) for store in stores)

    def server_info(self) -> dict[str, Any]:
        """What `buildInfo` answers."""
        parts = [int(p) for p in SERVER_VERSION.split(".")]
        return {
            "version": SERVER_VERSION,
            "versionArray": [*parts, 0],
            "maxBsonObjectSize": codec.MAX_BSON_SIZE,
            "ok": 1.0,
        }


class EngineStore(CollectionStore):
    """A collection store whose partial indexes cover documents as a query would match them.

    Indexes reach the store through `create_index` or a snapshot's `load`; both give each
    partial index `partial_matcher` (arrays included).
    """

    @property
    def fast_paths(self) -> bool:
        """The store's fast paths follow the engine's (`FAST_PATHS`)."""
        return FAST_PATHS

    def create_index(self, index: Index) -> None:
        """Build an index (see CollectionStore.create_index)."""
        if index.partial is not None:
            index._applies = partial_matcher(index.partial)
        super().create_index(index)

    def load(self, raws: list[bytes], indexes: list[Index]) -> None:
        """Fill an empty store from a snapshot (see CollectionStore.load), partial indexes
        covering documents with `partial_matcher` as `create_index` does."""
        for index in indexes:
            if index.partial is not None:
                index._applies = partial_matcher(index.partial)
        super().load(raws, indexes)


class EngineDatabase:
    """A database: collection stores by name."""

    def __init__(self, client: EngineClient, name: str) -> None:
        self.client = client
        self.name = name
        self.stores: dict[str, CollectionStore] = {}
        self._collections: dict[str, EngineCollection] = {}

    def store(self, name: str) -> CollectionStore:
        """The store of a collection (created empty on first use)."""
        store = self.stores.get(name)
        if store is None:
            with self.client.lock:
                store = self.stores.setdefault(
                    name, EngineStore(name, self.name, self.client.recorder)
                )
        return store

    def get_collection(self, name: str, **_: Any) -> EngineCollection:
        """A collection (mongomock's aggregation stages look `$lookup` targets up here)."""
        if not name or "$" in name or name.startswith(".") or name.endswith("."):
            raise InvalidName(f"collection names must not be empty or contain '$': {name!r}")
        if name not in self._collections:
            self._collections[name] = EngineCollection(self, name)
        return self._collections[name]

    __getitem__ = get_collection

    def list_collection_names(self) -> list[str]:
        """Collections that exist (hold documents, indexes, or were created)."""
        return [n for n, s in self.stores.items() if s.created and not n.startswith("system.")]

    def create_collection(self, name: str) -> None:
        """Create an empty collection; CollectionInvalid if it exists."""
        if name in self.list_collection_names():
            raise CollectionInvalid(f"collection {name} already exists")
        self.store(name).mark_created()

    def drop_collection(self, name: str) -> None:
        """Remove a collection with its documents and indexes."""
        if name in self.stores:
            self.stores[name].drop()


class EngineCollection(mm.Collection):  # type: ignore[misc]
    """One collection: mongomock's semantics over `CollectionStore`."""

    def __init__(self, database: EngineDatabase, name: str) -> None:
        super().__init__(database, name, _db_store=None)

    _held: CollectionStore | None = None

    @property
    def _store(self) -> CollectionStore:  # type: ignore[override]
        # Looked up once: a database keeps a collection's store for good (a drop empties
        # it in place), and every write asks for it several times.
        store = self._held
        if store is None:
            store = self._held = self.database.store(self.name)
        return store

    # -- the hooks mongomock's update code calls ------------------------------------------

    def _apply_update_document(
        self, existing_document: Any, spec: Any, document: Mapping[str, Any], was_insert: bool
    ) -> None:
        # A replacement as the server makes it; `$max`/`$min` in BSON order; every other
        # operator as mongomock applies it.
        if not document or not next(iter(document)).startswith("$"):
            self._replace_whole(existing_document, document)
            return
        rest = {k: v for k, v in document.items() if k not in _EXTREMA}
        for name, fields in document.items():
            if name in _EXTREMA:
                self._update_document_fields_with_positional_awareness(
                    existing_document, fields, spec, _EXTREMA[name], None
                )
        if rest:
            super()._apply_update_document(existing_document, spec, rest, was_insert)

    def _replace_whole(self, existing: dict[str, Any], replacement: Mapping[str, Any]) -> None:
        # The stored `_id` stays (first), or the replacement's where it compares equal to it
        # in BSON order; any other is refused with code 66. (mongomock took the filter's `_id`
        # over the stored one, 1.0 for 1, dropped a null or falsy one, and compared with
        # Python's `!=`, which NaN never passes.)
        for key in replacement:
            if key.startswith("$"):  # mongomock's answer to a mix of fields and operators
                raise ValueError(f"field names cannot start with $ [{key}]")
        kept = existing["_id"]
        if "_id" in replacement:
            given = replacement["_id"]
            if sort_key(codec.canonical_value(given)) != sort_key(kept):
                raise _id_altered(f"{_ALTERED_ID} was found to have been altered to _id: {given!r}")
            kept = given
        existing.clear()
        existing["_id"] = kept
        existing.update(
            self._internalize_dict({k: v for k, v in replacement.items() if k != "_id"})
        )

    def _iter_documents(self, filter: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
        candidates, test = self._update_candidates(filter)
        docs = (WorkingCopy.of(raw) for raw, _ in candidates)
        return docs if test is None else (doc for doc in docs if test(doc))

    def _update_candidates(
        self, filter: Mapping[str, Any]
    ) -> tuple[list[tuple[bytes, Any]], Callable[[Mapping[str, Any]], bool] | None]:
        # Fixed before the update starts changing (and re-indexing) them; with their test.
        if FAST_PATHS and work.current() is None:
            # A point update by `_id` (a sequencer's) with no one counting the work: the
            # document `_id_lookup`'s plan would find, without making the plan.
            self._expire()
            key = point_key(self._store, filter)
            if key is not None:
                stored = self._store.get(key)
                found = [] if stored is None else [stored]
                return found, candidate_test(filter, len(filter) == 1, "_id")
        with work.operation(self.name, "update"):
            chosen = self._plan(filter)
            candidates = list(chosen.candidates)
            work.docs(len(candidates))
        return candidates, candidate_test(filter, chosen.exact, chosen.decided)

    def _update(self, spec: Any, document: Any, upsert: bool = False, **kwargs: Any) -> Any:
        if FAST_PATHS and not upsert and isinstance(spec, dict):
            simple = _simple_update(document, kwargs)
            if simple is not None:
                return self._update_simply(spec, *simple, multi=bool(kwargs.get("multi")))
        # The top-level fields an operator update names (every one it may change), for
        # `_ensure_uniques`; None for a replacement or a pipeline.
        self._touching = _touched(document)
        try:
            return super()._update(spec, document, upsert, **kwargs)
        except WriteError as exc:
            if exc.code is None and str(exc).startswith(_ALTERED_ID):
                raise _id_altered(str(exc)) from None  # mongomock's, without the server's code
            raise
        finally:
            self._touching = None

    _touching: frozenset[str] | None = None

    def _update_simply(
        self, spec: dict[str, Any], sets: dict[str, Any], unsets: list[str], *, multi: bool
    ) -> dict[str, Any]:
        """`$set`/`$unset` of top-level fields (see `_simple_update`), without mongomock's
        per-document deep copy, positional walk and comparison: each candidate is changed
        and stored when its BSON changed (MongoDB's "modified"). Where the filter and the
        indexes the update touches name only top-level fields (`_Splice`), the stored BSON
        is spliced element by element and only those fields are decoded; otherwise each
        candidate is decoded whole, changed in place and encoded again."""
        spec = _patched(spec)  # as mongomock's `_update` does first
        store = self._store
        candidates, test = self._update_candidates(spec)
        touched = frozenset(sets).union(unsets)
        keyed: dict[str, Any] | None = None  # what the indexes key of the values they watch
        splice = _Splice.of(spec, sets, unsets, store, test is not None)
        matched = modified = 0
        for raw, _ in candidates:
            spliced = splice.apply(raw) if splice is not None else None
            if spliced is not None:
                doc, new_raw = spliced
            else:
                doc = codec.to_canonical(raw)
            if test is not None and not test(doc):
                continue
            matched += 1
            if spliced is None:
                for name in unsets:
                    doc.pop(name, None)
                doc.update(sets)  # existing fields keep their place, new ones are appended
                new_raw = codec.updated(doc)
            if new_raw != raw:
                if keyed is None:
                    # The indexes key what is stored (a value as its BSON holds it), as in
                    # `_ensure_uniques`: once per update, every document gets the same values.
                    watched = touched & _watched(store)
                    keyed = {
                        name: codec.canonical_value(value)
                        for name, value in sets.items()
                        if name in watched and not _canonical_as_is(value)
                    }
                if spliced is not None:
                    for name in unsets:
                        doc.pop(name, None)
                    doc.update(sets)
                doc.update(keyed)
                store.replace(
                    sort_key(doc["_id"]),
                    doc,
                    codec.checked_update(new_raw),
                    touched,
                    whole=spliced is None or splice is None or splice.whole,
                )
                modified += 1
            if not multi:
                break
        return {
            "connectionId": self.database.client._id,
            "err": None,
            "n": matched,
            "nModified": modified,
            "ok": 1,
            "upserted": None,
            "updatedExisting": matched > 0,
        }

    def _ensure_uniques(self, new_data: dict[str, Any]) -> None:
        # Called after an update changed its copy of a document: store it (re-indexed).
        raw = codec.updated(new_data)
        key = sort_key(new_data["_id"])
        if not isinstance(new_data, WorkingCopy):
            self._store.replace(key, codec.to_canonical(raw), raw)
            return
        watched = frozenset().union(*(i.watched for i in self._store.indexes.values()))
        if self._touching is not None:
            # An operator update changes no field it does not name: the indexes watching
            # none of those keep their entries (`replace` still compares the others').
            changed = self._touching
        else:
            old = new_data.snapshot
            if old is None:
                old = codec.to_canonical(new_data.raw)
            # Python's `!=` first (fast); an indexed field Python calls equal may still have
            # changed its BSON kind (1 -> true), which its index entry must follow.
            changed = frozenset(
                k
                for k in old.keys() | new_data.keys()
                if old.get(k, _MISSING) != new_data.get(k, _MISSING)
                or (k in watched and not identical(old.get(k, _MISSING), new_data.get(k, _MISSING)))
            )
        # The indexes key what is stored: a changed value as its BSON holds it (an update's
        # datetime loses its microseconds); the others were decoded from the stored BSON.
        doc = dict(new_data)
        for field in changed & watched:
            if field in doc:
                doc[field] = codec.canonical_value(doc[field])
        self._store.replace(key, doc, raw, changed)

    def _insert(self, data: Any, session: Any = None, ordered: bool = True) -> Any:
        _no_session(session)
        if isinstance(data, dict):
            if "_id" not in data:
                data["_id"] = ObjectId()
            check_id(data)
            raw, indexed = self.storable(data)
            self._store.insert(codec.to_canonical(raw) if indexed is None else indexed[1], raw)
            return data["_id"]
        return self._insert_many(list(data), ordered)

    def _insert_many(self, docs: list[dict[str, Any]], ordered: bool) -> list[Any]:
        for doc in docs:
            if "_id" not in doc:  # (not `setdefault`: an id is made only when one is missing)
                doc["_id"] = ObjectId()
        stored = [self.storable(doc) for doc in docs]  # DocumentTooLarge before any write
        errors: list[dict[str, Any]] = []
        inserted = 0
        for index, (raw, indexed) in enumerate(stored):
            if self.insert_stored(raw, index, errors, indexed):
                inserted += 1
            elif ordered:
                break
        if errors:
            raise BulkWriteError(_bulk_details(errors, n_inserted=inserted))
        return [d["_id"] for d in docs]

    def storable(self, doc: Any) -> tuple[bytes, Indexed | None]:
        """A document to insert: its BSON (DocumentTooLarge above 16 MiB) and, when they can
        be had without decoding it, the fields the indexes read in their stored form (see
        `codec.canonical_fields`; taken now: a later change of `doc` is not stored), with
        the version of the index set they are for."""
        raw = codec.storable(doc)
        if not FAST_PATHS:
            return raw, None
        version, names = self._store.indexed_fields()
        fields = None if names is None else codec.canonical_fields(doc, names)
        return raw, None if fields is None else (version, fields)

    def insert_stored(
        self, raw: bytes, index: int, errors: list[dict[str, Any]], indexed: Indexed | None = None
    ) -> bool:
        """Insert the `index`-th encoded document of a batch; False (its error appended to
        `errors`, keyed by `index`) when it was refused. `indexed`: see `storable` (unused
        when the indexes changed since)."""
        # Decoded one at a time: a batch of decoded documents held at once kept the cyclic GC
        # busy walking them (bytes are not tracked).
        if indexed is not None and indexed[0] != self._store.index_version:
            indexed = None
        doc = codec.to_canonical(raw) if indexed is None else indexed[1]
        try:
            check_id(doc)
            self._store.insert(doc, raw)
        except WriteError as exc:
            op = doc if indexed is None else codec.to_canonical(raw)
            errors.append({**(exc.details or {}), "index": index, "code": exc.code, "op": op})
            return False
        return True

    # -- reads ----------------------------------------------------------------------------

    def _plan(
        self,
        filter: Mapping[str, Any],
        sort: Sort = (),
        wanted: int | None = None,
        *,
        reading: bool = False,
    ) -> Plan:
        # `reading`: a find or count, which lists every match before returning any: a range
        # the walk's entries decide may then be exact (`planner._range_test`), its odd
        # documents tested as they are walked. A writer's candidates stay a superset, each
        # tested as it is changed (mongomock's order: what a failing test leaves changed).
        self._expire()
        recheck = functools.partial(_recheck, filter) if reading and FAST_PATHS else None
        return plan(self._store, filter, sort, wanted, recheck)

    def matching(
        self,
        filter: Mapping[str, Any],
        *,
        sort: Sort = (),
        skip: int = 0,
        limit: int = 0,
        keep: bool = True,
    ) -> list[tuple[bytes, dict[str, Any] | None]]:
        """The matching documents, sorted and sliced: `(raw, decoded)` pairs.

        With `keep=False` the decoded documents are not kept (`None`): a long result then
        holds only the stored bytes, which a cursor decodes batch by batch. A `$nearSphere`
        condition orders by distance (see geo.py).
        """
        with work.operation(self.name, "find"):
            found = self._matching(filter, sort=sort, skip=skip, limit=limit, keep=keep)
            work.returned(len(found))
        return found

    def _matching(
        self, filter: Mapping[str, Any], *, sort: Sort, skip: int, limit: int, keep: bool
    ) -> list[tuple[bytes, dict[str, Any] | None]]:
        near, rest = geo.split_near(filter)
        if near is not None:
            return self._matching_near(near, rest, sort=sort, skip=skip, limit=limit, keep=keep)
        wanted = skip + limit if limit else None
        chosen = self._plan(filter, sort, wanted, reading=True)
        # An exact plan's candidates all match: decoded only to be returned or sorted.
        test = candidate_test(filter, chosen.exact, chosen.decided)
        sorting = bool(sort) and not chosen.ordered
        found: list[tuple[bytes, dict[str, Any] | None]] = []
        order: list[tuple[Any, ...]] = []
        if chosen.exact and not keep and not sorting:
            # The index bounds decided the filter: no candidate needs decoding to check it.
            for raw, _ in chosen.candidates:
                found.append((raw, None))
                if wanted is not None and len(found) >= wanted:
                    break
            if not work.counting():
                work.docs(len(found))  # fetched to be returned (a count reads keys only)
            return found[skip : skip + limit] if limit else found[skip:]
        examined = 0
        # Not kept: only the fields the test and the sort read are decoded (see `_read_by`).
        names = None if keep or not FAST_PATHS else _read_by(filter, sort if sorting else ())
        for seen, (raw, _) in enumerate(chosen.candidates):
            if not seen & 255:
                check_deadline()
            examined += 1
            part = None if names is None else codec.subset(raw, names)
            doc = codec.to_canonical(raw if part is None else part)
            if test is not None and not test(doc):
                continue
            found.append((raw, doc if keep else None))
            if sorting:
                order.append(tuple(sort_value(doc, f, d < 0) for f, d in sort))
            elif wanted is not None and len(found) >= wanted:
                break
        work.docs(examined)
        if sorting:
            work.sorted_in_memory(len(found))
            found = [pair for _, pair in sorted(zip(order, found, strict=True), key=_by(sort))]
        return found[skip : skip + limit] if limit else found[skip:]

    def _matching_near(
        self,
        near: geo.Near,
        filter: Mapping[str, Any],
        *,
        sort: Sort,
        skip: int,
        limit: int,
        keep: bool,
    ) -> list[tuple[bytes, dict[str, Any] | None]]:
        # Nearest first, ties by `_id` (a server leaves their order open), unless an explicit
        # sort overrides the order, as on a server. The candidates come from the 2dsphere
        # index's rings (`_near_walk`) when its leading fields have equality bounds, else from
        # the rest of the filter's plan (every candidate is measured).
        geo.require_index(self._store.indexes.values(), near.field)
        wanted = skip + limit if limit and not sort else None
        rows = self._near_walk(near, filter, wanted)
        if rows is None:
            rows = []
            for raw, doc in self.matching(filter):
                assert doc is not None
                distance = near.distance(doc)
                if distance is not None and near.admits(distance):
                    rows.append((distance, sort_key(doc["_id"]), raw, doc))
        rows.sort(key=lambda row: row[:2])
        work.sorted_in_memory(len(rows))
        found = [(raw, doc) for _, _, raw, doc in rows]
        if sort:
            order = [tuple(sort_value(doc, f, d < 0) for f, d in sort) for _, doc in found]
            found = [pair for _, pair in sorted(zip(order, found, strict=True), key=_by(sort))]
        found = found[skip : skip + limit] if limit else found[skip:]
        return [(raw, doc if keep else None) for raw, doc in found]

    def _near_walk(
        self, near: geo.Near, filter: Mapping[str, Any], wanted: int | None
    ) -> list[tuple[float, Any, bytes, dict[str, Any]]] | None:
        """The band's matches found ring by ring through the 2dsphere index (see geo.py).

        Each ring is as wide as the density found so far says `wanted` needs (at most twice
        the distance walked); the cells of its cap not read before are read
        (keys examined), and a key's document is fetched once its cell may lie inside the cap
        and the band. The walk stops when `wanted` matches lie inside the finished cap (none
        outside can come before them) or the band is covered; the rows returned are the
        matches inside that cap. None when no index has equality bounds before its geo field.
        """
        index = next(
            (i for i in self._store.indexes.values() if near.field in i.geo and not i.multikey),
            None,
        )
        if index is None:
            return None
        conj = planner_analyse(filter)
        prefixes: list[list[tuple[Any, ...]]] = []
        for name in index.fields[: index.fields.index(near.field)]:
            bounds = conj.fields.get(name)
            points = None if bounds is None else bounds.points_for(index)
            if points is None:
                return None
            prefixes.append(points)
        combos = list(itertools.product(*prefixes))
        if len(combos) > 64:
            return None
        query = prepared(filter)
        store, centre, slack = self._store, near.centre, geo.CELL_SLACK_M
        done: geo.Ranges = []
        pending: list[tuple[float, Any]] = []  # (cell distance, id key) not yet fetched
        rows: list[tuple[float, Any, bytes, dict[str, Any]]] = []
        step = 100.0  # metres: the first ring's width (then doubled)
        outer = near.min_m
        while True:
            check_deadline()
            outer = min(outer + step, near.max_m, geo.HALF_EARTH_M)
            ranges = geo.subtract(geo.cover(centre, outer), done)
            done = geo.union(done, ranges)
            depth = len(prefixes)
            for combo in combos:
                for low, high in ranges:
                    lo, hi = (*combo, (2, low)), (*combo, (2, high), HIGHEST)
                    entries = list(index.entries.irange(lo, hi))
                    work.keys(len(entries))
                    for entry in entries:
                        approx = geo.cell_distance(centre, entry[depth][1])
                        if near.min_m - slack <= approx <= near.max_m + slack:
                            pending.append((approx, entry[-1]))
            last = outer >= near.max_m or outer >= geo.HALF_EARTH_M
            reach = math.inf if last else outer + slack
            later: list[tuple[float, Any]] = []
            fetched = 0
            for approx, key in pending:
                if approx > reach:
                    later.append((approx, key))
                    continue
                stored = store.get(key)
                if stored is None:
                    continue
                fetched += 1
                doc = codec.to_canonical(stored[0])
                if query and not filter_applies(query, doc):
                    continue
                distance = near.distance(doc)
                if distance is not None and near.admits(distance):
                    rows.append((distance, key, stored[0], doc))
            work.docs(fetched)
            pending = later
            inside = [row for row in rows if row[0] <= outer]
            if last or (wanted is not None and len(inside) >= wanted):
                return rows if last else inside
            # The next ring's width: what the density seen so far says `wanted` needs (a
            # tenth more), between a tenth and all of the distance walked (MongoDB's
            # GEO_NEAR_2DSPHERE also sizes its annuli by the density it finds).
            walked = outer - near.min_m
            if inside and wanted is not None:
                needed = walked * math.sqrt(wanted / len(inside)) * 1.1
                step = min(max(needed - walked, walked / 10), walked)
            else:
                step = walked

    def find(  # type: ignore[override]
        self,
        filter: Mapping[str, Any] | None = None,
        projection: Any = None,
        skip: int = 0,
        limit: int = 0,
        sort: Any = None,
        **_: Any,
    ) -> Iterator[dict[str, Any]]:
        """Private canonical copies (what mongomock's own code and `$lookup` work on)."""
        found = self.matching(filter or {}, sort=sort_spec(sort), skip=skip, limit=limit)
        for _raw, copy in found:
            assert copy is not None
            yield copy if projection is None else self.project(copy, projection)

    def project(self, doc: dict[str, Any], projection: Any) -> dict[str, Any]:
        """A projection of a document, with mongomock's projection rules."""
        if isinstance(projection, list | tuple):
            projection = dict.fromkeys(projection, 1)
        if FAST_PATHS:
            names = _inclusion(projection)
            if names is not None:  # the document's fields in its order, as MongoDB returns them
                return {name: value for name, value in doc.items() if name in names}
            dropped = _exclusion(projection)
            if dropped is not None:
                return {name: value for name, value in doc.items() if name not in dropped}
        return self._copy_only_fields(doc, dict(projection), dict)  # type: ignore[no-any-return]

    def projector(
        self, projection: Any, options: CodecOptions[dict[str, Any]] = codec.READER
    ) -> Callable[[bytes], dict[str, Any]]:
        """A caller's copy of a stored document through `projection`, as
        `codec.reply(self.project(codec.to_canonical(raw), projection), options)` gives it:
        for an inclusion or exclusion of top-level names the stored BSON is decoded once, as
        the client decodes it (an inclusion's kept fields alone). The projection is read
        once, here: a cursor's batch shares the reader."""
        if isinstance(projection, list | tuple):
            projection = dict.fromkeys(projection, 1)
        general = functools.partial(self._read_projected, projection=projection, options=options)
        if not FAST_PATHS:
            return general
        names = _inclusion(projection)
        if names is not None:
            return functools.partial(_read_kept, codec.wanted(names), general, options)
        dropped = _exclusion(projection)
        if dropped is not None:
            return functools.partial(_read_without, dropped, general, options)
        return general

    def _read_projected(
        self, raw: bytes, projection: Any, options: CodecOptions[dict[str, Any]]
    ) -> dict[str, Any]:
        # The general route: the canonical copy projected, encoded and read as the client.
        return codec.reply(self.project(codec.to_canonical(raw), projection), options)

    def count_documents(self, filter: Mapping[str, Any], **kwargs: Any) -> int:  # type: ignore[override]
        """How many documents match (with pymongo's `skip`/`limit`)."""
        geo.refuse_near(filter, "count")  # a server counts through an aggregation `$match`
        skip, limit = int(kwargs.get("skip") or 0), int(kwargs.get("limit") or 0)
        with work.operation(self.name, "count"):
            counted = len(self.matching(filter, skip=skip, limit=limit, keep=False))
            work.returned(1)
        return counted

    def _delete(  # type: ignore[override]
        self,
        filter: Mapping[str, Any],
        collation: Any = None,
        hint: Any = None,  # noqa: ARG002  (pymongo's signature; no index hints here)
        multi: bool = False,
        session: Any = None,
    ) -> dict[str, Any]:
        _no_session(session)
        if collation is not None:
            raise NotImplementedError(NO_COLLATION)
        with work.operation(self.name, "delete"):
            # Not kept: a match is decoded only as far as the filter reads it (not at all on
            # an exact plan), and its key comes from its `_id` alone.
            found = self.matching(filter, limit=0 if multi else 1, keep=False)
        store = self._store
        for raw, _ in found:
            store.delete(store.key_of(raw))
        return {"n": len(found), "ok": 1.0}

    def aggregate(
        self, pipeline: Sequence[Mapping[str, Any]], session: Any = None, **_: Any
    ) -> list[dict[str, Any]]:  # type: ignore[override]
        """Run a pipeline; a leading `$match` (and `$sort`/`$limit`) uses the indexes."""
        _no_session(session)
        with work.operation(self.name, "aggregate"):
            docs = self._aggregate(list(pipeline))
            work.returned(len(docs))
        return docs

    def _aggregate(self, stages: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        match: Mapping[str, Any] = {}
        for stage in stages:
            geo.refuse_near(stage.get("$match"), "$match")
        if stages and "$match" in stages[0]:
            match = stages.pop(0)["$match"]
        sort: Sort = ()
        limit = 0
        if stages and "$sort" in stages[0]:
            sort = sort_spec(stages[0]["$sort"])
            if len(stages) > 1 and "$limit" in stages[1]:
                limit = int(stages[1]["$limit"])
        docs = [doc for _, doc in self.matching(match, sort=sort, limit=limit) if doc is not None]
        if sort:
            stages.pop(0)
            if limit:
                stages.pop(0)
        for position, stage in enumerate(stages):
            check_deadline()
            if "$match" in stage:
                query = prepared(stage["$match"])
                docs = [doc for doc in docs if filter_applies(query, doc)]
                continue
            if "$sort" in stage:
                work.sorted_in_memory(len(docs))
            if "$group" in stage:  # ours: mongomock's drops values with a missing part
                docs = group(docs, stage["$group"])
            else:
                docs = list(mm.process_pipeline(docs, self.database, [stage], None))
            name = next(iter(stage))
            if name in _GROWING_STAGES and not _unwound_next(stages, position):
                _check_sizes(name, docs)
        return docs

    def distinct(
        self, key: str, filter: Mapping[str, Any] | None = None, session: Any = None
    ) -> list[Any]:  # type: ignore[override]
        """Distinct values of a field among matching documents (arrays contribute elements)."""
        _no_session(session)
        values: dict[tuple[Any, ...], Any] = {}
        for _, doc in self.matching(filter or {}):
            assert doc is not None
            for value in path_values(doc, key):
                if value is EMPTY_ARRAY:
                    value = []
                if value is not None or has_path(doc, key):
                    values.setdefault(sort_key(value), value)
        return list(values.values())

    # -- indexes --------------------------------------------------------------------------

    def create_index(self, keys: Any, session: Any = None, **options: Any) -> str:  # type: ignore[override]
        """Create an index with every option kept (partial filters included)."""
        _no_session(session)
        key_list = _key_list(keys)
        name = options.pop("name", None) or "_".join(f"{k}_{d}" for k, d in key_list)
        kept = {k: v for k, v in options.items() if v is not None and v is not False}
        if "collation" in kept:
            raise NotImplementedError(NO_COLLATION)
        if "partialFilterExpression" in kept:
            kept["partialFilterExpression"] = codec.canonical(kept["partialFilterExpression"])
        _refuse_equivalent(self._store, name, key_list, kept)
        self._store.create_index(Index(name, key_list, kept))
        return name

    def index_information(self, session: Any = None) -> dict[str, dict[str, Any]]:  # type: ignore[override]
        """Indexes by name, as MongoDB describes them."""
        _no_session(session)
        if not self._store.created:
            return {}
        return {name: index.info for name, index in self._store.indexes.items()}

    def drop_index(self, index_or_name: Any, session: Any = None) -> None:  # type: ignore[override]
        """Remove an index by name or key pattern."""
        _no_session(session)
        name = index_or_name
        if not isinstance(index_or_name, str):
            name = "_".join(f"{k}_{d}" for k, d in _key_list(index_or_name))
        self._store.drop_index(name)

    def drop(self, session: Any = None) -> None:  # type: ignore[override]
        """Drop the collection."""
        _no_session(session)
        self.database.drop_collection(self.name)

    # -- TTL ------------------------------------------------------------------------------

    def _expire(self) -> None:
        store = self._store
        if FAST_PATHS:
            # Whether any index has a TTL, looked at once per index set (every op asks).
            shape = ("ttl", store.index_version)
            ttl = store.derived.get(shape)
            if ttl is None:
                ttl = any(i.ttl is not None for i in store.indexes.values())
                if len(store.derived) >= 256:
                    store.derived.clear()
                store.derived[shape] = ttl
            if not ttl:
                return
        elif not any(i.ttl is not None for i in store.indexes.values()):
            return
        store.sweep(datetime.utcnow())


Indexed = tuple[int, dict[str, Any]]
"""A document's fields the indexes read, in stored form, and the index set's version."""

FAST_PATHS = True
"""Whether the engine's own fast paths run (simple updates, inclusion projections); the
differential tests turn them off to compare with mongomock's route."""

# Options of `_update` that leave an update to mongomock when set (it refuses most of them).
_UPDATE_OPTIONS = frozenset({"manipulate", "check_keys", "hint", "session", "collation", "let"})
_PLAIN_OPTIONS = frozenset({"multi"})  # (a bulk write's update passes only this one)
_SIMPLE_OPERATORS = frozenset({"$set", "$unset"})
_INT64 = (-(2**63), 2**63)
_PLAIN_KINDS = frozenset(
    {str, bool, float, type(None), ObjectId, Binary, bytes, Decimal128, Int64, int, datetime}
)


def _watched(store: CollectionStore) -> frozenset[str]:
    """Every top-level field some index of `store` watches, once per index set."""
    shape = ("watched", store.index_version)
    found: frozenset[str] | None = store.derived.get(shape)
    if found is None:
        found = frozenset().union(*(i.watched for i in store.indexes.values()))
        if len(store.derived) >= 256:
            store.derived.clear()
        store.derived[shape] = found
    return found


# Values `mm.patch_datetimes` returns as they are (no datetime, Timestamp or container).
_UNPATCHED = frozenset({str, bool, int, float, Int64, ObjectId, Binary, bytes, type(None)})


def _patched(spec: dict[str, Any]) -> dict[str, Any]:
    """`mm.patch_datetimes(spec)`: a flat filter of plain scalars (the sequencer's `{_id,
    seq: null}`) is copied as it is, without mongomock's recursive walk."""
    if FAST_PATHS and type(spec) is dict:
        for value in spec.values():
            if type(value) not in _UNPATCHED:
                break
        else:
            return dict(spec)
    return mm.patch_datetimes(spec)  # type: ignore[no-any-return]


def _simple_update(
    document: Any, options: Mapping[str, Any]
) -> tuple[dict[str, Any], list[str]] | None:
    """`(sets, unsets)` for an update the fast path does exactly as mongomock would: only
    `$set`/`$unset`, each non-empty, of top-level names (not `_id`, no dot, no `$`, no NUL,
    not empty, no name under both), `$set` values of plain BSON kinds (datetimes naive at
    millisecond precision, no tuples or Timestamps, which mongomock's `_update` rewrites).
    None for anything else, which stays on mongomock's route."""
    if type(document) is not dict or not document or not document.keys() <= _SIMPLE_OPERATORS:
        return None
    if options.keys() - _PLAIN_OPTIONS and (
        any(options.get(name) for name in _UPDATE_OPTIONS) or options.get("array_filters")
    ):
        return None
    sets = document.get("$set", {})
    unset = document.get("$unset", {})
    if type(sets) is not dict or type(unset) is not dict:
        return None
    if ("$set" in document and not sets) or ("$unset" in document and not unset):
        return None
    for name in (*sets, *unset):
        if not _simple_name(name):
            return None
    if not sets.keys().isdisjoint(unset) or not all(_plain(v, 0) for v in sets.values()):
        return None
    return sets, list(unset)


def _splice_fields(
    spec: Mapping[str, Any],
    sets: dict[str, Any],
    unsets: list[str],
    store: CollectionStore,
    tested: bool,
) -> tuple[frozenset[str], dict[bytes, str], bool] | None:
    # The fields a splice decodes (the filter's when the candidates are tested, the touched
    # indexes' or only the unique ones', `_id`), every field it looks for and whether the
    # decoded fields are all the touched indexes read; None when that is not sure.
    needed = {"_id"}
    if tested:
        for name in spec:
            if type(name) is not str or name.startswith("$"):
                return None
            needed.add(name.split(".", 1)[0])
    touched = frozenset(sets).union(unsets)
    watching = [index for index in store.indexes.values() if index.watched & touched]
    for index in watching:
        if any(name.startswith("$") for name in index.watched):
            return None
    # Where every index watching a touched field keys top-level scalars (`Index.pick`), its
    # new entry is its old one with the touched fields' keys put in (`store.replace`, not
    # `whole`): only the fields a unique index's constraint reads are decoded besides.
    whole = any(index.pick is None for index in watching)
    for index in watching:
        if whole or index.unique:
            needed |= index.watched
    looked_for = needed | touched
    return frozenset(needed), {name.encode(): name for name in looked_for}, whole


class _Splice:
    """A simple update applied to stored BSON without decoding it whole.

    The filter's top-level fields (for the candidate test) and those of every index the
    update touches (keys, sparse and partial rules, `_id`; only the unique ones' where every
    touched index keys top-level scalars, whose new entries `store.replace` derives from
    their old ones) are found in the stored BSON (`codec.spans`) and decoded alone; the new
    BSON is the old one with each `$set` field's element replaced in place (or appended, in
    the order named) and each `$unset` field's removed: the bytes `codec.updated` makes of
    the decoded document changed the same way. Only when every name involved is a plain
    top-level field (no `$` operator at the top of the filter or of a partial filter: those
    may read any field).
    """

    __slots__ = ("elements", "needed", "removed", "wanted", "whole")

    def __init__(
        self,
        elements: dict[str, bytes],
        removed: frozenset[str],
        needed: frozenset[str],
        wanted: dict[bytes, str],
        whole: bool,
    ) -> None:
        self.elements = elements  # `$set`: each field's new element
        self.removed = removed  # `$unset`
        self.needed = needed  # decoded for the test and the indexes
        self.wanted = wanted  # every field looked for (see `codec.spans`)
        self.whole = whole  # `needed` holds every field the touched indexes read

    @classmethod
    def of(
        cls,
        spec: Mapping[str, Any],
        sets: dict[str, Any],
        unsets: list[str],
        store: CollectionStore,
        tested: bool,
    ) -> _Splice | None:
        """The splice for this update, or None (decode whole) when it is not sure."""
        if not FAST_PATHS:
            return None
        # What is looked for depends on the update's shape, not its values: worked out once
        # per shape and index set (a sequencer's thousands of `$set: {seq}` share one).
        shape = (store.index_version, tuple(spec) if tested else None, tuple(sets), tuple(unsets))
        found = store.derived.get(shape, _MISSING)
        if found is _MISSING:
            found = _splice_fields(spec, sets, unsets, store, tested)
            if len(store.derived) >= 256:
                store.derived.clear()
            store.derived[shape] = found
        if found is None:
            return None
        elements = {name: codec.element(name, value) for name, value in sets.items()}
        return cls(elements, frozenset(unsets), *found)

    def apply(self, raw: bytes) -> tuple[dict[str, Any], bytes] | None:
        """The needed fields of the stored version (decoded), and the new version's BSON;
        None when the document holds a value of a type `codec.spans` does not walk."""
        spans = codec.spans(raw, self.wanted)
        if spans is None:
            return None
        doc = codec.to_canonical(
            codec.document([raw[a:b] for name, (a, b) in spans.items() if name in self.needed])
        )
        changes = sorted(
            (start, end, name)
            for name, (start, end) in spans.items()
            if name in self.removed or name in self.elements
        )
        parts = []
        position = 4
        for start, end, name in changes:
            parts.append(raw[position:start])
            if name in self.elements:
                parts.append(self.elements[name])
            position = end
        parts.append(raw[position:-1])
        for name, element in self.elements.items():
            if name not in spans:
                parts.append(element)  # a new field: appended in the order named
        return doc, codec.document(parts)


def _read_by(filter: Mapping[str, Any], sort: Sort) -> dict[bytes, str] | None:
    """The top-level fields a filter's test and a sort read (see `codec.wanted`), or None
    when the filter has an operator that may read any field (`$expr`, `$where`...)."""
    names: set[str] = {field.split(".", 1)[0] for field, _ in sort}
    if not _filter_names(filter, names):
        return None
    return codec.wanted(frozenset(names))


def _filter_names(filter: Mapping[str, Any], names: set[str]) -> bool:
    # Adds the top-level names a filter reads (through `$and`/`$or`/`$nor`); False for an
    # operator at the top that may read anything.
    for key, value in filter.items():
        if type(key) is not str:
            return False
        if key in ("$and", "$or", "$nor") and isinstance(value, list):
            if not all(isinstance(part, Mapping) and _filter_names(part, names) for part in value):
                return False
        elif key.startswith("$"):
            return False
        else:
            names.add(key.split(".", 1)[0])
    return True


def _inclusion(projection: Any) -> frozenset[str] | None:
    """The fields an inclusion projection of top-level names keeps (`{f: 1 or True, ...}`,
    `_id` kept unless `_id: 0 or False`); None for anything else (left to mongomock)."""
    if not isinstance(projection, Mapping) or not projection:
        return None
    names = set()
    keep_id = True
    for name, value in projection.items():
        if name == "_id":
            if value is False or (type(value) is int and value == 0):
                keep_id = False
            elif not (value is True or (type(value) is int and value == 1)):
                return None
            continue
        if not _simple_name(name) or not (value is True or (type(value) is int and value == 1)):
            return None
        names.add(name)
    if not names and not keep_id:
        return None  # `{_id: 0}` alone excludes: every other field is kept
    if keep_id:
        names.add("_id")
    return frozenset(names)


def _read_kept(
    names: dict[bytes, str],
    general: Callable[[bytes], dict[str, Any]],
    options: CodecOptions[dict[str, Any]],
    raw: bytes,
) -> dict[str, Any]:
    # An inclusion: the kept fields' BSON alone decoded (`general` for a document `spans`
    # does not walk).
    part = codec.subset(raw, names)
    return general(raw) if part is None else codec.read(part, options)


def _read_without(
    dropped: frozenset[str],
    general: Callable[[bytes], dict[str, Any]],
    options: CodecOptions[dict[str, Any]],
    raw: bytes,
) -> dict[str, Any]:
    # An exclusion: decoded whole, the excluded fields then dropped (the C decoder reads a
    # long string faster than a walk over the elements cuts it out: a lead without its
    # search fields, 40 µs against 55 µs cut first). Where the whole document does not
    # decode as the client decodes it (a bad value may be excluded) or the client wants
    # another document class, the excluded fields' bytes are cut out first.
    if options.document_class is dict:
        with contextlib.suppress(Exception):
            doc = codec.read(raw, options)
            for name in dropped:
                doc.pop(name, None)
            return doc
    part = codec.without(raw, codec.wanted(dropped))
    return general(raw) if part is None else codec.read(part, options)


def _exclusion(projection: Any) -> frozenset[str] | None:
    """The fields an exclusion projection of top-level names drops (`{f: 0 or False, ...}`,
    `_id` among them when `_id: 0 or False`); None for anything else (left to mongomock:
    an `_id: 1` beside exclusions, a dotted path, an operator, another value)."""
    if not isinstance(projection, Mapping) or not projection:
        return None
    names = set()
    for name, value in projection.items():
        if not (value is False or (type(value) is int and value == 0)):
            return None
        if name != "_id" and not _simple_name(name):
            return None
        names.add(name)
    return frozenset(names)


def _simple_name(name: Any) -> bool:
    return (
        type(name) is str
        and name != ""
        and name != "_id"
        and "." not in name
        and not name.startswith("$")
        and "\0" not in name
    )


def _plain(value: Any, depth: int) -> bool:
    kind = type(value)
    if kind is dict:
        return depth < 64 and all(
            type(k) is str and "\0" not in k and _plain(v, depth + 1) for k, v in value.items()
        )
    if kind is list:
        return depth < 64 and all(_plain(v, depth + 1) for v in value)
    if kind is datetime:
        return value.tzinfo is None and value.microsecond % 1000 == 0
    if kind is int:
        return _INT64[0] <= value < _INT64[1]
    return kind in _PLAIN_KINDS


def _canonical_as_is(value: Any) -> bool:
    # A value decoding from its BSON as itself (so an index may key it as given).
    kind = type(value)
    if kind is int:
        return -(2**31) <= value < 2**31  # a larger int comes back as Int64
    return kind in _AS_IS_KINDS


_AS_IS_KINDS = frozenset({str, bool, float, type(None), ObjectId, Int64, Decimal128})


# MongoDB's field update operators: each takes `{path: argument, ...}`.
_PATH_OPERATORS = frozenset(
    {"$currentDate", "$inc", "$min", "$max", "$mul", "$rename", "$set", "$setOnInsert"}
    | {"$unset", "$addToSet", "$pop", "$pull", "$push", "$pullAll", "$bit"}
)


def _touched(update: Any) -> frozenset[str] | None:
    """The top-level fields an operator update document names (`$rename`: both names), or
    None when it is not one (a replacement, a pipeline, an operator not known here)."""
    if not isinstance(update, Mapping) or not update:
        return None
    fields: set[str] = set()
    for operator, args in update.items():
        if operator not in _PATH_OPERATORS or not isinstance(args, Mapping):
            return None
        for path, value in args.items():
            fields.add(str(path).split(".", 1)[0])
            if operator == "$rename":
                if not isinstance(value, str):
                    return None
                fields.add(value.split(".", 1)[0])
    return frozenset(fields)


NO_COLLATION = "the embedded backend has no collations (it compares strings by code point)"


def _refuse_equivalent(
    store: CollectionStore, name: str, keys: list[tuple[str, Any]], options: dict[str, Any]
) -> None:
    # MongoDB: one key pattern (with one partial filter) makes one index; asking for it again
    # under another name, or under the same name with other options, is IndexOptionsConflict.
    for other in store.indexes.values():
        if other.keys != keys:
            continue
        if other.options.get("partialFilterExpression") != options.get("partialFilterExpression"):
            continue  # MongoDB allows one key pattern with different partial filters
        if other.name == name and other.options == options:
            return  # the same index again: nothing to do
        if other.name != name:
            message = f"Index already exists with a different name: {other.name}"
        else:
            message = f"An existing index has the same name as the requested index: {name}"
        raise OperationFailure(message, code=85, details={"codeName": "IndexOptionsConflict"})


def partial_matcher(expr: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], bool]:
    """Whether a document is covered by a partial filter, with MongoDB's array semantics.

    The common shapes (`{f: literal}` for a boolean, string or null, `{f: {"$type": t}}`,
    `{f: {"$gt": number}}` and the other ranges on a number or a missing field) are tested
    directly; an array value matches when one of its elements does, as a query would
    (`{f: {$type: "string"}}` covers `{f: ["x", 1]}`). Anything else goes to the matcher.
    """
    checks: list[Callable[[Mapping[str, Any]], bool]] = []
    for name, spec in expr.items():
        if "." in name or name.startswith("$"):
            break
        ranged = _numeric_range(spec)
        if ranged is not None:
            matcher = prepared({name: spec})
            checks.append(functools.partial(_range_test, name, *ranged, matcher))
        elif isinstance(spec, Mapping) and len(spec) == 1 and "$type" in spec:
            test = _TYPE_TESTS.get(spec["$type"]) if isinstance(spec["$type"], str) else None
            if test is None:
                break
            checks.append(functools.partial(_field_test, name, test))
        elif isinstance(spec, bool | str) or spec is None:
            if spec is None:  # null also matches a missing field
                checks.append(functools.partial(_null_test, name))
            else:
                test = functools.partial(_literal, spec)
                checks.append(functools.partial(_field_test, name, test))
        else:
            break
    else:
        if len(checks) == 1:
            return checks[0]  # (`seq_unique`'s `{seq: {$gt: 0}}`: every write of a `seq`)
        return lambda doc: all(check(doc) for check in checks)
    query = prepared(dict(expr))
    return lambda doc: bool(filter_applies(query, doc))


_TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "date": lambda v: isinstance(v, datetime),
    "null": lambda v: v is None,
}


def _numeric_range(spec: Any) -> tuple[Callable[[Any, Any], bool], float] | None:
    # `{"$gt": n}` (or `$gte`, `$lt`, `$lte`) of a number that is not NaN.
    checks = numeric_ranges(spec)
    return checks[0] if checks is not None and len(checks) == 1 else None


def _range_test(
    name: str,
    compare: Callable[[Any, Any], bool],
    bound: float,
    query: Mapping[str, Any],
    doc: Mapping[str, Any],
) -> bool:
    # A number compares as Python does (NaN with nothing), a missing field or null is out
    # of range; anything else (arrays, other types) is the matcher's to decide.
    value = doc.get(name)
    kind = type(value)
    if kind is int or kind is float or kind is Int64:
        return compare(value, bound)
    if value is None:
        return False
    return bool(filter_applies(query, doc))


def _literal(expected: Any, value: Any) -> bool:
    return type(value) is type(expected) and bool(value == expected)


def _field_test(name: str, test: Callable[[Any], bool], doc: Mapping[str, Any]) -> bool:
    if name not in doc:
        return False
    value = doc[name]
    return test(value) or (isinstance(value, list) and any(test(v) for v in value))


def _null_test(name: str, doc: Mapping[str, Any]) -> bool:
    value = doc.get(name)
    return value is None or (isinstance(value, list) and None in value)


def check_id(doc: Mapping[str, Any]) -> None:
    """Refuse an `_id` MongoDB refuses (an array or a regular expression)."""
    value = doc.get("_id")
    if isinstance(value, list):
        raise WriteError("can't use an array for _id", code=2, details={"codeName": "BadValue"})
    if isinstance(value, Regex):
        raise WriteError("can't use a regex for _id", code=2, details={"codeName": "BadValue"})


class _Deadline(threading.local):
    at: float | None = None


_deadline = _Deadline()


@contextlib.contextmanager
def time_limit(max_time_ms: int | None, started: float) -> Iterator[None]:
    """Run engine work under `maxTimeMS` counted from `started` (a `time.monotonic()`)."""
    if not max_time_ms:
        yield
        return
    _deadline.at = started + max_time_ms / 1000
    try:
        check_deadline()
        yield
    finally:
        _deadline.at = None


def check_deadline() -> None:
    """ExecutionTimeout (code 50) once the running operation has used up its `maxTimeMS`."""
    at = _deadline.at
    if at is not None and time.monotonic() > at:
        raise ExecutionTimeout(
            "operation exceeded time limit", code=50, details={"codeName": "MaxTimeMSExpired"}
        )


def _by(sort: Sort) -> Any:
    """A sort key over (keys, pair) rows honouring each key's direction (stable)."""

    class Row:
        __slots__ = ("keys",)

        def __init__(self, row: tuple[tuple[Any, ...], Any]) -> None:
            self.keys = row[0]

        def __lt__(self, other: Row) -> bool:
            for (_, direction), mine, theirs in zip(sort, self.keys, other.keys, strict=True):
                if mine != theirs:
                    return bool(mine < theirs) if direction > 0 else bool(mine > theirs)
            return False

    return Row


def _no_session(session: Any) -> None:
    if session is not None:
        raise NotImplementedError("the embedded backend has no sessions or transactions")


def _key_list(keys: Any) -> list[tuple[str, Any]]:
    if isinstance(keys, str):
        return [(keys, 1)]
    if isinstance(keys, Mapping):
        return list(keys.items())
    return [(str(k), d) for k, d in keys]


def sort_spec(sort: Any) -> list[tuple[str, int]]:
    """A sort given as PyMongo takes it, as a list of (field, direction)."""
    if not sort:
        return []
    if isinstance(sort, Mapping):
        sort = list(sort.items())
    if isinstance(sort, str):
        return [(sort, 1)]
    return [(str(k), int(d)) for k, d in sort]


def _unwound_next(stages: list[Mapping[str, Any]], position: int) -> bool:
    # MongoDB folds `$lookup` + `$unwind` of its `as` field into one stage: no big array.
    stage = stages[position]
    if "$lookup" not in stage or position + 1 >= len(stages):
        return False
    unwind = stages[position + 1].get("$unwind")
    path = unwind.get("path") if isinstance(unwind, Mapping) else unwind
    return path == f"${stage['$lookup'].get('as')}"


def _check_sizes(stage: str, docs: list[dict[str, Any]]) -> None:
    for doc in docs:
        size = len(codec.encode(doc))
        if size > codec.MAX_BSON_SIZE:
            if stage == "$lookup":
                raise OperationFailure(
                    "Total size of documents in $lookup exceeds maximum document size",
                    code=4568,
                )
            raise OperationFailure(
                f"BSONObj size: {size} (0x{size:X}) is invalid. "
                f"Size must be between 0 and {codec.MAX_BSON_SIZE}(16MB)",
                code=10334,
            )


def _bulk_details(errors: list[dict[str, Any]], *, n_inserted: int = 0) -> dict[str, Any]:
    return {
        "writeErrors": errors,
        "writeConcernErrors": [],
        "nInserted": n_inserted,
        "nUpserted": 0,
        "nMatched": 0,
        "nModified": 0,
        "nRemoved": 0,
        "upserted": [],
    }


__all__ = ["DocumentTooLarge", "EngineClient", "EngineCollection", "EngineDatabase"]
