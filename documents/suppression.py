"""The tenant's suppression (do-not-contact) list: one root per channel and normalised value.

One live row per tenant, channel and normalised value (E.164 phone, lower-case e-mail),
enforced by a partial unique index; a soft-deleted (removed) row no longer blocks anyone.
"""

from __future__ import annotations

from typing import Annotated, ClassVar

from pydantic import StringConstraints
from pymongo import IndexModel

from documents.base import RootDocument, ShortText
from documents.consent import Channel
from documents.indexes import list_indexes

SuppressedValue = Annotated[str, StringConstraints(min_length=3, max_length=320)]


class Suppression(RootDocument):
    """A value (phone or e-mail) the tenant must not contact on one channel."""

    aggregate_type: ClassVar[str] = "suppression"

    channel: Channel
    value: SuppressedValue  # normalised: E.164 phone, lower-case e-mail
    reason: ShortText | None = None

    class Settings:
        name = "suppressions"
        indexes = [
            # The duplicate guard, and the lookups of contactability and claims: live rows by
            # (channel, value), one or many values at once.
            IndexModel(
                [("tenant_id", 1), ("channel", 1), ("value", 1)],
                unique=True,
                partialFilterExpression={"is_deleted": False},
                name="tenant_channel_value_unique",
            ),
            # `GET /v1/suppressions`: newest first, all channels or one.
            *list_indexes(filters=("channel",)),
        ]


__all__ = ["SuppressedValue", "Suppression"]
