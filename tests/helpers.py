"""Helpers shared by tests (fixtures live in conftest.py)."""

from __future__ import annotations

from typing import Any

from bson.codec_options import CodecOptions

# Replies decoded without a UUID representation: UUIDs come back as the `Binary` subtype-4
# values they are stored as, which is what a test about the stored layout wants to see.
STORED_FORM = CodecOptions(tz_aware=True)


def stored_form(collection: Any) -> Any:
    """The collection answering with values as stored (BSON UUIDs as `Binary`), on any backend."""
    return collection.with_options(codec_options=STORED_FORM)
