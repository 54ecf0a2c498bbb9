"""A stripped-down bulk import app: the service's rows in, the service's writes out, no more.

What a FastAPI + PyMongo app written for this one endpoint pays per lead (issue 27 asks for
the floor "measured by a stripped-down app on the same machine"). It does the work the
service's import must do, by the plainest code, with the same fast primitives:

- the body parsed by FastAPI (`Request.json`), each row validated by the API's own schema
  (one `validate_python` a row, so good rows are kept) and dumped;
- the domain's rules, called as the service calls them: phones and price normalised, consent
  stamped (`_normalise`, `_with_consent`), the search fields derived (`lead_search_fields`);
- ids from the service's pooled uuid7 (as binaries), values converted by `to_bson`;
- per chunk the service's four writes: the dedupe-key claims (a refused claim makes its row
  a duplicate), the leads with their creation marker, their `lead.created` entries with
  field-level changes (the stored document's leaves, sorted), the marker clear.

Not here, by design: authentication, tenancy checks, the repository and its generic
encoder, turns for other requests (the loop is held for the whole import), conflict
resolution beyond "refused is duplicate". bench_bulk_import.py times it next to the service
and checks, for a lead of each type, that it stores the same fields with the same values and
journals the same changes (ids and times aside).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from operator import itemgetter
from typing import Any
from uuid import UUID

from bson import Binary
from fastapi import FastAPI, Request
from pydantic import BaseModel, TypeAdapter, ValidationError
from pymongo.errors import BulkWriteError

from documents.base import utcnow
from documents.lead import LEAD_CLASSES, LeadBase, lead_search_fields
from schemas.leads import LeadCreate
from service.core import journal
from service.core.journal import to_bson
from service.core.journal.diff import UNJOURNALED
from service.leads.commands import BULK_CHUNK, DEDUPE_FIELDS, _normalise, _with_consent

_SKIPPED = UNJOURNALED | LeadBase.derived_fields | {"_class_id"}


def _template(model: type[LeadBase]) -> dict[str, Any]:
    # A new document of `model` as stored before its values: every field, defaults in place.
    out: dict[str, Any] = {"_class_id": model._class_id} if model._class_id else {}
    for name, info in model.model_fields.items():
        if name == "revision_id":
            continue
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        if isinstance(default, BaseModel):
            default = default.model_dump()
        out[info.alias or name] = to_bson(default)
    return out


def _leaves(doc: Mapping[str, Any], prefix: str, out: list[tuple[str, Any]]) -> None:
    # The non-null leaves of a stored sub-document by dotted path (an empty map is a leaf).
    for key, value in doc.items():
        if type(value) is dict and value:
            _leaves(value, f"{prefix}{key}.", out)
        elif value is not None:
            out.append((f"{prefix}{key}", value))


def _creation_changes(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    # `diff({}, doc)` of the journaled fields: each non-null leaf, sorted by path.
    leaves: list[tuple[str, Any]] = []
    for key, value in doc.items():
        if value is None or key in _SKIPPED:
            continue
        if type(value) is dict and value:
            _leaves(value, f"{key}.", leaves)
        else:
            leaves.append(("id" if key == "_id" else key, value))
    leaves.sort(key=itemgetter(0))
    return [{"field": path, "old": None, "new": value} for path, value in leaves]


def create_floor_app(db: Any, *, tenant_id: UUID, actor_id: UUID, region: str = "US") -> FastAPI:
    """The stripped-down app: `POST /v1/leads/bulk` writing into `db` for one tenant."""
    app = FastAPI()
    adapter: TypeAdapter[Any] = TypeAdapter(LeadCreate)
    templates = {kind: _template(model) for kind, model in LEAD_CLASSES.items()}
    tenant, actor = Binary.from_uuid(tenant_id), Binary.from_uuid(actor_id)

    @app.post("/v1/leads/bulk")
    async def bulk(request: Request) -> dict[str, Any]:
        rows = (await request.json())["leads"]
        now = utcnow()
        stamp = _stamp(tenant, actor, now)
        created, duplicates, failed = 0, 0, []
        seen: set[tuple[str, str]] = set()
        for start in range(0, len(rows), BULK_CHUNK):
            leads: list[dict[str, Any]] = []
            keys: list[list[tuple[str, str]]] = []
            for index in range(start, min(start + BULK_CHUNK, len(rows))):
                try:
                    data = adapter.validate_python(rows[index])
                except ValidationError as exc:
                    failed.append({"index": index, "errors": exc.errors(include_url=False)})
                    continue
                fields = _with_consent(
                    data.consent, _normalise(data.model_dump(exclude={"type"}), region)
                )
                row_keys = [(f, v) for f in DEDUPE_FIELDS if isinstance(v := fields.get(f), str)]
                if not seen.isdisjoint(row_keys):
                    duplicates += 1
                    continue
                seen.update(row_keys)
                fields["search_text"], fields["search_tokens"] = lead_search_fields(fields)
                doc = templates[data.type] | stamp
                for name, value in fields.items():
                    doc[name] = to_bson(value)
                leads.append(doc)
                keys.append(row_keys)
            created_now, refused = await _write_chunk(db, leads, keys, tenant, now)
            created += created_now
            duplicates += refused
        return {"created": created, "duplicates": duplicates, "failed": failed}

    return app


def _stamp(tenant: Binary, actor: Binary, now: datetime) -> dict[str, Any]:
    return {
        "tenant_id": tenant,
        "created_at": now,
        "updated_at": now,
        "created_by": actor,
        "updated_by": actor,
        "user_id": actor,
        "assignee_id": actor,
        "version": 1,
        "is_deleted": False,
    }


async def _write_chunk(
    db: Any,
    leads: list[dict[str, Any]],
    keys: list[list[tuple[str, str]]],
    tenant: Binary,
    now: datetime,
) -> tuple[int, int]:
    """The chunk's claims, leads, journal entries and marker clear; (created, refused)."""
    if not leads:
        return 0, 0
    lead_ids = journal.pooled_uuid7.binaries(len(leads))
    claim_ids = iter(journal.pooled_uuid7.binaries(sum(map(len, keys))))
    owners: list[int] = []
    claims = []
    for position, (lead_id, row_keys) in enumerate(zip(lead_ids, keys, strict=True)):
        for field, value in row_keys:
            claims.append(
                {"_id": next(claim_ids), "tenant_id": tenant, "field": field, "value": value}
                | {"lead_id": lead_id, "claimed_at": now}
            )
            owners.append(position)
    refused: set[int] = set()
    try:
        await db["lead_claims"].insert_many(claims, ordered=False)
    except BulkWriteError as exc:
        refused = {owners[e["index"]] for e in exc.details["writeErrors"]}
    event_ids = journal.pooled_uuid7.binaries(len(leads))
    stored, events = [], []
    for position, doc in enumerate(leads):
        if position in refused:
            continue
        doc["_id"] = lead_id = lead_ids[position]
        changes = _creation_changes(doc)
        event_id = event_ids[position]
        doc["pending_event"] = journal.creation_marker(
            event_id=event_id, aggregate_id=lead_id, actor_type="user"
        )
        stored.append(doc)
        events.append(
            journal.creation_event(
                aggregate_type="lead",
                stored=doc,
                event_id=event_id,
                actor_type="user",
                changes=changes,
                request_id=None,
                typed=True,
            )
        )
    if stored:
        await db["leads"].insert_many(stored, ordered=False)
        await db["domain_events"].insert_many(events, ordered=False)
        await db["leads"].update_many(
            {"_id": {"$in": [d["_id"] for d in stored]}, "pending_event.version": 1},
            {"$unset": {"pending_event": ""}},
        )
    return len(stored), len(refused)
