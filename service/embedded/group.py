"""`$group` as MongoDB computes it (mongomock's stage deviates where a value is missing).

mongomock evaluates each accumulator's expression per document and drops the whole value when
any part of it is missing, so `{$push: {user_id: "$m.user_id", name: {$arrayElemAt:
["$user.name", 0]}}}` lost every member whose user was not found (the team read model showed
fewer members than the team), `$first` took the next document's value instead of null, and
`$min`/`$max` compared with Python's operators (a TypeError across types). MongoDB's rules,
which this stage follows:

- an object expression omits the fields whose value is missing (`ExpressionObject`); an
  `$arrayElemAt` past the end is missing (documented on `$arrayElemAt`);
- `$push` and `$addToSet` skip missing values (`accumulator_push.cpp`); `$first`/`$last` give
  null for a missing value; `$min`/`$max` ignore null and missing and compare in BSON order;
  `$sum`/`$avg` ignore non-numbers (booleans included); `$mergeObjects` ignores null;
- a group key that is missing is null; no input document, no output document (also for
  `_id: null`).

Expressions other than object literals are still evaluated by mongomock's parser.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

from bson import Decimal128, Int64
from pymongo.errors import OperationFailure

from service.embedded import mongomock_hooks as mm
from service.embedded.keys import sort_key

MISSING: Any = object()
"""The value of an expression that names no value (a missing field, an index past the end)."""


def evaluate(expression: Any, doc: Mapping[str, Any]) -> Any:
    """An aggregation expression's value on `doc`, or MISSING."""
    if isinstance(expression, dict) and not any(str(k).startswith("$") for k in expression):
        out: dict[str, Any] = {}
        for field, sub in expression.items():
            value = evaluate(sub, doc)
            if value is not MISSING:
                out[field] = value
        return out
    try:
        return mm.parse_expression(expression, doc)
    except KeyError:  # mongomock's "missing" (a path not there, `$arrayElemAt` past the end)
        return MISSING


def _numbers(values: Iterable[Any]) -> list[Any]:
    return [
        v
        for v in values
        if isinstance(v, int | float | Int64 | Decimal128 | Decimal) and not isinstance(v, bool)
    ]


def _sum(values: list[Any]) -> Any:
    numbers = _numbers(values)
    if any(isinstance(v, Decimal128 | Decimal) for v in numbers):
        total = sum(v.to_decimal() if isinstance(v, Decimal128) else Decimal(v) for v in numbers)
        return Decimal128(total)
    return sum(numbers)


def _avg(values: list[Any]) -> Any:
    numbers = _numbers(values)
    if not numbers:
        return None
    total = _sum(numbers)
    if isinstance(total, Decimal128):
        return Decimal128(total.to_decimal() / len(numbers))
    return total / len(numbers)


def _extreme(pick: Callable[..., Any]) -> Callable[[list[Any]], Any]:
    def accumulate(values: list[Any]) -> Any:
        present = [v for v in values if v is not MISSING and v is not None]
        return pick(present, key=sort_key) if present else None

    return accumulate


def _add_to_set(values: list[Any]) -> list[Any]:
    seen: dict[Any, Any] = {}
    for value in values:
        if value is not MISSING:
            seen.setdefault(sort_key(value), value)
    return list(seen.values())


def _merge(values: list[Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for value in values:
        if value is MISSING or value is None:
            continue
        if not isinstance(value, Mapping):
            raise OperationFailure("$mergeObjects requires object inputs", 40400)
        merged.update(value)
    return merged


def _null_if_missing(value: Any) -> Any:
    return None if value is MISSING else value


ACCUMULATORS: dict[str, Callable[[list[Any]], Any]] = {
    "$sum": _sum,
    "$avg": _avg,
    "$min": _extreme(min),
    "$max": _extreme(max),
    "$first": lambda values: _null_if_missing(values[0]),
    "$last": lambda values: _null_if_missing(values[-1]),
    "$push": lambda values: [v for v in values if v is not MISSING],
    "$addToSet": _add_to_set,
    "$mergeObjects": _merge,
    "$count": len,
}


def _accumulator(field: str, spec: Any) -> tuple[Callable[[list[Any]], Any], Any]:
    if not isinstance(spec, Mapping) or len(spec) != 1:
        raise OperationFailure(f"The field '{field}' must be an accumulator object", 40234)
    (name, expression), *_ = spec.items()
    if name not in ACCUMULATORS:
        raise OperationFailure(f"unknown group operator '{name}'", 15952)
    return ACCUMULATORS[name], expression


def group(docs: Iterable[Mapping[str, Any]], options: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The `$group` stage: one document per distinct `_id`, ordered by that key."""
    if "_id" not in options:
        raise OperationFailure("a group specification must include an _id", 15955)
    fields = {f: _accumulator(f, spec) for f, spec in options.items() if f != "_id"}
    groups: dict[Any, tuple[Any, list[Mapping[str, Any]]]] = {}
    for doc in docs:
        key = _null_if_missing(evaluate(options["_id"], doc))
        groups.setdefault(sort_key(key), (key, []))[1].append(doc)
    out = []
    for identity in sorted(groups):
        key, members = groups[identity]
        row: dict[str, Any] = {"_id": key}
        for field, (accumulate, expression) in fields.items():
            row[field] = accumulate([evaluate(expression, doc) for doc in members])
        out.append(row)
    return out
