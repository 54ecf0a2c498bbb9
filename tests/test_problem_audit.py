"""The suite's answer audit itself: an unexpected 500 fails the test with the traceback the
service logged; a fault the test injected on purpose does not."""

from __future__ import annotations

from functools import partial
from typing import Any
from unittest.mock import patch
from uuid import uuid4

from service import read_models
from tests.support.helpers import Account, assert_problem
from tests.support.problem_audit import AUDIT


async def test_an_unexpected_500_is_a_finding_with_its_traceback(owner: Account) -> None:
    # A failure inside library code (no frame of the test suite on its way): a real bug.
    broken = partial(int, "not a number")
    with patch.object(read_models, "global_team", broken):
        r = await owner.client.get(f"/v1/read-models/teams/{uuid4()}")
    assert_problem(r, 500)
    found = AUDIT.take()  # consumed here, or this test would fail as the audit says

    assert len(found) == 1, found
    assert found[0].startswith("GET /v1/read-models/teams/")
    assert "answered 500" in found[0] and "Traceback" in found[0]
    assert "TypeError" in found[0] and "routes/read_models.py" in found[0]


async def test_a_fault_the_test_injects_is_not_a_finding(owner: Account) -> None:
    async def crash(**_: Any) -> None:
        raise RuntimeError("the database went away")

    before = AUDIT.counts["500 (injected)"]
    with patch.object(read_models, "global_team", crash):
        r = await owner.client.get(f"/v1/read-models/teams/{uuid4()}")
    assert_problem(r, 500)
    assert AUDIT.findings == []
    assert AUDIT.counts["500 (injected)"] == before + 1
