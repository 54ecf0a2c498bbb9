"""The change feed: the tenant's journal, oldest first, resumable from an opaque cursor.

Positions are the journal's `seq` (service/feeds/sequencer.py), not ids or times: a page reads
`position < seq <= head` of the caller's tenant in `seq` order, and every entry at or below
the published head is final. So a consumer that stores `next_cursor` and asks again later
never misses a change and never gets one twice, also when an entry became visible after
entries with larger ids (an outbox flushed by repair or by the next write, a retry that
took over an idempotency claim). A page that comes back short ends at the head, so the cursor
moves past entries that did not match the filters (they are not scanned again).

Visibility: each page goes through `visible_items`, the one place the feed (and webhook
delivery, which sends the same items) decides what a caller may see of a change. It applies
history's rules (`service/core/visibility.py`, the same function `GET /{id}/history` uses):
secrets are already redacted in the journal; another user's private parts (billing, payment,
AI settings, security…) are cut to what the colleague view shows; entries of resources the
caller may not read at all (another user's kanban board; API keys and invitations below
admin) are left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, cast

from documents.journal import DomainEvent
from schemas.changes import ChangeRead
from schemas.common import ReadView
from service.core import journal_view, visibility
from service.core.context import RequestContext
from service.core.errors import Unprocessable
from service.core.pagination import PageResult, StoredView, pack_cursor, unpack_cursor
from service.core.repository import tenant_filter
from service.feeds import sequencer
from service.projections import runner, sync_feeds

SYNC_PATIENCE = 0.5  # seconds a read waits for another process's sequencer


def feed_cursor(position: int) -> str:
    """An opaque, URL-safe cursor after journal position `position`."""
    return pack_cursor({"s": position}, separators=(",", ":"))


def feed_position(cursor: str) -> int:
    """The position a cursor stands for; a broken or foreign cursor is 422."""
    try:
        position = unpack_cursor(cursor)["s"]
        if not isinstance(position, int) or isinstance(position, bool) or position < 0:
            raise ValueError("not a position")
    except (ValueError, KeyError, TypeError):
        raise Unprocessable(
            "The cursor is not valid for this feed.", loc=["query", "after"]
        ) from None
    return position


async def visible_items(
    ctx: RequestContext, events: Sequence[DomainEvent | ChangeRead]
) -> list[dict[str, Any]]:
    """Journal entries as the caller may see them: the one redaction point of feed and webhooks."""
    # A `ChangeRead` has every field `visible_events` reads (type, id, changes) and the same
    # `model_copy`: it passes for the `DomainEvent` it was read from.
    entries = cast(Sequence[DomainEvent], events)
    return [_item(e.model_dump(mode="json")) for e in await visibility.visible_events(ctx, entries)]


# Feed entries are validated once, straight from the stored journal entries.
CHANGE_VIEW: ReadView[ChangeRead] = ReadView(ChangeRead)


def _item(event: Mapping[str, Any]) -> dict[str, Any]:
    changes = list(event.get("changes") or [])
    return {
        "id": event["id"],
        "aggregate_type": event["aggregate_type"],
        "aggregate_id": event["aggregate_id"],
        "version": event["version"],
        "event_type": event["event_type"],
        "actor_id": event.get("actor_id"),
        "occurred_at": event["occurred_at"],
        "changes": journal_view.api_changes(event["aggregate_type"], changes),
    }


def feed_filter(
    ctx: RequestContext,
    *,
    position: int,
    head: int,
    aggregate_type: str | None = None,
    event_type: str | None = None,
) -> dict[str, Any]:
    """The journal query of a page: the tenant, the filters, `position < seq <= head`.

    Served by `tenant_seq`, `tenant_type_seq` or `tenant_event_seq` (documents/journal.py).
    """
    extra: dict[str, Any] = {}
    if aggregate_type is not None:
        extra["aggregate_type"] = aggregate_type
    if event_type is not None:
        extra["event_type"] = event_type
    extra["seq"] = {"$gt": position, "$lte": head}
    return tenant_filter(ctx, extra)


async def read_page(
    ctx: RequestContext,
    *,
    position: int,
    limit: int,
    aggregate_type: str | None = None,
    event_type: str | None = None,
    view: StoredView[Any] | None = None,
) -> tuple[list[Any], int]:
    """Up to `limit` journal entries after `position`, and the position to resume from.

    Entries are `DomainEvent`s, or with `view` the response objects it validates straight
    from the stored entries (the read path: one validation per entry, no Beanie document).
    """
    async with sequencer.feed_session() as session:
        head = await sequencer.head(sequencer.JOURNAL, session=session)
        if position >= head:
            return [], position
        query = feed_filter(
            ctx, position=position, head=head, aggregate_type=aggregate_type, event_type=event_type
        )
        collection = DomainEvent.get_pymongo_collection()
        raws = await collection.find(
            query, sort=[("seq", 1)], limit=limit, session=session
        ).to_list()
        seqs = [int(raw["seq"]) for raw in raws]
        if len(raws) == limit:
            resume = seqs[-1]
        else:
            # A short page ends where this read proves every entry visible: at the head when
            # the head's own entry is there, else at the highest one it sees (a stale read
            # must not make the cursor skip what it has not seen yet).
            seen = seqs[-1] if seqs else position
            top = await sequencer.visible_top(sequencer.JOURNAL, position, head, session)
            resume = max(seen, top)
    if view is None:
        events: list[Any] = [DomainEvent.model_validate(raw) for raw in raws]
    else:
        events = [view.stored(raw) for raw in raws]
    return events, resume


async def list_changes(
    *,
    ctx: RequestContext,
    after: str | None,
    limit: int,
    aggregate_type: str | None = None,
    event_type: str | None = None,
) -> PageResult[Any]:
    """One page of the tenant's change feed, oldest first, with the cursor to resume from."""
    position = feed_position(after) if after else 0
    # Include the caller's own latest writes, within the inline budget (the background
    # sequencer does the rest: a backlog never makes a page slow).
    budget = runner.INLINE
    await sync_feeds(patience=SYNC_PATIENCE, max_passes=budget.batches, deadline=budget.deadline())
    events, resume = await read_page(
        ctx,
        position=position,
        limit=limit,
        aggregate_type=aggregate_type,
        event_type=event_type,
        view=CHANGE_VIEW,
    )
    items = await visible_items(ctx, events)
    return PageResult(items, feed_cursor(resume))


__all__ = [
    "feed_cursor",
    "feed_filter",
    "feed_position",
    "list_changes",
    "read_page",
    "visible_items",
]
