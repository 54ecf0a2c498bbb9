"""Leases written by an older release (before `beat`, `released` and `ttl_seconds`) can still
be taken over: a process upgraded onto such a data file must not wait on them for ever."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from documents.base import utcnow
from documents.lease import Lease
from service.feeds import leases


@pytest.mark.usefixtures("app")
@pytest.mark.parametrize("fence", [3, None], ids=["fenced", "no fence"])
async def test_a_lease_of_the_older_format_is_taken_after_a_ttl_of_silence(
    fence: int | None,
) -> None:
    # The shape the leases of main @49388fb had: no `beat` (nor `released`, `ttl_seconds`). The
    # compare-and-set on `beat: 0` never matched a missing field: the lease was lost for good,
    # and the sequencer, the projectors and the webhook delivery stood still after an upgrade.
    short = timedelta(seconds=0.2)
    now = utcnow()
    old = {"_id": "job", "owner": "old-process", "expires_at": now + timedelta(days=1)}
    old |= {"renewed_at": now, "acquired_at": now} | ({"fence": fence} if fence else {})
    await Lease.get_pymongo_collection().insert_one(old)
    assert await leases.take("job", "new", short) is None  # first sight of its token
    await asyncio.sleep(0.25)
    held = await leases.take("job", "new", short)
    assert held is not None and held.fence == (fence or 0) + 1
    assert await leases.renew(held) and await leases.holder("job") == "new"
    assert await leases.take("job", "other", short) is None
