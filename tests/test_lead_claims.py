"""Lead dedupe through claims (service/leads/claims.py): exact with `leads` on {tenant_id, _id}.

Every path that gives a live lead an email, phone or MLS id claims it in `lead_claims` first;
every path that takes one away releases it. A claim a crash left behind blocks its value only
for the grace period, then is taken over (or swept by `repair`); `migrate` backfills claims.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any
from uuid import UUID

from bson import Binary
from uuid6 import uuid7

from documents.base import utcnow
from documents.lead import LeadBase
from documents.lead_claim import LeadClaim
from service.leads import claims as lead_claims
from service.storage.migrations import migrate
from tests.support.helpers import Account, assert_problem

OLD = timedelta(hours=1)  # older than CLAIM_GRACE


async def create(account: Account, **body: Any) -> Any:
    return await account.client.post("/v1/leads", json={"type": "generic", **body})


async def created(account: Account, **body: Any) -> dict[str, Any]:
    response = await create(account, **body)
    assert response.status_code == 201, response.text
    result: dict[str, Any] = response.json()
    return result


async def claims(account: Account) -> dict[tuple[str, str], UUID]:
    """The tenant's claims: (field, value) -> holding lead."""
    found = await LeadClaim.find({"tenant_id": account.tenant_id}).to_list()
    return {(c.field, c.value): c.lead_id for c in found}


def claim_row(account: Account, lead_id: UUID, field: str, value: str, age: timedelta) -> Any:
    return {
        "_id": Binary.from_uuid(uuid7()),
        "tenant_id": Binary.from_uuid(account.tenant_id),
        "field": field,
        "value": value,
        "lead_id": Binary.from_uuid(lead_id),
        "claimed_at": utcnow() - age,
    }


async def test_concurrent_creates_of_one_email_have_one_winner(owner: Account) -> None:
    answers = await asyncio.gather(
        *(create(owner, email="same@example.com", first_name=f"n{i}") for i in range(6))
    )
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [201] + [409] * 5
    winner = next(a.json() for a in answers if a.status_code == 201)
    for answer in answers:
        if answer.status_code == 409:
            body = assert_problem(answer, 409)
            assert body["existing_id"] == winner["id"] and body["field"] == "email"
    assert await claims(owner) == {("email", "same@example.com"): UUID(winner["id"])}


async def test_a_failed_create_keeps_none_of_its_claims(owner: Account) -> None:
    await created(owner, email="taken@example.com")
    clash = await create(owner, email="taken@example.com", phone="4155550100")
    assert assert_problem(clash, 409)["field"] == "email"
    assert ("phone", "+14155550100") not in await claims(owner)
    await created(owner, phone="4155550100")  # the phone was never held


async def test_update_to_a_taken_value_is_409_and_a_change_releases_the_old(
    owner: Account,
) -> None:
    a = await created(owner, email="a@example.com")
    b = await created(owner, email="b@example.com")
    clash = await owner.client.patch(f"/v1/leads/{b['id']}", json={"email": "a@example.com"})
    body = assert_problem(clash, 409)
    assert body["existing_id"] == a["id"] and body["field"] == "email"
    moved = await owner.client.patch(f"/v1/leads/{a['id']}", json={"email": "A2@Example.com"})
    assert moved.status_code == 200 and moved.json()["email"] == "a2@example.com"
    held = await claims(owner)
    assert held[("email", "a2@example.com")] == UUID(a["id"])
    assert ("email", "a@example.com") not in held
    # The old value is free again.
    again = await owner.client.patch(f"/v1/leads/{b['id']}", json={"email": "a@example.com"})
    assert again.status_code == 200


async def test_a_refused_update_returns_its_new_claim(owner: Account) -> None:
    a = await created(owner, email="a@example.com")
    stale = await owner.client.patch(
        f"/v1/leads/{a['id']}", json={"phone": "4155550100"}, headers={"If-Match": '"9"'}
    )
    assert stale.status_code == 412
    assert ("phone", "+14155550100") not in await claims(owner)


async def test_delete_then_create_and_restore_when_taken(owner: Account) -> None:
    old = await created(owner, email="x@example.com", phone="4155550100")
    assert (await owner.client.delete(f"/v1/leads/{old['id']}")).status_code == 204
    assert await claims(owner) == {}
    new = await created(owner, email="x@example.com")
    body = assert_problem(await owner.client.post(f"/v1/leads/{old['id']}/restore"), 409)
    assert body["existing_id"] == new["id"] and body["field"] == "email"
    # The refused restore kept no claim: the phone is still free.
    assert ("phone", "+14155550100") not in await claims(owner)
    assert (await owner.client.delete(f"/v1/leads/{new['id']}")).status_code == 204
    restored = await owner.client.post(f"/v1/leads/{old['id']}/restore")
    assert restored.status_code == 200
    assert set(await claims(owner)) == {("email", "x@example.com"), ("phone", "+14155550100")}


async def test_erasure_releases_the_keys(owner: Account) -> None:
    lead = await created(owner, email="gone@example.com")
    assert (await owner.client.post(f"/v1/leads/{lead['id']}/erase")).status_code == 200
    assert await claims(owner) == {}
    await created(owner, email="gone@example.com")


async def test_merge_moves_the_sources_keys_to_the_target(owner: Account) -> None:
    target = await created(owner, email="t@example.com")
    source = await created(owner, email="s@example.com", phone="4155550100")
    merged = await owner.client.post(
        f"/v1/leads/{target['id']}/merge", json={"source_ids": [source["id"]]}
    )
    assert merged.status_code == 200 and merged.json()["phone"] == "+14155550100"
    assert await claims(owner) == {
        ("email", "t@example.com"): UUID(target["id"]),
        ("phone", "+14155550100"): UUID(target["id"]),
    }
    # The source's email went with it: free again; its phone is the target's.
    await created(owner, email="s@example.com")
    body = assert_problem(await create(owner, phone="4155550100"), 409)
    assert body["existing_id"] == target["id"]


async def test_same_email_in_two_tenants(owner: Account, stranger: Account) -> None:
    await created(owner, email="both@example.com")
    await created(stranger, email="both@example.com")


async def test_a_stale_claim_is_taken_over_and_a_young_one_is_not(owner: Account) -> None:
    # A crash between claim and insert: the claim names a lead that never came.
    ghost = uuid7()
    collection = LeadClaim.get_pymongo_collection()
    await collection.insert_one(claim_row(owner, ghost, "email", "young@example.com", OLD / 100))
    await collection.insert_one(claim_row(owner, ghost, "email", "old@example.com", OLD))
    young = assert_problem(await create(owner, email="young@example.com"), 409)
    assert young["existing_id"] == str(ghost)  # within the grace period: a write in flight
    lead = await created(owner, email="old@example.com")
    assert (await claims(owner))[("email", "old@example.com")] == UUID(lead["id"])


async def test_a_claim_its_lead_no_longer_holds_is_stale(owner: Account) -> None:
    # A deleted lead whose release never ran, and a live lead holding another value now.
    deleted = await created(owner, email="d@example.com")
    moved = await created(owner, email="m@example.com")
    leads = LeadBase.get_pymongo_collection()
    for lead, change in ((deleted, {"is_deleted": True}), (moved, {"email": "n@example.com"})):
        await leads.update_one(
            {
                "tenant_id": Binary.from_uuid(owner.tenant_id),
                "_id": Binary.from_uuid(UUID(lead["id"])),
            },
            {"$set": change},
        )
    await LeadClaim.get_pymongo_collection().update_many(
        {"tenant_id": Binary.from_uuid(owner.tenant_id)},
        {"$set": {"claimed_at": utcnow() - OLD}},
    )
    report = await lead_claims.sweep_stale()
    assert (report.examined, report.changed) == (2, 2)
    assert await claims(owner) == {}
    await created(owner, email="d@example.com")
    await created(owner, email="m@example.com")


async def test_the_sweep_leaves_live_and_young_claims(owner: Account) -> None:
    live = await created(owner, email="live@example.com")
    await LeadClaim.get_pymongo_collection().insert_one(
        claim_row(owner, uuid7(), "phone", "+14155550100", timedelta(0))
    )
    report = await lead_claims.sweep_stale()
    assert (report.examined, report.changed) == (2, 0)
    assert (await claims(owner))[("email", "live@example.com")] == UUID(live["id"])


async def test_bulk_dedupes_in_batch_and_against_claims(owner: Account) -> None:
    await created(owner, email="stored@example.com")
    rows = [
        {"type": "generic", "email": "new@example.com"},
        {"type": "generic", "email": "new@example.com"},  # in the batch
        {"type": "generic", "email": "stored@example.com"},  # held by a stored lead
        {"type": "generic", "email": "other@example.com", "phone": "4155550100"},
        {"type": "generic", "phone": "4155550100"},  # in the batch, by phone
    ]
    body = (await owner.client.post("/v1/leads/bulk", json={"leads": rows})).json()
    assert body == {"created": 2, "duplicates": 3, "failed": []}
    assert set(await claims(owner)) == {
        ("email", "stored@example.com"),
        ("email", "new@example.com"),
        ("email", "other@example.com"),
        ("phone", "+14155550100"),
    }
    again = (await owner.client.post("/v1/leads/bulk", json={"leads": rows})).json()
    assert again == {"created": 0, "duplicates": 5, "failed": []}


async def test_a_bulk_row_refused_on_one_key_keeps_none_and_its_neighbours_keep_theirs(
    owner: Account,
) -> None:
    # Issue 27: a chunk's claims are made lead by lead; a refused one drops exactly the
    # claims its own lead made (not a neighbour's, before or after it in the chunk).
    await created(owner, email="stored@example.com")
    rows = [
        {"type": "generic", "email": "a@example.com", "phone": "4155550101"},
        {"type": "generic", "email": "stored@example.com", "phone": "4155550102"},
        {"type": "generic", "phone": "4155550103", "email": "b@example.com"},
    ]
    body = (await owner.client.post("/v1/leads/bulk", json={"leads": rows})).json()
    assert body == {"created": 2, "duplicates": 1, "failed": []}
    assert set(await claims(owner)) == {
        ("email", "stored@example.com"),
        ("email", "a@example.com"),
        ("phone", "+14155550101"),
        ("email", "b@example.com"),
        ("phone", "+14155550103"),
    }
    await created(owner, phone="4155550102")  # the refused row's phone was given back


async def test_migrate_backfills_claims_of_leads_stored_before_them(owner: Account) -> None:
    a = await created(owner, email="a@example.com", phone="4155550100")
    b = await created(owner, email="b@example.com")
    gone = await created(owner, email="gone@example.com")
    assert (await owner.client.delete(f"/v1/leads/{gone['id']}")).status_code == 204
    await LeadClaim.get_pymongo_collection().delete_many(
        {"tenant_id": Binary.from_uuid(owner.tenant_id)}
    )
    report = await migrate(models=[LeadBase])
    made = report.backfills["lead_claims"]
    assert (made.changed, made.clashes) == (3, 0)
    assert await claims(owner) == {
        ("email", "a@example.com"): UUID(a["id"]),
        ("phone", "+14155550100"): UUID(a["id"]),
        ("email", "b@example.com"): UUID(b["id"]),
    }
    assert assert_problem(await create(owner, email="b@example.com"), 409)["existing_id"] == b["id"]
    again = await migrate(models=[LeadBase])
    assert again.backfills["lead_claims"].changed == 0
