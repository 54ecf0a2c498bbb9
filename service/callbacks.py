"""Provider callbacks: `POST /v1/events/status` moves an event's status forward, never back.

A touchpoint recorded with `provider` + `external_id` (the SMS/e-mail/telephony provider's
message or call id) is found again by that pair. Each channel has a lifecycle, a rank per
status; a callback's status becomes the event's current one only when it ranks higher, so
callbacks arriving late or out of order cannot move it back. Every distinct callback is kept
in `status_history` (oldest first by `occurred_at`, the newest STATUS_HISTORY_MAX); the same
callback again (status and time) is recorded once. The write is a compare-and-set on the
event's `version`, retried on a lost race, so concurrent callbacks all land.

Events are otherwise immutable and never journaled (documents/event.py): a status change is
a fact about the event, kept in the event itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from documents.base import utcnow
from documents.event import (
    STATUS_HISTORY_MAX,
    EventType,
    StatusChange,
    TouchpointEvent,
)
from schemas.events import EVENT_VIEW, AnyEventRead, EventStatusUpdate
from service import consent, recipients
from service.core.context import RequestContext
from service.core.errors import Conflict, NotFound, Unprocessable
from service.core.journal import to_bson
from service.core.policy import Action
from service.core.repository import Repository, uuid_filter
from service.events import CLOCK_SKEW, POLICY, provider_filter

LIFECYCLES: Mapping[EventType, tuple[str, Mapping[str, int]]] = {
    EventType.text: (
        "delivery_status",
        {
            "queued": 0,
            "sent": 1,
            "delivered": 2,
            "undelivered": 2,
            "failed": 2,
            "received": 2,
        },
    ),
    EventType.email: (
        "status",
        {
            "sent": 0,
            "delivered": 1,
            "bounced": 1,
            "opened": 2,
            "clicked": 3,
            "replied": 4,
            "unsubscribed": 5,
            "spam": 5,
        },
    ),
    EventType.call: (
        "outcome",
        {
            "failed": 0,
            "busy": 0,
            "no_answer": 0,
            "wrong_number": 0,
            "voicemail": 1,
            "answered": 2,
        },
    ),
}
"""Per channel: the field holding the current status, and each status's rank (forward only)."""
UPDATE_RETRIES = 10


async def update_status(*, ctx: RequestContext, data: EventStatusUpdate) -> AnyEventRead:
    """Apply a provider callback to its event (member); 404 when no event has that id."""
    POLICY.require(ctx, Action.update)
    repo = Repository(TouchpointEvent, ctx)
    now = utcnow()
    at = data.occurred_at or now
    if at > now + CLOCK_SKEW:
        raise Unprocessable("occurred_at lies in the future.", loc=["body", "occurred_at"])
    for _ in range(UPDATE_RETRIES):
        event = await repo.find_one(provider_filter(data.provider, data.external_id))
        if event is None:
            raise NotFound(f"No event of {data.provider} with external_id {data.external_id}.")
        field, ranks = _lifecycle(event)
        if data.status not in ranks:
            raise Unprocessable(
                f"{data.status!r} is not a {event.type.value} status; one of: {', '.join(ranks)}.",
                loc=["body", "status"],
            )
        history = list(event.status_history)
        repeated = any(
            h.status == data.status and (data.occurred_at is None or h.occurred_at == at)
            for h in history
        )
        if repeated:  # the same callback again: recorded once
            return EVENT_VIEW.document(event)
        current = str(getattr(event, field))
        moves = ranks[data.status] > ranks.get(current, -1)
        history.append(StatusChange(status=data.status, occurred_at=at, received_at=now))
        history.sort(key=lambda h: h.occurred_at)
        changes: dict[str, Any] = {
            "status_history": [to_bson(h) for h in history[-STATUS_HISTORY_MAX:]],
            "version": event.version + 1,
            "updated_at": to_bson(now),
        }
        if moves:
            changes[field] = data.status
        result = await TouchpointEvent.get_pymongo_collection().update_one(
            repo.scope({"_id": uuid_filter(event.id), "version": event.version}),
            {"$set": changes},
        )
        if result.matched_count == 0:
            continue  # a concurrent callback won: read it again and apply on top
        updated = await repo.get(event.id)
        if moves:
            await consent.auto_opt_out(ctx, updated)
            await recipients.record_outcome(ctx, updated)
        return EVENT_VIEW.document(updated)
    raise Conflict("The event is receiving callbacks concurrently; retry.")


def _lifecycle(event: TouchpointEvent) -> tuple[str, Mapping[str, int]]:
    lifecycle = LIFECYCLES.get(event.type)
    if lifecycle is None:
        raise Unprocessable(
            f"{event.type.value} events have no provider status.", loc=["body", "external_id"]
        )
    return lifecycle


__all__ = ["LIFECYCLES", "update_status"]
