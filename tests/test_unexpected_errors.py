"""Inputs and moments that answered 500 "An unexpected error occurred." (found hunting issue 30).

Each test names the request that answered 500 before its fix and the answer it gets now.
"""

from __future__ import annotations

import pytest

from tests.support.helpers import Account, assert_problem


# A directory of the zone database: zoneinfo opens it as a file and raises IsADirectoryError,
# which no validator turned into a 422.
@pytest.mark.parametrize("zone", ["America", "Etc"])
async def test_a_zone_directory_is_an_unknown_time_zone(owner: Account, zone: str) -> None:
    overview = await owner.client.get("/v1/analytics/overview", params={"tz": zone})
    assert_problem(overview, 422)
    tenant = await owner.client.patch("/v1/tenant", json={"time_zone": zone})
    body = assert_problem(tenant, 422)
    assert body["errors"][0]["loc"] == ["body", "time_zone"]
    lead = await owner.client.post("/v1/leads", json={"type": "generic", "time_zone": zone})
    assert_problem(lead, 422)
