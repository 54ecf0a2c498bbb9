"""Keyset pagination and the read path shared by every list: opaque cursors, never `skip`.

Order. Items are ordered by `(sort_field, _id)` in one direction; `_id` is a UUIDv7, so `_id`
order is creation order and ties on `sort_field` are broken deterministically. Each sort path
has an index `(tenant_id, [is_deleted,] sort_field, _id)` declared on its document, which
serves the order and the cursor's seek.

Cursors. A cursor holds the sort it belongs to (`-last_name`), the last item's sort value and
its id; the next page asks for items strictly after it, so inserts made while a client pages
through never make it repeat or skip an existing item. A cursor of another sort (or
direction) is refused, and a decoded value must be a scalar of the type the sort field has
(date, string, number, UUID, boolean, or null where the field is nullable): an object never
reaches a query (`{"$gt": 0}` or `{"$where": …}` in a crafted cursor are a 422, not a filter),
and a date outside what a datetime can hold in UTC is a 422 too. MongoDB sorts a missing or
null value below every other, so after a null the seek is "null with a later id, or any
value" (ascending), and a descending seek from a value also admits the nulls after it.

Round trips. A page is one `find` of `limit + 1` documents (the extra one says whether there
is a next page); `count=True` adds one `count_documents` on the same filter, without the
cursor, for the page's `total`.

Read path. With a `view` (the response schema's validator, see `schemas.common.ReadView`),
stored documents come back as raw driver dicts, never as Beanie documents (Beanie's parsing
cost ≈0.15 ms per document), in a `StoredPage`: a route answering `StoredPage.json()` has the
body written straight from those dicts in one pass (issue 27), and the response objects are
validated only if something reads `items`. Without a view, pages hold Beanie documents, for
callers that still need them.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import Enum
from functools import lru_cache
from types import UnionType
from typing import Annotated, Any, Generic, Protocol, TypeVar, Union, cast, get_args, get_origin
from uuid import UUID

from beanie import Document, SortDirection
from bson import Binary
from pydantic_core import to_json

from documents.base import as_utc
from service.core.deadlines import unbounded
from service.core.errors import Unprocessable

D = TypeVar("D", bound=Document)
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

INT64 = 2**63
BATCH_SIZE = 500  # documents per round trip when a result is streamed (export)


class StoredView(Protocol[T_co]):
    """Turns one stored document (a raw driver dict) into its response shape."""

    projection: Mapping[str, int] | None
    """Stored fields its reads leave on the server (none of them shown), or None."""

    def stored(self, raw: Mapping[str, Any]) -> T_co:
        """The response object of a stored document."""
        ...

    def stored_many(self, raws: Sequence[Mapping[str, Any]]) -> Sequence[T_co]:
        """The response objects of stored documents (a page), in one call."""
        ...

    def stored_json_many(self, raws: Sequence[Mapping[str, Any]]) -> bytes:
        """The JSON array of stored documents' response objects (a page's `items`)."""
        ...

    def json(self, item: Any) -> bytes:
        """One response object as its JSON body."""
        ...

    def json_many(self, items: Sequence[Any]) -> bytes:
        """The JSON array of response objects already built."""
        ...


@dataclass(frozen=True, slots=True)
class Sort:
    """A keyset order: a stored field and a direction (-1 descending), ties broken on `_id`.

    `unique`: the field alone never ties among the listed items (a journal's `version` within
    one aggregate), so `_id` is left out of the order and the index need not end with it.
    """

    field: str = "_id"
    direction: int = -1
    unique: bool = False

    @property
    def key(self) -> str:
        """The sort as the API and the cursor spell it: `field` or `-field`."""
        return f"-{self.field}" if self.direction < 0 else self.field

    def order(self) -> list[tuple[str, int]]:
        """The driver's sort specification, `_id` last."""
        if self.field == "_id" or self.unique:
            return [(self.field, self.direction)]
        return [(self.field, self.direction), ("_id", self.direction)]


NEWEST_FIRST = Sort("_id", -1)
OLDEST_FIRST = Sort("_id", 1)


def parse_sort(value: str | None, *, fields: Mapping[str, str], default: Sort) -> Sort:
    """`sort=field` / `sort=-field` as a `Sort` on the stored field (`fields`: API → stored).

    The API schemas restrict `sort` to the listed values (422 otherwise); an unknown name
    reaching here is refused the same way.
    """
    if value is None:
        return default
    name = value.removeprefix("-")
    if name not in fields:
        raise Unprocessable(f"Cannot sort by {name!r}.", loc=["query", "sort"])
    return Sort(fields[name], -1 if value.startswith("-") else 1)


def sort_choices(fields: Sequence[str]) -> list[str]:
    """Every value `sort` accepts for these fields: `field` and `-field`."""
    return [variant for name in fields for variant in (name, f"-{name}")]


@dataclass
class PageResult(Generic[T]):
    """Items of one page, the cursor of the next (None on the last page), and `total` if asked."""

    items: list[T]
    next_cursor: str | None
    total: int | None = None

    def body(self) -> dict[str, Any]:
        """The page as a response body: `items`, `next_cursor` and (when counted) `total`."""
        return {"items": self.items, "next_cursor": self.next_cursor, "total": self.total}


class StoredPage(PageResult[T]):
    """A page read through a view: its items are validated on first use only, and `json()`
    writes the response body straight from the stored documents (the read path, issue 27)."""

    def __init__(
        self,
        raws: Sequence[Mapping[str, Any]],
        view: StoredView[T],
        next_cursor: str | None,
        total: int | None = None,
    ) -> None:
        self.raws = raws
        self.view = view
        self.next_cursor = next_cursor
        self.total = total
        self._items: list[T] | None = None

    @property
    def items(self) -> list[T]:
        """The view's response objects (validated once, on first use)."""
        if self._items is None:
            self._items = list(self.view.stored_many(self.raws))
        return self._items

    @items.setter
    def items(self, value: list[T]) -> None:
        self._items = value

    def json(self) -> bytes:
        """The body FastAPI writes for `body()` through a `Page` / `CountedPage` of the view's
        schema, byte for byte (tests/test_pagination.py compares them): `items`, `next_cursor`,
        and `total` only when counted."""
        if self._items is not None:  # set or built already: written from the items
            items = self.view.json_many(self._items)
        else:
            items = self.view.stored_json_many(self.raws)
        body = b'{"items":' + items + b',"next_cursor":' + to_json(self.next_cursor)
        if self.total is not None:
            body += b',"total":' + to_json(self.total)
        return body + b"}"


# -- cursor values ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FieldKind:
    """The type of a sort field's values, which a cursor value must have."""

    type: type
    nullable: bool = False


ID_KIND = FieldKind(UUID)


@lru_cache(maxsize=256)
def field_kind(model: type[Any], name: str) -> FieldKind:
    """The value type of `model.name` (or of a subclass's field of that name), for cursors."""
    if name == "_id":
        return ID_KIND
    for cls in _with_subclasses(model):
        info = getattr(cls, "model_fields", {}).get(name)
        if info is not None:
            return _kind_of(info.annotation)
    raise ValueError(f"{model.__name__} has no field {name!r} to sort on")


def _with_subclasses(model: type[Any]) -> list[type[Any]]:
    found = [model]
    for sub in model.__subclasses__():
        found.extend(_with_subclasses(sub))
    return found


def _kind_of(annotation: Any) -> FieldKind:
    nullable = False
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, UnionType):
            options = [a for a in get_args(annotation) if a is not type(None)]
            nullable = nullable or len(options) < len(get_args(annotation))
            if len(options) != 1:
                raise ValueError(f"cannot sort on a field of type {annotation!r}")
            annotation = options[0]
        else:
            break
    for base in (bool, datetime, UUID, str, int, float):
        if isinstance(annotation, type) and issubclass(annotation, base):
            return FieldKind(base, nullable)
    raise ValueError(f"cannot sort on a field of type {annotation!r}")


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": as_utc(value).isoformat()}
    if isinstance(value, UUID):
        return {"u": str(value)}
    if isinstance(value, Binary):
        return {"u": str(value.as_uuid())}
    if isinstance(value, Enum):
        return value.value
    return value


def _decode_value(value: Any, kind: FieldKind) -> Any:
    """The cursor's value, checked against the field's kind; ValueError if it is not one."""
    if value is None:
        if not kind.nullable:
            raise ValueError("null value for a field that is never null")
        return None
    if kind.type is datetime:
        if not (isinstance(value, dict) and value.keys() == {"t"} and isinstance(value["t"], str)):
            raise ValueError("not a date")
        # OverflowError: a year-1 or year-9999 date whose offset moves it out of range in UTC.
        return as_utc(datetime.fromisoformat(value["t"]))
    if kind.type is UUID:
        if not (isinstance(value, dict) and value.keys() == {"u"} and isinstance(value["u"], str)):
            raise ValueError("not a UUID")
        return Binary.from_uuid(UUID(value["u"]))
    if kind.type is bool:
        if not isinstance(value, bool):
            raise ValueError("not a boolean")
        return value
    if kind.type is str:
        if not isinstance(value, str):
            raise ValueError("not a string")
        return value
    if kind.type is int:
        if isinstance(value, bool) or not isinstance(value, int) or not -INT64 <= value < INT64:
            raise ValueError("not a 64-bit integer")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("not a finite number")
    return value


def pack_cursor(data: Any, *, separators: tuple[str, str] | None = None) -> str:
    """A cursor's content as opaque, URL-safe text: JSON in unpadded base64url.

    The one cursor codec (lists here, the change feed, the AI usage walk).
    """
    raw = json.dumps(data, separators=separators)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def unpack_cursor(cursor: str) -> Any:
    """The content `pack_cursor` packed; ValueError for text that is not such a cursor."""
    try:
        return json.loads(base64.urlsafe_b64decode((cursor + "=" * (-len(cursor) % 4)).encode()))
    except (binascii.Error, UnicodeDecodeError) as exc:  # both ValueErrors: one family
        raise ValueError("not a cursor") from exc


def encode_cursor(sort: Sort, value: Any, last_id: UUID) -> str:
    """An opaque, URL-safe cursor after the item with this sort value and id."""
    return pack_cursor({"s": sort.key, "v": _encode_value(value), "i": str(last_id)})


@dataclass(frozen=True, slots=True)
class Position:
    """Where a cursor points: after the item with this sort value (BSON-ready) and id."""

    value: Any
    last_id: Binary


def read_cursor(cursor: str, sort: Sort, kind: FieldKind = ID_KIND) -> Position:
    """The position a cursor of this sort holds; 422 for a broken, foreign or forged cursor."""
    try:
        data = unpack_cursor(cursor)
        if not isinstance(data, dict) or data.get("s") != sort.key:
            raise ValueError("cursor of another list or order")
        last_id = UUID(data["i"])
        value = Binary.from_uuid(last_id) if sort.field == "_id" else _decode_value(data["v"], kind)
    except (
        ValueError,
        KeyError,
        TypeError,
        OverflowError,
        AttributeError,
        binascii.Error,
        UnicodeDecodeError,
    ):
        raise Unprocessable(
            "The cursor is not valid for this list.", loc=["query", "cursor"]
        ) from None
    return Position(value, Binary.from_uuid(last_id))


def after(sort: Sort, position: Position, *, nullable: bool = False) -> dict[str, Any]:
    """The filter selecting the items that come after `position` in `sort` order."""
    op = "$lt" if sort.direction < 0 else "$gt"
    if sort.field == "_id":
        return {"_id": {op: position.last_id}}
    name, value = sort.field, position.value
    if sort.unique and value is not None:
        return {name: {op: value}}
    if value is None:  # nulls sort lowest: first ascending, last descending
        branches: list[dict[str, Any]] = [{name: None, "_id": {op: position.last_id}}]
        if sort.direction > 0:
            branches.append({name: {"$ne": None}})
        return {"$or": branches}
    branches = [{name: {op: value}}, {name: value, "_id": {op: position.last_id}}]
    if sort.direction < 0 and nullable:
        branches.append({name: None})
    return {"$or": branches}


def decode_cursor(cursor: str, sort: Sort, kind: FieldKind = ID_KIND) -> dict[str, Any]:
    """The filter selecting items after a cursor of this sort (422 if it is not one)."""
    return after(sort, read_cursor(cursor, sort, kind), nullable=kind.nullable)


def with_condition(query: Mapping[str, Any], condition: Mapping[str, Any]) -> dict[str, Any]:
    """`query` AND `condition`, flat when their keys do not collide (planner-friendly)."""
    if query.keys() & condition.keys():
        return {"$and": [dict(query), dict(condition)]}
    return {**query, **condition}


def sort_value(item: Any, field_name: str) -> Any:
    """The value of the sort field of a raw dict or a document (None when missing)."""
    if isinstance(item, Mapping):
        value: Any = item
        for part in field_name.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        return value
    return getattr(item, "id" if field_name == "_id" else field_name, None)


# -- pages ------------------------------------------------------------------------------------


async def paginate(
    model: type[D],
    query: Mapping[str, Any],
    *,
    limit: int,
    cursor: str | None = None,
    sort: Sort = NEWEST_FIRST,
    view: StoredView[T] | None = None,
    count: bool = False,
) -> PageResult[Any]:
    """One page of `model` documents matching `query` (already tenant-scoped by the caller).

    With `view`, items are the response objects it validates from raw stored documents;
    without, Beanie documents. `count=True` sets `total` (one `count_documents`, same filter).
    """
    kind = field_kind(cast(Any, model), sort.field)
    filter_ = dict(query)
    if cursor:
        filter_ = with_condition(filter_, decode_cursor(cursor, sort, kind))
    collection = model.get_pymongo_collection()
    if view is None:
        order = [(name, SortDirection(direction)) for name, direction in sort.order()]
        docs: list[Any] = (
            await model.find(filter_, with_children=True).sort(order).limit(limit + 1).to_list()
        )
    else:
        docs = await collection.find(
            filter_, view.projection, sort=sort.order(), limit=limit + 1
        ).to_list()
    total = await collection.count_documents(dict(query)) if count else None
    next_cursor = None
    if len(docs) > limit:
        last = docs[limit - 1]  # the cursor's item: only its sort value and id are read
        last_id = cast(UUID, last["_id"] if view is not None else last.id)
        next_cursor = encode_cursor(sort, sort_value(last, sort.field), last_id)
    if view is None:
        return PageResult(items=docs[:limit], next_cursor=next_cursor, total=total)
    return StoredPage(docs[:limit], view, next_cursor, total)


async def stream(
    model: type[Document],
    query: Mapping[str, Any],
    *,
    sort: Sort | None = NEWEST_FIRST,
    batch_size: int = BATCH_SIZE,
) -> AsyncIterator[dict[str, Any]]:
    """Every stored document matching `query` in `sort` order, fetched `batch_size` at a time.

    Memory stays constant in the number of matches: the server (or the embedded backend's
    cursor) hands documents over batch by batch, and each is dropped once yielded. `sort`
    None keeps the order the query itself gives (`$nearSphere`: nearest first).
    """
    order = sort.order() if sort is not None else None
    cursor = model.get_pymongo_collection().find(dict(query), sort=order)
    cursor = cursor.batch_size(batch_size)
    try:
        while True:
            # Per batch, not per cursor life: a request's budget must not cut an export's
            # body off; each round trip is bounded by MONGODB_BATCH_TIMEOUT_MS instead.
            with unbounded():
                try:
                    raw = await anext(cursor)
                except StopAsyncIteration:
                    break
            yield raw
    finally:
        with unbounded():
            await cursor.close()
