"""Webhooks after an erasure: a change not yet delivered goes out with the values erased."""

from __future__ import annotations

from tests.factories import make_lead, person_leaks
from tests.support.helpers import Account
from tests.support.webhook_receiver import receiver, settings, subscribe, until

# The webhook tests' fixture: fast loops and short retry delays.
__all__ = ["settings"]


async def test_undelivered_changes_go_out_erased(owner: Account) -> None:
    # Refused until after the erasure; one more refusal lets an attempt that read the entry
    # before the erasure (in flight meanwhile) fail, so every later one reads it afresh.
    accept_from = [10**9]
    with receiver(answer=lambda n: 200 if n >= accept_from[0] else 500) as rec:
        await subscribe(owner, rec.url, ["lead.*"])
        lead = await make_lead(owner, email="zebulonia.quaxton@privacy-example.com")
        lead_id = lead["id"]
        await until(lambda: len(rec.requests) >= 1)  # refused while the values are there
        assert person_leaks(rec.requests[0].body)
        assert (await owner.client.post(f"/v1/leads/{lead_id}/erase")).status_code == 200
        accept_from[0] = len(rec.requests) + 1
        await until(lambda: len(rec.ok()) >= 2)  # lead.created, then lead.erased
        for delivered in rec.ok():
            assert person_leaks(delivered.body) == []
        assert b"lead.erased" in rec.ok()[-1].body
