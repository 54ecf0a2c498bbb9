"""MongoDB's value order and index keys, for the embedded backend's indexes and sorts.

Stored documents are in the backend's canonical form (see `codec.py`): UUIDs are BSON
`Binary` subtype 4, datetimes naive UTC with millisecond precision. `sort_key` maps such a value
to a Python tuple whose natural order is MongoDB's BSON comparison order (MinKey < null <
numbers < strings < objects < arrays < binary < ObjectId < booleans < dates < timestamps <
regular expressions < JavaScript code < code with scope < MaxKey, as the server's
`canonicalizeBSONType` ranks them; a DBRef is the embedded document it is stored as); numbers
compare by value across int, float and Decimal128, and NaN sorts below every other number
(-inf included) and equals only NaN.

A field that holds an empty array is keyed below null (`EMPTY_ARRAY_KEY`): MongoDB's sort
documentation says "a comparison of an empty array ([ ]) considers the empty array as less
than a null value or a missing field value", and its index stores such a field as
`undefined`, which also sorts before null. An empty array *inside* an array is an ordinary
array value. https://www.mongodb.com/docs/manual/reference/method/cursor.sort/#sort-by-an-array-field
https://www.mongodb.com/docs/manual/reference/bson-type-comparison-order/
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import product
from typing import Any
from uuid import UUID

from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp

# Ranks of BSON types in comparison order.
_MINKEY, _NULL, _NUMBER, _STRING, _OBJECT, _ARRAY = 0, 1, 2, 3, 4, 5
_BINARY, _OBJECTID, _BOOL, _DATE, _TIMESTAMP, _REGEX = 6, 7, 8, 9, 10, 11
_CODE, _CODE_SCOPE, _MAXKEY = 12, 13, 14

NULL_KEY: tuple[Any, ...] = (_NULL,)
# Between MinKey and null: a field holding `[]` (see the module docstring).
EMPTY_ARRAY_KEY: tuple[Any, ...] = ((_MINKEY + _NULL) / 2,)
LOWEST: tuple[Any, ...] = (-1,)
HIGHEST: tuple[Any, ...] = (99,)


class _NaN:
    """NaN's place among numbers: below every other number (-inf too), equal only to itself."""

    __slots__ = ()

    def __lt__(self, other: object) -> bool:
        return other is not self

    def __le__(self, other: object) -> bool:
        return True

    def __gt__(self, other: object) -> bool:
        return False

    def __ge__(self, other: object) -> bool:
        return other is self

    def __eq__(self, other: object) -> bool:
        return other is self

    def __hash__(self) -> int:
        return 0x7FF8

    def __repr__(self) -> str:
        return "NaN"


NAN = _NaN()


def _number(value: Any) -> Any:
    if isinstance(value, Decimal128):
        value = value.to_decimal()
    if isinstance(value, Decimal):
        return NAN if value.is_nan() else value
    if isinstance(value, float) and math.isnan(value):
        return NAN
    return value


def type_rank(value: Any) -> int:
    """The rank of a value's BSON type in MongoDB's comparison order."""
    if value is None:
        return _NULL
    if isinstance(value, bool):
        return _BOOL
    if isinstance(value, int | float | Int64 | Decimal128 | Decimal):
        return _NUMBER
    if isinstance(value, str):
        if isinstance(value, Code):  # (a str subclass)
            return _CODE if value.scope is None else _CODE_SCOPE
        return _STRING
    if isinstance(value, Mapping | DBRef):
        return _OBJECT
    if isinstance(value, list | tuple):
        return _ARRAY
    if isinstance(value, bytes | UUID):
        return _BINARY
    if isinstance(value, ObjectId):
        return _OBJECTID
    if isinstance(value, datetime):
        return _DATE
    if isinstance(value, Timestamp):
        return _TIMESTAMP
    if isinstance(value, Regex):
        return _REGEX
    if isinstance(value, MinKey):
        return _MINKEY
    if isinstance(value, MaxKey):
        return _MAXKEY
    if hasattr(value, "pattern"):  # a compiled re.Pattern
        return _REGEX
    raise TypeError(f"no BSON order for {type(value).__name__}")


def _binary_key(value: Binary) -> tuple[Any, ...]:
    return (_BINARY, len(value), value.subtype, bytes(value))


def _date_key(value: datetime) -> tuple[Any, ...]:
    offset = value.utcoffset()
    if offset is not None:
        value = value.replace(tzinfo=None) - offset
    return (_DATE, value)


# Equal keys as one object: index entries sharing a prefix (a tenant, a flag) then compare
# it by identity, not element by element, on every bisection of a write. Bounded: a full
# table starts again (an equal key built anew still compares equal, only slower).
_SHARED: dict[tuple[Any, ...], tuple[Any, ...]] = {}
_SHARED_MAX = 1 << 14  # about 3 MB at most
_FALSE_KEY: tuple[Any, ...] = (_BOOL, False)
_TRUE_KEY: tuple[Any, ...] = (_BOOL, True)


def _shared_binary_key(value: Binary) -> tuple[Any, ...]:
    key = (_BINARY, len(value), value.subtype, bytes(value))
    shared = _SHARED.get(key)
    if shared is None:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        _SHARED[key] = shared = key
    return shared


# The common stored types, by exact type: most keys are computed without the isinstance chain.
_FAST: dict[type, Any] = {
    str: lambda v: (_STRING, v),
    int: lambda v: (_NUMBER, v),
    float: lambda v: (_NUMBER, NAN if v != v else v),  # NaN is the one float unequal to itself
    bool: lambda v: _TRUE_KEY if v else _FALSE_KEY,
    type(None): lambda v: NULL_KEY,
    Binary: _shared_binary_key,
    datetime: _date_key,
}
FAST_KEYS = _FAST
"""`sort_key` by a value's exact type, for the types most stored values have."""


def key_value(key: tuple[Any, ...]) -> Any:
    """A value that `key` stands for (`sort_key`'s inverse, up to equal values), for messages
    such as a duplicate key error's `keyValue`."""
    rank = key[0]
    if len(key) == 1:
        return None  # null, missing or an empty array's place (MinKey/MaxKey: no message)
    if rank == _BINARY:
        return Binary(key[3], key[2])
    part = key[1]
    if rank == _NUMBER:
        if part is NAN:
            return math.nan
        return Decimal128(part) if isinstance(part, Decimal) else part
    if rank == _OBJECTID:
        return ObjectId(part)
    if rank == _OBJECT:
        return {name: key_value(sub) for _, name, sub in part}
    if rank == _ARRAY:
        return [key_value(sub) for sub in part]
    if rank == _TIMESTAMP:
        return Timestamp(key[1], key[2])
    if rank == _CODE:
        return Code(part)
    if rank == _CODE_SCOPE:
        return Code(part, key_value(key[2]))
    if rank == _REGEX:
        return Regex(part)
    return part


def sort_key(value: Any) -> tuple[Any, ...]:
    """A tuple ordering like `value` does in MongoDB (arrays compare element by element)."""
    fast = _FAST.get(type(value))
    if fast is not None:
        return fast(value)  # type: ignore[no-any-return]
    rank = type_rank(value)
    if rank == _NULL or rank in (_MINKEY, _MAXKEY):
        return (rank,)
    if rank == _NUMBER:
        return (rank, _number(value))
    if rank in (_STRING, _BOOL, _OBJECTID):
        return (rank, value if rank != _OBJECTID else value.binary)
    if rank == _DATE:
        return _date_key(value)
    if rank == _BINARY:
        if isinstance(value, UUID):
            value = Binary.from_uuid(value)
        subtype = value.subtype if isinstance(value, Binary) else 0
        return (rank, len(value), subtype, bytes(value))
    if rank == _OBJECT:
        if isinstance(value, DBRef):
            value = value.as_doc()
        return (rank, tuple((type_rank(v), k, sort_key(v)) for k, v in value.items()))
    if rank == _ARRAY:
        return (rank, tuple(sort_key(v) for v in value))
    if rank == _TIMESTAMP:
        return (rank, value.time, value.inc)
    if rank == _CODE:
        return (rank, str(value))
    if rank == _CODE_SCOPE:  # the code, then the scope as a document (field names count)
        return (rank, str(value), sort_key(dict(value.scope)))
    return (rank, value.pattern, str(getattr(value, "flags", "")))


def equality_key(value: Any) -> tuple[Any, ...] | None:
    """The index key an equality match on `value` looks up, or None if no index serves it.

    Arrays and embedded documents as whole values, and regular expressions, are left to a
    scan of the other candidates: the index holds array elements, not arrays.
    """
    if isinstance(value, list | tuple | Mapping | DBRef | Regex) or hasattr(value, "pattern"):
        return None
    return sort_key(value)


class _EmptyArray:
    """What `path_values` yields for a field that holds an empty array (see EMPTY_ARRAY_KEY)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "EMPTY_ARRAY"


EMPTY_ARRAY = _EmptyArray()


def element_key(value: Any) -> tuple[Any, ...]:
    """The index/sort key of one of `path_values`' values."""
    return EMPTY_ARRAY_KEY if value is EMPTY_ARRAY else sort_key(value)


def has_path(doc: Mapping[str, Any], path: str) -> bool:
    """Whether a dotted path exists through embedded documents only (no array traversal)."""
    value: Any = doc
    for part in path.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return False
        value = value[part]
    return True


def path_values(doc: Any, path: str) -> list[Any]:
    """Every value at a dotted path, descending into arrays as MongoDB's multikey indexes do.

    A missing field yields `[None]` (indexed as null); an array yields its elements, and an
    empty array the `EMPTY_ARRAY` marker (an empty array inside an array is an element `[]`).
    """
    if "." not in path:  # the common case: a top-level field
        value = doc.get(path) if isinstance(doc, Mapping) else None
        if not isinstance(value, list):
            return [value]
        return list(value) if value else [EMPTY_ARRAY]
    out: list[Any] = []
    _collect(doc, path.split("."), out)
    return out or [None]


def _collect(value: Any, parts: Sequence[str], out: list[Any]) -> None:
    if not parts:
        if isinstance(value, list):
            if value:
                out.extend(value)
            else:
                out.append(EMPTY_ARRAY)
        else:
            out.append(value)
        return
    head, rest = parts[0], parts[1:]
    if isinstance(value, Mapping):
        if head in value:
            _collect(value[head], rest, out)
        else:
            out.append(None)
    elif isinstance(value, list):
        if head.isdigit() and int(head) < len(value):
            _collect(value[int(head)], rest, out)
        for item in value:
            if isinstance(item, Mapping):
                _collect(item, parts, out)
    else:
        out.append(None)


FieldKeys = dict[str, list[tuple[Any, ...]]]
"""A document's element keys per indexed path, computed once and shared by its indexes."""


def field_keys(doc: Mapping[str, Any], path: str, memo: FieldKeys | None = None) -> list[Any]:
    """The distinct index keys of a path's values, in order (one key unless arrays)."""
    if memo is not None:
        found = memo.get(path)
        if found is not None:
            return found
    if "." not in path:  # the common case: a top-level scalar, keyed without the detour
        value = doc.get(path)
        if not isinstance(value, list):
            fast = _FAST.get(type(value))
            keys = [fast(value) if fast is not None else sort_key(value)]
            if memo is not None:
                memo[path] = keys
            return keys
    values = path_values(doc, path)
    if len(values) == 1:
        keys = [element_key(values[0])]
    else:
        keys = sorted({element_key(v) for v in values})
    if memo is not None:
        memo[path] = keys
    return keys


def string_array(value: Any) -> list[str] | None:
    """The distinct strings of `value`, in order, when it is a non-empty list of strings
    only (strings order as their keys do); else None."""
    if type(value) is not list or not value:
        return None
    for item in value:
        if type(item) is not str:
            return None
    return sorted(set(value))


def string_array_keys(value: Any) -> list[tuple[Any, ...]] | None:
    """`field_keys` of a top-level field holding `value`, when it is a non-empty list of
    strings only (their distinct keys in order: strings order as their keys do); else None."""
    strings = string_array(value)
    return None if strings is None else string_keys(strings)


def string_keys(strings: list[str]) -> list[tuple[Any, ...]]:
    """The keys of strings, shared (as `_SHARED`'s, looked up by the string itself): the
    same token or tag in many documents' entries then compares by identity on every
    bisection instead of reading both strings."""
    return remembered(_STRINGS, strings, _string_key)


def _string_key(value: str) -> tuple[Any, ...]:
    return (_STRING, value)


def remembered(
    cache: dict[Any, Any], items: Iterable[Any], make: Callable[[Any], Any]
) -> list[Any]:
    """`make(item)` of each item, made once per distinct item while `cache` remembers it
    (emptied when full: bounded)."""
    get = cache.get
    out = []
    for item in items:
        found = get(item)
        if found is None:
            if len(cache) >= _SHARED_MAX:
                cache.clear()
            found = cache[item] = make(item)
        out.append(found)
    return out


_STRINGS: dict[str, tuple[Any, ...]] = {}


def index_keys(
    doc: Mapping[str, Any],
    fields: Sequence[str],
    cells: Callable[[Any], int | None] | None = None,
    geo: frozenset[str] = frozenset(),
    memo: FieldKeys | None = None,
) -> list[tuple[Any, ...]]:
    """The index entries of a document: one key tuple per combination of array elements.

    A `geo` field is keyed by `cells` of its whole value (a point's cell, see geo.py; a
    legacy `[lng, lat]` pair is one value, not two elements), null when it has none. `memo`
    (one per document) shares each path's keys between the document's indexes, which mostly
    lead with the same fields.
    """
    per_field = []
    single = True
    for field in fields:
        if field in geo and cells is not None:
            cell = cells(_whole_value(doc, field))
            per_field.append([NULL_KEY if cell is None else (_NUMBER, cell)])
            continue
        keys = field_keys(doc, field, memo)
        if len(keys) != 1:
            single = False
        per_field.append(keys)
    if single:
        return [tuple([k[0] for k in per_field])]  # no arrays: one entry (the common case)
    return [tuple(combo) for combo in product(*per_field)]


def _whole_value(doc: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(doc, Mapping):
            return None
        doc = doc.get(part)
    return doc


def sort_value(doc: Mapping[str, Any], path: str, descending: bool) -> tuple[Any, ...]:
    """The key a document sorts by on `path`: an array sorts by its smallest element
    ascending and its largest descending, as MongoDB does (an empty array below null)."""
    keys = [element_key(v) for v in path_values(doc, path)]
    return max(keys) if descending else min(keys)


# -- byte keys: the same order as one `bytes` comparison -------------------------------------
#
# A multikey index (tags, search tokens: tens of entries per document) spends its inserts
# comparing nested key tuples; as bytes, an entry compares by one memcmp. `key_bytes` maps
# a key tuple (a `sort_key`, a bound's `LOWEST`/`HIGHEST`/bracket end, or a tuple of them)
# to bytes whose order is the tuples' order, equal exactly when they are equal:
#
# - a rank as one byte (2 * rank + 4: brackets such as 2.5 and the -1/99 sentinels fit);
# - numbers by value across int, float and Decimal (NaN below -inf, -0 equal to 0): a class
#   byte, then for a finite non-zero value its decimal exponent (4 bytes) and digits (ASCII,
#   trailing zeros dropped) ended by 0x00, every byte inverted for a negative value;
# - strings as UTF-8 (surrogates passed) with 0x00 escaped as 0x00 0xFF, ended by 0x00 0x00;
# - embedded documents and arrays as their parts' encodings ended by 0x00 (a part always
#   starts with a rank byte above it, so a shorter one sorts first, as tuples do);
# - fixed-width fields (binary length and subtype, dates, timestamps) big-endian.
#
# Every encoding is prefix-free, so a tuple of keys encodes as their concatenation.

_NUMBER_NAN, _NUMBER_NEG_INF, _NUMBER_NEG, _NUMBER_ZERO = b"\x01", b"\x02", b"\x03", b"\x04"
_NUMBER_POS, _NUMBER_POS_INF = b"\x05", b"\x06"
_INVERT = bytes(255 - i for i in range(256))
_EPOCH = datetime.min
_RANK_BYTES: dict[Any, bytes] = {}


def _rank_byte(rank: Any) -> bytes:
    found = _RANK_BYTES.get(rank)
    if found is None:
        code = 2 * rank + 4
        if code != int(code) or not 0 < code < 256:
            raise TypeError(f"no byte for rank {rank!r}")
        found = _RANK_BYTES[rank] = bytes((int(code),))
    return found


def _digits(value: Any) -> tuple[int, str]:
    # A positive finite number as 0.DIGITS x 10**exponent, DIGITS without trailing zeros.
    if type(value) is int or isinstance(value, int):
        text = str(int(value))
        stripped = text.rstrip("0")
        return len(text), stripped
    if isinstance(value, float):
        value = Decimal(value)  # exact
    _, digits, exponent = value.as_tuple()
    text = "".join(map(str, digits)).lstrip("0")
    stripped = text.rstrip("0")
    return len(text) + int(exponent), stripped


def _number_bytes(value: Any) -> bytes:
    if value is NAN:
        return _NUMBER_NAN
    if value == 0:
        return _NUMBER_ZERO
    if value == math.inf:
        return _NUMBER_POS_INF
    if value == -math.inf:
        return _NUMBER_NEG_INF
    negative = value < 0
    exponent, digits = _digits(-value if negative else value)
    body = (exponent + (1 << 31)).to_bytes(4, "big") + digits.encode() + b"\x00"
    return _NUMBER_NEG + body.translate(_INVERT) if negative else _NUMBER_POS + body


def _string_bytes(value: str | bytes) -> bytes:
    # (A compiled bytes pattern's regex key holds bytes: ordered among its kind alike.)
    data = value if isinstance(value, bytes) else value.encode("utf-8", "surrogatepass")
    return data.replace(b"\x00", b"\x00\xff") + b"\x00\x00"


def key_bytes(key: tuple[Any, ...]) -> bytes:
    """One key tuple (see `sort_key`) as bytes of the same order (see above)."""
    rank = key[0]
    head = _rank_byte(rank)
    if len(key) == 1:
        return head  # null, MinKey, MaxKey, an empty array's place, a bound's sentinel
    if rank == _NUMBER:
        return head + _number_bytes(key[1])
    if rank == _STRING:
        return head + _string_bytes(key[1])
    if rank == _BINARY:
        return head + key[1].to_bytes(4, "big") + bytes((key[2],)) + key[3]
    if rank == _BOOL:
        return head + (b"\x01" if key[1] else b"\x00")
    if rank == _OBJECTID:
        return head + key[1]
    if rank == _DATE:
        micros = (key[1] - _EPOCH) // _MICROSECOND
        return head + micros.to_bytes(8, "big")
    if rank == _OBJECT:
        parts = [
            _rank_byte(sub_rank) + _string_bytes(name) + key_bytes(sub)
            for sub_rank, name, sub in key[1]
        ]
        return head + b"".join(parts) + b"\x00"
    if rank == _ARRAY:
        return head + b"".join([key_bytes(sub) for sub in key[1]]) + b"\x00"
    if rank == _TIMESTAMP:
        return head + key[1].to_bytes(4, "big") + key[2].to_bytes(4, "big")
    if rank == _REGEX:
        return head + _string_bytes(key[1]) + _string_bytes(key[2])
    if rank == _CODE:
        return head + _string_bytes(key[1])
    if rank == _CODE_SCOPE:
        return head + _string_bytes(key[1]) + key_bytes(key[2])
    raise TypeError(f"no byte key for {key!r}")


_MICROSECOND = timedelta(microseconds=1)


def entry_bytes(parts: Sequence[tuple[Any, ...]]) -> bytes:
    """An index entry or bound (a tuple of key tuples) as bytes of the same order."""
    return b"".join([key_bytes(part) for part in parts])


# Parts' bytes by part (equal parts encode alike, so equal keys may share): an entry's
# parts are mostly shared keys (a tenant, a flag, a token), each encoded once. Bounded.
_PART_BYTES: dict[tuple[Any, ...], bytes] = {}


def cached_entry_bytes(parts: Sequence[tuple[Any, ...]]) -> bytes:
    """`entry_bytes(parts)`, each part's bytes computed once for equal parts."""
    return b"".join(remembered(_PART_BYTES, parts, key_bytes))


def id_tail(key: tuple[Any, ...]) -> bytes:
    """How an entry held as bytes ends: its id key's bytes, then their length (one byte
    below 255, else four big-endian then 0xFF) for `entry_id_bytes` to cut them back out.
    Entries are prefix-free before the length, so it changes no order: distinct entries
    differ before it, and a bound (key parts without an id) never reaches it."""
    data = key_bytes(key)
    size = len(data)
    return data + (bytes((size,)) if size < 255 else size.to_bytes(4, "big") + b"\xff")


def entry_id_bytes(entry: bytes) -> bytes:
    """The id key's bytes of an entry held as bytes (see `id_tail`)."""
    size = entry[-1]
    if size != 255:
        return entry[-1 - size : -1]
    size = int.from_bytes(entry[-5:-1], "big")
    return entry[-5 - size : -5]


def strings_bytes(values: list[str]) -> list[bytes]:
    """`key_bytes(sort_key(value))` of each string. Not remembered: most search tokens
    occur in one document only (an email, a name, a phone's suffixes), and encoding one
    without a NUL costs less than a cache's look-up, insertion and eviction."""
    head, end = _STRING_HEAD, b"\x00\x00"
    return [
        head + value.encode("utf-8", "surrogatepass") + end
        if "\x00" not in value
        else head + _string_bytes(value)
        for value in values
    ]


_STRING_HEAD = _rank_byte(_STRING)
