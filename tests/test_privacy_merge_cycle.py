"""Merge cycles: two leads merged into each other, and two concurrent opposite merges.

Two concurrent merges of the same pair in opposite directions both pass their checks (there
are no transactions) and each deletes its source. Before, that left A merged into B and B into
A; erasing either walked round the cycle until the request budget ran out (503) or Python's
recursion limit did (500): found by the outside probe (bench/probe_contract.py --burst). Now
the later deletion is undone (`merge._refuse_a_crossed_merge`), and erasure and export still
walk a cycle safely (a crash between a deletion and that check can leave one).
"""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import patch
from uuid import UUID

from bson import Binary

from documents.base import utcnow
from documents.lead import LeadBase
from service.leads import claims as lead_claims
from tests.factories import make_lead
from tests.support.helpers import Account


async def _opposite_merges(owner: Account) -> tuple[str, str, list[Any]]:
    """Merge A into B and B into A at once: both pass their checks before either writes."""
    a = (await make_lead(owner, email="cycle-a@example.com", first_name="Ana"))["id"]
    b = (await make_lead(owner, email="cycle-b@example.com", last_name="Bee"))["id"]
    claim = lead_claims.claim
    arrived: list[Any] = []
    both = asyncio.Event()

    async def claim_together(*args: Any, **kwargs: Any) -> Any:
        # Step 1 of each merge has read both leads live; let neither write before both did.
        arrived.append(args)
        if len(arrived) == 2:
            both.set()
        await asyncio.wait_for(both.wait(), timeout=10)
        return await claim(*args, **kwargs)

    with patch.object(lead_claims, "claim", claim_together):
        answers = await asyncio.gather(
            owner.client.post(f"/v1/leads/{a}/merge", json={"source_ids": [b]}),
            owner.client.post(f"/v1/leads/{b}/merge", json={"source_ids": [a]}),
        )
    return a, b, list(answers)


async def _cycle(owner: Account) -> tuple[str, str]:
    """A and B merged into each other, as a crash right after both deletions leaves them."""
    a = (await make_lead(owner, email="cycle-a@example.com", first_name="Ana"))["id"]
    b = (await make_lead(owner, email="cycle-b@example.com", last_name="Bee"))["id"]
    for lead, other in ((a, b), (b, a)):
        await LeadBase.get_pymongo_collection().update_one(
            {"_id": Binary.from_uuid(UUID(lead))},
            {
                "$set": {
                    "is_deleted": True,
                    "deleted_at": utcnow(),
                    "merged_into": Binary.from_uuid(UUID(other)),
                }
            },
        )
    return a, b


async def test_opposite_concurrent_merges_leave_no_cycle(owner: Account) -> None:
    a, b, answers = await _opposite_merges(owner)

    assert {r.status_code for r in answers} <= {200, 409}, [r.text for r in answers]
    assert 409 in {r.status_code for r in answers}  # both can never win
    leads = {
        lead: (await owner.client.get(f"/v1/leads/{lead}?include_deleted=true")).json()
        for lead in (a, b)
    }
    deleted = [lead for lead, body in leads.items() if body["is_deleted"]]
    assert len(deleted) <= 1, leads  # never both: no two leads merged into each other
    for lead, body in leads.items():
        if not body["is_deleted"]:  # a live lead still holds its keys: a duplicate is refused
            email = "cycle-a@example.com" if lead == a else "cycle-b@example.com"
            dup = await owner.client.post("/v1/leads", json={"type": "generic", "email": email})
            assert dup.status_code == 409, dup.text
    # Whatever was refused can be retried, and then merges.
    retry = await owner.client.post(f"/v1/leads/{a}/merge", json={"source_ids": [b]})
    if not leads[a]["is_deleted"]:
        assert retry.status_code == 200, retry.text


async def test_erasing_a_lead_of_a_merge_cycle_erases_both_once(owner: Account) -> None:
    a, b = await _cycle(owner)

    first = await owner.client.post(f"/v1/leads/{a}/erase")
    assert first.status_code == 200, first.text
    for lead in (a, b):
        body = (await owner.client.get(f"/v1/leads/{lead}?include_deleted=true")).json()
        assert body["erased_at"] is not None, body
        assert body["email"] is None and body["first_name"] is None and body["last_name"] is None
    again = await owner.client.post(f"/v1/leads/{b}/erase")  # from the other side, again
    assert again.status_code == 200, again.text


async def test_subject_export_of_a_merge_cycle_answers(owner: Account) -> None:
    a, _ = await _cycle(owner)

    response = await owner.client.get(f"/v1/leads/{a}/data-export")
    assert response.status_code == 200, response.text
