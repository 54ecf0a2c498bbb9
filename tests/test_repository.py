"""The shared repository: tenant scoping, versioned writes, the journal and its crash repair."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
from bson import Binary

from documents import AGGREGATE_ROOTS
from documents.journal import DomainEvent
from documents.lead import Address, GenericLead, LeadBase, ListingAgent, MLSRealEstateLead
from documents.tenant import Tenant
from documents.user import User
from service.core import journal
from service.core.errors import Conflict, NotFound, PreconditionFailed
from service.core.repository import Repository
from tests.support import oracles
from tests.support.helpers import Account


async def events_of(aggregate_id: Any) -> list[DomainEvent]:
    return (
        await DomainEvent.find({"aggregate_id": Binary.from_uuid(aggregate_id)})
        .sort("version")
        .to_list()
    )


async def test_create_update_journal_one_event_per_version(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="Acme"))
    assert tenant.version == 1
    tenant = await repo.update(tenant, {"name": "Acme Realty"})
    assert tenant.version == 2
    events = await events_of(tenant.id)
    assert [(e.version, e.event_type) for e in events] == [
        (1, "tenant.created"),
        (2, "tenant.updated"),
    ]
    assert events[1].actor_id == owner.id
    assert [(c.field, c.old, c.new) for c in events[1].changes] == [("name", "Acme", "Acme Realty")]
    stored = await Tenant.get(tenant.id)
    assert stored is not None and stored.version == 2 and stored.pending_event is None


async def test_no_change_means_no_new_version(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="Acme"))
    same = await repo.update(tenant, {"name": "Acme"})
    assert same.version == 1
    assert len(await events_of(tenant.id)) == 1


async def test_stale_expected_version_is_412_and_changes_nothing(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="Acme"))
    with pytest.raises(PreconditionFailed):
        await repo.update(tenant, {"name": "B"}, expected_version=7)
    assert (await Tenant.get(tenant.id)).name == "Acme"  # type: ignore[union-attr]


async def test_concurrent_writer_of_same_version_loses(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="Acme"))
    await repo.update(tenant, {"name": "first"})
    with pytest.raises(Conflict):
        await repo.update(tenant, {"name": "second"})  # still holds version 1
    events = await events_of(tenant.id)
    assert [e.version for e in events] == [1, 2]
    assert (await Tenant.get(tenant.id)).name == "first"  # type: ignore[union-attr]


async def test_other_tenant_cannot_see_or_change(owner: Account, stranger: Account) -> None:
    tenant = await Repository(Tenant, owner.ctx).create(Tenant(tenant_id=owner.tenant_id, name="A"))
    with pytest.raises(NotFound):
        await Repository(Tenant, stranger.ctx).get(tenant.id)


async def test_soft_delete_hides_and_restore_brings_back(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="A"))
    await repo.soft_delete(tenant)
    with pytest.raises(NotFound):
        await repo.get(tenant.id)
    deleted = await repo.get(tenant.id, include_deleted=True)
    restored = await repo.restore(deleted)
    assert not restored.is_deleted and restored.version == 3
    assert (await repo.restore(restored)).version == 3  # restoring a live one changes nothing


async def test_crash_between_state_and_journal_is_repaired(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="A"))

    async def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("process died")

    with patch.object(journal, "flush_pending", crash), pytest.raises(RuntimeError):
        await repo.update(tenant, {"name": "B"})
    stored = await Tenant.get(tenant.id)
    assert stored is not None and stored.version == 2 and stored.pending_event is not None
    assert [e.version for e in await events_of(tenant.id)] == [1]  # the journal lags

    assert await journal.repair_journal(AGGREGATE_ROOTS) == 1
    events = await events_of(tenant.id)
    assert [e.version for e in events] == [1, 2]
    assert events[1].changes[0].new == "B"
    assert (await Tenant.get(tenant.id)).pending_event is None  # type: ignore[union-attr]
    assert await journal.repair_journal(AGGREGATE_ROOTS) == 0


async def test_next_write_flushes_a_crashed_outbox_first(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="A"))
    real_flush = journal.flush_pending
    calls = 0

    async def crash_once(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("process died")
        await real_flush(*args, **kwargs)

    with patch.object(journal, "flush_pending", crash_once), pytest.raises(RuntimeError):
        await repo.update(tenant, {"name": "B"})
    current = await repo.get(tenant.id)
    await repo.update(current, {"name": "C"})
    assert [e.version for e in await events_of(tenant.id)] == [1, 2, 3]


async def test_secrets_are_redacted_in_the_journal(owner: Account) -> None:
    events = await events_of(owner.id)
    created = events[0]
    pw = [c for c in created.changes if c.field == "password_hash"]
    assert pw and pw[0].new == journal.REDACTED


# -- bulk creations: creation markers and their repair -----------------------------------------


def _leads(owner: Account, n: int) -> list[GenericLead]:
    return [
        GenericLead(
            tenant_id=owner.tenant_id,
            email=f"m{i}@example.com",
            address=Address(city="Springfield"),
            segments={"source": "fair"} if i % 2 else {},
            tags=["a", "b"],
        )
        for i in range(n)
    ]


async def test_creation_changes_equal_the_generic_diff(owner: Account) -> None:
    user = await User.get(owner.id)
    assert user is not None
    lead = MLSRealEstateLead(
        tenant_id=owner.tenant_id,
        mls_id="X-1",
        listing_agent=ListingAgent(name="Al", phone="+14155550100"),
        segments={},
    )
    for doc in (user, lead):  # the bulk path's inputs: python-mode values, sub-documents as dicts
        new = journal.NewDocuments(type(doc))
        full = oracles.new_full(new, {k: v for k, v in doc.model_dump().items() if k in new.names})
        assert oracles.new_changes(new, full, doc.secret_fields) == oracles.creation_changes(doc)
        assert oracles.new_stored(new, full) == journal.encode_document(doc)
        assert_encodes_as_the_three_steps(new, full, doc.aggregate_type, doc.secret_fields)
    new = journal.NewDocuments(User)
    full = oracles.new_full(new, {k: v for k, v in user.model_dump().items() if k in new.names})
    redacted = oracles.new_changes(new, full, user.secret_fields)
    assert {"field": "password_hash", "old": None, "new": journal.REDACTED} in redacted
    assert all(c["field"] and c["new"] is not None for c in redacted)  # no root or null entries


async def test_one_walk_types_nested_values_as_typed_changes_types(
    owner: Account,
) -> None:
    # Issue 27: the bulk path's one-pass typing, on nested values of every kind it shortcuts
    # (strings, ints, bools, None, UUIDs, UTC and other dates) and those it leaves to
    # pydantic-core (enums, floats, tuples, models), top-level and nested, empty dicts too.
    from datetime import UTC, datetime, timedelta, timezone

    from documents.consent import ChannelConsent, Consent, ConsentStatus
    from documents.lead import GeoPoint

    at = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    lead = MLSRealEstateLead(
        tenant_id=owner.tenant_id,
        mls_id="X-2",
        address=Address(line1="1 Main", city="Springfield"),
        location=GeoPoint(coordinates=(-122.42, 37.77)),
        listing_agent=ListingAgent(name="Al", phone="+14155550100"),
        segments={"source": "fair", "tier": "a"},
        tags=["a", "b"],
        consent=Consent(
            call=ChannelConsent(status=ConsentStatus.opted_in, source="form", at=at),
            text=ChannelConsent(
                status=ConsentStatus.opted_out, at=at.astimezone(timezone(timedelta(hours=2)))
            ),
        ),
        baths=2.5,
        listed_at=at,
        assignee_id=owner.id,
    )
    new = journal.NewDocuments(type(lead))
    values = lead.model_dump()
    values["consent"]["text"]["at"] = at.astimezone(timezone(timedelta(hours=2)))
    full = oracles.new_full(new, {k: v for k, v in values.items() if k in new.names})
    assert_encodes_as_the_three_steps(new, full, "lead", lead.secret_fields)
    # Values as the bulk path gives them: some fields left to their defaults.
    partial = {k: v for k, v in full.items() if k not in {"status", "tags", "consent", "address"}}
    assert_encodes_as_the_three_steps(new, partial, "lead", lead.secret_fields)
    # None for fields whose default is not None (a constant, a factory's).
    cleared = {**partial, "search_text": None, "is_archived": None, "tags": None, "notes": None}
    assert_encodes_as_the_three_steps(new, cleared, "lead", lead.secret_fields)


async def test_a_sub_document_shared_by_rows_is_encoded_again_when_another_comes(
    owner: Account,
) -> None:
    # Issue 27: `encode` reuses a nested sub-document's encoding while rows give the very
    # same object (the bulk path's shared default consent); another object, even between
    # two rows with the shared one, is encoded anew.
    from uuid6 import uuid7

    from documents.base import utcnow
    from service.consent import stored_consent

    new = journal.NewDocuments(GenericLead)
    shared = stored_consent(None, None)
    assert stored_consent(None, None) is shared
    own = {**shared, "text": {"status": "opted_in", "source": "form", "at": None}}
    stored_forms = []
    for consent in (shared, shared, own, shared, {k: dict(v) for k, v in own.items()}):
        values = {"id": uuid7(), "tenant_id": owner.tenant_id, "email": "a@x.com"}
        values |= {"created_at": utcnow(), "updated_at": utcnow()}  # else made per call
        values["consent"] = consent
        assert_encodes_as_the_three_steps(new, values, "lead", GenericLead.secret_fields)
        stored, changes = new.encode(values, "lead", GenericLead.secret_fields)
        stored_forms.append(stored["consent"])
        text = next(c["new"] for c in changes if c["field"] == "consent.text.status")
        assert (text, stored["consent"]["text"]["status"]) == (consent["text"]["status"],) * 2
    assert stored_forms[0] is stored_forms[1]  # made once, then reused by the next row
    assert stored_forms[2] == stored_forms[4] != stored_forms[0] == stored_forms[3]


async def test_sub_document_paths_are_kept_per_key_and_bounded(owner: Account) -> None:
    # Issue 27: a sub-document key's journal path is made once and reused (the same string,
    # its hash known); past the bound (clients' map keys) paths are made per document. The
    # encoding stays the generic walks' either way.
    from uuid6 import uuid7

    from documents.base import utcnow
    from service.core.journal import encoding

    new = journal.NewDocuments(MLSRealEstateLead)
    cities = []
    for n in range(3):
        segments = {f"k{n}_{i}": f"v{i}" for i in range(encoding._MAX_KEYED + 10)}
        values = {"id": uuid7(), "tenant_id": owner.tenant_id, "mls_id": f"M{n}"}
        values |= {"created_at": utcnow(), "updated_at": utcnow(), "segments": segments}
        values["address"] = {"line1": f"{n} Main", "city": "Springfield", "state": None}
        values["listing_agent"] = {"name": "Al", "phone": "+14155550100", "email": None}
        assert_encodes_as_the_three_steps(new, values, "lead", MLSRealEstateLead.secret_fields)
        _, changes = new.encode(values, "lead", MLSRealEstateLead.secret_fields)
        cities += [c["field"] for c in changes if c["field"] == "address.city"]
    assert len(cities) == 3 and cities[0] is cities[1] is cities[2]
    kept = new._key_paths["lead"]
    assert len(kept) <= encoding._MAX_KEYED and len(kept["segments"]) == encoding._MAX_KEYED


def assert_encodes_as_the_three_steps(
    new: journal.NewDocuments, values: dict[str, Any], aggregate_type: str, secrets: Any
) -> None:
    """`NewDocuments.encode` (one walk) stores and journals byte for byte what the generic
    walks give (tests/support/oracles.py; types included: BSON bytes differ otherwise)."""
    import bson

    full = oracles.new_full(new, values)
    stored = oracles.new_stored(new, full)
    changes = oracles.new_created_changes(new, full, aggregate_type, secrets)
    # Alone, and with part of the values as a batch's common values (disjoint from the
    # rest, overlapping it with other values, which the common ones win over).
    shared = {k: v for k, v in values.items() if k in _STAMPED}
    rest = {k: v for k, v in values.items() if k not in _STAMPED}
    overlapping = {**values, **{k: _other(v) for k, v in shared.items()}}
    common = new.common(shared, aggregate_type)
    for given, with_common in ((values, None), (rest, common), (overlapping, common)):
        one_stored, one_changes = new.encode(given, aggregate_type, secrets, with_common)
        assert bson.encode(one_stored) == bson.encode(stored)
        assert bson.encode({"c": one_changes}) == bson.encode({"c": changes})
        assert one_stored == stored and one_changes == changes
        assert [type(c["new"]) for c in one_changes] == [type(c["new"]) for c in changes]


# What `create_many_values` stamps, and more: None, a constant's and a factory's fields.
_STAMPED = {"tenant_id", "created_at", "updated_at", "created_by", "updated_by", "version"}
_STAMPED |= {"is_deleted", "deleted_at", "pending_event", "search_text", "is_archived", "tags"}


def _other(value: Any) -> Any:
    # A different value of the same field's kind (the common value must win over it).
    if value is None or isinstance(value, bool):
        return "x" if value is None else not value
    if isinstance(value, int):
        return value + 1
    return None


async def test_creation_event_document_is_what_the_encoder_stores(owner: Account) -> None:
    repo = Repository(GenericLead, owner.ctx)
    doc = _leads(owner, 1)[0]
    event = repo._stamp_new(doc)
    changes = [c.model_dump() for c in event.changes]
    built = oracles.creation_event_document(
        doc, event_id=event.id, actor_type="user", changes=changes
    )
    assert built == journal.encode_event(event)
    assert list(built) == list(journal.encode_event(event))


async def test_create_many_journals_like_create_and_leaves_no_outbox(owner: Account) -> None:
    docs = _leads(owner, 3)
    created, failed = await oracles.create_many(Repository(LeadBase, owner.ctx), docs)
    assert len(created) == 3 and not failed
    for doc in created:
        raw = await LeadBase.get_pymongo_collection().find_one({"_id": Binary.from_uuid(doc.id)})
        assert "pending_event" not in raw and raw["version"] == 1
        [event] = await events_of(doc.id)
        assert (event.event_type, event.version, event.actor_id) == ("lead.created", 1, owner.id)
        assert event.occurred_at == doc.created_at
        # The changes `Repository.create` journals: the generic diff against nothing.
        assert event.changes == journal.diff({}, journal.journal_dump(doc), doc.secret_fields)
        email = next(c for c in event.changes if c.field == "email")
        assert (email.old, email.new) == (None, doc.email)


async def test_create_many_keeps_good_rows_and_journals_only_them(owner: Account) -> None:
    docs = _leads(owner, 2)
    await Repository(LeadBase, owner.ctx).create(docs[0])
    again = _leads(owner, 2)
    again[0].id = docs[0].id  # the same `_id`: refused by the primary key
    created, failed = await oracles.create_many(Repository(LeadBase, owner.ctx), again)
    assert [d.id for d in created] == [again[1].id] and list(failed) == [0]
    assert [e.version for e in await events_of(docs[0].id)] == [1]  # no second creation
    assert [e.version for e in await events_of(again[1].id)] == [1]


async def _crash_a_bulk_create(owner: Account, n: int) -> list[Any]:
    async def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("process died")

    with patch.object(journal, "flush_many", crash), pytest.raises(RuntimeError):
        await oracles.create_many(Repository(LeadBase, owner.ctx), _leads(owner, n))
    return await LeadBase.get_pymongo_collection().find({}).to_list(None)


async def test_a_crashed_bulk_create_leaves_slim_markers(owner: Account) -> None:
    stored = await _crash_a_bulk_create(owner, 2)
    for raw in stored:
        marker = raw["pending_event"]
        assert journal.is_creation_marker(marker)
        assert set(marker) == {"version", "id", "aggregate_id", "actor_type"}
        assert await events_of(journal.as_uuid(raw["_id"])) == []


async def test_repair_rebuilds_creation_events_from_the_documents(owner: Account) -> None:
    stored = await _crash_a_bulk_create(owner, 3)
    assert await journal.repair_journal(AGGREGATE_ROOTS) == 3
    for raw in stored:
        doc = await LeadBase.get(raw["_id"], with_children=True)
        assert doc is not None and doc.pending_event is None
        [event] = await events_of(doc.id)
        assert event.id == journal.as_uuid(raw["pending_event"]["id"])  # the marker's id
        assert (event.event_type, event.actor_id, event.actor_type) == (
            "lead.created",
            owner.id,
            "user",
        )
        expected = oracles.creation_changes(doc)
        assert [c.model_dump() for c in event.changes] == expected
    assert await journal.repair_journal(AGGREGATE_ROOTS) == 0


async def test_repair_after_the_journal_insert_adds_no_duplicates(owner: Account) -> None:
    async def journal_then_die(model: Any, events: Any) -> None:  # noqa: ARG001  (as flush_many)
        await DomainEvent.get_pymongo_collection().insert_many(list(events))
        raise RuntimeError("process died before clearing the markers")

    with patch.object(journal, "flush_many", journal_then_die), pytest.raises(RuntimeError):
        await oracles.create_many(Repository(LeadBase, owner.ctx), _leads(owner, 2))
    assert await journal.repair_journal(AGGREGATE_ROOTS) == 2
    for doc in await LeadBase.find_all(with_children=True).to_list():
        assert doc.pending_event is None
        assert [e.version for e in await events_of(doc.id)] == [1]


async def test_next_write_expands_a_marker_before_its_own_event(owner: Account) -> None:
    await _crash_a_bulk_create(owner, 1)
    repo = Repository(LeadBase, owner.ctx)
    [lead] = await LeadBase.find_all(with_children=True).to_list()
    assert lead.pending_event is not None
    updated = await repo.update(await repo.get(lead.id), {"first_name": "Ana"})
    events = await events_of(lead.id)
    assert [(e.version, e.event_type) for e in events] == [(1, "lead.created"), (2, "lead.updated")]
    assert any(c.field == "email" for c in events[0].changes)
    assert updated.version == 2
    raw = await LeadBase.get_pymongo_collection().find_one({"_id": Binary.from_uuid(lead.id)})
    assert raw.get("pending_event") is None
    # Flushing the stale marker again (a late retry) changes nothing.
    await journal.flush_pending(LeadBase, lead.pending_event)
    assert len(await events_of(lead.id)) == 2


@pytest.mark.usefixtures("app")  # Beanie initialised
async def test_encode_refuses_values_of_no_field() -> None:
    new = journal.NewDocuments(GenericLead)
    for values in ({"nope": 1}, {"nope": None}, {"email": "a@x.com", "nope": {}}):
        with pytest.raises(TypeError, match=r"GenericLead has no fields \['nope'\]"):
            new.encode(values, "lead")
