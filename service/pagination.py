"""Keyset pagination shared by every list: an opaque cursor, never `skip`.

Items are ordered by `(sort_field, _id)`; `_id` is a UUIDv7, so `_id` order is creation order
and ties on `sort_field` are broken deterministically. The cursor holds the last item's sort
value and id; the next page asks for items strictly after it, so inserts made while a client
pages through never make it repeat or skip an existing item. One round trip per page: the
query fetches `limit + 1` documents to learn whether there is a next page.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, cast
from uuid import UUID

from beanie import Document, SortDirection
from bson import Binary

from documents.base import _as_utc
from service.errors import Unprocessable

D = TypeVar("D", bound=Document)


@dataclass(frozen=True, slots=True)
class Sort:
    """A keyset order: a field and a direction (-1 newest first)."""

    field: str = "_id"
    direction: int = -1


NEWEST_FIRST = Sort("_id", -1)
OLDEST_FIRST = Sort("_id", 1)


@dataclass
class PageResult(Generic[D]):
    """Documents of one page and the cursor of the next (None on the last page)."""

    items: list[D]
    next_cursor: str | None


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": _as_utc(value).isoformat()}
    if isinstance(value, UUID):
        return {"u": str(value)}
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict) and "t" in value:
        return _as_utc(datetime.fromisoformat(value["t"]))
    if isinstance(value, dict) and "u" in value:
        return Binary.from_uuid(UUID(value["u"]))
    return value


def encode_cursor(sort: Sort, value: Any, last_id: UUID) -> str:
    """An opaque, URL-safe cursor after the item with this sort value and id."""
    raw = json.dumps({"f": sort.field, "v": _encode_value(value), "i": str(last_id)})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: Sort) -> dict[str, Any]:
    """The Mongo condition selecting items after the cursor; a foreign or broken cursor is 422."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if data["f"] != sort.field:
            raise ValueError("cursor of another list")
        value = _decode_value(data["v"])
        last_id = Binary.from_uuid(UUID(data["i"]))
    except (ValueError, KeyError, TypeError, binascii.Error, json.JSONDecodeError):
        raise Unprocessable(
            "The cursor is not valid for this list.", loc=["query", "cursor"]
        ) from None
    op = "$lt" if sort.direction < 0 else "$gt"
    if sort.field == "_id":
        return {"_id": {op: last_id}}
    return {"$or": [{sort.field: {op: value}}, {sort.field: value, "_id": {op: last_id}}]}


async def paginate(
    model: type[D],
    query: dict[str, Any],
    *,
    limit: int,
    cursor: str | None = None,
    sort: Sort = NEWEST_FIRST,
) -> PageResult[D]:
    """One page of `model` documents matching `query` (already tenant-scoped by the caller)."""
    if cursor:
        query = {"$and": [query, decode_cursor(cursor, sort)]}
    direction = SortDirection(sort.direction)
    order = [(sort.field, direction)]
    if sort.field != "_id":
        order.append(("_id", direction))
    docs = await model.find(query, with_children=True).sort(order).limit(limit + 1).to_list()
    if len(docs) <= limit:
        return PageResult(items=docs, next_cursor=None)
    last = docs[limit - 1]
    last_id = cast(UUID, last.id)  # every document here has a UUID `_id`
    value = last_id if sort.field == "_id" else getattr(last, sort.field)
    return PageResult(items=docs[:limit], next_cursor=encode_cursor(sort, value, last_id))
