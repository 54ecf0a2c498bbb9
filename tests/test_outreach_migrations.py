"""Existing data under issue 25: old leads read with `unknown` consent and their creator as
assignee, old links as queued recipients; `migrate` stores both in the current shape."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from bson import Binary
from uuid6 import uuid7

from documents.campaign import CampaignLead
from documents.lead import LeadBase
from service.storage.migrations import migrate
from tests.support.helpers import Account, stored_form


async def test_old_leads_and_links_upcast_and_migrate(owner: Account) -> None:
    campaign = await owner.client.post("/v1/campaigns", json={"type": "email", "name": "Old"})
    campaign_id = campaign.json()["id"]
    tenant, user = Binary.from_uuid(owner.tenant_id), Binary.from_uuid(owner.id)
    lead_id = uuid7()
    now = "2026-01-01T00:00:00Z"
    at = datetime.fromisoformat(now)
    old_lead: dict[str, Any] = {
        "_id": Binary.from_uuid(lead_id),
        "_class_id": "LeadBase.GenericLead",
        "tenant_id": tenant,
        "type": "generic",
        "status": "new",
        "email": "old@example.com",
        "address": {},
        "user_id": user,
        "tags": [],
        "segments": {},
        "search_text": "old@example.com",
        "created_at": at,
        "updated_at": at,
        "created_by": user,
        "updated_by": user,
        "is_deleted": False,
        "version": 1,
        "schema_version": 1,
    }
    await stored_form(LeadBase.get_pymongo_collection()).insert_one(old_lead)
    link = {
        "_id": Binary.from_uuid(uuid7()),
        "tenant_id": tenant,
        "campaign_id": Binary.from_uuid(UUID(campaign_id)),
        "lead_id": Binary.from_uuid(lead_id),
        "added_at": at,
    }
    await stored_form(CampaignLead.get_pymongo_collection()).insert_one(link)

    # Read before migrating: upcast on the way out.
    got = (await owner.client.get(f"/v1/leads/{lead_id}")).json()
    assert got["assignee_id"] == str(owner.id)
    assert got["consent"]["email"]["status"] == "unknown"
    rows = (await owner.client.get(f"/v1/campaigns/{campaign_id}/recipients")).json()["items"]
    assert rows == [
        {
            "lead_id": str(lead_id),
            "state": "queued",
            "attempts": 0,
            "last_attempt_at": None,
            "next_attempt_at": None,
        }
    ]
    claimed = await owner.client.post(
        f"/v1/campaigns/{campaign_id}/recipients/claim", json={"limit": 1}
    )
    assert [c["lead_id"] for c in claimed.json()["items"]] == [str(lead_id)]

    await LeadBase.get_pymongo_collection().update_one(
        {"_id": Binary.from_uuid(lead_id)}, {"$set": {"schema_version": 1}}
    )
    report = await migrate(models=[LeadBase, CampaignLead])
    assert report.failed == 0 and report.migrated >= 1
    stored = await stored_form(LeadBase.get_pymongo_collection()).find_one(
        {"_id": Binary.from_uuid(lead_id)}
    )
    assert stored["schema_version"] == 3 and stored["assignee_id"] == user
    assert stored["consent"]["text"]["status"] == "unknown"
    assert stored["version"] == 1  # a shape change is not a business change
    # The old link, migrated, keeps what the claim wrote and gains the current shape.
    stored_link = await stored_form(CampaignLead.get_pymongo_collection()).find_one(
        {"_id": link["_id"]}
    )
    assert stored_link["schema_version"] == 2 and stored_link["state"] == "claimed"
    assert stored_link["attempts"] == 0
