"""Bulk lead import: per-row validation, dedupe in batch and against the database, call budget."""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import math
from typing import Annotated, Any
from uuid import RFC_4122, UUID, SafeUUID

import pytest
from bson import Binary

from documents import AGGREGATE_ROOTS
from documents.journal import DomainEvent
from documents.lead import LeadBase
from documents.lead_claim import LeadClaim
from service.core import journal
from service.core.errors import Unprocessable
from service.leads import claims as lead_claims
from service.leads import commands as lead_service
from tests.factories import make_api_key, make_lead
from tests.support import oracles
from tests.support.dbcalls import count_db_calls
from tests.support.helpers import Account, assert_problem


async def bulk(account: Account, rows: list[Any]) -> Any:
    return await account.client.post("/v1/leads/bulk", json={"leads": rows})


async def test_mixed_batch_keeps_good_rows(owner: Account) -> None:
    existing = await make_lead(owner, email="stored@example.com")
    rows: list[Any] = [
        {"type": "generic", "email": "a@example.com", "first_name": "A"},  # 0 ok
        {"type": "generic", "email": " A@Example.com "},  # 1 duplicate in batch (normalised)
        {"type": "generic", "email": "STORED@example.com"},  # 2 duplicate of a stored lead
        {"type": "generic", "email": "not-an-email"},  # 3 invalid
        {"type": "mls", "mls_id": "M-1", "list_price": 100.5, "tenant_id": "ignored"},  # 4 ok
        {"type": "mls", "mls_id": "m-1"},  # 5 duplicate MLS id
        "not an object",  # 6 invalid
        {"type": "fax", "email": "x@example.com"},  # 7 unknown type
        {"type": "generic", "email": {"$gt": ""}},  # 8 operator-shaped
        {"type": "generic", "phone": "(415) 555-0100"},  # 9 ok
        {"type": "generic", "phone": "+14155550100", "email": "new@example.com"},  # 10 dup phone
        {"type": "generic", "email": "b@example.com", "is_deleted": True},  # 11 unknown field
        {"type": "generic", "phone": "123"},  # 12 impossible phone
    ]
    response = await bulk(owner, rows)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["created"] == 3
    assert body["duplicates"] == 4
    assert [f["index"] for f in body["failed"]] == [3, 6, 7, 8, 11, 12]
    assert all(
        f["errors"] and {"loc", "msg", "type"} <= f["errors"][0].keys() for f in body["failed"]
    )
    phone_error = body["failed"][-1]["errors"][0]
    assert phone_error["loc"] == ["phone"]
    listed = (await owner.client.get("/v1/leads?limit=200")).json()["items"]
    assert {x.get("email") for x in listed} == {"a@example.com", "stored@example.com", None}
    mls = next(x for x in listed if x["type"] == "mls")
    assert mls["mls_id"] == "M-1" and mls["list_price"] == 100.5
    assert mls["tenant_id"] == str(owner.tenant_id)
    assert existing["id"] in {x["id"] for x in listed}


async def test_imported_leads_are_journaled_and_clean(owner: Account) -> None:
    rows = [{"type": "generic", "email": f"j{i}@example.com"} for i in range(3)]
    assert (await bulk(owner, rows)).json()["created"] == 3
    docs = await LeadBase.find_all(with_children=True).to_list()
    assert len(docs) == 3 and all(d.pending_event is None and d.version == 1 for d in docs)
    for doc in docs:
        events = await DomainEvent.find({"aggregate_id": Binary.from_uuid(doc.id)}).to_list()
        assert [e.event_type for e in events] == ["lead.created"]
    history = (await owner.client.get(f"/v1/leads/{docs[0].id}/history")).json()["items"]
    assert len(history) == 1 and history[0]["version"] == 1


async def test_duplicates_of_other_tenants_do_not_count(owner: Account, stranger: Account) -> None:
    await make_lead(stranger, email="x@example.com")
    body = (await bulk(owner, [{"type": "generic", "email": "x@example.com"}])).json()
    assert body == {"created": 1, "duplicates": 0, "failed": []}


async def test_soft_deleted_leads_do_not_block_import(owner: Account) -> None:
    lead = await make_lead(owner, email="d@example.com")
    await owner.client.delete(f"/v1/leads/{lead['id']}")
    body = (await bulk(owner, [{"type": "generic", "email": "d@example.com"}])).json()
    assert body["created"] == 1 and body["duplicates"] == 0


async def test_batch_limits_and_shape(owner: Account) -> None:
    assert (await bulk(owner, [])).json() == {"created": 0, "duplicates": 0, "failed": []}
    too_many = [{"type": "generic", "email": "a@example.com"}] * 10_001
    assert_problem(await bulk(owner, too_many), 422)
    assert_problem(await owner.client.post("/v1/leads/bulk", json={"rows": []}), 422)
    assert_problem(await owner.client.post("/v1/leads/bulk", json={"leads": "x"}), 422)
    assert (await owner.client.get("/v1/leads")).json()["items"] == []


@pytest.mark.embedded_only  # counts calls with tests/support/dbcalls.py
async def test_database_calls_grow_with_chunks_not_rows(owner: Account, monkeypatch: Any) -> None:
    production = lead_service.BULK_CHUNK
    # A small chunk size makes several chunks out of a test-sized batch.
    monkeypatch.setattr(lead_service, "BULK_CHUNK", 40)
    n = 200
    rows = [{"type": "generic", "email": f"c{i}@example.com"} for i in range(n)]
    rows += [{"type": "generic", "email": "c0@example.com"}, {"type": "bogus"}]
    with count_db_calls() as (calls, _):
        body = (await bulk(owner, rows)).json()
    assert body["created"] == n and body["duplicates"] == 1 and len(body["failed"]) == 1
    chunks = math.ceil(n / 40)
    assert calls["leads.insert_many"] == chunks  # never one insert per row
    assert calls["lead_claims.insert_many"] == chunks  # one claim round trip per chunk
    assert calls["leads.find"] == 0  # dedupe reads nothing when nothing clashes
    assert sum(calls.values()) <= 4 * chunks + 4, calls
    # With the production chunk size the contract's budget holds: 2*ceil(N/1000) + 10.
    for rows_n in (1, 999, 5000, 10_000):
        per_request = 4 * math.ceil(rows_n / production) + 2  # + auth user and tenant reads
        assert per_request <= 2 * math.ceil(rows_n / 1000) + 10


async def test_blocks_of_a_chunk_take_every_row_once_in_order(
    owner: Account, monkeypatch: Any
) -> None:
    # Issue 27: a chunk's rows are validated and normalised a block at a time; chunks that
    # are no multiple of the block, and bad rows and duplicates on either side of a block's
    # edge, come out as when the whole chunk was one step.
    monkeypatch.setattr(lead_service, "BULK_CHUNK", 20)
    monkeypatch.setattr(lead_service, "_BLOCK", 8)
    rows: list[Any] = [{"type": "generic", "email": f"blk{i}@example.com"} for i in range(45)]
    rows[7] = {"type": "bogus"}  # the last row of a block, invalid
    rows[8] = {"type": "generic", "email": "blk6@example.com"}  # a duplicate across the edge
    rows[16] = {"type": "generic", "phone": "123"}  # impossible phone (normalisation step)
    rows[23] = {"type": "generic", "email": "BLK22@example.com"}  # duplicate in the next chunk
    body = (await bulk(owner, rows)).json()
    assert body["created"] == 41 and body["duplicates"] == 2, body
    assert [f["index"] for f in body["failed"]] == [7, 16]
    stored = await LeadBase.find({"tenant_id": owner.tenant_id}, with_children=True).to_list()
    expected = {f"blk{i}@example.com" for i in range(45)} - {
        f"blk{i}@example.com" for i in (7, 8, 16, 23)
    }
    assert sorted(d.email for d in stored) == sorted(expected)


async def test_concurrent_writer_duplicate_counts_as_duplicate(
    owner: Account, monkeypatch: Any
) -> None:
    # A concurrent writer claims a row's key between the row's validation and its claim:
    # the claim decides, the row is a duplicate and keeps no claim.
    real = lead_claims.claim_many
    taken: dict[str, Any] = {}

    async def racing(*args: Any, **kwargs: Any) -> Any:
        if not taken:  # the first call is the import's; the writer's own claim goes through
            taken["racing"] = True
            body = {"type": "generic", "email": "race@example.com"}
            taken.update((await owner.client.post("/v1/leads", json=body)).json())
        return await real(*args, **kwargs)

    monkeypatch.setattr(lead_claims, "claim_many", racing)
    rows = [
        {"type": "generic", "email": "race@example.com", "phone": "4155550199"},
        {"type": "generic", "email": "fresh@example.com"},
    ]
    body = (await bulk(owner, rows)).json()
    assert body == {"created": 1, "duplicates": 1, "failed": []}
    claims = await LeadClaim.find({"tenant_id": owner.tenant_id}).to_list()
    assert sorted(c.value for c in claims) == ["fresh@example.com", "race@example.com"]
    assert next(c for c in claims if c.value == "race@example.com").lead_id == UUID(taken["id"])


async def test_crash_before_journaling_a_batch_is_repaired(
    owner: Account, monkeypatch: Any
) -> None:
    async def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("process died")

    monkeypatch.setattr(journal, "flush_many", crash)
    rows = [{"type": "generic", "email": f"r{i}@example.com"} for i in range(3)]
    assert (await bulk(owner, rows)).status_code == 500
    stored = await LeadBase.find_all(with_children=True).to_list()
    assert len(stored) == 3 and all(d.pending_event is not None for d in stored)
    # The outbox is a slim creation marker: the event is rebuilt from the document.
    assert all(journal.is_creation_marker(d.pending_event.model_dump()) for d in stored)  # type: ignore[union-attr]
    monkeypatch.undo()
    assert await journal.repair_journal(AGGREGATE_ROOTS) == 3
    for doc in await LeadBase.find_all(with_children=True).to_list():
        assert doc.pending_event is None
        events = await DomainEvent.find({"aggregate_id": Binary.from_uuid(doc.id)}).to_list()
        assert [e.event_type for e in events] == ["lead.created"]


ROWS: list[dict[str, Any]] = [
    {
        "type": "generic",
        "email": " Ana@Example.com ",
        "phone": "+1 (415) 555-0101",  # read in GB below: a US number needs its +1
        "first_name": " Ana ",
        "tags": ["VIP", " x "],
        "segments": {"source": "fair"},
        "address": {"city": "Springfield", "postal_code": "12345"},
        "company": "Acme",
        "status": "contacted",
    },
    {
        "type": "mls",
        "mls_id": " ab-12 ",
        "list_price": 350000.25,
        "beds": 3,
        "baths": 2.5,
        "listed_at": "2024-05-01T10:00:00+02:00",
        "listing_agent": {"name": "Al", "email": "AL@x.com", "phone": "+1 415 555 0102"},
        "listing_status": "active",
        "location": {"type": "Point", "coordinates": [-122.42, 37.77]},
    },
    {"type": "generic", "phone": "020 7946 0958", "tenant_id": "ignored"},
]


async def test_one_validation_pass_builds_the_same_document(owner: Account) -> None:
    # The bulk path validates once (API schema) and constructs; the single-create path also
    # validates the document. Both must store the same values.
    ctx = dataclasses.replace(owner.ctx, phone_region="GB")
    for row in ROWS:
        fast = lead_service._bulk_document(ctx, row)
        slow = lead_service.build_lead(ctx, lead_service._lead_adapter.validate_python(row))
        assert type(fast) is type(slow)
        skip = {"id", "created_at", "updated_at", "revision_id"}
        assert fast.model_dump(exclude=skip) == slow.model_dump(exclude=skip)
        assert journal.encode_document(fast).keys() == journal.encode_document(slow).keys()
        type(slow).model_validate(fast.model_dump())  # what was stored is a valid document


async def test_imported_rows_store_normalised_values(owner: Account) -> None:
    body = (await bulk(owner, ROWS[:2])).json()
    assert body == {"created": 2, "duplicates": 0, "failed": []}
    listed = (await owner.client.get("/v1/leads")).json()["items"]
    generic = next(x for x in listed if x["type"] == "generic")
    mls = next(x for x in listed if x["type"] == "mls")
    assert (generic["email"], generic["phone"], generic["tags"]) == (
        "ana@example.com",
        "+14155550101",
        ["vip", "x"],
    )
    assert generic["address"]["postal_code"] == "12345" and generic["company"] == "Acme"
    assert mls["mls_id"] == "AB-12" and mls["list_price"] == 350000.25
    assert mls["listing_agent"] == {
        "name": "Al",
        "email": "al@x.com",
        "phone": "+14155550102",
        "brokerage": None,
        "license_number": None,
    }
    assert mls["listed_at"].startswith("2024-05-01T08:00:00")


async def test_an_impossible_agent_phone_fails_its_row_only(owner: Account) -> None:
    rows = [
        {"type": "mls", "mls_id": "A1", "listing_agent": {"phone": "123"}},
        {"type": "mls", "mls_id": "A2"},
    ]
    body = (await bulk(owner, rows)).json()
    assert body["created"] == 1 and [f["index"] for f in body["failed"]] == [0]
    assert body["failed"][0]["errors"][0]["loc"] == ["listing_agent", "phone"]


async def test_import_by_api_key_journals_the_key_as_actor(owner: Account) -> None:
    key = await make_api_key(owner, name="crm")
    response = await owner.client.post(
        "/v1/leads/bulk",
        json={"leads": [{"type": "generic", "email": "k@example.com"}]},
        headers={"Authorization": "", "X-API-Key": key["key"]},
    )
    assert response.json()["created"] == 1, response.text
    [doc] = await LeadBase.find_all(with_children=True).to_list()
    [event] = await DomainEvent.find({"aggregate_id": Binary.from_uuid(doc.id)}).to_list()
    assert (str(event.actor_id), event.actor_type) == (key["id"], "api_key")


async def test_repaired_events_match_what_an_uncrashed_import_journals(
    owner: Account, stranger: Account, monkeypatch: Any
) -> None:
    rows = ROWS[:2]
    assert (await bulk(stranger, rows)).json()["created"] == 2  # the uncrashed reference

    async def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("process died")

    monkeypatch.setattr(journal, "flush_many", crash)
    assert (await bulk(owner, rows)).status_code == 500
    monkeypatch.undo()
    assert await journal.repair_journal(AGGREGATE_ROOTS) == 2

    async def journal_of(tenant_id: Any) -> list[list[tuple[str, Any]]]:
        # Everything but the values that differ between the two tenants' imports.
        own = {"id", "tenant_id", "created_at", "created_by", "updated_by", "user_id"}
        own.add("assignee_id")
        events = await DomainEvent.find(
            {"aggregate_type": "lead", "tenant_id": Binary.from_uuid(tenant_id)}
        ).to_list()
        assert all((e.version, e.event_type) == (1, "lead.created") for e in events)
        return sorted([(c.field, c.new) for c in e.changes if c.field not in own] for e in events)

    repaired = await journal_of(owner.tenant_id)
    assert len(repaired) == 2 and repaired == await journal_of(stranger.tenant_id)


RICH_ROWS: list[dict[str, Any]] = [
    {
        "type": "mls",
        "mls_id": " ab-12 ",
        "first_name": " Zoë ",
        "last_name": "Ångström",
        "email": " Zoe@Example.COM ",
        "phone": "(415) 555-0101",
        "status": "contacted",
        "source": "zillow",
        "notes": "call after 5",
        "tags": ["Hot", "pool"],
        "segments": {"region": "north"},
        "address": {"line1": "1 Main St", "city": "Springfield", "country": "US"},
        "list_price": 350000.25,
        "beds": 3,
        "baths": 2.5,
        "listed_at": "2024-05-01T10:00:00+02:00",
        "listing_agent": {"name": "Al", "email": "AL@x.com", "phone": "415 555 0102"},
        "listing_status": "active",
        "location": {"type": "Point", "coordinates": [-122.42, 37.77]},
    },
    {"type": "generic", "phone": "+44 20 7946 0958", "company": "Acme", "job_title": "CEO"},
    {"type": "generic", "email": "plain@example.com", "tenant_id": "ignored"},
]
# Differ between two tenants' copies of the same row; everything else must be equal.
_PER_TENANT = {"id", "_id", "tenant_id", "created_at", "updated_at", "created_by", "updated_by"}
_PER_TENANT |= {"user_id", "aggregate_id", "actor_id", "occurred_at", "request_id", "seq"}
_PER_TENANT |= {"assignee_id"}  # the importing user, like user_id


def _comparable(raw: dict[str, Any]) -> list[tuple[str, Any]]:
    # In stored order (MongoDB documents are ordered), per-tenant values blanked.
    return [(k, "*" if k in _PER_TENANT else v) for k, v in raw.items()]


def _comparable_changes(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**c, "new": "*"} if c["field"] in _PER_TENANT else c for c in changes]


async def test_bulk_and_single_create_store_and_journal_the_same(
    owner: Account, stranger: Account
) -> None:
    # The bulk path builds stored documents and events without Beanie: both must be exactly
    # what POST /v1/leads stores and journals for the same input, field order included.
    for row in RICH_ROWS:
        assert (await owner.client.post("/v1/leads", json=row)).status_code == 201
    assert (await bulk(stranger, RICH_ROWS)).json() == {
        "created": len(RICH_ROWS),
        "duplicates": 0,
        "failed": [],
    }
    leads = LeadBase.get_pymongo_collection()
    events = DomainEvent.get_pymongo_collection()

    async def stored(account: Account) -> list[dict[str, Any]]:
        tenant = Binary.from_uuid(account.tenant_id)
        return await leads.find({"tenant_id": tenant}).sort("search_text", 1).to_list()

    single, bulky = await stored(owner), await stored(stranger)
    assert len(single) == len(bulky) == len(RICH_ROWS)
    for one, many in zip(single, bulky, strict=True):
        assert "pending_event" not in one and "pending_event" not in many
        assert _comparable(many) == _comparable(one)
        by_lead = [
            await events.find({"aggregate_id": Binary.from_uuid(d["_id"])}).to_list()
            for d in (one, many)
        ]
        assert [len(e) for e in by_lead] == [1, 1]
        one_event, many_event = by_lead[0][0], by_lead[1][0]
        assert _comparable(many_event | {"changes": None}) == _comparable(
            one_event | {"changes": None}
        )
        assert _comparable_changes(many_event["changes"]) == _comparable_changes(
            one_event["changes"]
        )


async def test_a_varied_batch_stores_and_journals_what_single_creates_do(
    owner: Account, stranger: Account
) -> None:
    # Issue 27 (the bulk path's fast paths together: search fields of repeated accented and
    # ASCII names, folds remembered, one email validator, sub-document paths kept, claims
    # without bookkeeping, ids drawn together, collections between chunks): a batch over
    # several chunks with duplicates inside it and bad rows among good ones stores and
    # journals, row for row, what POST /v1/leads does with the same rows.
    names = [("José", "García"), ("Zoë", "Müller"), ("Mary", "Smith"), ("Søren", "O'Brien")]
    cities = [{"city": "San José", "state": "CA"}, {"city": "Austin", "country": "US"}]
    rows: list[Any] = []
    for i in range(14):
        first, last = names[i % len(names)]  # repeated: folds remembered, words repeated
        row: dict[str, Any] = {"first_name": first, "last_name": last, "tags": ["import"]}
        row["email"] = f"{first[0]}.lead{i}@Example.com"
        row["address"] = {"line1": f"{i} Main St", **cities[i % 2]}
        if i % 3:  # some without a phone
            row["phone"] = f"+1 (415) 555-{i:04d}"
        if i % 5 == 0:
            row["consent"] = {"email": {"status": "opted_in", "source": "form"}}
        if i % 2:
            row |= {"type": "generic", "company": ["Acme", "Ünïcorn Inc."][i % 4 // 2]}
        else:
            row |= {"type": "mls", "mls_id": f"ml{i}", "list_price": 1000 + i, "beds": i}
            row["listing_agent"] = {"name": "Al", "email": "al@x.com"} if i % 4 else None
        rows.append(row)
    rows += RICH_ROWS
    # An apostrophe in an email's local part (its fast path), ASCII parts with inner spaces
    # and punctuation (the ASCII search fields' one pass).
    rows.append({"type": "generic", "email": "D'Arcy.O'Brien@Example.com", "first_name": "D'Arcy"})
    rows.append(
        {
            "type": "generic",
            "phone": "+1 415 555 0177",
            "first_name": "Ana  Maria",
            "last_name": "de la\tCruz",
            "company": "Acme,  Inc. (West)",
            "address": {"line1": "5  Elm St.", "postal_code": "94110-1234", "country": "US"},
        }
    )
    rows[3] = {**rows[3], "email": rows[1]["email"].upper()}  # a duplicate in the batch
    rows[5] = {**rows[5], "email": "not-an-email"}  # a bad row among good ones
    rows.append({"type": "mls", "mls_id": "ML2"})  # the MLS id of row 2, another case
    rows.append({"type": "generic", "first_name": "Zoë"})  # neither email nor phone
    singles = {}
    for index, row in enumerate(rows):
        response = await owner.client.post("/v1/leads", json=row)
        singles[index] = response.status_code
    assert sorted(singles.values()).count(201) == len(rows) - 4
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(lead_service, "BULK_CHUNK", 4)
        body = (await bulk(stranger, rows)).json()
    assert body["created"] == len(rows) - 4 and body["duplicates"] == 2
    assert [f["index"] for f in body["failed"]] == [i for i, code in singles.items() if code == 422]
    leads = LeadBase.get_pymongo_collection()
    events = DomainEvent.get_pymongo_collection()

    async def stored(account: Account) -> list[dict[str, Any]]:
        tenant = Binary.from_uuid(account.tenant_id)
        return await leads.find({"tenant_id": tenant}).sort("search_text", 1).to_list()

    def unstamped(raw: dict[str, Any]) -> dict[str, Any]:
        # Given consent is stamped when stored: the time differs between the two imports.
        consent = {k: {**v, "at": v["at"] and "*"} for k, v in raw["consent"].items()}
        return {**raw, "consent": consent}

    def unstamped_changes(changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        at = {f"consent.{channel}.at" for channel in ("call", "text", "email")}
        return [{**c, "new": "*"} if c["field"] in at else c for c in changes]

    single, bulky = await stored(owner), await stored(stranger)
    assert len(single) == len(bulky) == len(rows) - 4
    assert sum(one["consent"]["email"]["at"] is not None for one in single) == 2
    for one, many in zip(single, bulky, strict=True):
        assert _comparable(unstamped(many)) == _comparable(unstamped(one))
        [one_event] = await events.find({"aggregate_id": one["_id"]}).to_list()
        [many_event] = await events.find({"aggregate_id": many["_id"]}).to_list()
        assert _comparable(many_event | {"changes": None}) == _comparable(
            one_event | {"changes": None}
        )
        assert _comparable_changes(unstamped_changes(many_event["changes"])) == (
            _comparable_changes(unstamped_changes(one_event["changes"]))
        )


VARIED_ROWS: list[dict[str, Any]] = [
    *RICH_ROWS,
    *ROWS,
    {"type": "generic", "email": "şükrü@örnek.com.tr", "first_name": "Şükrü", "last_name": "Öz"},
    {"type": "generic", "phone": "+1 415.555.0199", "first_name": "  ", "last_name": "ﬀ Ⅸ"},
    {
        "type": "generic",
        "phone": "+1-415-555-0123",
        "company": "\uff26\uff55\uff4c\uff4c \uff37\uff49\uff44\uff54\uff48",
        "notes": "n",
    },
    {"type": "generic", "phone": "+33 1 42 68 53 00", "segments": {"a b": "c", "k": " v "}},
    {
        "type": "generic",
        "email": "c@example.com",
        "consent": {"text": {"status": "opted_in", "source": "form"}, "email": None},
        "time_zone": "America/Chicago",
        "address": {},
    },
    {"type": "mls", "mls_id": "x1", "listing_agent": {}, "list_price": 0, "baths": 1.25},
    {
        "type": "mls",
        "mls_id": "Z.9",
        "listing_agent": {"name": "Ëva", "license_number": "L-1", "phone": "+1 (212) 555-0144"},
        "location": {"type": "Point", "coordinates": [2.35, 48.85]},
        "listed_at": "2024-01-01T00:00:00Z",
        "year_built": 1999,
        "property_type": "condo",
        "days_on_market": 0,
        "square_feet": 1200,
        "lot_size_sqft": 5000,
        "mls_board": "CRMLS",
        "consent": {"call": {"status": "opted_out"}},
    },
]


async def test_one_walk_stores_and_journals_what_the_three_steps_did(owner: Account) -> None:
    # Issue 27: the bulk path's `NewDocuments.encode` against the generic walks it replaced
    # (tests/support/oracles.py), byte for byte, on varied rows.
    import bson

    from documents.base import utcnow

    now = utcnow()
    stamp = {"tenant_id": owner.tenant_id, "created_at": now, "updated_at": now}
    stamp |= {"created_by": owner.ctx.actor_id, "updated_by": owner.ctx.actor_id, "version": 1}
    stamp |= {"is_deleted": False, "deleted_at": None, "pending_event": None}
    checked = set()
    for (index, row), region in itertools.product(enumerate(VARIED_ROWS), ("US", "GB")):
        ctx = dataclasses.replace(owner.ctx, phone_region=region)
        try:
            kind, fields = lead_service._bulk_values(ctx, row)
        except Unprocessable:  # a national number of the other region
            continue
        checked.add(index)
        fields.update(stamp)
        new = lead_service._new_leads(kind)
        full = oracles.new_full(new, fields)
        stored = oracles.new_stored(new, full)
        changes = oracles.new_created_changes(new, full, "lead", LeadBase.secret_fields)
        unstamped = {k: v for k, v in fields.items() if k not in stamp}
        for values, common in ((fields, None), (unstamped, new.common(stamp, "lead"))):
            one_stored, one_changes = new.encode(values, "lead", LeadBase.secret_fields, common)
            assert bson.encode(one_stored) == bson.encode(stored), row
            assert bson.encode({"c": one_changes}) == bson.encode({"c": changes}), row
            assert list(one_stored) == list(stored) and one_changes == changes
        # And the values are the single-create path's (`build_lead`), as stored.
        slow = lead_service.build_lead(ctx, lead_service._lead_adapter.validate_python(row))
        skip = {"id", "created_at", "updated_at", "revision_id", "consent"}
        assert lead_service._bulk_document(ctx, row).model_dump(exclude=skip) == slow.model_dump(
            exclude=skip
        )
    assert checked == set(range(len(VARIED_ROWS)))


async def test_an_import_shares_constant_changes_and_nothing_mutates_them(
    owner: Account, monkeypatch: Any
) -> None:
    """Issue 27: the creation changes of a batch's constant leaves (the stamp, defaults, the
    first row's leaves every row holds as the same object) are one dict each, shared by every
    row's journal entry; the write path (the leads' and the journal's inserts, the outbox
    clear) mutates no entry, so what is stored is what was built, and an entry read back is
    its own (changing it changes no other)."""
    import copy

    seen: list[tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]] = []
    real = journal.flush_many

    async def spy(model: Any, events: Any) -> None:
        built = [e["changes"] for e in events]
        copies = copy.deepcopy(built)
        await real(model, events)
        seen.append((built, copies))

    monkeypatch.setattr(journal, "flush_many", spy)
    rows: list[Any] = [
        {"type": "generic", "email": f"shared{i}@example.com", "first_name": f"N{i}"}
        for i in range(3)
    ]
    rows.append({"type": "mls", "mls_id": "SHARED-1", "list_price": 10})
    response = await bulk(owner, rows)
    assert response.status_code == 200 and response.json()["created"] == 4, response.text
    ((built, copies),) = seen
    assert built == copies  # nothing in the write path changed a change
    shared = ("tenant_id", "created_by", "created_at", "is_deleted", "status")
    # And those the first row holds as objects every row holds (the actor's id, the default
    # consent's leaves): learnt from it.
    for field in (*shared, "assignee_id", "user_id", "consent.email.status"):
        made = [c for changes in built for c in changes if c["field"] == field]
        # One per document class (the stamp is encoded once per class): the generic rows'.
        assert len(made) == 4 and all(c is made[0] for c in made[:3]), field
    stored = {
        e.aggregate_id: e
        async for e in DomainEvent.find(
            {"tenant_id": owner.tenant_id, "event_type": "lead.created"}
        )
    }
    assert len(stored) == 4
    first, second = list(stored.values())[:2]
    status = next(c for c in first.changes if c.field == "status")
    status.new = "changed"
    again = await DomainEvent.get(second.id)
    assert again is not None
    assert next(c.new for c in again.changes if c.field == "status") == "new"


async def test_an_import_holds_full_collections_and_freezes_what_it_left(
    owner: Account, monkeypatch: Any
) -> None:
    """Issue 27: no full collection during an import (young ones go on automatically); after
    it, the young generations collected once and what the import left alive frozen out of
    later full collections; the thresholds are restored after (a failed import included), and
    a disabled collector is left alone (nothing collected)."""
    import gc

    before = gc.get_threshold()
    frozen = gc.get_freeze_count()
    seen: list[tuple[bool, tuple[int, int, int]]] = []
    collected: list[int] = []
    real = lead_service._insert_chunk

    kept: list[object] = []

    async def spy(*args: Any) -> None:
        seen.append((gc.isenabled(), gc.get_threshold()))
        kept.append([])
        await real(*args)

    def on_collection(phase: str, info: dict[str, Any]) -> None:
        if phase == "start" and seen:
            collected.append(info["generation"])

    monkeypatch.setattr(lead_service, "_insert_chunk", spy)
    monkeypatch.setattr(lead_service, "BULK_CHUNK", 2)
    rows = [{"type": "generic", "email": f"gc{i}@example.com"} for i in range(5)]
    gc.callbacks.append(on_collection)  # the collector's own list (not an attribute to patch)
    try:
        r = await bulk(owner, rows)
    finally:
        gc.callbacks.remove(on_collection)
    assert r.status_code == 200 and r.json()["created"] == 5
    assert len(seen) == 3
    assert all(on and during[:2] == before[:2] and during[2] > 1_000_000 for on, during in seen)
    assert 2 not in collected and collected[-1] == 1  # the young ones, right before the freeze
    assert gc.get_threshold() == before
    # What lived on from the import (here a list the spy made) is out of reach of the next
    # full collections.
    assert gc.get_freeze_count() > frozen
    assert kept and not any(o is kept[0] for o in gc.get_objects())

    async def broken(*_: Any) -> None:
        raise RuntimeError("injected")

    monkeypatch.setattr(lead_service, "_insert_chunk", broken)
    with contextlib.suppress(RuntimeError):  # a 500, or raised through the test transport
        await bulk(owner, [{"type": "generic", "email": "broken@example.com"}])
    assert gc.get_threshold() == before and gc.isenabled()

    gc.disable()
    try:
        seen.clear()
        collected.clear()
        monkeypatch.setattr(lead_service, "_insert_chunk", spy)
        gc.callbacks.append(on_collection)
        await bulk(owner, [{"type": "generic", "email": "held@example.com"}])
        assert seen == [(False, before)] and collected == []
    finally:
        gc.callbacks.remove(on_collection)
        gc.enable()


def test_pooled_ids_are_uuid7_in_order_with_uuid6s() -> None:
    from uuid6 import uuid7

    ids = [uuid7(), *(journal.pooled_uuid7() for _ in range(1200)), uuid7()]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert {i.version for i in ids} == {7}
    # Drawn together (a chunk's claims), across a refill of the pool, between single ones.
    assert journal.pooled_uuid7.binaries(0) == []
    drawn = [Binary.from_uuid(uuid7()), journal.pooled_uuid7.binary()]
    drawn += journal.pooled_uuid7.binaries(700)
    drawn += [*journal.pooled_uuid7.binaries(1), Binary.from_uuid(uuid7())]
    assert [type(b) for b in drawn] == [Binary] * len(drawn)
    assert {b.subtype for b in drawn} == {4}
    as_uuids = [b.as_uuid() for b in drawn]
    assert as_uuids == sorted(as_uuids) and len(set(as_uuids)) == len(as_uuids)
    assert {i.version for i in as_uuids} == {7} and {i.variant for i in as_uuids} == {RFC_4122}
    # A chunk's lead ids (issue 27): drawn together, as single ones are, across a refill.
    assert journal.pooled_uuid7.many(0) == []
    leads = [uuid7(), journal.pooled_uuid7(), *journal.pooled_uuid7.many(700), uuid7()]
    assert leads == sorted(leads) and len(set(leads)) == len(leads)
    assert {type(i) for i in leads} == {type(uuid7())} and {i.version for i in leads} == {7}
    assert {i.variant for i in leads} == {RFC_4122} and {i.is_safe for i in leads[1:-1]} == {
        SafeUUID.unknown
    }


async def test_a_long_loop_gives_other_requests_a_turn_every_few_milliseconds() -> None:
    """`yield_now` gives the event loop away by time, not every 200 items (issue 27: on a
    loaded machine 200 rows held the loop for 50-300 ms, `/health` waiting behind them)."""
    import asyncio
    import time

    from service.core.context import yield_now

    turns: list[float] = []
    done = asyncio.Event()

    async def other_request() -> None:
        while not done.is_set():
            turns.append(time.monotonic())
            await asyncio.sleep(0)

    async def import_rows() -> None:
        for position in range(100):
            end = time.monotonic() + 0.001  # a row's CPU-bound work
            while time.monotonic() < end:
                pass
            await yield_now(position)
        done.set()

    await asyncio.gather(other_request(), import_rows())

    # 100 ms of rows: a turn about every 5 ms (YIELD_AFTER), not one after the whole loop
    assert len(turns) >= 10


def test_a_validated_row_is_dumped_as_the_serializer_dumps_it() -> None:
    # Issue 27: `_validated` reads a row's values off the validated model (`_dumped`) instead
    # of `model_dump()`: the same dict, types and key order included, on every kind of row.
    from pydantic import BaseModel, PlainSerializer, computed_field

    rows = [*VARIED_ROWS, {"type": "mls", "mls_id": "T", "tags": ["a"], "segments": {"k": "v"}}]
    for row in rows:
        model = lead_service._lead_adapter.validate_python(row)
        assert lead_service._DUMPS_AS_HELD[type(model)]
        dumped = lead_service._dumped(model)
        assert dumped == model.model_dump() and repr(dumped) == repr(model.model_dump())
        kind, consent, values = lead_service._validated(row)
        assert (kind, consent) == (model.type, model.consent)
        assert repr(values) == repr(model.model_dump(exclude={"type"}))

    # Models whose dump is not their values as held are dumped by pydantic.
    class Computed(BaseModel):
        a: int = 1

        @computed_field  # type: ignore[prop-decorator]
        @property
        def b(self) -> int:
            return self.a + 1

    class Serialized(BaseModel):
        a: Annotated[int, PlainSerializer(str)] = 1

    class Inner(BaseModel):
        s: Serialized = Serialized()

    for model_class in (Computed, Serialized, Inner):
        assert not lead_service._dumps_as_held(model_class)

    # Sub-models inside containers are dumped too; containers of scalars are left as held.
    class Point(BaseModel):
        x: int = 1

    class Holder(BaseModel):
        many: list[Point]
        named: dict[str, Point | None]
        pair: tuple[Point, ...]
        words: list[str]
        maybe: Point | None = None

    held = Holder(many=[Point()], named={"a": Point(), "b": None}, pair=(Point(),), words=["w"])
    assert lead_service._dumps_as_held(Holder)
    assert lead_service._nested_fields(Holder) == ("many", "named", "pair", "maybe")
    assert repr(lead_service._dumped(held)) == repr(held.model_dump())
