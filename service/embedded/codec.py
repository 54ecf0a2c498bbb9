"""What crosses the embedded backend's boundary goes through BSON, as it does with a server.

Documents, filters and updates are encoded exactly as PyMongo encodes them for the wire
(`uuidRepresentation="standard"`), then decoded into the backend's canonical form: UUIDs as
`Binary` subtype 4, datetimes naive UTC at millisecond precision, regexes as `bson.Regex`.
So matching sees what a server sees (a UUID and its `Binary` match alike, microseconds are
gone), a value BSON cannot hold fails here as it would in the driver, and every copy a caller
gets is decoded afresh, as the driver decodes a reply (UUIDs, aware UTC datetimes).
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, SafeUUID

import bson
from bson import Binary, Code, Decimal128, Int64, ObjectId
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions, TypeDecoder, TypeRegistry
from pymongo.errors import DocumentTooLarge, OperationFailure

MAX_BSON_SIZE = 16 * 1024 * 1024
"""MongoDB's document size limit, enforced on every stored and returned document."""

_WIRE: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=UuidRepresentation.STANDARD, tz_aware=True
)
_CANONICAL: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=UuidRepresentation.UNSPECIFIED
)
READER: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=UuidRepresentation.STANDARD, tz_aware=True, tzinfo=UTC
)
"""How the real client is configured to decode replies (and so how this backend answers)."""


def encode(doc: Mapping[str, Any]) -> bytes:
    """A document as BSON, the way the driver puts it on the wire."""
    return bson.encode(doc, codec_options=_WIRE)


def canonical(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A filter, update or projection in canonical form.

    A plain dict of the common kinds (see `_as_wire`) is converted without the BSON round
    trip (the same values: a sequencer's `{_id, seq: null}` and `{$set: {seq}}` per op).
    """
    if type(doc) is dict and len(doc) <= 32:
        out = _as_wire(doc, 0)
        if out is not _UNSURE:
            if "_id" in out and next(iter(out)) != "_id":
                out = {"_id": out.pop("_id"), **out}  # `encode` writes a top-level `_id` first
            return out  # type: ignore[no-any-return]
    return bson.decode(encode(doc), codec_options=_CANONICAL)


def canonical_value(value: Any) -> Any:
    """One value in canonical form."""
    return canonical({"v": value})["v"]


def stored(doc: Mapping[str, Any]) -> tuple[dict[str, Any], bytes]:
    """A document to store: its canonical dict and its BSON, refused above 16 MiB."""
    raw = storable(doc)
    return bson.decode(raw, codec_options=_CANONICAL), raw


def storable(doc: Mapping[str, Any]) -> bytes:
    """A document's BSON to store, refused above 16 MiB (DocumentTooLarge, as the driver)."""
    raw = encode(doc)
    if len(raw) > MAX_BSON_SIZE:
        raise DocumentTooLarge(
            f"BSON document too large ({len(raw)} bytes) - the connected server supports "
            f"BSON document sizes up to {MAX_BSON_SIZE} bytes."
        )
    return raw


def updated(doc: Mapping[str, Any]) -> bytes:
    """The BSON of a document after an update, refused above 16 MiB as MongoDB does."""
    return checked_update(encode(doc))


def checked_update(raw: bytes) -> bytes:
    """`raw`, a document after an update, refused above 16 MiB as MongoDB does."""
    if len(raw) > MAX_BSON_SIZE:
        raise OperationFailure(
            f"Resulting document after update is larger than {MAX_BSON_SIZE}",
            code=17419,
        )
    return raw


def read(raw: bytes, options: CodecOptions[dict[str, Any]] = READER) -> dict[str, Any]:
    """A caller's copy of a stored document, decoded as the real client decodes it.

    With the client's own options, UUIDs are built by `_UuidDecoder` rather than by the C
    decoder, which makes each through `Binary(...).as_uuid()` in Python: the same
    `uuid.UUID` values, at a fraction of the cost, wherever they are (embedded documents,
    arrays, DBRefs, code scopes). Datetimes likewise (`_UtcDecoder`): the C decoder's aware
    path calls `replace` and then `astimezone` on each. A document it refuses (a malformed
    UUID must fail as the driver fails) is decoded the driver's way.
    """
    if options is READER or options == READER:
        try:
            return bson.decode(raw, codec_options=_READER_UUIDS)
        except Exception:
            pass
    return bson.decode(raw, codec_options=options)


class _UuidDecoder(TypeDecoder):
    """Binary subtype 4 as `uuid.UUID` (the driver's standard representation); a subtype-4
    value of another length than 16 is refused (the driver raises for it)."""

    bson_type = Binary

    def transform_bson(self, value: Any) -> Any:
        """The UUID a subtype-4 binary stands for; other binaries as they are."""
        if value.subtype != 4:
            return value
        data = value[:]  # as plain bytes: `Binary`'s hash and equality are Python code
        found = _UUIDS.get(data)
        if found is not None:
            return found
        if len(data) != 16:
            raise ValueError("a UUID binary of another length than 16")
        if len(_UUIDS) >= _UUIDS_MAX:
            _UUIDS.clear()
        found = _UUIDS[data] = _uuid(data)
        return found


# UUIDs decoded lately, by their bytes: most of a document's ids (tenant, user, creator,
# assignee) repeat on every document of a page, and a UUID is immutable, so one object serves.
_UUIDS: dict[bytes, UUID] = {}
_UUIDS_MAX = 4096


class _UtcDecoder(TypeDecoder):
    """A BSON date as the aware UTC datetime `READER` gives (its naive decoding, tagged)."""

    bson_type = datetime

    def transform_bson(self, value: Any) -> Any:
        """The naive UTC datetime with `READER`'s tzinfo."""
        return value.replace(tzinfo=UTC)


_new = object.__new__
_set_int = UUID.__dict__["int"].__set__
_set_is_safe = UUID.__dict__["is_safe"].__set__
_UNKNOWN = SafeUUID.unknown


def _uuid(data: bytes) -> UUID:
    # `UUID(bytes=data)` without its argument checks (16 bytes, checked by the caller): the
    # two slots `UUID.__init__` sets, through their descriptors (as the journal's pooled
    # uuid7 does; `object.__setattr__` looks each one up first).
    value = _new(UUID)
    _set_int(value, int.from_bytes(data))
    _set_is_safe(value, _UNKNOWN)
    return value  # type: ignore[no-any-return]


# READER with UUIDs made by `_UuidDecoder` and aware datetimes by `_UtcDecoder` (see `read`):
# a lead of a page decodes in about 22 µs instead of 28 (2 dates, 6 UUIDs, 5 of them shared).
_READER_UUIDS: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=UuidRepresentation.UNSPECIFIED,
    type_registry=TypeRegistry([_UuidDecoder(), _UtcDecoder()]),
)


def reply(doc: Mapping[str, Any], options: CodecOptions[dict[str, Any]] = READER) -> dict[str, Any]:
    """A computed document (projection, aggregation row) as the client would receive it.

    A result above 16 MiB fails as it does on a server: no single document of a reply (an
    aggregation row included) may exceed the limit.
    """
    raw = encode(doc)
    if len(raw) > MAX_BSON_SIZE:
        raise OperationFailure(
            f"BSONObj size: {len(raw)} (0x{len(raw):X}) is invalid. "
            f"Size must be between 0 and {MAX_BSON_SIZE}(16MB)",
            code=10334,
            details={"codeName": "BSONObjectTooLarge"},
        )
    return read(raw, options)


def binary(data: bytes, subtype: int) -> Binary:
    """A BSON binary value."""
    return Binary(data, subtype)


# The size of an element's value by its BSON type: fixed, or after a little-endian int32 length
# (plus the bytes that length does not count). Other types (regex, DBPointer) end `spans`.
_FIXED_SIZE = {0x01: 8, 0x06: 0, 0x07: 12, 0x08: 1, 0x09: 8, 0x0A: 0, 0x10: 4, 0x11: 8, 0x12: 8}
_FIXED_SIZE |= {0x13: 16, 0x7F: 0, 0xFF: 0}
_LENGTH_EXTRA = {0x02: 4, 0x03: 0, 0x04: 0, 0x05: 5, 0x0D: 4, 0x0E: 4, 0x0F: 0}


# `spans`' table of the same, by type byte: the fixed size (>= 0), or -1 - the bytes after a
# length prefix that it does not count, or None (a type not walked).
_SIZES: list[int | None] = [None] * 256
for _kind, _size in _FIXED_SIZE.items():
    _SIZES[_kind] = _size
for _kind, _extra in _LENGTH_EXTRA.items():
    _SIZES[_kind] = -1 - _extra
_UINT32 = struct.Struct("<I").unpack_from


def spans(raw: bytes, wanted: Mapping[bytes, str]) -> dict[str, tuple[int, int]] | None:
    """Where the `wanted` top-level fields (by their UTF-8 name) of a stored document lie in
    its BSON: `(start, end)` of each whole element (type byte, name, value), by name; absent
    ones are left out. Nothing is decoded. None at an element of a type not walked here."""
    found: dict[str, tuple[int, int]] = {}
    last = len(raw) - 1
    position = 4
    left = len(wanted)
    find = raw.index
    sizes = _SIZES
    look = wanted.get
    while position < last:
        stop = find(0, position + 1)
        size = sizes[raw[position]]
        if size is None:
            return None
        if size < 0:
            size = -1 - size + _UINT32(raw, stop + 1)[0]
        after = stop + 1 + size
        name = look(raw[position + 1 : stop])
        if name is not None:
            found[name] = (position, after)
            left -= 1
            if not left:
                break
        position = after
    return found


@functools.lru_cache(maxsize=512)
def wanted(names: frozenset[str]) -> dict[bytes, str]:
    """`names` as `spans` looks them up (by their UTF-8 bytes)."""
    return {name.encode(): name for name in names}


def subset(raw: bytes, names: Mapping[bytes, str]) -> bytes | None:
    """The BSON of a stored document's `names` top-level fields alone, in the document's
    order; None when `spans` does not walk it."""
    found = spans(raw, names)
    if found is None:
        return None
    return document([raw[start:end] for start, end in sorted(found.values())])


def without(raw: bytes, names: Mapping[bytes, str]) -> bytes | None:
    """The BSON of a stored document without its `names` top-level fields (the others'
    bytes as they are, in the document's order); None when `spans` does not walk it."""
    found = spans(raw, names)
    if found is None:
        return None
    if not found:
        return raw
    parts = []
    position = 4
    for start, end in sorted(found.values()):
        parts.append(raw[position:start])
        position = end
    parts.append(raw[position:-1])
    return document(parts)


def element(name: str, value: Any) -> bytes:
    """One top-level element's BSON (type, name, value), as `encode` writes it in a document."""
    kind = type(value)
    if (kind is int or value is None) and name.isascii() and "\0" not in name:
        # The sequencer's `seq` and other small numbers and nulls, written as `encode` does.
        if value is None:
            return b"\x0a" + name.encode() + b"\x00"
        if -(2**31) <= value < 2**31:
            return b"\x10" + name.encode() + b"\x00" + _INT32(value)
    return encode({name: value})[4:-1]


_INT32 = struct.Struct("<i").pack


def document(elements: list[bytes]) -> bytes:
    """A document's BSON from its elements' BSON."""
    body = b"".join(elements)
    return (len(body) + 5).to_bytes(4, "little") + body + b"\x00"


def canonical_fields(doc: Any, names: Iterable[str]) -> dict[str, Any] | None:
    """The `names` top-level fields of a document about to be stored (those it has), as
    `to_canonical(encode(doc))` has them, built without encoding and decoding the whole
    document; None when some value is of a kind not converted here (decode its BSON).

    Only plain containers and the common kinds are converted: str (a str subclass such as a
    string enum as its text, which is what BSON holds), bool, int (Int64 beyond 32 bits),
    float, None, ObjectId, Int64, Decimal128, bytes and Binary (subtype 0 as bytes), UUID
    (as `Binary` subtype 4: the wire's standard representation), datetimes (naive UTC,
    truncated to milliseconds); new containers, so the caller's later changes do not leak in.
    """
    if type(doc) is not dict:
        return None
    out: dict[str, Any] = {}
    for name in names:
        if name in doc:
            value = _as_stored(doc[name], 0)
            if value is _UNSURE:
                return None
            out[name] = value
    return out


_UNSURE: Any = object()
_AS_IS = frozenset({str, bool, float, type(None), ObjectId, Int64, Decimal128, bytes})
_EARLIEST, _LATEST = datetime(1, 1, 2), datetime(9999, 12, 30)
_EARLIEST_UTC, _LATEST_UTC = _EARLIEST.replace(tzinfo=UTC), _LATEST.replace(tzinfo=UTC)
_STR_ONLY = {str}


def _as_stored(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _AS_IS:
        return value
    if kind is int:
        if -(2**31) <= value < 2**31:
            return value
        return Int64(value) if -(2**63) <= value < 2**63 else _UNSURE
    if kind is Binary:
        return bytes(value) if value.subtype == 0 else value
    if kind is UUID:
        return Binary(value.bytes, 4)
    if kind is datetime:
        if value.tzinfo is UTC and _EARLIEST_UTC <= value <= _LATEST_UTC:
            # The common aware UTC datetime: no offset to apply.
            micro = value.microsecond
            return value.replace(tzinfo=None, microsecond=micro - micro % 1000)
        offset = value.utcoffset()
        if offset is not None:
            value = value.replace(tzinfo=None)
            if not _EARLIEST <= value <= _LATEST:
                return _UNSURE
            value -= offset
        elif value.tzinfo is not None or not _EARLIEST <= value <= _LATEST:
            return _UNSURE
        micro = value.microsecond
        return value if not micro % 1000 else value.replace(microsecond=micro - micro % 1000)
    if depth > 90:
        return _UNSURE
    if kind is dict:
        if "$ref" in value and "$id" in value:
            return _UNSURE  # a DBRef's shape, which BSON decodes as a DBRef
        out = {}
        for key, item in value.items():
            converted = _as_stored(item, depth + 1)
            if type(key) is not str or converted is _UNSURE:
                return _UNSURE
            out[key] = converted
        return out
    if kind is list:
        if value and set(map(type, value)) == _STR_ONLY:
            return list(value)  # strings only (search tokens, tags): each as it is
        items = [_as_stored(item, depth + 1) for item in value]
        return _UNSURE if any(item is _UNSURE for item in items) else items
    if isinstance(value, str) and not isinstance(value, Code):  # (code is no string in BSON)
        return str.__str__(value)
    return _UNSURE


def _as_wire(value: Any, depth: int) -> Any:
    # `_as_stored`, for a value not yet known to encode: what `encode` refuses (a key that
    # is not a str or holds NUL, a str it cannot write as UTF-8) or converts otherwise (a
    # str or int subclass, a tuple, a mapping other than dict) is `_UNSURE`.
    kind = type(value)
    if kind is str:
        if value.isascii():
            return value
        try:
            value.encode()
        except UnicodeEncodeError:
            return _UNSURE
        return value
    if kind is dict:
        if depth > 90 or len(value) > 32 or ("$ref" in value and "$id" in value):
            return _UNSURE
        out = {}
        for key, item in value.items():
            if type(key) is not str or "\0" in key:
                return _UNSURE
            converted = _as_wire(item, depth + 1)
            if converted is _UNSURE:
                return _UNSURE
            out[key] = converted
        return out
    if kind is list:
        if depth > 90 or len(value) > 32:
            return _UNSURE
        items = [_as_wire(item, depth + 1) for item in value]
        return _UNSURE if any(item is _UNSURE for item in items) else items
    if kind in _WIRE_KINDS:
        return _as_stored(value, depth)
    return _UNSURE


# The kinds `_as_wire` leaves to `_as_stored` (which converts them as `encode` and a decode do).
_WIRE_KINDS = frozenset({bool, float, type(None), ObjectId, Int64, Decimal128, bytes})
_WIRE_KINDS |= {int, Binary, UUID, datetime}


def to_canonical(raw: bytes) -> dict[str, Any]:
    """A stored document's canonical dict, decoded afresh (a private copy to work on)."""
    return bson.decode(raw, codec_options=_CANONICAL)
