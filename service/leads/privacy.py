"""Personal data of leads: erasure through the journal and subject export (GDPR Art. 17 / 15).

Design: a controlled REDACTION PASS, not crypto-shredding. The journal stores field-level
changes as plain values, and every reader (history, versions, the change feed, webhooks,
projectors, the audit log) reads them as they are; encrypting personal values under
per-subject keys would touch every one of those readers and every index over them. A pass
that rewrites the few places holding a person's values is complete today and checkable by a
byte scan of the database (tests/test_privacy_erasure.py).

`erase_lead` runs, in this order, each step idempotent:

1. `lead.erased` is journaled on the lead (`erased_at`, soft delete): no personal value is
   in that event, and `erased_at` marks the lead as a tombstone from now on.
2. The redaction pass (`redact_lead`):
   - every journal entry of the lead (`domain_events`): the values of personal fields
     (`PERSONAL_FIELDS`, at any depth) become null; the entries themselves, their ids, types,
     times, versions, actors and `seq` stay, so "a change happened" survives and the feeds'
     positions do not move. This is the one rewrite the journal ever gets;
   - the lead document: personal fields null (the address empty, segments empty), the
     derived `search_text` empty, any outbox dropped (its event is journaled by step 1);
   - its touchpoints (`events`): free text (notes, text bodies, e-mail subjects, recording
     and post URLs) null or empty; type, times, outcome, campaign and counts stay;
   - idempotency records of those touchpoints: the stored answer gets the same redaction.
   Replaying the redacted journal gives exactly the erased document, so `version`,
   `state_at` and the journal invariant (a version per event) hold without a new event.
3. Leads merged into it (`merged_into`, soft-deleted sources whose values were copied into
   it) are the same person: erased the same way.

Read models, analytics and campaign counts hold ids and counts only: nothing to redact, and
they do not change (a live lead erased is also soft-deleted, like a DELETE: its campaigns are
recounted). Webhook delivery logs hold ids, status codes and errors, never payloads; a
delivery made after the erasure sends the redacted entry (one already in flight, its entry
read before the pass, may still carry the values: what left the service cannot be recalled).

A crash between step 1 and the end of step 2 leaves `erased_at` set and `search_text` not
empty: another `erase` call finishes it, and the retention worker (service/leads/retention.py)
finishes such leads on its next pass.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from uuid import UUID

from bson import Binary
from pydantic_core import to_jsonable_python

from documents.base import utcnow
from documents.campaign import CampaignLead
from documents.event import EVENT_CLASSES, IdempotencyRecord, TouchpointEvent
from documents.journal import DomainEvent
from documents.lead import LeadBase
from service.core.context import RequestContext
from service.core.policy import Action
from service.core.repository import Repository, tenant_filter, uuid_filter
from service.leads import commands as leads

# Top-level lead fields that describe the person (names, contact, address, free text). Tags
# are kept (labels the tenant chose), as are ids, type, status, source, times and the MLS
# listing number (the listing's id at its board, not the person's).
PERSONAL_FIELDS = (
    "first_name",
    "last_name",
    "email",
    "phone",
    "address",
    "notes",
    "company",
    "job_title",
    "location",
    "listing_agent",
    "segments",
    "search_text",
    "search_tokens",
)
# Touchpoint fields holding free text (per type; absent fields are left absent).
TOUCHPOINT_TEXT = ("notes", "body", "subject", "recording_url", "url")
# Erased values that cannot be null in the stored document.
_ERASED_VALUE: dict[str, Any] = {
    "address": {
        "line1": None,
        "line2": None,
        "city": None,
        "state": None,
        "postal_code": None,
        "country": None,
    },
    "segments": {},
    "search_text": "",
    "search_tokens": [],
    "body": "",
}


def is_personal(field: str, fields: tuple[str, ...] = PERSONAL_FIELDS) -> bool:
    """Whether a journal path (`address.city`) is (inside) one of `fields`."""
    return field.split(".", 1)[0] in fields


def erased_value(field: str) -> Any:
    """What an erased top-level field holds in the tombstone (null unless it cannot be)."""
    value = _ERASED_VALUE.get(field)
    return dict(value) if isinstance(value, dict) else value


def redact_changes(changes: list[Mapping[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """A journal entry's changes with personal values nulled; and whether anything changed."""
    out = []
    touched = False
    for change in changes:
        item = dict(change)
        if is_personal(str(item.get("field", ""))) and (
            item.get("old") is not None or item.get("new") is not None
        ):
            item["old"] = None
            item["new"] = None
            touched = True
        out.append(item)
    return out, touched


def erased_state(state: dict[str, Any], erased_at: datetime) -> dict[str, Any]:
    """A past version of an erased lead (rebuilt from the redacted journal), as readable.

    The journal's nulls can leave sub-documents half there (`location` without coordinates):
    the personal fields take their tombstone values, and `erased_at` says why.
    """
    for name in PERSONAL_FIELDS:
        if name in state:
            state[name] = erased_value(name)
    state["erased_at"] = erased_at
    return state


# -- erasure ----------------------------------------------------------------------------------


async def erase_lead(*, ctx: RequestContext, id: UUID) -> LeadBase:
    """Erase a lead's personal data everywhere it is stored; the lead stays as a tombstone.

    Admin only. Erasing an erased lead runs the (idempotent) pass again and answers the same.
    """
    leads.POLICY.require(ctx, Action.personal_data)
    repo = Repository(LeadBase, ctx)
    lead = await repo.get(id, include_deleted=True)
    return await erase_with(ctx, lead)


async def erase_with(ctx: RequestContext, lead: LeadBase) -> LeadBase:
    """Erase `lead` (already read in `ctx`'s tenant) and the leads merged into it, each once.

    Sources merged into a lead are the same person (their values were copied into it). Each
    lead gets its journaled tombstone, then its sources are erased, then its redaction pass.
    Each lead is visited once: two concurrent opposite merges can leave two leads merged into
    each other (service/leads/merge.py), and a walk without memory went round that cycle until
    the recursion limit (a 500) or the request budget (a 503).
    """
    seen: set[UUID] = set()
    erased: list[LeadBase] = []
    stack: list[tuple[LeadBase, bool]] = [(lead, False)]  # (lead, its sources are done)
    while stack:
        current, sources_done = stack.pop()
        if sources_done:
            await redact_lead(ctx, current.id)
            continue
        if current.id in seen:
            continue
        seen.add(current.id)
        current = await _tombstone(ctx, current)
        erased.append(current)
        stack.append((current, True))
        sources = await _merged_sources(ctx, current.id)
        stack.extend((source, False) for source in reversed(sources) if source.id not in seen)
    return erased[0]


async def _tombstone(ctx: RequestContext, lead: LeadBase) -> LeadBase:
    """The journaled tombstone of one lead (`erased_at`, soft-deleted); counts follow."""
    was_live = not lead.is_deleted
    if lead.erased_at is None or was_live:
        now = utcnow()
        lead = await Repository(LeadBase, ctx).update(
            lead,
            {
                "erased_at": lead.erased_at or now,
                "is_deleted": True,
                "deleted_at": lead.deleted_at or now,
            },
            event_type="erased",
        )
    if was_live and leads.POLICY.after_delete is not None:
        await leads.POLICY.after_delete(ctx, lead)  # like a DELETE: campaigns are recounted
    return lead


async def _merged_sources(ctx: RequestContext, id: UUID) -> list[LeadBase]:
    query = tenant_filter(ctx, {"is_deleted": True, "merged_into": uuid_filter(id)})
    return await LeadBase.find(query, with_children=True).to_list()


async def redact_lead(ctx: RequestContext, id: UUID) -> None:
    """The redaction pass over every stored copy of one lead's personal values (idempotent)."""
    lead_id = uuid_filter(id)
    # 1. The journal: every entry of this lead, values of personal fields nulled.
    journal = DomainEvent.get_pymongo_collection()
    entries = journal.find(
        tenant_filter(ctx, {"aggregate_id": lead_id, "aggregate_type": LeadBase.aggregate_type}),
        {"changes": 1},
    )
    async for entry in entries:
        changes, touched = redact_changes(entry.get("changes") or [])
        if touched:
            await journal.update_one(
                tenant_filter(ctx, {"_id": entry["_id"]}), {"$set": {"changes": changes}}
            )
    # 2. Its touchpoints' free text, and the answers idempotent retries would replay.
    events = TouchpointEvent.get_pymongo_collection()
    # One update per touchpoint type, setting only the fields that type has.
    for kind, cls in EVENT_CLASSES.items():
        fields = [f for f in TOUCHPOINT_TEXT if f in cls.model_fields]
        await events.update_many(
            tenant_filter(ctx, {"lead_id": lead_id, "type": kind.value}),
            {"$set": {f: erased_value(f) for f in fields}},
        )
    found = events.find(tenant_filter(ctx, {"lead_id": lead_id}), {"_id": 1})
    event_ids: list[Binary] = [event["_id"] async for event in found]
    if event_ids:
        records = IdempotencyRecord.get_pymongo_collection()
        query = tenant_filter(ctx, {"event_id": {"$in": event_ids}})
        async for record in records.find(query, {"response": 1}):
            response = record.get("response")
            if isinstance(response, dict):
                redacted = {
                    k: (erased_value(k) if k in TOUCHPOINT_TEXT and v not in (None, "") else v)
                    for k, v in response.items()
                }
                if redacted != response:
                    await records.update_one(
                        tenant_filter(ctx, {"_id": record["_id"]}), {"$set": {"response": redacted}}
                    )
    # 3. The lead itself, last: an empty `search_text` marks the pass as complete.
    await LeadBase.get_pymongo_collection().update_one(
        tenant_filter(ctx, {"_id": lead_id}),
        {
            "$set": {name: erased_value(name) for name in PERSONAL_FIELDS if name != "address"}
            | {"address": erased_value("address")},
            "$unset": {"pending_event": ""},
        },
    )


# -- subject export -----------------------------------------------------------------------------


def _plain(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A stored document as JSON: `_id` as `id`, UUIDs as text, dates ISO 8601, no class tag."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        if key in ("_class_id", "revision_id"):
            continue
        out["id" if key == "_id" else key] = _json(value)
    return out


def _json(value: Any) -> Any:
    if isinstance(value, Binary) and value.subtype == 4:
        return str(value.as_uuid())
    if isinstance(value, Mapping):
        return {str(k): _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return to_jsonable_python(value)


async def subject_export(*, ctx: RequestContext, id: UUID) -> dict[str, Any]:
    """Everything stored about one lead's person, as one JSON document (admin only).

    The stored documents as they are (JSON: ids as text, times ISO 8601): the lead, its
    consent (when the lead carries one), its campaign memberships, its touchpoints (oldest
    first) and its journal (its history, oldest first). Deleted and erased leads too.
    """
    leads.POLICY.require(ctx, Action.personal_data)
    await Repository(LeadBase, ctx).get(id, include_deleted=True)  # 404 for another tenant's
    lead_id = uuid_filter(id)
    lead = await LeadBase.get_pymongo_collection().find_one(tenant_filter(ctx, {"_id": lead_id}))
    assert lead is not None
    memberships = CampaignLead.get_pymongo_collection().find(
        tenant_filter(ctx, {"lead_id": lead_id})
    )
    touchpoints = (
        TouchpointEvent.get_pymongo_collection()
        .find(tenant_filter(ctx, {"lead_id": lead_id}))
        .sort([("occurred_at", 1), ("_id", 1)])
    )
    history = (
        DomainEvent.get_pymongo_collection()
        .find(
            tenant_filter(ctx, {"aggregate_id": lead_id, "aggregate_type": LeadBase.aggregate_type})
        )
        .sort("version", 1)
    )
    plain = _plain(lead)
    return {
        "lead": plain,
        "consent": plain.get("consent"),
        "campaign_memberships": [_plain(m) async for m in memberships],
        "touchpoints": [_plain(t) async for t in touchpoints],
        "history": [_plain(h) async for h in history],
        "exported_at": utcnow(),
    }


__all__ = [
    "PERSONAL_FIELDS",
    "TOUCHPOINT_TEXT",
    "erase_lead",
    "erase_with",
    "erased_state",
    "erased_value",
    "is_personal",
    "redact_changes",
    "redact_lead",
    "subject_export",
]
