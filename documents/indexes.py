"""Index shapes shared by the documents: what a resource's list needs, declared once.

Every list query is `{tenant_id, is_deleted (false, or in [false, true]), <filter>?}` ordered
by `(<sort field>, _id)`. Its index is the equality prefix, then the sort field with the `_id`
tiebreak (equality → sort → range): it serves the order in both directions (walked backwards
for descending) and the keyset cursor's seek, with and without deleted items.
"""

from __future__ import annotations

from collections.abc import Sequence

from pymongo import IndexModel

_LIVE = [("tenant_id", 1), ("is_deleted", 1)]


def sorted_by(field: str) -> IndexModel:
    """The index of a list sorted by `field` (either direction)."""
    return IndexModel([*_LIVE, (field, 1), ("_id", 1)], name=f"tenant_by_{field}")


def filtered_by(field: str) -> IndexModel:
    """The index of a list filtered by equality on `field`, newest first."""
    return IndexModel([*_LIVE, (field, 1), ("_id", -1)], name=f"tenant_live_{field}")


def list_indexes(
    *, filters: Sequence[str] = (), sorts: Sequence[str] = (), archived: bool = False
) -> list[IndexModel]:
    """A list's indexes: newest first, each filter newest first, and each sort path.

    A field both filtered and sorted on needs only its sort path (equality on it, then `_id`).
    `archived`: the documents keep `is_archived` and lists select on it by equality, so it
    follows `is_deleted` in each index (issue 23: `archived_at: null` fetched to skip).
    """
    indexes = [
        IndexModel([*_LIVE, ("_id", -1)], name="tenant_list"),
        *(filtered_by(f) for f in filters if f not in sorts),
        *(sorted_by(s) for s in sorts),
    ]
    if not archived:
        return indexes
    out = []
    for index in indexes:
        keys = list(index.document["key"].items())
        out.append(
            IndexModel([*keys[:2], ("is_archived", 1), *keys[2:]], name=index.document["name"])
        )
    return out
