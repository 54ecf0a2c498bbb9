"""Retention: the leased worker erases soft-deleted leads past the tenant's setting (fake clock)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from uuid import UUID

from bson import Binary

from documents.base import utcnow
from documents.tenant import Tenant
from service.background import build_runtime
from service.core.repository import Repository
from service.leads import retention
from tests.factories import make_lead
from tests.support.helpers import Account


async def _lead(account: Account, email: str) -> str:
    return str((await make_lead(account, email=email, first_name="Ret"))["id"])


async def _set_days(account: Account, days: int | None) -> None:
    repo = Repository(Tenant, account.ctx)
    tenant = await repo.get(account.tenant_id)
    await repo.update(tenant, {"retention": {"erase_deleted_after_days": days}})


async def _stored(account: Account, id: str) -> dict[str, Any]:
    r = await account.client.get(f"/v1/leads/{id}", params={"include_deleted": "true"})
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def test_worker_erases_deleted_leads_past_the_setting(
    owner: Account, stranger: Account
) -> None:
    old = await _lead(owner, "old@example.com")
    live = await _lead(owner, "live@example.com")
    theirs = await _lead(stranger, "theirs@example.com")
    for account, id in ((owner, old), (stranger, theirs)):
        assert (await account.client.delete(f"/v1/leads/{id}")).status_code in (200, 204)
    # No setting: nothing is ever erased.
    assert await retention.erase_expired(now=utcnow() + timedelta(days=3650)) == (0, False)
    await _set_days(owner, 30)
    assert await retention.erase_expired(now=utcnow() + timedelta(days=29)) == (0, False)
    assert (await _stored(owner, old))["erased_at"] is None

    assert await retention.erase_expired(now=utcnow() + timedelta(days=31)) == (1, False)
    erased = await _stored(owner, old)
    assert erased["erased_at"] is not None and erased["email"] is None
    assert erased["first_name"] is None
    history = (await owner.client.get(f"/v1/leads/{old}/history")).json()["items"]
    assert history[-1]["event_type"] == "lead.erased"
    assert history[-1]["actor_id"] == str(retention.RETENTION_ACTOR)
    # The live lead and the other tenant's deleted lead (no setting there) are untouched.
    assert (await _stored(owner, live))["email"] == "live@example.com"
    assert (await _stored(stranger, theirs))["email"] == "theirs@example.com"
    # A second pass has nothing left to do.
    assert await retention.erase_expired(now=utcnow() + timedelta(days=31)) == (0, False)


async def test_worker_finishes_an_interrupted_erasure(owner: Account, database: Any) -> None:
    id = await _lead(owner, "half@example.com")
    r = await owner.client.post(f"/v1/leads/{id}/erase")
    assert r.status_code == 200
    # As if the redaction pass had crashed before its end: values still on the lead.
    await database["leads"].update_one(
        {"_id": Binary.from_uuid(UUID(id))},
        {"$set": {"email": "half@example.com", "search_text": "half@example.com"}},
    )
    assert await retention.erase_expired() == (1, False)
    stored = await database["leads"].find_one({"_id": Binary.from_uuid(UUID(id))})
    assert stored["email"] is None and stored["search_text"] == ""


def test_the_worker_is_registered_under_a_lease(settings: Any) -> None:
    runtime = build_runtime(settings)
    assert retention.LEASE in runtime.workers
    assert runtime.workers[retention.LEASE].first_delay
