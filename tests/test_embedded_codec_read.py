"""Replies decode exactly as the driver decodes them, with the embedded backend's shortcuts
(service/embedded/codec.py `read`): datetimes tagged UTC by `_UtcDecoder`, UUIDs built by
`_UuidDecoder` and shared across documents by their bytes."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import pytest
from bson import Binary
from bson.code import Code
from bson.errors import InvalidBSON

from service.embedded import codec


def _same_as_driver(doc: dict[str, Any]) -> dict[str, Any]:
    raw = codec.encode(doc)
    ours, drivers = codec.read(raw), bson.decode(raw, codec_options=codec.READER)
    assert ours == drivers
    assert repr(ours) == repr(drivers)  # types and tzinfo objects included
    return ours


@pytest.mark.parametrize(
    "when",
    [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        datetime(2026, 12, 5, 19, 10, 43, 756000, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
    ],
)
def test_dates_decode_as_the_drivers_aware_utc_datetimes_wherever_they_are(when: datetime) -> None:
    doc = {
        "_id": 1,
        "at": when,
        "nested": {"deep": {"at": when}},
        "list": [when, [when, {"at": when}]],
        "code": Code("f()", {"at": when}),
    }
    ours = _same_as_driver(doc)
    assert ours["at"].tzinfo is UTC and ours["list"][1][1]["at"] == when


def test_an_out_of_range_date_fails_as_the_driver_fails() -> None:
    raw = bson.encode({"_id": 1, "at": bson.DatetimeMS(2**62)})
    with pytest.raises(InvalidBSON):
        bson.decode(raw, codec_options=codec.READER)
    with pytest.raises(InvalidBSON):
        codec.read(raw)


def test_ids_repeated_across_documents_decode_alike_and_keep_their_kind() -> None:
    shared, other = uuid.uuid4(), uuid.uuid4()
    first = _same_as_driver({"_id": other, "tenant": shared, "by": [shared, {"x": shared}]})
    again = _same_as_driver({"_id": uuid.uuid4(), "tenant": shared})
    assert again["tenant"] == shared and isinstance(again["tenant"], uuid.UUID)
    assert first["tenant"] is again["tenant"]  # one object for the same id (immutable)
    # The same 16 bytes under another subtype stay a `Binary`, cached or not.
    legacy = _same_as_driver({"_id": 2, "u": Binary(shared.bytes, 3), "raw": Binary(shared.bytes)})
    assert type(legacy["u"]) is Binary and legacy["u"].subtype == 3
    assert type(legacy["raw"]) is bytes and legacy["raw"] == shared.bytes
    # A malformed UUID still fails after well-formed ones were cached.
    with pytest.raises(InvalidBSON):
        codec.read(codec.encode({"_id": 3, "u": Binary(shared.bytes[:3], 4)}))


def test_the_id_cache_stays_bounded() -> None:
    ids = [uuid.uuid4() for _ in range(codec._UUIDS_MAX + 10)]
    for start in range(0, len(ids), 500):
        doc = {"_id": 1, "ids": ids[start : start + 500], "at": datetime.now(UTC) - timedelta(1)}
        decoded = codec.read(codec.encode(doc))
        assert decoded["ids"] == ids[start : start + 500]
    assert 0 < len(codec._UUIDS) <= codec._UUIDS_MAX
