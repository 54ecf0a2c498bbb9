"""Differential test: the embedded backend against an oracle that shares none of its planner.

Random documents (nested, arrays, null and missing fields, mixed BSON types) go into a
collection with the service's index shapes (compound with mixed directions, multikey, dotted,
sparse, partial unique, unique sparse); random filters, sorts, skips, limits, projections,
updates, replacements, deletes and `find_one_and_*` run on both, and every answer must agree.

The oracle is a list of documents scanned in full. It decides a match with the same matcher
the backend uses (mongomock's `filter_applies` on the engine's `prepared` filter) and nothing
else of the backend: no index, no planner, no `keys.py`. Its order, its index keys and its
unique-index rule are written out below from MongoDB's documentation:

- BSON comparison order, numbers by value (NaN below every other number), objects field by
  field, arrays element by element:
  https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/
- sorting an array field: smallest element ascending, largest descending, and "a comparison
  of an empty array considers the empty array as less than a null value or a missing field":
  https://www.mongodb.com/docs/manual/reference/method/cursor.sort/#sort-by-an-array-field
- a missing field sorts and indexes as null; a unique index holds one entry per array
  element; a sparse index skips documents missing every indexed field; a partial index holds
  only documents its filter matches:
  https://www.mongodb.com/docs/manual/core/index-unique/ ,
  https://www.mongodb.com/docs/manual/core/index-sparse/ ,
  https://www.mongodb.com/docs/manual/core/index-partial/

Ties in a sort have no defined order in MongoDB, so every sort ends with `_id`; `update_one`,
`delete_one` and unsorted `find_one_and_*` may pick any matching document, so the oracle
checks the backend's pick is one of its matches and then applies the same change.

The default run uses fixed seeds (a few seconds); `pytest -m differential_long` runs many more.
"""

from __future__ import annotations

import copy
import math
import os
import random
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from functools import cmp_to_key
from itertools import pairwise, product
from typing import Any

import bson
import pytest
from bson import ObjectId
from mongomock.filtering import filter_applies
from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from service.embedded import EmbeddedCollection, codec, embedded_database
from service.embedded.engine import prepared

pytestmark = pytest.mark.embedded_only

MISSING = object()  # a field left out of a document

# -- random documents ------------------------------------------------------------------------

OIDS = [ObjectId(f"{i:024x}") for i in (1, 2)]
DATES = [datetime(2024, 1, 1), datetime(2024, 6, 1)]
SCALARS: list[Any] = [
    None,
    0,
    1,
    1.0,
    2,
    -1.5,
    True,
    False,
    "a",
    "b",
    "B",
    "",
    *DATES,
    *OIDS,
    math.nan,
    -math.inf,
    math.inf,
]
WHOLES: list[Any] = [{"k": 1}, {"k": "a"}, {}, [], [1, "a"], ["a"], [[]], [None]]


def _value(rng: random.Random) -> Any:
    return rng.choice(SCALARS) if rng.random() < 0.8 else copy.deepcopy(rng.choice(WHOLES))


def _a_value(rng: random.Random, flat: bool) -> Any:
    # `flat`: every choice gives `a.b` one value, so its index stays single-valued and its
    # plans exact (where finding 3 lived).
    shapes: list[Any] = [MISSING, {}, {"b": 1}, {"b": None}, {"b": "a"}, [], [1, 2]]
    shapes += [[None, None], [[]], 4, None, [{"b": 2}]]
    if not flat:
        shapes += [[{"b": 1}, {}], [{"b": 1}, {"b": "a"}], [5, {"b": 5}]]
    chosen = rng.choice(shapes)
    return chosen if chosen is MISSING else copy.deepcopy(chosen)


def _doc(rng: random.Random, i: int, flat: bool) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "tenant": rng.choice([1, 2]),
        "status": rng.choice(["new", "won", "lost", None, MISSING, 1, True, 0, False]),
        "created": rng.choice([*DATES, None, MISSING, 3]),
        "tags": rng.choice([MISSING, [], ["a"], ["a", "b"], ["b", "c"], "a", [1, "a"], [[]]]),
        "a": _a_value(rng, flat),
        "s": rng.choice([MISSING, MISSING, 1, "x", None]),
        "email": rng.choice([MISSING, None, "e1", "e2", "e3", ["e1", 1], 7]),
        "code": rng.choice([MISSING, MISSING, MISSING, i, f"c{i}", rng.randrange(20)]),
        "n": rng.choice([MISSING, 0, 1, 2.5, -1, math.nan, -math.inf, math.inf, True]),
        "v": _value(rng),
    }
    doc = {"_id": i}
    doc.update({k: copy.deepcopy(v) for k, v in fields.items() if v is not MISSING})
    return doc


INDEXES: list[tuple[list[tuple[str, int]], dict[str, Any]]] = [
    ([("tenant", 1), ("status", 1), ("created", -1)], {}),
    ([("tags", 1)], {}),
    ([("a.b", 1)], {}),
    ([("s", 1)], {"sparse": True}),
    (
        [("tenant", 1), ("email", 1)],
        {"unique": True, "partialFilterExpression": {"email": {"$type": "string"}}},
    ),
    ([("code", 1)], {"unique": True, "sparse": True}),
    ([("n", 1)], {}),
    ([("v", -1)], {}),
    ([("status", 1), ("v", 1)], {}),
]

# -- random filters, sorts, projections, updates ---------------------------------------------

FIELDS = ["tenant", "status", "created", "tags", "a.b", "s", "email", "code", "n", "v"]


# Where the backend's answers turned on BSON kinds (1, 1.0, true; NaN and -inf; null).
SMALL: list[Any] = [None, 0, 1, 1.0, True, False, "a", math.nan, -math.inf]


def _condition(rng: random.Random) -> dict[str, Any]:
    field = rng.choice(FIELDS)
    value = rng.choice(SMALL if rng.random() < 0.5 else SCALARS)
    roll = rng.random()
    if field == "a.b" and roll < 0.5:
        return {"a.b": rng.choice([None, {"$eq": None}, {"$in": [None, 1]}])}
    if field == "tags" and roll < 0.3:
        x, y = rng.sample(["a", "b", "c", 1], 2)
        return {"$and": [{"tags": x}, {"tags": rng.choice([y, {"$in": [y, "z"]}])}]}
    if roll < 0.08:
        x, y = rng.sample(["a", "b", "c", 1], 2)
        return rng.choice(
            [
                {"tags": {"$all": [x, y]}},
                {"tags": {"$size": rng.randint(0, 2)}},
                {"tags": {"$elemMatch": {"$eq": x}}},
                {field: {"$type": rng.choice(["string", "array", "object", "bool"])}},
                {field: {"$not": {"$gt": value}}},
                {field: {"$nin": [value, rng.choice(SMALL)]}},
                {field: copy.deepcopy(rng.choice(WHOLES))},
                {field: {"$gte": value, "$in": rng.sample(SMALL, 2)}},
            ]
        )
    if roll < 0.45:
        return {field: value}
    if roll < 0.6:
        return {field: {"$in": rng.sample(SCALARS, rng.randint(1, 3))}}
    if roll < 0.8:
        op = rng.choice(["$gt", "$gte", "$lt", "$lte"])
        return {field: {op: value}}
    if roll < 0.9:
        return {field: {"$ne": value}}
    return {field: {"$exists": rng.random() < 0.5}}


def _filter(rng: random.Random) -> dict[str, Any]:
    roll = rng.random()
    if roll < 0.1:
        return {}
    if roll < 0.2:
        return {"$or": [_condition(rng), _condition(rng)]}
    parts = [_condition(rng) for _ in range(rng.choice([1, 1, 1, 2, 2, 3]))]
    out: dict[str, Any] = {}
    for part in parts:
        if any(k in out for k in part):
            out.setdefault("$and", []).append(part)
        else:
            out.update(part)
    return out


def _sort(rng: random.Random) -> list[tuple[str, int]]:
    if rng.random() < 0.3:
        return []
    names = ["tenant", "status", "created", "tags", "n", "v", "email"]
    chosen = [(f, rng.choice([1, -1])) for f in rng.sample(names, rng.randint(1, 2))]
    return [*chosen, ("_id", rng.choice([1, -1]))]


PROJECTIONS: list[Any] = [None, None, {"v": 1}, {"tags": 0, "a": 0}, {"_id": 0, "status": 1}]
# Exclusions with `_id` dropped too, alone, and of a field no document has.
PROJECTIONS += [{"_id": 0, "tags": 0}, {"_id": False}, {"s": False, "nowhere": 0}]


def _change(rng: random.Random) -> dict[str, Any]:
    # Only fields no unique index covers, so `update_many` never stops half-way.
    names = rng.sample(["status", "v", "n", "tags", "s"], rng.choice([1, 2]))
    if rng.random() < 0.4:  # from one BSON kind to another of equal Python value (1, 1.0, true)
        sets = {f: rng.choice([0, 1, 1.0, True, False]) for f in names}
    else:
        sets = {f: _value(rng) for f in names}
    update: dict[str, Any] = {"$set": sets}
    if rng.random() < 0.3:
        update["$unset"] = {rng.choice(["created", "a"]): ""}
    return update


# -- the oracle ------------------------------------------------------------------------------

# BSON comparison order (the documentation's table; MinKey/MaxKey, symbols and regexes
# are never stored here).
_RANK = {"null": 1, "number": 2, "string": 3, "object": 4, "array": 5, "binary": 6}
_RANK.update({"objectid": 7, "bool": 8, "date": 9})


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, ObjectId):
        return "objectid"
    if isinstance(value, datetime):
        return "date"
    if isinstance(value, bytes):
        return "binary"
    raise TypeError(type(value))


def _sign(x: Any) -> int:
    return (x > 0) - (x < 0)


def bson_compare(a: Any, b: Any) -> int:
    """-1, 0 or 1 as MongoDB orders two values."""
    ka, kb = _kind(a), _kind(b)
    if ka != kb:
        return _sign(_RANK[ka] - _RANK[kb])
    if ka == "null":
        return 0
    if ka == "number":
        a_nan, b_nan = a != a, b != b
        if a_nan or b_nan:  # NaN is below every other number and equal to NaN
            return int(b_nan) - int(a_nan)
        return _sign(a - b)
    if ka == "object":
        # Pair by pair: the value's type, then the field name, then the value; a prefix first.
        for (fa, va), (fb, vb) in zip(a.items(), b.items(), strict=False):
            for c in (_sign(_RANK[_kind(va)] - _RANK[_kind(vb)]), _sign((fa > fb) - (fa < fb))):
                if c:
                    return c
            c = bson_compare(va, vb)
            if c:
                return c
        return _sign(len(a) - len(b))
    if ka == "array":
        for x, y in zip(a, b, strict=False):
            c = bson_compare(x, y)
            if c:
                return c
        return _sign(len(a) - len(b))
    if ka == "objectid":
        return _sign((a.binary > b.binary) - (a.binary < b.binary))
    return _sign((a > b) - (a < b))  # strings by code point, booleans, dates


def bson_equal(a: Any, b: Any) -> bool:
    """Equality as an index sees it (1 equals 1.0; true never equals 1)."""
    return bson_compare(a, b) == 0


EMPTY = object()  # a field holding `[]`: below null in a sort, its own key in an index


def _values(doc: Any, path: list[str]) -> list[Any]:
    # The values a path reaches, descending into arrays (of subdocuments, past the last part
    # into elements); a missing field is null.
    if not path:
        if isinstance(doc, list):
            return list(doc) if doc else [EMPTY]
        return [doc]
    if isinstance(doc, Mapping):
        return _values(doc[path[0]], path[1:]) if path[0] in doc else [None]
    if isinstance(doc, list):
        out = [v for item in doc if isinstance(item, Mapping) for v in _values(item, path)]
        return out or [None]
    return [None]


def _sort_key(doc: Mapping[str, Any], field: str, direction: int) -> Any:
    values = _values(doc, field.split("."))
    if EMPTY in values:
        return EMPTY
    key = values[0]
    for v in values[1:]:
        c = bson_compare(v, key)
        if (c < 0 and direction > 0) or (c > 0 and direction < 0):
            key = v
    return key


def _compare_keys(a: Any, b: Any) -> int:
    if a is EMPTY or b is EMPTY:
        return (b is EMPTY) - (a is EMPTY)
    return bson_compare(a, b)


class Oracle:
    """A collection as a plain list, scanned in full."""

    def __init__(self, indexes: list[tuple[list[tuple[str, int]], dict[str, Any]]]) -> None:
        self.docs: list[dict[str, Any]] = []
        self.uniques = [(keys, opts) for keys, opts in indexes if opts.get("unique")]
        self.uniques.insert(0, ([("_id", 1)], {}))

    def matches(self, query: Mapping[str, Any]) -> list[dict[str, Any]]:
        ready = prepared(copy.deepcopy(dict(query)))
        return [d for d in self.docs if filter_applies(ready, d)]

    def find(
        self, query: Mapping[str, Any], sort: list[tuple[str, int]], skip: int, limit: int
    ) -> list[dict[str, Any]]:
        found = self.matches(query)
        if sort:

            def order(x: dict[str, Any], y: dict[str, Any]) -> int:
                for field, direction in sort:
                    c = _compare_keys(
                        _sort_key(x, field, direction), _sort_key(y, field, direction)
                    )
                    if c:
                        return c * direction
                return 0

            found.sort(key=cmp_to_key(order))
        found = found[skip:]
        return found[:limit] if limit else found

    def _keys(self, doc: Mapping[str, Any], fields: list[str]) -> list[tuple[Any, ...]]:
        per_field = [_values(doc, f.split(".")) for f in fields]
        return list(product(*per_field))

    def clashes(self, doc: Mapping[str, Any], ignore: Any = MISSING) -> bool:
        """Whether `doc` breaks a unique index against the other documents."""
        for keys, opts in self.uniques:
            fields = [f for f, _ in keys]
            if not self._covers(doc, fields, opts):
                continue
            mine = self._keys(doc, fields)
            for other in self.docs:
                if other["_id"] == ignore or not self._covers(other, fields, opts):
                    continue
                for k1, k2 in product(mine, self._keys(other, fields)):
                    if all(_same_key(x, y) for x, y in zip(k1, k2, strict=True)):
                        return True
        return False

    @staticmethod
    def _covers(doc: Mapping[str, Any], fields: list[str], opts: Mapping[str, Any]) -> bool:
        if opts.get("sparse") and all(
            _values(doc, f.split(".")) == [None] and not _has(doc, f) for f in fields
        ):
            return False
        partial = opts.get("partialFilterExpression")
        return partial is None or filter_applies(prepared(copy.deepcopy(partial)), doc)

    def index_of(self, _id: Any) -> int:
        return next(i for i, d in enumerate(self.docs) if d["_id"] == _id)


def _same_key(x: Any, y: Any) -> bool:
    if x is EMPTY or y is EMPTY:
        return x is y
    return bson_equal(x, y)


def _has(doc: Mapping[str, Any], path: str) -> bool:
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


def _apply(doc: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    for field, value in update.get("$set", {}).items():
        out[field] = copy.deepcopy(value)
    for field in update.get("$unset", {}):
        out.pop(field, None)
    return out


def _project(doc: Mapping[str, Any], projection: Any) -> dict[str, Any]:
    if projection is None:
        return dict(doc)
    if any(v for k, v in projection.items() if k != "_id"):
        keep = {k for k, v in projection.items() if v}
        if projection.get("_id", 1):
            keep.add("_id")
        return {k: v for k, v in doc.items() if k in keep}
    drop = {k for k, v in projection.items() if not v}
    return {k: v for k, v in doc.items() if k not in drop}


def _bson(doc: Mapping[str, Any]) -> dict[str, bytes]:
    # Field by field as BSON (type-exact: 1, 1.0 and true differ; order within values kept).
    return {k: codec.encode({"v": v}) for k, v in doc.items()}


def _same_docs(got: list[Mapping[str, Any]], want: list[Mapping[str, Any]]) -> bool:
    return [_bson(d) for d in got] == [_bson(d) for d in want]


# -- the run ---------------------------------------------------------------------------------


class Run:
    """One seed: a collection and its oracle, driven by the same random operations."""

    def __init__(self, seed: int, docs: int, ops: int) -> None:
        self.rng = random.Random(seed)
        self.seed, self.n_docs, self.n_ops = seed, docs, ops
        self.flat = self.rng.random() < 0.5
        self.coll: EmbeddedCollection = embedded_database(f"diff{seed}")["c"]
        chosen = [ix for ix in INDEXES if self.rng.random() < 0.8]
        self.oracle = Oracle(chosen)
        self.indexes = chosen
        self.log: list[str] = []
        self.next_id = docs

    def fail(self, what: str, got: Any, want: Any) -> None:
        trail = "\n".join(self.log[-5:])
        pytest.fail(f"seed {self.seed}: {what}\n got:  {got}\n want: {want}\nlast ops:\n{trail}")

    async def go(self) -> None:
        for keys, opts in self.indexes:
            await self.coll.create_index(keys, **opts)
        for i in range(self.n_docs):
            await self.insert(_doc(self.rng, i, self.flat))
        for _ in range(self.n_ops):
            op = self.rng.choice(OPERATIONS)
            await op(self)
        await self.check_all()

    async def insert(self, doc: dict[str, Any]) -> None:
        self.log.append(f"insert {doc}")
        clash = self.oracle.clashes(doc)
        try:
            await self.coll.insert_one(copy.deepcopy(doc))
        except DuplicateKeyError:
            if not clash:
                self.fail("insert refused as a duplicate", "DuplicateKeyError", doc)
            return
        if clash:
            self.fail("a duplicate was inserted", doc, "DuplicateKeyError")
        self.oracle.docs.append(codec.canonical(doc))

    async def insert_random(self) -> None:
        self.next_id += 1
        await self.insert(_doc(self.rng, self.next_id, self.flat))

    async def check_all(self) -> None:
        got = await self.coll.find({}, sort=[("_id", 1)]).to_list()
        want = sorted(self.oracle.docs, key=lambda d: d["_id"])
        if not _same_docs(got, want):
            self.fail("stored documents differ", got, want)

    async def find(self) -> None:
        query, sort = _filter(self.rng), _sort(self.rng)
        skip = self.rng.choice([0, 0, 1, 3])
        limit = self.rng.choice([0, 0, 1, 2, 5])
        projection = self.rng.choice(PROJECTIONS)
        self.log.append(f"find {query} sort={sort} skip={skip} limit={limit} proj={projection}")
        want = [_project(d, projection) for d in self.oracle.find(query, sort, skip, limit)]
        cursor = self.coll.find(query, projection, sort=sort or None, skip=skip, limit=limit)
        got = await cursor.to_list()
        if sort:
            if not _same_docs(got, want):
                self.fail(f"find {query} sort {sort}", got, want)
        elif limit or skip:
            # No order asked for: any `limit` of the matches, each of them a match.
            pool = [_project(d, projection) for d in self.oracle.find(query, [], 0, 0)]
            if len(got) != len(want) or not _within(got, pool):
                self.fail(f"find {query} skip {skip} limit {limit}", got, want)
        elif _multiset(got) != _multiset(want):
            self.fail(f"find {query}", got, want)
        count = await self.coll.count_documents(query)
        if count != len(self.oracle.matches(query)):
            self.fail(f"count {query}", count, len(self.oracle.matches(query)))

    async def update(self) -> None:
        query, change = _filter(self.rng), _change(self.rng)
        many = self.rng.random() < 0.4
        self.log.append(f"update many={many} {query} {change}")
        matched = self.oracle.matches(query)
        before = {d["_id"]: _bson(d) for d in await self.coll.find({}).to_list()}
        if many:
            result = await self.coll.update_many(query, change)
            targets = matched
        else:
            result = await self.coll.update_one(query, change)
            targets = await self._picked(before, matched, lambda d: _apply(d, change))
        if result.matched_count != (len(matched) if many else min(1, len(matched))):
            self.fail(f"matched {query}", result.matched_count, len(matched))
        modified = 0
        for doc in targets:
            new = _apply(doc, change)
            modified += _bson(new) != _bson(doc)
            self.oracle.docs[self.oracle.index_of(doc["_id"])] = new
        if result.modified_count != modified:
            self.fail(f"modified by {change}", result.modified_count, modified)
        await self.check_all()

    async def _picked(
        self,
        before: dict[Any, dict[str, bytes]],
        matched: list[dict[str, Any]],
        change: Callable[[dict[str, Any]], dict[str, Any]],
    ) -> list[dict[str, Any]]:
        # Which document an unsorted `*_one` changed: one of the matches, or none when the
        # change leaves the one it picked as it was (then some match must be such a no-op).
        after = {d["_id"]: _bson(d) for d in await self.coll.find({}).to_list()}
        changed = [k for k in before if after.get(k) != before[k]]
        ids = {_id_key(d) for d in matched}
        if len(changed) > 1 or any(k not in ids for k in changed):
            self.fail("changed documents", changed, sorted(ids))
        if not changed and matched and not any(_bson(change(d)) == _bson(d) for d in matched):
            self.fail("no document changed", [], sorted(ids))
        return [d for d in matched if d["_id"] in changed]

    async def upsert(self) -> None:
        # An upsert that matches nothing inserts the filter's equalities with the update.
        self.next_id += 1
        query: dict[str, Any] = {"_id": self.next_id, "status": self.rng.choice(SMALL)}
        change = _change(self.rng)
        self.log.append(f"upsert {query} {change}")
        result = await self.coll.update_one(query, change, upsert=True)
        if result.upserted_id != self.next_id:
            self.fail("upserted id", result.upserted_id, self.next_id)
        self.oracle.docs.append(_apply(codec.canonical(query), change))
        await self.check_all()

    async def update_unique(self) -> None:
        # One document's uniquely indexed fields changed: refused exactly when they clash.
        if not self.oracle.docs:
            return
        doc = self.rng.choice(self.oracle.docs)
        field = self.rng.choice(["email", "code"])
        value = self.rng.choice(["e1", "e2", ["e2", 3], None, 7, 3, f"c{doc['_id']}", "c1"])
        change = {"$set": {field: value}}
        if self.rng.random() < 0.3:
            change = {"$unset": {field: ""}}
        self.log.append(f"update_unique {doc['_id']} {change}")
        new = _apply(doc, change)
        clash = self.oracle.clashes(new, ignore=doc["_id"])
        try:
            await self.coll.update_one({"_id": doc["_id"]}, change)
        except DuplicateKeyError:
            if not clash:
                self.fail("update refused as a duplicate", change, new)
            await self.check_all()
            return
        if clash:
            self.fail("an update made a duplicate", new, "DuplicateKeyError")
        self.oracle.docs[self.oracle.index_of(doc["_id"])] = new
        await self.check_all()

    async def replace(self) -> None:
        query = _filter(self.rng)
        replacement = _doc(self.rng, 0, self.flat)
        del replacement["_id"]
        self.log.append(f"replace {query} {replacement}")
        matched = self.oracle.matches(query)
        before = {d["_id"]: _bson(d) for d in await self.coll.find({}).to_list()}
        try:
            result = await self.coll.replace_one(query, copy.deepcopy(replacement))
        except DuplicateKeyError:
            ok = [d for d in matched if not self._replace_clashes(d, replacement)]
            if ok and len(matched) == 1:
                self.fail("replace refused as a duplicate", query, replacement)
            await self.check_all()
            return
        if result.matched_count != min(1, len(matched)):
            self.fail(f"replace matched {query}", result.matched_count, len(matched))

        def replaced(doc: dict[str, Any]) -> dict[str, Any]:
            return codec.canonical({"_id": doc["_id"], **replacement})

        for doc in await self._picked(before, matched, replaced):
            new = replaced(doc)
            if self._replace_clashes(doc, replacement):
                self.fail("a duplicate replaced a document", new, "DuplicateKeyError")
            self.oracle.docs[self.oracle.index_of(doc["_id"])] = new
        await self.check_all()

    def _replace_clashes(self, doc: Mapping[str, Any], replacement: Mapping[str, Any]) -> bool:
        new = codec.canonical({"_id": doc["_id"], **replacement})
        return self.oracle.clashes(new, ignore=doc["_id"])

    async def delete(self) -> None:
        query = _filter(self.rng)
        many = self.rng.random() < 0.3
        self.log.append(f"delete many={many} {query}")
        matched = self.oracle.matches(query)
        if many:
            result = await self.coll.delete_many(query)
            gone = {_id_key(d) for d in matched}
        else:
            before = {d["_id"] for d in await self.coll.find({}).to_list()}
            result = await self.coll.delete_one(query)
            after = {d["_id"] for d in await self.coll.find({}).to_list()}
            gone = before - after
            if not gone <= {_id_key(d) for d in matched}:
                self.fail(f"delete_one {query}", gone, [d["_id"] for d in matched])
        expected = len(matched) if many else min(1, len(matched))
        if result.deleted_count != expected or len(gone) != expected:
            self.fail(f"deleted by {query}", result.deleted_count, expected)
        self.oracle.docs = [d for d in self.oracle.docs if d["_id"] not in gone]
        await self.check_all()

    async def find_and_modify(self) -> None:
        query, sort = _filter(self.rng), _sort(self.rng)
        kind = self.rng.choice(["update", "replace", "delete"])
        self.log.append(f"find_one_and_{kind} {query} sort={sort}")
        matched = self.oracle.find(query, sort, 0, 0)
        if kind == "delete":
            got = await self.coll.find_one_and_delete(query, sort=sort or None)
        elif kind == "update":
            change = _change(self.rng)
            got = await self.coll.find_one_and_update(
                query, change, sort=sort or None, return_document=ReturnDocument.BEFORE
            )
        else:
            replacement = {"status": "replaced", "v": _value(self.rng)}
            got = await self.coll.find_one_and_replace(
                query, copy.deepcopy(replacement), sort=sort or None
            )
        if not matched:
            if got is not None:
                self.fail(f"find_one_and_{kind} {query}", got, None)
            return
        if sort:
            if got is None or got["_id"] != matched[0]["_id"]:
                self.fail(f"find_one_and_{kind} {query} {sort}", got, matched[0])
        elif got is None or got["_id"] not in {_id_key(d) for d in matched}:
            self.fail(f"find_one_and_{kind} {query}", got, matched)
        target = self.oracle.docs[self.oracle.index_of(got["_id"])]
        if not _same_docs([got], [target]):
            self.fail("returned document", got, target)
        position = self.oracle.index_of(got["_id"])
        if kind == "delete":
            del self.oracle.docs[position]
        elif kind == "update":
            self.oracle.docs[position] = _apply(target, change)
        else:
            self.oracle.docs[position] = codec.canonical({"_id": target["_id"], **replacement})
        await self.check_all()


def _id_key(doc: Mapping[str, Any]) -> Any:
    return doc["_id"]


def _multiset(docs: list[Mapping[str, Any]]) -> list[Any]:
    return sorted(sorted(_bson(d).items()) for d in docs)


def _within(got: list[Mapping[str, Any]], pool: list[Mapping[str, Any]]) -> bool:
    remaining = _multiset(pool)
    for doc in _multiset(got):
        if doc not in remaining:
            return False
        remaining.remove(doc)
    return True


OPERATIONS: list[Callable[[Run], Any]] = [
    Run.find,
    Run.find,
    Run.find,
    Run.find,
    Run.update,
    Run.update,
    Run.replace,
    Run.update_unique,
    Run.upsert,
    Run.delete,
    Run.insert_random,
    Run.find_and_modify,
    Run.find_and_modify,
]


def _seeds(count: int, start: int = 0) -> Iterator[int]:
    yield from range(start, start + count)


@pytest.mark.parametrize("seed", list(_seeds(20)))
async def test_backend_agrees_with_the_oracle(seed: int) -> None:
    await Run(seed, docs=40, ops=60).go()


@pytest.mark.differential_long
@pytest.mark.parametrize(
    "seed", list(_seeds(int(os.environ.get("DIFFERENTIAL_SEEDS", "300")), start=1000))
)
async def test_backend_agrees_with_the_oracle_long(seed: int) -> None:
    await Run(seed, docs=80, ops=200).go()


def test_the_oracle_order_follows_the_documentation() -> None:
    # The documented table, smallest first, with NaN below -inf and [] below null in sorts.
    values = [None, math.nan, -math.inf, 1, "a", {"a": 1}, [1], OIDS[0], False, DATES[0]]
    for x, y in pairwise(values):
        assert bson_compare(x, y) < 0, (x, y)
    assert bson_equal(1, 1.0) and not bson_equal(1, True) and bson_equal(math.nan, math.nan)
    doc_empty, doc_null = {"f": []}, {"f": None}
    assert _compare_keys(_sort_key(doc_empty, "f", 1), _sort_key(doc_null, "f", 1)) < 0
    assert _sort_key({"f": [3, 1, 2]}, "f", 1) == 1 and _sort_key({"f": [3, 1]}, "f", -1) == 3
    assert bson.encode({"v": 1}) != bson.encode({"v": True})


# -- the suite catches each of issue 22's findings when its fix is taken away ---------------


def _revert(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from service.embedded import engine, keys, planner, store

    if name == "multikey points intersected (2)":
        monkeypatch.setattr(planner.Bounds, "points_for", lambda self, index: self.points)
    elif name == "dotted null exact (3)":
        monkeypatch.setattr(planner, "NULL_KEY", ("never a key",))
    elif name == "1 == true in updates (4)":
        # Simple `$set`s take the fast path, which compares stored bytes, not `identical`.
        monkeypatch.setattr(engine, "FAST_PATHS", False)
        monkeypatch.setattr(engine, "identical", lambda a, b: a == b)
        monkeypatch.setattr(engine.WorkingCopy, "__eq__", dict.__eq__)
        monkeypatch.setattr(engine.WorkingCopy, "__ne__", dict.__ne__)
    elif name == "empty array after objects (5)":
        monkeypatch.setattr(keys, "EMPTY_ARRAY_KEY", (5, ()))
    elif name == "partial $type ignores arrays (6)":
        monkeypatch.setattr(engine, "partial_matcher", store._compile)
    elif name == "NaN keyed as -inf (6)":
        nan_as_minus_inf = lambda v: (2, -math.inf if v != v else v)  # noqa: E731
        monkeypatch.setitem(keys._FAST, float, nan_as_minus_inf)


@pytest.mark.differential_long
@pytest.mark.parametrize(
    "fix",
    [
        "multikey points intersected (2)",
        "dotted null exact (3)",
        "1 == true in updates (4)",
        "empty array after objects (5)",
        "partial $type ignores arrays (6)",
        "NaN keyed as -inf (6)",
    ],
)
async def test_each_reverted_fix_is_caught(fix: str, monkeypatch: pytest.MonkeyPatch) -> None:
    _revert(fix, monkeypatch)
    for seed in range(40):
        try:
            await Run(seed, docs=40, ops=60).go()
        except pytest.fail.Exception:
            return
    pytest.fail(f"40 seeds did not notice the fix for {fix!r} taken away")
