"""Erasing a lead of a merge cycle: two leads merged into each other by concurrent opposite merges.

`merge_leads` documents that two concurrent merges of the same pair in opposite directions can
both delete their source (no transactions), leaving A merged into B and B into A. Erasure walks
the leads merged into the erased one (the same person) and must stop at a lead it already
erased: found by the outside probe (bench/probe_contract.py --burst), where the walk went round
the cycle until the request budget ran out (503) or Python's recursion limit did (500).
"""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import patch

from service.leads import claims as lead_claims
from tests.factories import make_lead
from tests.support.helpers import Account


async def _opposite_merges(owner: Account) -> tuple[str, str]:
    """Two leads merged into each other: both merges pass their checks before either writes."""
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
    # Each deleted its source, then found its target changed by the other: both 409.
    assert [r.status_code for r in answers] == [409, 409], [r.text for r in answers]
    for lead, other in ((a, b), (b, a)):
        body = (await owner.client.get(f"/v1/leads/{lead}?include_deleted=true")).json()
        assert body["is_deleted"] is True and body["merged_into"] == other  # the cycle
    return a, b


async def test_erasing_a_lead_of_a_merge_cycle_erases_both_once(owner: Account) -> None:
    a, b = await _opposite_merges(owner)

    first = await owner.client.post(f"/v1/leads/{a}/erase")
    assert first.status_code == 200, first.text
    for lead in (a, b):
        body = (await owner.client.get(f"/v1/leads/{lead}?include_deleted=true")).json()
        assert body["erased_at"] is not None, body
        assert body["email"] is None and body["first_name"] is None and body["last_name"] is None
    again = await owner.client.post(f"/v1/leads/{b}/erase")  # from the other side, again
    assert again.status_code == 200, again.text


async def test_subject_export_of_a_merge_cycle_answers(owner: Account) -> None:
    a, _ = await _opposite_merges(owner)

    response = await owner.client.get(f"/v1/leads/{a}/data-export")
    assert response.status_code == 200, response.text
