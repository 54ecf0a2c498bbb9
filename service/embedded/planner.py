"""Choosing which documents a query must look at, from the collection's declared indexes.

The planner never decides what matches — `mongomock.filtering.filter_applies` does, on every
candidate — it only narrows the candidates, so a plan may be wider than the answer but never
narrower. Like MongoDB's planner it reads the filter's top-level conjunction: equality and
`$in` conditions on an index's leading fields, then one range on the next field (type
bracketed, as MongoDB compares), give bounds on the index's sorted entries; a sort the index
order serves is answered by walking the bounds in order and stopping at the limit. A top-level
`$or` whose every branch has bounds is answered by the union of its branches. Anything else
reads the whole collection, as a collection scan would.

On a multikey index (one holding several entries for a document) two conditions on one field
may be met by two array elements, so their points are never intersected and a range is
bounded on one side only; a plan is `exact` (no re-check) only on a single-valued, full,
non-partial index, and never for null on a dotted path (arrays without subdocuments are
indexed as null there but do not match). A read's numeric range after equality points is
exact too, decided on the walk's entries (`_range_test`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import ge, gt, le, lt
from typing import Any

from bson import Binary, Int64, ObjectId

from service.embedded import work
from service.embedded.keys import HIGHEST, NULL_KEY, equality_key, sort_key, type_rank
from service.embedded.store import CollectionStore, Index, Stored

MAX_INTERVALS = 20_000  # `$in` combinations beyond this are scanned rather than looked up


@dataclass
class Bounds:
    """What a filter says about one field: equality points and/or a range.

    `points` is the intersection of every equality/`$in` condition on the field, which only a
    single-valued field may use; `point_sets` keeps each condition's points, because on a
    multikey index two conditions may be met by two elements of one array (`{v: "a"}` and
    `{v: "b"}` both match `{v: ["a", "b"]}`), so there any one of them bounds the candidates.
    """

    points: list[tuple[Any, ...]] | None = None
    low: tuple[Any, ...] | None = None
    low_inclusive: bool = True
    high: tuple[Any, ...] | None = None
    high_inclusive: bool = True
    point_sets: list[list[tuple[Any, ...]]] = field(default_factory=list)
    # Both ends hold for one value (an anchored regex prefix): a multikey index keeps both.
    element: bool = False

    @property
    def has_range(self) -> bool:
        return self.low is not None or self.high is not None

    def points_for(self, index: Index) -> list[tuple[Any, ...]] | None:
        """The points an index may look up: the intersection, or on a multikey index the
        smallest single condition's points."""
        if not index.multikey or len(self.point_sets) < 2:
            return self.points
        return min(self.point_sets, key=len)

    def copy(self) -> Bounds:
        """An independent copy (to merge a branch's conditions into)."""
        return Bounds(**{**vars(self), "point_sets": list(self.point_sets)})


@dataclass
class Conjunction:
    """The top-level AND of a filter: bounds per field, and its `$or` lists."""

    fields: dict[str, Bounds] = field(default_factory=dict)
    ors: list[list[Mapping[str, Any]]] = field(default_factory=list)


@dataclass
class Plan:
    """The chosen access path: where candidates come from and whether they arrive sorted."""

    name: str
    cost: int
    ordered: bool
    candidates: Iterator[Stored]
    # Every candidate matches the filter: the index bounds decide each of its conditions (see
    # `exact`), so the engine need not decode a candidate to re-check it.
    exact: bool = False
    # A top-level field whose condition every candidate meets (a point lookup's `_id`): the
    # candidates' test need not check it again.
    decided: str | None = None
    # Exact by a test of the walk's entries (`_range_test`), not by the bounds alone.
    ranged: bool = False


def analyse(query: Mapping[str, Any]) -> Conjunction:
    """Split a filter into per-field bounds (conditions nothing can serve are left out)."""
    conj = Conjunction()
    _walk(query, conj)
    return conj


def _walk(query: Mapping[str, Any], conj: Conjunction) -> None:
    for key, value in query.items():
        if key == "$and" and isinstance(value, list):
            for part in value:
                if isinstance(part, Mapping):
                    _walk(part, conj)
        elif key == "$or" and isinstance(value, list) and value:
            conj.ors.append([b for b in value if isinstance(b, Mapping)])
        elif not key.startswith("$"):
            bounds = _field_bounds(value)
            if bounds is not None:
                _merge(conj.fields.setdefault(key, Bounds()), bounds)


def _field_bounds(value: Any) -> Bounds | None:
    if not (isinstance(value, Mapping) and value and all(k.startswith("$") for k in value)):
        key = equality_key(value)
        return Bounds(points=[key], point_sets=[[key]]) if key is not None else None
    bounds = Bounds()
    for op, arg in value.items():
        if op == "$eq":
            key = equality_key(arg)
            if key is not None:
                _merge(bounds, Bounds(points=[key], point_sets=[[key]]))
        elif op == "$in" and isinstance(arg, list):
            found = [equality_key(v) for v in arg]
            keys = [k for k in found if k is not None]
            if len(keys) == len(found):
                points = sorted(set(keys))
                _merge(bounds, Bounds(points=points, point_sets=[points]))
        elif op in ("$gt", "$gte", "$lt", "$lte") and equality_key(arg) is not None:
            _merge(bounds, _range(op, arg))
        elif op == "$regex" and "$options" not in value:
            prefix = _literal_prefix(arg)
            if prefix:
                _merge(bounds, _prefix_range(prefix))
    if bounds.points is None and not bounds.has_range:
        return None
    return bounds


def _range(op: str, arg: Any) -> Bounds:
    # Type bracketing: `$gt: 5` matches numbers only, so the other end is the end of its type.
    key, rank = sort_key(arg), type_rank(arg)
    if op in ("$gt", "$gte"):
        return Bounds(low=key, low_inclusive=op == "$gte", high=(rank + 0.5,))
    return Bounds(low=(rank,), high=key, high_inclusive=op == "$lte")


_REGEX_SPECIAL = frozenset("\\^$.|?*+()[]{}")


def _literal_prefix(pattern: Any) -> str | None:
    # `^abc` with nothing special after the anchor: the strings that start with "abc".
    if not isinstance(pattern, str) or not pattern.startswith("^") or len(pattern) < 2:
        return None
    rest = pattern[1:]
    return None if any(c in _REGEX_SPECIAL for c in rest) else rest


def _prefix_range(prefix: str) -> Bounds:
    # [prefix, prefix with its last character raised): as MongoDB bounds an anchored regex.
    upper = prefix[:-1] + chr(ord(prefix[-1]) + 1)
    return Bounds(low=sort_key(prefix), high=sort_key(upper), high_inclusive=False, element=True)


def _merge(into: Bounds, other: Bounds) -> None:
    if other.has_range:  # two ranges on one field may hold for different array elements
        into.element = other.element and not into.has_range
    if other.points is not None:
        into.points = (
            other.points if into.points is None else sorted(set(into.points) & set(other.points))
        )
        into.point_sets.extend(other.point_sets)
    if other.low is not None and (into.low is None or other.low > into.low):
        into.low, into.low_inclusive = other.low, other.low_inclusive
    if other.high is not None and (into.high is None or other.high < into.high):
        into.high, into.high_inclusive = other.high, other.high_inclusive


def _intervals(
    index: Index, conj: Conjunction
) -> tuple[list[tuple[tuple[Any, ...], tuple[Any, ...]]], int, int] | None:
    """Index bounds for a conjunction: (intervals, leading single-point fields, fields used)."""
    prefixes: list[list[tuple[Any, ...]]] = []
    fixed = 0
    for name in index.fields:
        bounds = conj.fields.get(name)
        points = None if bounds is None else bounds.points_for(index)
        if points is None:
            break
        prefixes.append(points)
        if len(points) == 1 and fixed == len(prefixes) - 1:
            fixed += 1
    used = len(prefixes)
    ranged = None
    if used < len(index.fields):
        bounds = conj.fields.get(index.fields[used])
        if bounds is not None and bounds.has_range:
            ranged = bounds
    if not used and ranged is None:
        return None
    combos = 1
    for points in prefixes:
        combos *= len(points)
    if combos > MAX_INTERVALS:
        return None
    out = []
    for combo in itertools.product(*prefixes):
        if ranged is None:
            out.append((combo, (*combo, HIGHEST)))
            continue
        low, low_inclusive = ranged.low, ranged.low_inclusive
        high, high_inclusive = ranged.high, ranged.high_inclusive
        if index.multikey and low is not None and not ranged.element:
            # Two elements of one array may satisfy the two sides: bound one side only.
            high, high_inclusive = None, True
        if low is None:
            lo: tuple[Any, ...] = combo
        else:
            lo = (*combo, low) if low_inclusive else (*combo, low, HIGHEST)
        if high is None:
            hi: tuple[Any, ...] = (*combo, HIGHEST)
        else:
            hi = (*combo, high, HIGHEST) if high_inclusive else (*combo, high)
        out.append((lo, hi))
    return out, fixed, used + (ranged is not None)


def _serves_sort(
    index: Index, fixed: int, sort: Sequence[tuple[str, int]], conj: Conjunction
) -> int:
    """+1 or -1 when walking the index (forward/backward) yields `sort` order, else 0."""
    if index.multikey:
        return 0
    wanted = [
        (f, d) for f, d in sort if not (f in index.fields[:fixed] and _single(conj.fields.get(f)))
    ]
    if not wanted:
        return 1
    rest = [*index.fields[fixed:], "_id"]  # entries end with the `_id` key
    directions = {d for _, d in wanted}
    if len(directions) != 1 or len(wanted) > len(rest):
        return 0
    if [f for f, _ in wanted] != rest[: len(wanted)]:
        return 0
    return directions.pop()


def _single(bounds: Bounds | None) -> bool:
    return bounds is not None and bounds.points is not None and len(bounds.points) == 1


def _id_points(index: Index, intervals: list[tuple[Any, Any]]) -> bool:
    # Equality points on the `_id_` index: each interval holds the entry of at most one
    # document, the one stored under that key (every document has its `_id_` entry).
    return index.name == "_id_" and all(
        len(lo) == 1 and len(hi) == 2 and hi[0] == lo[0] and hi[1] == HIGHEST
        for lo, hi in intervals
    )


def _walk_ids(
    store: CollectionStore, intervals: list[tuple[Any, Any]], reverse: bool
) -> Iterator[Stored]:
    # `_walk_index` over `_id_` points, by hash lookups instead of a bisection per point
    # (the same documents in the same order, the same keys examined as they are read).
    for lo, _ in reversed(intervals) if reverse else intervals:
        stored = store.get(lo[0])
        if stored is not None:
            work.keys(1)
            yield stored


def _walk_index(
    store: CollectionStore,
    index: Index,
    intervals: list[tuple[Any, Any]],
    reverse: bool,
    entry_test: Callable[[Any], bool] | None = None,
) -> Iterator[Stored]:
    # `entry_test`: which entries' documents to yield (`_range_test`), the others skipped.
    if _id_points(index, intervals):
        yield from _walk_ids(store, intervals, reverse)
        return
    seen: set[Any] | None = set() if index.multikey or len(intervals) > 1 else None
    keys = (
        key
        for lo, hi in (reversed(intervals) if reverse else intervals)
        for key in _keys_in(index, lo, hi, reverse, entry_test)
    )
    for key in keys:
        if seen is not None:
            if key in seen:
                continue
            seen.add(key)
        stored = store.get(key)
        if stored is not None:
            yield stored


def _keys_in(
    index: Index,
    lo: Any,
    hi: Any,
    reverse: bool,
    entry_test: Callable[[Any], bool] | None = None,
) -> Iterator[Any]:
    # Growing chunks, each copied before it is yielded and resumed after its last entry: a
    # page stops after about `limit` keys (counted as examined), and a caller writing between
    # chunks never sees the index change under a chunk. (Writers list their candidates first.)
    # An index that becomes multikey between chunks holds its entries as bytes from then on
    # (`Index.encoded`): the bounds, and an entry resumed after, are converted once.
    size, inclusive = 16, (True, True)
    encoded = False
    resumed = False
    while True:
        if index.encoded and not encoded:
            encoded = True
            lo = index.bound(lo, entry=resumed and not reverse)
            hi = index.bound(hi, entry=resumed and reverse)
        found = index.entries.irange(lo, hi, inclusive=inclusive, reverse=reverse)
        chunk = list(itertools.islice(found, size))
        work.keys(len(chunk))
        if encoded:
            id_of = index.id_of
            if entry_test is None:
                yield from (id_of(entry) for entry in chunk)
            else:
                yield from (id_of(entry) for entry in chunk if entry_test(entry))
        elif entry_test is None:
            yield from (entry[-1] for entry in chunk)
        else:
            yield from (entry[-1] for entry in chunk if entry_test(entry))
        if len(chunk) < size:
            return
        if reverse:
            hi, inclusive = chunk[-1], (inclusive[0], False)
        else:
            lo, inclusive = chunk[-1], (False, inclusive[1])
        resumed = True
        size = min(size * 2, 1024)


def _count(index: Index, intervals: list[tuple[Any, Any]], store: CollectionStore) -> int:
    if _id_points(index, intervals):
        docs = store.docs
        return sum(1 for lo, _ in intervals if lo[0] in docs)
    entries = index.entries
    bound = index.bound
    return sum(
        entries.bisect_right(bound(hi)) - entries.bisect_left(bound(lo)) for lo, hi in intervals
    )


def _best_for(
    store: CollectionStore,
    conj: Conjunction,
    sort: Sequence[tuple[str, int]],
    wanted: int | None,
    query: Mapping[str, Any] | None = None,
    recheck: Callable[[bytes], bool] | None = None,
) -> Plan | None:
    point = _id_point(store, conj)
    if point is not None:
        return point
    best: tuple[int, Index, list[Any]] | None = None
    best_used = 0  # of equal costs, the index bounding more fields wins (it may decide them)
    best_sorted: tuple[int, Index, list[Any], int] | None = None
    sorted_used = 0  # the same tie-break among walks in sort order (a whole walk bounds none)
    for index in store.indexes.values():
        if index.options.get("hidden"):  # collMod hid it: kept up to date, never used
            continue
        found = _intervals(index, conj)
        if found is None:
            direction = _serves_sort(index, 0, sort, conj) if sort else 0
            if direction and wanted is not None:
                whole = [((), (HIGHEST,))]
                cost = len(store)
                if best_sorted is None or cost < best_sorted[0]:
                    best_sorted, sorted_used = (cost, index, whole, direction), 0
            continue
        intervals, fixed, used = found
        cost = _count(index, intervals, store)
        if best is None or cost < best[0] or (cost == best[0] and used > best_used):
            best, best_used = (cost, index, intervals), used
        direction = _serves_sort(index, fixed, sort, conj) if sort else 0
        if (
            direction
            and len(intervals) == 1
            and (
                best_sorted is None
                or cost < best_sorted[0]
                or (cost == best_sorted[0] and used > sorted_used)
            )
        ):
            best_sorted, sorted_used = (cost, index, intervals, direction), used
    if best_sorted is not None and (
        best is None or _walk_is_cheaper(best_sorted[0], best[0], wanted)
    ):
        cost, index, intervals, direction = best_sorted
        ordered, reverse = True, direction < 0
    elif best is not None:
        cost, index, intervals = best
        ordered, reverse = not sort, False
    else:
        return None
    exact = _decided(index, conj, intervals)
    test = None
    if not exact and query is not None and recheck is not None:
        test = _range_test(store, index, conj, query, recheck)
    walk = _walk_index(store, index, intervals, reverse, test)
    chosen = Plan(index.name, cost, ordered, walk, exact or test is not None)
    chosen.decided = _id_walk(index, intervals)
    chosen.ranged = test is not None
    return chosen


_COMPARE: dict[str, Callable[[Any, Any], bool]] = {"$gt": gt, "$gte": ge, "$lt": lt, "$lte": le}
_RANGE_NUMBERS = (int, float, Int64)


def numeric_ranges(spec: Any) -> tuple[tuple[Callable[[Any, Any], bool], Any], ...] | None:
    """`{$gt: 1, $lte: 9}` as each operator's comparison and bound, when `spec` is a
    non-empty mapping of `$gt`/`$gte`/`$lt`/`$lte` of numbers (int, Int64 or float but NaN;
    no boolean); else None."""
    if not isinstance(spec, Mapping) or not spec:
        return None
    checks = []
    for op, bound in spec.items():
        compare = _COMPARE.get(op)
        if compare is None or type(bound) not in _RANGE_NUMBERS or bound != bound:
            return None
        checks.append((compare, bound))
    return tuple(checks)


def _range_test(
    store: CollectionStore,
    index: Index,
    conj: Conjunction,
    query: Mapping[str, Any],
    recheck: Callable[[bytes], bool],
) -> Callable[[Any], bool] | None:
    """For a filter of equality points on an index's leading fields and a numeric range on
    the next (`{aggregate_type: "lead", seq: {$gt: 5, $lte: 9}}`, a feed's page), a test of
    the walk's entries that decides the filter: the bounds decide the points; the range is
    decided on the entry's key where it holds an int or a float (compared as the matcher
    compares numbers), and for any other key (NaN, Decimal128) by `recheck`ing the stored
    document with the whole filter. None for any other filter or index."""
    if index.multikey or index.sparse or index.partial is not None or index.geo or conj.ors:
        return None
    ranged = [name for name, bounds in conj.fields.items() if bounds.has_range]
    if len(ranged) != 1 or "." in ranged[0] or ranged[0] not in index.fields:
        return None
    name = ranged[0]
    at = index.fields.index(name)
    if conj.fields[name].points is not None or set(conj.fields) != set(index.fields[: at + 1]):
        return None
    for field_name in index.fields[:at]:
        bounds = conj.fields[field_name]
        if bounds.points is None or ("." in field_name and NULL_KEY in bounds.points):
            return None
    checks = numeric_ranges(query.get(name))
    if checks is None:
        return None
    if not _only_points({key: value for key, value in query.items() if key != name}):
        return None

    def test(entry: Any) -> bool:
        if type(entry) is bytes:  # the index turned multikey during the walk: the document
            stored = store.get(index.id_of(entry))
            return stored is not None and recheck(stored[0])
        key = entry[at]
        if len(key) == 2 and type(key[1]) in _RANGE_NUMBERS:
            value = key[1]
            return all(compare(value, bound) for compare, bound in checks)
        stored = store.get(entry[-1])
        return stored is not None and recheck(stored[0])

    return test


def _id_walk(index: Index, intervals: list[Any]) -> str | None:
    # "_id" for a walk of the `_id_` index by equality points (not ranges, not the whole
    # index in its order): `plan` keeps it as `Plan.decided` when they are the filter's `$in`.
    return "_id" if intervals and _id_points(index, intervals) else None


def _id_point(store: CollectionStore, conj: Conjunction) -> Plan | None:
    # One `_id` value: at most one document, in any order; no index can do better, so the
    # others are not costed (a point read's planning otherwise bisects every index).
    bounds = conj.fields.get("_id")
    index = store.indexes.get("_id_")
    if index is None or bounds is None or bounds.points is None or len(bounds.points) != 1:
        return None
    found = _intervals(index, conj)
    if found is None or len(found[0]) != 1:
        return None
    intervals = found[0]
    walk = _walk_index(store, index, intervals, False)
    cost = _count(index, intervals, store)
    exact = _decided(index, conj, intervals)
    return Plan(index.name, cost, True, walk, exact, _id_walk(index, intervals))


def _decided(index: Index, conj: Conjunction, intervals: list[Any]) -> bool:
    # The intervals are exactly the conjunction's equality points on the index's leading
    # fields (no range, every field of the conjunction among them) on an index holding every
    # document by plain values: an entry in the bounds is then a match of those conditions.
    if index.multikey or index.sparse or index.partial is not None or conj.ors:
        return False
    if not intervals or any(len(lo) == 0 for lo, _ in intervals):
        return False  # the whole index walked for its order: bounds decide nothing
    used = len(intervals[0][0])
    if any(b.points is None or b.has_range for b in conj.fields.values()):
        return False
    if any("." in f and NULL_KEY in b.points for f, b in conj.fields.items() if b.points):
        # A dotted path through arrays that hold no subdocument (`{a: [1, 2]}`, `{a: []}`) is
        # indexed as null but does not match `{"a.b": null}` (MongoDB's jstests/core/null2.js).
        return False
    return set(conj.fields) == set(index.fields[:used])


def _walk_is_cheaper(walk: int, lookup: int, wanted: int | None) -> bool:
    # Walking in sort order reads about `wanted` matches' worth of a range that holds
    # `lookup` matches among `walk` entries; the alternative reads `lookup` and sorts them.
    expected = walk if wanted is None else min(walk, wanted * walk / max(lookup, 1))
    return expected <= lookup * 1.5 + 16


def plan(
    store: CollectionStore,
    query: Mapping[str, Any],
    sort: Sequence[tuple[str, int]] = (),
    wanted: int | None = None,
    recheck: Callable[[bytes], bool] | None = None,
) -> Plan:
    """The cheapest way to find the documents `query` may match (`wanted`: skip + limit).

    The plan is `exact` when its index bounds decide the whole filter (see `_decided`; every
    top-level condition an equality or `$eq`/`$in` of indexable values on a bounded field),
    or with `recheck` (the whole filter's test of a stored document) when they and a test of
    the walk's entries do (`_range_test`: a numeric range after the points).
    """
    point = _id_lookup(store, query)
    if point is not None:
        return point
    conj = analyse(query)
    best = _best_for(store, conj, sort, wanted, query, recheck)
    if best is not None and best.exact and not best.ranged and not _only_points(query):
        best.exact = False
    if conj.ors and (best is None or best.cost > 64):
        union = _union(store, conj, conj.ors[0])
        if union is not None and (best is None or union.cost < best.cost):
            best = union
    if best is not None:
        if best.decided is not None and (conj.ors or not _id_in_only(query)):
            best.decided = None  # bounds on `_id` that are not (only) the filter's `$in`
        return best
    return Plan("COLLSCAN", len(store), not sort, store.all())


def _id_in_only(query: Mapping[str, Any]) -> bool:
    # Whether the filter's `_id` condition is an `$in` of values a point lookup takes as they
    # are, and nothing else at the top can add to it (`$and`, `$or`, `$expr`...): the `_id_`
    # index's walk of its points then yields exactly the documents it matches.
    value = query.get("_id")
    if type(value) is not dict or value.keys() != {"$in"} or type(value["$in"]) is not list:
        return False
    if any(name.startswith("$") for name in query):
        return False
    return all(type(v) in _ID_KINDS for v in value["$in"])


# `_id` values a point lookup takes as they are (`equality_key` keys them; no arrays,
# documents or regular expressions, which need the general planner).
_ID_KINDS = frozenset({ObjectId, str, int, Int64, Binary, bytes, float, datetime, bool, type(None)})


def _id_lookup(store: CollectionStore, query: Mapping[str, Any]) -> Plan | None:
    """The plan `_id_point` makes for `{_id: value, field: ..., ...}` (no `$` operator at the
    top, a scalar `_id`), found by one hash lookup instead of analysing the filter and
    bisecting the `_id_` index: the same candidates, cost, keys examined and exactness
    (exact when `_id` is the whole filter)."""
    key = point_key(store, query)
    if key is None:
        return None
    stored = store.get(key)
    return Plan(
        "_id_", int(stored is not None), True, _found(stored), exact=len(query) == 1, decided="_id"
    )


def point_key(store: CollectionStore, query: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """The `_id` key a filter `{_id: value, field: ..., ...}` (no `$` operator at the top, a
    scalar `_id`) is served by (one hash lookup: `_id_lookup`), or None for another filter."""
    value = query.get("_id", _ABSENT)
    if type(value) not in _ID_KINDS or "_id_" not in store.indexes:
        return None
    for name in query:
        if name.startswith("$"):
            return None
    return sort_key(value)


_ABSENT = object()


def _found(stored: Stored | None) -> Iterator[Stored]:
    # As `_walk_index` reads the `_id_` index: the key examined (if there is one) when read.
    work.keys(int(stored is not None))
    if stored is not None:
        yield stored


_POINT_OPERATORS = frozenset({"$eq", "$in"})


def _only_points(query: Mapping[str, Any]) -> bool:
    # Every condition is a field's equality or `$eq`/`$in` that `analyse` turned into points
    # (nothing it leaves out: other operators, `$and`/`$or`/`$expr`, regexes, documents).
    for key, value in query.items():
        if key.startswith("$"):
            return False
        if isinstance(value, Mapping) and value and all(k.startswith("$") for k in value):
            if not value.keys() <= _POINT_OPERATORS:
                return False
            values = [value["$eq"]] if "$eq" in value else []
            if "$in" in value:
                if not isinstance(value["$in"], list):
                    return False
                values += value["$in"]
            if any(equality_key(v) is None for v in values):
                return False
        elif equality_key(value) is None:
            return False
    return True


def _union(
    store: CollectionStore, conj: Conjunction, branches: list[Mapping[str, Any]]
) -> Plan | None:
    plans = []
    for branch in branches:
        merged = Conjunction(fields={k: v.copy() for k, v in conj.fields.items()}, ors=[])
        _walk(branch, merged)
        found = _best_for(store, merged, (), None)
        if found is None:
            return None
        plans.append(found)
    return Plan("OR", sum(p.cost for p in plans), False, _merged(plans))


def _merged(plans: list[Plan]) -> Iterator[Stored]:
    # Natural order, as a scan would return them; each document once.
    chosen: dict[int, Stored] = {}
    for p in plans:
        for stored in p.candidates:
            chosen.setdefault(stored[1], stored)
    yield from (chosen[k] for k in sorted(chosen))
