"""Index shapes shared by the documents: one declaration of what a list's sort path needs."""

from __future__ import annotations

from pymongo import IndexModel


def sorted_by(field: str) -> IndexModel:
    """The index of a list sorted by `field`: tenant, soft-delete equality, field, then `_id`.

    Equality prefix, then the sort field with its `_id` tiebreak: it serves the order in both
    directions (walked backwards for descending) and the keyset cursor's seek, for lists with
    and without deleted items (`is_deleted` equal to false, or in [false, true]).
    """
    return IndexModel(
        [("tenant_id", 1), ("is_deleted", 1), (field, 1), ("_id", 1)], name=f"tenant_by_{field}"
    )
