"""Which declared index serves a query, by MongoDB's planner rules — checked for every query.

Our machines cannot run a MongoDB server, so `explain()` is not available here; instead this
module applies the rules MongoDB's planner follows to decide whether an index can serve a
query, and the suite checks every query the service sends against the indexes it declares:

- **Bounds.** An index can answer a query when the query bounds the index's leading field:
  equality (`v`, `$eq`, `$in`), a range (`$gt`, `$gte`, `$lt`, `$lte`) or an anchored,
  case-sensitive regex prefix. Following fields extend the bounds while the previous ones are
  equalities; the first range ends them ("equality → sort → range").
- **Sort.** A sort is served when, after the index's leading equality fields, the sort fields
  are the next index fields in order, all in the index's direction or all reversed (a field
  fixed by an equality may appear anywhere in the sort). Leading `$in` fields count as
  equalities here: the server runs one index scan per point and merges them in order (it
  does so up to 200 scans; the service's `$in` lists before a sort are small enums such as
  `is_deleted: {$in: [true, false]}`). Otherwise MongoDB sorts in memory, a
  blocking sort over everything the bounds select — a finding, unless the bounds select at most
  one document (equality on every field of a unique index, or on `_id`).
- **Partial indexes** are used only when the query implies the index's
  `partialFilterExpression` — for an `$or`, each branch on its own; **sparse** indexes only
  when the query excludes documents missing the field.
- **`$or`.** A top-level `$or` is answered branch by branch (each branch with the top-level
  conditions) when every branch is served, else by whatever serves the other conditions.
- **A usable index left unused.** When a more selective index (one whose bounds include a
  field the chosen plan leaves to filtering) is rejected only because the query does not imply
  its partial filter, MongoDB scans more than it needs to: that is a finding too (issue 11's
  lead dedupe was exactly this).

`check(shape, indexes)` returns None when served, or the reason it is not. The plugin in
tests/support/query_plan_plugin.py records every operation the suite sends through the embedded
backend and fails the run for any finding not on the allow-list
(tests/support/query_plan_allowlist.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from uuid import UUID

from bson import Binary, ObjectId, Regex

RANGE_OPS = frozenset({"$gt", "$gte", "$lt", "$lte"})


# -- query shapes: values replaced by their type, so equal shapes are checked once ---------------


def type_tag(value: Any) -> str:
    """The BSON type of a value, as a shape records it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, UUID | Binary | bytes):
        return "binData"
    if isinstance(value, datetime):
        return "date"
    if isinstance(value, ObjectId):
        return "objectId"
    if isinstance(value, Regex) or hasattr(value, "pattern"):
        return "regex"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def shape_of(query: Any) -> Any:
    """A filter with its values replaced by type tags (operators and field names kept)."""
    if isinstance(query, Mapping):
        out: dict[str, Any] = {}
        for key, value in query.items():
            if key in ("$and", "$or", "$nor") and isinstance(value, list):
                out[key] = [shape_of(v) for v in value]
            elif key in ("$in", "$nin", "$all") and isinstance(value, list):
                out[key] = sorted({type_tag(v) for v in value}) or ["empty"]
            elif key == "$regex":
                pattern = value.pattern if hasattr(value, "pattern") else str(value)
                out[key] = "anchored" if pattern.startswith("^") else "unanchored"
            elif key in ("$type", "$exists", "$options"):
                out[key] = value if not isinstance(value, Regex) else "regex"
            elif key.startswith("$") and key not in RANGE_OPS | {
                "$eq",
                "$ne",
                "$not",
                "$elemMatch",
            }:
                out[key] = "<expr>"  # $expr, $where, $comment…: not index bounds
            elif isinstance(value, Mapping) and value and all(k.startswith("$") for k in value):
                out[key] = shape_of(value)
            else:
                # Booleans stay literal: a partial filter such as `is_deleted: false` needs them.
                out[key] = {"=": value if isinstance(value, bool) else type_tag(value)}
        return out
    return type_tag(query)


@dataclass(frozen=True)
class Shape:
    """A recorded query: where, what filter shape, in which order."""

    collection: str
    method: str
    filter: str  # JSON of shape_of(filter)
    sort: tuple[tuple[str, int], ...] = ()

    @property
    def query(self) -> dict[str, Any]:
        """The filter shape as a dict."""
        return dict(json.loads(self.filter))

    def __str__(self) -> str:
        order = f" sort={list(self.sort)}" if self.sort else ""
        return f"{self.collection}.{self.method} {self.filter}{order}"


def make_shape(
    collection: str, method: str, query: Mapping[str, Any] | None, sort: Sequence[Any] = ()
) -> Shape:
    """The shape of one operation."""
    text = json.dumps(shape_of(query or {}), sort_keys=True)
    return Shape(collection, method, text, tuple((str(f), int(d)) for f, d in sort))


# -- indexes ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class IndexSpec:
    """A declared index as MongoDB reports it."""

    name: str
    keys: tuple[tuple[str, int], ...]
    unique: bool = False
    sparse: bool = False
    partial: str | None = None  # JSON of shape_of(partialFilterExpression), values kept

    @classmethod
    def from_info(cls, name: str, info: Mapping[str, Any]) -> IndexSpec:
        """From `index_information()`."""
        partial = info.get("partialFilterExpression")
        return cls(
            name=name,
            keys=tuple((str(k), _direction(d)) for k, d in info["key"]),
            unique=bool(info.get("unique")) or name == "_id_",
            sparse=bool(info.get("sparse")),
            partial=json.dumps(_partial_form(partial), sort_keys=True) if partial else None,
        )

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(k for k, _ in self.keys)


def _direction(value: Any) -> int:
    return -1 if value in (-1, "-1") else 1  # "2dsphere", "text"…: direction-less, treat as 1


def _partial_form(expr: Mapping[str, Any]) -> dict[str, Any]:
    # Partial filters keep their literal values (implication needs them), types for the rest.
    out: dict[str, Any] = {}
    for key, value in expr.items():
        if isinstance(value, Mapping):
            out[key] = {
                op: (v if isinstance(v, str | bool | int) or v is None else type_tag(v))
                for op, v in value.items()
            }
        else:
            out[key] = {
                "$eq": value
                if isinstance(value, str | bool | int) or value is None
                else type_tag(value)
            }
    return out


# -- predicates ---------------------------------------------------------------------------------


@dataclass
class Predicate:
    """What a query says about one field (from its shape)."""

    eq: list[str] = field(default_factory=list)  # type tags of equality points
    points: int = 0  # 1 for an equality, n for `$in`
    ranged: bool = False
    prefix_regex: bool = False
    exists: bool | None = None
    types: set[str] = field(default_factory=set)  # `$type` values
    literal: Any = None  # for a partial filter's literal equality (e.g. is_deleted: false)

    @property
    def bounds(self) -> bool:
        return self.points > 0 or self.ranged or self.prefix_regex

    @property
    def single(self) -> bool:
        return self.points == 1 and not self.ranged

    def excludes_missing(self) -> bool:
        """Whether every matching document has the field (what a sparse index needs)."""
        if self.exists is True or self.types - {"null"} or self.ranged or self.prefix_regex:
            return True
        return bool(self.eq) and "null" not in self.eq


@dataclass
class Conjunction:
    """A filter's top-level AND: predicates per field, and its `$or` branches."""

    fields: dict[str, Predicate] = field(default_factory=dict)
    ors: list[list[dict[str, Any]]] = field(default_factory=list)


def conjunction(query: Mapping[str, Any]) -> Conjunction:
    """Read a filter shape's top-level conjunction."""
    conj = Conjunction()
    _walk(query, conj)
    return conj


def _walk(query: Mapping[str, Any], conj: Conjunction) -> None:
    for key, value in query.items():
        if key == "$and":
            for part in value:
                _walk(part, conj)
        elif key == "$or":
            conj.ors.append(list(value))
        elif key.startswith("$"):
            continue
        else:
            _merge(conj.fields.setdefault(key, Predicate()), value)


def _merge(pred: Predicate, spec: Any) -> None:
    if not isinstance(spec, Mapping):
        return
    for op, arg in spec.items():
        if op in ("=", "$eq"):
            tag = (
                "bool" if isinstance(arg, bool) else arg if isinstance(arg, str) else type_tag(arg)
            )
            if tag not in ("object", "array"):
                pred.eq.append(tag)
                pred.points = 1 if pred.points == 0 else pred.points
                pred.literal = arg
        elif op == "$in" and isinstance(arg, list) and "regex" not in arg:
            pred.eq.extend(arg)
            pred.points = max(pred.points, 2)  # several points: bounds, but no order beyond
        elif op in RANGE_OPS:
            pred.ranged = True
        elif op == "$regex":
            pred.prefix_regex = arg == "anchored" and "$options" not in spec
        elif op == "$exists":
            pred.exists = bool(arg)
        elif op == "$type":
            pred.types |= set(arg) if isinstance(arg, list) else {str(arg)}


def _implies(conj: Conjunction, partial: Mapping[str, Any]) -> bool:
    """Whether every document the conjunction matches satisfies a partial filter."""
    for name, spec in partial.items():
        pred = conj.fields.get(name)
        if pred is None:
            return False
        for op, want in spec.items():
            if op == "$eq":
                if not (pred.single and pred.literal == want):
                    return False
            elif op == "$type":
                wanted = {want} if isinstance(want, str) else set(want)
                if not (pred.types & wanted == pred.types and pred.types) and not (
                    pred.eq and set(pred.eq) <= wanted
                ):
                    return False
            elif op == "$exists":
                if want and not pred.excludes_missing():
                    return False
            else:
                return False  # ranges in partial filters: not used by this service
    return True


# -- the verdict --------------------------------------------------------------------------------


@dataclass
class Verdict:
    """How a query would run: the index and whether it bounds the query and serves the sort."""

    index: IndexSpec | None
    bounded_fields: int
    sorted: bool
    at_most_one: bool


def _consider(
    index: IndexSpec,
    conj: Conjunction,
    sort: Sequence[tuple[str, int]],
    own: Conjunction | None = None,
) -> Verdict | None:
    # `own`: for an $or branch, the branch's own conditions, which alone must imply a partial
    # filter (MongoDB pushes top-level conditions into branches for bounds, not for that).
    if index.partial is not None and not _implies(own or conj, json.loads(index.partial)):
        return None
    if index.sparse and not any(
        (p := conj.fields.get(f)) is not None and p.excludes_missing() for f in index.fields
    ):
        return None
    bounded, fixed = 0, 0
    for name in index.fields:
        pred = conj.fields.get(name)
        # `$exists: true` reads a sparse index whole: it holds only the documents that match.
        if pred is None or not (pred.bounds or (index.sparse and pred.exists)):
            break
        bounded += 1
        # Equality points, `$in` lists included: MongoDB "explodes" each `$in` into one scan
        # per point, each in index order, and merges them (SORT_MERGE) to serve the sort.
        if pred.points and not pred.ranged and fixed == bounded - 1:
            fixed += 1
        if pred.ranged or pred.prefix_regex:
            break
    at_most_one = index.unique and fixed == len(index.fields)
    return Verdict(index, bounded, _serves_sort(index, fixed, sort, conj), at_most_one)


def _serves_sort(
    index: IndexSpec, fixed: int, sort: Sequence[tuple[str, int]], conj: Conjunction
) -> bool:
    if not sort:
        return True
    single = {f for f, p in conj.fields.items() if p.single}
    wanted = [(f, d) for f, d in sort if f not in single]
    if not wanted:
        return True
    rest = list(index.keys[fixed:])
    if len(wanted) > len(rest):
        return False
    flips = {d * rest[i][1] for i, (_, d) in enumerate(wanted)}
    return [f for f, _ in wanted] == [f for f, _ in rest[: len(wanted)]] and len(flips) == 1


def check(shape: Shape, indexes: Iterable[IndexSpec]) -> str | None:
    """None when the query is served by a declared index; else why it is not."""
    specs = list(indexes)
    conj = conjunction(shape.query)
    if not conj.fields and not conj.ors:
        if shape.method in ("count_documents", "estimated_document_count"):
            return None if not shape.sort else "sorts a whole collection"
        return "reads the whole collection (no condition an index can serve)"
    return _check_conjunction(conj, list(shape.sort), specs)


MISSED = "partial index"


def _check_conjunction(
    conj: Conjunction,
    sort: list[tuple[str, int]],
    specs: list[IndexSpec],
    own: Conjunction | None = None,
) -> str | None:
    verdicts = [v for s in specs if (v := _consider(s, conj, sort, own)) is not None]
    bounding = [v for v in verdicts if v.bounded_fields > 0]
    best = max(bounding, key=lambda v: (v.sorted, v.at_most_one, v.bounded_fields), default=None)
    missed = _missed_partial(conj, specs, best, own)
    if conj.ors:
        reasons = [_check_branch(conj, branch, sort, specs) for branch in conj.ors[0]]
        if all(r is None for r in reasons) and not missed:
            return None  # answered branch by branch
        if all(r is None or r.startswith(MISSED) for r in reasons):
            # Branch by branch would work, were each branch to imply its partial index's filter.
            return next(r for r in reasons if r)
        if best is None:
            return "an $or branch is not served: " + next(r for r in reasons if r)
    if best is None:
        if any(v.sorted for v in verdicts if sort):
            return "only a whole-index scan serves it (no condition bounds an index)"
        return "no declared index bounds this query"
    if missed:
        return missed
    if not best.sorted and not best.at_most_one:
        assert best.index is not None
        return f"blocking sort: {best.index.name} bounds the query but not the order {sort}"
    return None


def _check_branch(
    conj: Conjunction,
    branch: Mapping[str, Any],
    sort: list[tuple[str, int]],
    specs: list[IndexSpec],
) -> str | None:
    own = conjunction(branch)
    merged = Conjunction(fields={k: Predicate(**vars(v)) for k, v in conj.fields.items()})
    _walk(branch, merged)
    return _check_conjunction(merged, sort, specs, own)


def _missed_partial(
    conj: Conjunction, specs: list[IndexSpec], best: Verdict | None, own: Conjunction | None
) -> str | None:
    """A partial index that would bound more fields, unusable only for its filter."""
    if best is not None and best.at_most_one:
        return None  # the chosen plan reads one document: nothing to gain
    chosen = set(best.index.fields[: best.bounded_fields]) if best and best.index else set()
    for spec in specs:
        if spec.partial is None or _implies(own or conj, json.loads(spec.partial)):
            continue
        if _contradicts(own or conj, json.loads(spec.partial)):
            continue  # no rewrite could make the query use it (`seq: null` vs `seq > 0`)
        bounded = []
        for name in spec.fields:
            pred = conj.fields.get(name)
            if pred is None or not pred.bounds:
                break
            bounded.append(name)
        if bounded and not set(bounded) <= chosen:
            return (
                f"{MISSED} {spec.name} would serve {bounded} but the query does not imply "
                f"its filter {spec.partial}" + (" within the $or branch" if own else "")
            )
    return None


def _contradicts(conj: Conjunction, partial: Mapping[str, Any]) -> bool:
    """Whether no document the conjunction matches can satisfy a partial filter."""
    for name, spec in partial.items():
        pred = conj.fields.get(name)
        if pred is None or not pred.eq or pred.ranged:
            continue
        for op, want in spec.items():
            if op == "$eq" and pred.points == 1 and pred.literal is not None:
                if pred.literal != want:
                    return True
            elif set(pred.eq) == {"null"}:  # null satisfies no range, type or value test
                return True
    return False


__all__ = ["IndexSpec", "Shape", "check", "conjunction", "make_shape", "shape_of"]


# -- reading a real server's explain output (tests/test_real_mongodb.py) --------------------


def winning_stages(explained: Any, inside: bool = False) -> list[dict[str, Any]]:
    """Every stage of every winning plan in an explain (find, or each `$cursor` of a pipeline)."""
    out: list[dict[str, Any]] = []
    if isinstance(explained, Mapping):
        if inside and isinstance(explained.get("stage"), str):
            out.append(dict(explained))
        for key, value in explained.items():
            if key != "rejectedPlans":
                out += winning_stages(value, inside or key == "winningPlan")
    elif isinstance(explained, list):
        for value in explained:
            out += winning_stages(value, inside)
    return out


def plan_problems(stages: list[dict[str, Any]]) -> list[str]:
    """What makes a winning plan unacceptable: a collection scan or a blocking sort."""
    problems = []
    names = [s["stage"] for s in stages]
    if not any(n.endswith("IXSCAN") for n in names):
        problems.append(f"no index scan in {names}")
    if "COLLSCAN" in names:
        problems.append("COLLSCAN")
    if "SORT" in names:
        problems.append("a blocking SORT stage")
    for stage in stages:  # a $lookup run in the query engine: the joined side must be indexed
        # IndexedLoopJoin (or 8.0's DynamicIndexedLoopJoin) probes an index; the others scan.
        strategy = str(stage.get("strategy", "IndexedLoopJoin"))
        if stage["stage"] == "EQ_LOOKUP" and not strategy.endswith("IndexedLoopJoin"):
            problems.append(f"$lookup from {stage.get('foreignCollection')}: {strategy}")
    return problems
