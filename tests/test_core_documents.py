"""Campaign, lead and event documents: stored shape, validation, polymorphism and indexes."""

from __future__ import annotations

from typing import Any

import pytest
from beanie.odm.utils.encoder import Encoder
from bson import Binary
from pydantic import ValidationError
from pymongo.errors import DuplicateKeyError
from uuid6 import uuid7

from documents.campaign import (
    CallCampaign,
    CampaignBase,
    CampaignLead,
    EmailCampaign,
    SocialCampaign,
    TextCampaign,
)
from documents.event import CallEvent, EmailEvent, IdempotencyRecord, TextEvent, TouchpointEvent
from documents.journal import DomainEvent, FieldChange
from documents.lead import GenericLead, LeadBase, MLSRealEstateLead
from documents.lead_claim import LeadClaim
from documents.user import User
from service.core.journal import encode_document
from tests.support.helpers import stored_form

TENANT = uuid7()
SAMPLES = 12  # len(sample_documents()); documents can only be built once Beanie is bound

pytestmark = pytest.mark.usefixtures("app")


def sample_documents() -> list[Any]:
    """One instance of each stored type, with nested models, enums, lists and UUIDs."""
    ids = {"tenant_id": TENANT}
    refs = {**ids, "campaign_id": uuid7(), "lead_id": uuid7()}
    return [
        CallCampaign(**ids, name="Calls", caller_ids=["+14155550100"], tags=["a"]),
        SocialCampaign(**ids, name="Social", platforms=["facebook", "tiktok"]),
        TextCampaign(**ids, name="Texts", integrations=[{"integration_id": uuid7()}]),
        EmailCampaign(**ids, name="Mail", from_email="Me@Example.com", segments={"k": "v"}),
        GenericLead(**ids, email=" X@Example.com ", address={"city": "Springfield"}),
        MLSRealEstateLead(
            **ids,
            mls_id="ml-9",
            list_price_cents=45_000_050,
            baths=1.5,
            listing_agent={"name": "Ann", "phone": "+12175550100"},
            listed_at="2024-01-01T00:00:00Z",
        ),
        CallEvent(**refs, outcome="answered", duration_seconds=12),
        TextEvent(**refs, body="hi"),
        EmailEvent(**refs, subject="s", status="opened"),
        CampaignLead(**refs),
        DomainEvent(
            **ids,
            aggregate_type="lead",
            aggregate_id=uuid7(),
            version=1,
            event_type="lead.created",
            changes=[FieldChange(field="a", old=None, new={"b": [1, "c"]})],
        ),
        User(**ids, username="someone", email="s@example.com", password_hash="x"),
    ]


@pytest.mark.parametrize("index", range(SAMPLES))
async def test_round_trip_through_stored_bson(index: int) -> None:
    samples = sample_documents()
    assert len(samples) == SAMPLES
    doc = samples[index]
    model = type(doc)
    await doc.insert()
    raw = await stored_form(model.get_pymongo_collection()).find_one(
        {"_id": Binary.from_uuid(doc.id)}
    )
    assert isinstance(raw["_id"], Binary) and raw["_id"].subtype == 4
    assert isinstance(raw["tenant_id"], Binary)
    if hasattr(doc, "type"):
        assert raw["type"] == doc.type.value  # readable discriminator
    root = model.__mro__[1] if model not in (CampaignLead, DomainEvent, User) else model
    loaded = await root.find_one({"_id": Binary.from_uuid(doc.id)}, with_children=True)
    assert type(loaded) is model
    assert loaded.model_dump(exclude={"revision_id"}) == doc.model_dump(exclude={"revision_id"})


@pytest.mark.parametrize("index", range(SAMPLES))
async def test_fast_encoder_matches_beanie(index: int) -> None:
    doc = sample_documents()[index]
    if isinstance(doc, GenericLead):  # the bulk path stores a tagged outbox dict
        doc.pending_event = {"version": 1, "aggregate_id": uuid7(), "actor_type": "user"}  # type: ignore[assignment]
    expected = Encoder().encode(doc)
    expected.pop("revision_id", None)
    assert encode_document(doc) == expected
    assert list(encode_document(doc)) == list(expected)


async def test_lead_normalisation() -> None:
    lead = GenericLead(tenant_id=TENANT, email="  Mixed@Example.COM ", phone="(415) 555-0100")
    assert lead.email == "mixed@example.com" and lead.phone == "+14155550100"
    assert MLSRealEstateLead(tenant_id=TENANT, mls_id=" ab-12 ").mls_id == "AB-12"


@pytest.mark.parametrize(
    ("model", "fields"),
    [
        (GenericLead, {"email": "not-an-email"}),
        (GenericLead, {}),  # neither email nor phone
        (GenericLead, {"phone": "12"}),
        (MLSRealEstateLead, {}),  # mls_id is required
        (MLSRealEstateLead, {"mls_id": "x", "list_price_cents": -1}),
        (MLSRealEstateLead, {"mls_id": "x", "beds": 101}),
        (MLSRealEstateLead, {"mls_id": "$x"}),
        (CallCampaign, {}),  # name is required
        (CallCampaign, {"name": "x", "caller_ids": ["+1415555010"] * 21}),
        (CallCampaign, {"name": "x", "tags": ["t"] * 51}),
        (CallCampaign, {"name": "x", "type": "email"}),
        (CallEvent, {"campaign_id": uuid7(), "lead_id": uuid7()}),  # outcome is required
        (TextEvent, {"campaign_id": uuid7(), "lead_id": uuid7(), "body": "x" * 1601}),
    ],
)
async def test_document_validation(model: Any, fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        model(tenant_id=TENANT, **fields)


@pytest.mark.stores_invalid_documents  # an unknown subtype, on purpose
async def test_unknown_stored_type_is_not_read_as_a_subtype() -> None:
    await GenericLead(tenant_id=TENANT, email="a@example.com").insert()
    await LeadBase.get_pymongo_collection().insert_one(
        {"_id": Binary.from_uuid(uuid7()), "_class_id": "LeadBase.Fax", "type": "fax"}
    )
    found = await LeadBase.find({}, with_children=True).to_list()
    assert [type(x) for x in found] == [GenericLead]


async def test_polymorphic_queries_return_subclasses() -> None:
    for doc in sample_documents()[:9]:
        await doc.insert()
    campaigns = await CampaignBase.find({}, with_children=True).to_list()
    assert {type(c) for c in campaigns} == {
        CallCampaign,
        SocialCampaign,
        TextCampaign,
        EmailCampaign,
    }
    leads = await LeadBase.find({"type": "mls"}, with_children=True).to_list()
    assert [type(x) for x in leads] == [MLSRealEstateLead]
    events = await TouchpointEvent.find({}, with_children=True).to_list()
    assert {type(e) for e in events} == {CallEvent, TextEvent, EmailEvent}
    assert await CallCampaign.find_all().count() == 1  # a subclass sees only its own


async def test_lead_dedupe_keys_are_unique_per_tenant_through_claims() -> None:
    # `leads` holds no unique index but `_id` (sharded on {tenant_id, _id}); claims guard it.
    info = await LeadBase.get_pymongo_collection().index_information()
    assert [name for name, ix in info.items() if ix.get("unique") and name != "_id_"] == []
    lead = uuid7()
    await LeadClaim(tenant_id=TENANT, field="email", value="a@example.com", lead_id=lead).insert()
    with pytest.raises(DuplicateKeyError):
        await LeadClaim(
            tenant_id=TENANT, field="email", value="a@example.com", lead_id=uuid7()
        ).insert()
    await LeadClaim(
        tenant_id=uuid7(), field="email", value="a@example.com", lead_id=uuid7()
    ).insert()
    await LeadClaim(tenant_id=TENANT, field="mls_id", value="A@EXAMPLE.COM", lead_id=lead).insert()


async def test_link_and_idempotency_keys_are_unique() -> None:
    refs = {"tenant_id": TENANT, "campaign_id": uuid7(), "lead_id": uuid7()}
    await CampaignLead(**refs).insert()
    with pytest.raises(DuplicateKeyError):
        await CampaignLead(**refs).insert()
    record = {"tenant_id": TENANT, "key": "k", "request_hash": "h", "event_id": uuid7()}
    await IdempotencyRecord(**record, expires_at="2999-01-01T00:00:00Z").insert()
    with pytest.raises(DuplicateKeyError):
        await IdempotencyRecord(**record, expires_at="2999-01-01T00:00:00Z").insert()
    info = await IdempotencyRecord.get_pymongo_collection().index_information()
    assert info["ttl"]["expireAfterSeconds"] == 0


async def test_every_list_path_has_a_tenant_prefixed_index() -> None:
    for model, fields in (
        (CampaignBase, {"type", "status", "tags", "user_id"}),
        (LeadBase, {"type", "status", "tags"}),
        (TouchpointEvent, {"campaign_id", "lead_id", "type", "occurred_at"}),
    ):
        info = await model.get_pymongo_collection().index_information()
        # `_id_`, the journal's sparse outbox index (used by the repair sweep, not by lists) and
        # the sequencer's feed indexes (service/feeds/sequencer.py: system processes, cross-tenant).
        internal = {"_id_", "pending_outbox", "seq_pending", "seq_unique"}
        keys = [[k for k, _ in ix["key"]] for name, ix in info.items() if name not in internal]
        assert all(k[0] == "tenant_id" for k in keys), keys
        # The field follows the equality prefix: the tenant, and the soft-delete/archive flags.
        flags = ("is_deleted", "is_archived")
        led = {next((f for f in k[1:] if f not in flags), None) for k in keys}
        assert fields <= led, (fields - led, keys)
