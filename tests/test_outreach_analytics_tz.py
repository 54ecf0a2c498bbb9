"""Local-time analytics: `tz` on the overview (default: the tenant's `time_zone`, else UTC)."""

from __future__ import annotations

from typing import Any

from tests.factories import attach_leads, make_campaign, make_lead
from tests.support.helpers import Account, assert_problem


async def seed(owner: Account, times: list[str]) -> None:
    lead = await make_lead(owner, email="t@example.com")
    campaign = await make_campaign(owner, type="email", name="T")
    ids = {"campaign_id": campaign["id"], "lead_id": lead["id"]}
    await attach_leads(owner, ids["campaign_id"], ids["lead_id"])
    for at in times:
        body = {"type": "email", "status": "sent", "occurred_at": at, **ids}
        assert (await owner.client.post("/v1/events", json=body)).status_code == 201


async def series(owner: Account, **params: Any) -> dict[str, int]:
    response = await owner.client.get("/v1/analytics/overview", params=params)
    assert response.status_code == 200, response.text
    return {b["bucket"]: b["email"] for b in response.json()["series"]}


EVENING_LA = "2026-07-02T03:30:00Z"  # 20:30 on July 1st in Los Angeles (PDT)
NOON_UTC = "2026-07-01T12:00:00Z"  # 05:00 on July 1st in Los Angeles


async def test_days_are_local(owner: Account) -> None:
    await seed(owner, [EVENING_LA, NOON_UTC])
    window = {"since": "2026-07-01", "until": "2026-07-03"}
    assert await series(owner, **window) == {"2026-07-01": 1, "2026-07-02": 1}
    local = await series(owner, **window, tz="America/Los_Angeles")
    assert local == {"2026-07-01": 2, "2026-07-02": 0}
    # The tenant's zone is the default.
    await owner.client.patch("/v1/tenant", json={"time_zone": "America/Los_Angeles"})
    assert await series(owner, **window) == local
    assert await series(owner, **window, tz="UTC") == {"2026-07-01": 1, "2026-07-02": 1}
    line_islands = await series(owner, **window, tz="Pacific/Kiritimati")  # UTC+14: July 2nd
    assert line_islands == {"2026-07-01": 0, "2026-07-02": 2}


async def test_weeks_and_months_are_local(owner: Account) -> None:
    # Saturday Feb 28th and Sunday Mar 1st, 20:00 in Los Angeles: Sunday and Monday in UTC.
    await seed(owner, ["2026-03-01T04:00:00Z", "2026-03-02T04:00:00Z"])
    la = "America/Los_Angeles"
    weeks = {"since": "2026-02-23", "until": "2026-03-09", "interval": "week"}
    assert await series(owner, **weeks, tz=la) == {"2026-02-23": 2, "2026-03-02": 0}
    assert await series(owner, **weeks) == {"2026-02-23": 1, "2026-03-02": 1}
    months = {"since": "2026-02-01", "until": "2026-04-01", "interval": "month"}
    assert await series(owner, **months, tz=la) == {"2026-02-01": 1, "2026-03-01": 1}
    assert await series(owner, **months) == {"2026-02-01": 0, "2026-03-01": 2}


async def test_bad_zone_is_422(owner: Account) -> None:
    response = await owner.client.get("/v1/analytics/overview", params={"tz": "Moon/Base"})
    assert_problem(response, 422)


def test_cli_prints_the_local_overview_pipeline() -> None:
    from typer.testing import CliRunner

    from service.cli import app

    runner = CliRunner()
    tenant = "01900000-0000-7000-8000-000000000001"
    args = ["pipelines", "overview", "--json", "--tenant", tenant, "--tz", "Europe/Paris"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert '"timezone": "Europe/Paris"' in result.output
    bad = runner.invoke(app, [*args[:-1], "Mars/Base"])
    assert bad.exit_code == 2
