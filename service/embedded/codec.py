"""What crosses the embedded backend's boundary goes through BSON, as it does with a server.

Documents, filters and updates are encoded exactly as PyMongo encodes them for the wire
(`uuidRepresentation="standard"`), then decoded into the backend's canonical form: UUIDs as
`Binary` subtype 4, datetimes naive UTC at millisecond precision, regexes as `bson.Regex`.
So matching sees what a server sees (a UUID and its `Binary` match alike, microseconds are
gone), a value BSON cannot hold fails here as it would in the driver, and every copy a caller
gets is decoded afresh, as the driver decodes a reply (UUIDs, aware UTC datetimes).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC
from typing import Any
from uuid import UUID, SafeUUID

import bson
from bson import Binary, DBRef
from bson._cbson import _element_to_dict  # type: ignore[import-not-found]
from bson.binary import UuidRepresentation
from bson.code import Code
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
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
# READER but with UUIDs left as `Binary` subtype 4, turned into UUIDs by `_uuids` (see `read`).
_READER_BINARY: CodecOptions[dict[str, Any]] = CodecOptions(
    uuid_representation=UuidRepresentation.UNSPECIFIED, tz_aware=True, tzinfo=UTC
)


def encode(doc: Mapping[str, Any]) -> bytes:
    """A document as BSON, the way the driver puts it on the wire."""
    return bson.encode(doc, codec_options=_WIRE)


def canonical(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A filter, update or projection in canonical form."""
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

    With the client's own options, UUIDs are built here rather than by the C decoder, which
    makes each through `Binary(...).as_uuid()` in Python (half of a lead's decoding): the
    same `uuid.UUID` values, at a third of the cost. A document this walk does not cover
    (a DBRef or a code scope may hold UUIDs; a malformed UUID must fail as the driver fails)
    is decoded the driver's way.
    """
    if options is READER or options == READER:
        doc = bson.decode(raw, codec_options=_READER_BINARY)
        if _top_level_uuids(doc, raw) or _uuids(doc):
            return doc
    return bson.decode(raw, codec_options=options)


# A binary element of subtype 4 in raw BSON: type 0x05, its name, its int32 length, 0x04.
# Every such element matches (a name holds no NUL); text or binary payloads may match too.
_UUID_ELEMENT = re.compile(rb"\x05([^\x00]*)\x00(.{4})\x04", re.DOTALL)
_SIXTEEN = (16).to_bytes(4, "little")
_NAMES: dict[bytes, str] = {}  # field names as found in BSON, decoded once


def _top_level_uuids(doc: dict[str, Any], raw: bytes) -> bool:
    """Turn the UUIDs into `uuid.UUID`s when each subtype-4 element the BSON may hold is a
    top-level field (the common shape): each match of `_UUID_ELEMENT` is then one of the
    document's fields holding a 16-byte `Binary` subtype 4, and as many matches as such
    fields mean none is elsewhere. False (some left, maybe converted) for `_uuids` to finish.
    """
    for name, length in _UUID_ELEMENT.findall(raw):
        if length != _SIXTEEN:
            return False
        key = _NAMES.get(name)
        if key is None:
            try:
                key = name.decode()
            except UnicodeDecodeError:  # a match inside some payload: not a field name
                return False
            if len(_NAMES) < 4096:
                _NAMES[name] = key
        value = doc.get(key)
        if type(value) is not Binary or value.subtype != 4:
            return False
        doc[key] = _uuid(value)
    return True


_new = object.__new__
_set = object.__setattr__
_UNKNOWN = SafeUUID.unknown


def _uuid(data: bytes) -> UUID:
    # `UUID(bytes=data)` without its argument checks (16 bytes, checked by the caller).
    value = _new(UUID)
    _set(value, "int", int.from_bytes(data))
    _set(value, "is_safe", _UNKNOWN)
    return value  # type: ignore[no-any-return]


def _uuids(container: dict[str, Any] | list[Any]) -> bool:
    """Turn every `Binary` subtype 4 in place into its UUID, as the driver's STANDARD
    representation decodes it; False (stop) at anything that needs the driver's decoder."""
    items = container.items() if type(container) is dict else enumerate(container)
    for key, value in items:
        kind = type(value)
        if kind is Binary:
            if value.subtype == 4:
                if len(value) != 16:
                    return False  # the driver raises InvalidBSON: let it
                container[key] = _uuid(value)  # type: ignore[index]
        elif kind is dict or kind is list:
            if not _uuids(value):
                return False
        elif kind is DBRef or kind is Code:
            return False
    return True


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


# Walking a document's top-level elements: embedded documents and arrays are not decoded.
_SKIM: CodecOptions[Any] = CodecOptions(
    document_class=RawBSONDocument, uuid_representation=UuidRepresentation.UNSPECIFIED
)


def spans(raw: bytes, wanted: frozenset[str]) -> dict[str, tuple[int, int]]:
    """Where each of the `wanted` top-level fields of a stored document lies in its BSON:
    `(start, end)` of the whole element (type byte, name, value); absent ones are left out."""
    found: dict[str, tuple[int, int]] = {}
    end = len(raw)
    position = 4
    left = len(wanted)
    while position < end - 1:
        name, _, after = _element_to_dict(raw, position, end, _SKIM, True)
        if name in wanted:
            found[name] = (position, after)
            left -= 1
            if not left:
                break
        position = after
    return found


def element(name: str, value: Any) -> bytes:
    """One top-level element's BSON (type, name, value), as `encode` writes it in a document."""
    return encode({name: value})[4:-1]


def document(elements: list[bytes]) -> bytes:
    """A document's BSON from its elements' BSON."""
    body = b"".join(elements)
    return (len(body) + 5).to_bytes(4, "little") + body + b"\x00"


def to_canonical(raw: bytes) -> dict[str, Any]:
    """A stored document's canonical dict, decoded afresh (a private copy to work on)."""
    return bson.decode(raw, codec_options=_CANONICAL)
