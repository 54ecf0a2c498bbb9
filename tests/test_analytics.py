"""Analytics endpoints: hand-computed figures, buckets, range rules, isolation, one trip."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest

from documents.campaign import CampaignBase
from service import analytics, lifecycle, pipelines
from service.core.errors import Unprocessable
from service.core.settings import Settings
from tests.support import analytics_seed as seed
from tests.support.helpers import Account, assert_problem


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """No background workers: the round-trip counts below are this request's alone."""
    return settings.model_copy(update={"background_workers": False})


def at(text: str) -> datetime:
    """A UTC instant from "YYYY-MM-DD HH:MM"."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


# -- GET /v1/analytics/campaigns/{id} ----------------------------------------------------------


async def test_campaign_figures_match_hand_count(owner: Account) -> None:
    ctx = owner.ctx
    camp, other = await seed.campaign(ctx), await seed.campaign(ctx)
    l1, l2, l3, l4, outsider = [await seed.lead(ctx) for _ in range(5)]
    await seed.link(ctx, camp.id, l1.id, l2.id, l3.id, l4.id)
    await seed.link(ctx, other.id, l3.id)
    t = at("2024-03-01 10:00")
    await seed.touch(ctx, "call", camp.id, l1.id, t)
    await seed.touch(ctx, "call", camp.id, l1.id, t)
    await seed.touch(ctx, "text", camp.id, l1.id, t)
    await seed.touch(ctx, "email", camp.id, l2.id, t)
    await seed.touch(ctx, "call", camp.id, outsider.id, t)  # counted as an event, not a lead
    await seed.touch(ctx, "social", other.id, l3.id, t)  # another campaign: not counted

    r = await owner.client.get(f"/v1/analytics/campaigns/{camp.id}")

    assert r.status_code == 200, r.text
    assert r.json() == {
        "campaign_id": str(camp.id),
        "leads_total": 4,
        "events_total": 5,
        "events_by_type": {"call": 3, "text": 1, "social": 0, "email": 1},
        "leads_contacted": 2,  # l1 and l2; the outsider is not one of its leads
        "contact_rate": 0.5,
        "violations": 0,
    }


async def test_campaign_without_leads_or_events_is_all_zero(owner: Account) -> None:
    camp = await seed.campaign(owner.ctx)
    r = await owner.client.get(f"/v1/analytics/campaigns/{camp.id}")
    assert r.status_code == 200
    body = r.json()
    assert body["leads_total"] == body["events_total"] == body["leads_contacted"] == 0
    assert body["contact_rate"] == 0
    assert body["events_by_type"] == {"call": 0, "text": 0, "social": 0, "email": 0}


async def test_campaign_analytics_is_tenant_scoped(owner: Account, stranger: Account) -> None:
    camp = await seed.campaign(owner.ctx)
    lead = await seed.lead(owner.ctx)
    await seed.link(owner.ctx, camp.id, lead.id)
    await seed.touch(owner.ctx, "call", camp.id, lead.id, at("2024-03-01 10:00"))
    assert_problem(await stranger.client.get(f"/v1/analytics/campaigns/{camp.id}"), 404)
    # Even a stranger's events filed under the owner's campaign id never leak into its figures.
    foreign_lead = await seed.lead(stranger.ctx)
    await seed.touch(stranger.ctx, "call", camp.id, foreign_lead.id, at("2024-03-01 11:00"))
    body = (await owner.client.get(f"/v1/analytics/campaigns/{camp.id}")).json()
    assert body["events_total"] == 1 and body["leads_total"] == 1


async def test_campaign_analytics_errors(owner: Account, viewer: Account, client: Any) -> None:
    camp = await seed.campaign(owner.ctx)
    assert (await viewer.client.get(f"/v1/analytics/campaigns/{camp.id}")).status_code == 200
    assert_problem(await owner.client.get(f"/v1/analytics/campaigns/{uuid4()}"), 404)
    assert_problem(await owner.client.get("/v1/analytics/campaigns/not-a-uuid"), 422)
    assert_problem(await client.get(f"/v1/analytics/campaigns/{camp.id}"), 401)
    await lifecycle.delete(ctx=owner.ctx, model=CampaignBase, id=camp.id)
    assert_problem(await owner.client.get(f"/v1/analytics/campaigns/{camp.id}"), 404)


# -- GET /v1/analytics/overview ----------------------------------------------------------------


async def _seed_series(account: Account) -> None:
    ctx = account.ctx
    camp, lead = await seed.campaign(ctx), await seed.lead(ctx)
    for kind, when in [
        ("call", "2024-01-01 00:00"),  # since is inclusive
        ("call", "2024-01-01 23:59"),
        ("text", "2024-01-02 12:00"),
        ("email", "2024-01-07 09:00"),  # a Sunday: still the week of Monday 1 January
        ("social", "2024-01-08 00:00"),  # Monday: next week
        ("call", "2024-01-31 23:59"),
        ("text", "2024-02-01 00:00"),
        ("call", "2023-12-31 23:59"),  # before the range
    ]:
        await seed.touch(ctx, kind, camp.id, lead.id, at(when))


async def test_overview_by_day_fills_empty_days(owner: Account) -> None:
    await _seed_series(owner)
    r = await owner.client.get(
        "/v1/analytics/overview", params={"since": "2024-01-01", "until": "2024-01-04"}
    )
    assert r.status_code == 200, r.text
    assert r.json() == {
        "series": [
            {"bucket": "2024-01-01", "call": 2, "text": 0, "social": 0, "email": 0},
            {"bucket": "2024-01-02", "call": 0, "text": 1, "social": 0, "email": 0},
            {"bucket": "2024-01-03", "call": 0, "text": 0, "social": 0, "email": 0},
        ]
    }


async def test_overview_until_is_exclusive(owner: Account) -> None:
    await _seed_series(owner)
    r = await owner.client.get(
        "/v1/analytics/overview",
        params={"since": "2024-01-31", "until": "2024-02-01T00:00:00Z"},
    )
    assert r.json()["series"] == [
        {"bucket": "2024-01-31", "call": 1, "text": 0, "social": 0, "email": 0}
    ]


async def test_overview_weeks_start_on_monday(owner: Account) -> None:
    await _seed_series(owner)
    r = await owner.client.get(
        "/v1/analytics/overview",
        params={"since": "2024-01-01", "until": "2024-01-22", "interval": "week"},
    )
    assert [
        (b["bucket"], b["call"], b["text"], b["social"], b["email"]) for b in r.json()["series"]
    ] == [
        ("2024-01-01", 2, 1, 0, 1),
        ("2024-01-08", 0, 0, 1, 0),
        ("2024-01-15", 0, 0, 0, 0),
    ]


async def test_overview_partial_first_week_is_named_by_its_monday(owner: Account) -> None:
    await _seed_series(owner)
    r = await owner.client.get(
        "/v1/analytics/overview",
        params={"since": "2024-01-02", "until": "2024-01-08", "interval": "week"},
    )
    # Only [2 Jan, 8 Jan) is counted, in the bucket named by that week's Monday.
    assert r.json()["series"] == [
        {"bucket": "2024-01-01", "call": 0, "text": 1, "social": 0, "email": 1}
    ]


async def test_overview_by_month(owner: Account) -> None:
    await _seed_series(owner)
    r = await owner.client.get(
        "/v1/analytics/overview",
        params={"since": "2024-01-01", "until": "2024-04-01", "interval": "month"},
    )
    assert r.json()["series"] == [
        {"bucket": "2024-01-01", "call": 3, "text": 1, "social": 1, "email": 1},
        {"bucket": "2024-02-01", "call": 0, "text": 1, "social": 0, "email": 0},
        {"bucket": "2024-03-01", "call": 0, "text": 0, "social": 0, "email": 0},
    ]


async def test_overview_reads_offsets_as_utc(owner: Account) -> None:
    await _seed_series(owner)
    # 2024-01-02T02:00+02:00 is 2024-01-02T00:00Z: the 1 January events are outside.
    r = await owner.client.get(
        "/v1/analytics/overview",
        params={"since": "2024-01-02T02:00:00+02:00", "until": "2024-01-03"},
    )
    assert r.json()["series"] == [
        {"bucket": "2024-01-02", "call": 0, "text": 1, "social": 0, "email": 0}
    ]


async def test_overview_is_tenant_scoped(owner: Account, stranger: Account) -> None:
    await _seed_series(owner)
    r = await stranger.client.get(
        "/v1/analytics/overview",
        params={"since": "2024-01-01", "until": "2024-02-01", "interval": "month"},
    )
    assert r.json()["series"] == [
        {"bucket": "2024-01-01", "call": 0, "text": 0, "social": 0, "email": 0}
    ]


async def test_overview_default_range_is_the_last_30_days(owner: Account) -> None:
    r = await owner.client.get("/v1/analytics/overview")
    series = r.json()["series"]
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert len(series) == 30 and series[-1]["bucket"] == today


@pytest.mark.parametrize(
    "params",
    [
        {"since": "2024-01-05", "until": "2024-01-05"},  # empty range
        {"since": "2024-01-05", "until": "2024-01-01"},  # reversed
        {"since": "2020-01-01", "until": "2024-01-01"},  # > 366 day buckets
        {"since": "2000-01-01", "until": "2024-01-01", "interval": "month"},  # > 120 months
        {"interval": "year"},
        {"since": "yesterday"},
        {"bogus": "1"},
        {"since": "0001-01-01", "until": "0001-01-02", "interval": "week"},
        {"until": "0001-01-02"},
        {"since": "9999-12-31", "until": "9999-12-31T12:00:00", "interval": "month"},
    ],
)
async def test_overview_rejects_bad_ranges(owner: Account, params: dict[str, str]) -> None:
    assert_problem(await owner.client.get("/v1/analytics/overview", params=params), 422)


def test_bucket_list_is_bounded_per_interval() -> None:
    _, _, days = analytics.resolve_range(at("2024-01-01 00:00"), at("2025-01-01 00:00"), "day")
    assert len(days) == 366 and days[0] == "2024-01-01" and days[-1] == "2024-12-31"
    with pytest.raises(Unprocessable):
        analytics.resolve_range(at("2024-01-01 00:00"), at("2025-01-02 00:00"), "day")
    _, _, months = analytics.resolve_range(at("2024-01-15 00:00"), at("2024-03-01 00:00"), "month")
    assert months == ["2024-01-01", "2024-02-01"]


# -- round trips ---------------------------------------------------------------------------------


@pytest.mark.embedded_only  # counts calls with tests/support/dbcalls.py
async def test_analytics_round_trips_are_bounded(owner: Account) -> None:
    """Overview: no aggregate for whole days. A campaign: no aggregate at all, the campaign's
    own read (its `lead_count`) and its counters' row (service/campaign_tallies.py)."""
    await _seed_series(owner)
    camp = await seed.campaign(owner.ctx)
    from tests.support.dbcalls import count_db_calls

    with count_db_calls() as (calls, _):
        await owner.client.get(f"/v1/analytics/campaigns/{camp.id}")
    aggregates = {k: v for k, v in calls.items() if k.endswith(".aggregate")}
    assert aggregates == {} and calls.get("campaign_tallies.find_one") == 1, calls
    with count_db_calls() as (calls, _):
        await owner.client.get("/v1/analytics/overview", params={"interval": "week"})
    # Whole days: the quarter-hour counters alone (service/event_slots.py), no aggregate.
    assert {k: v for k, v in calls.items() if k.endswith(".aggregate")} == {}
    assert calls.get("event_slots.find") == 1, calls


def _stages(pipeline: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    out = []
    for stage in pipeline:
        for name, spec in stage.items():
            out.append((name, spec))
            if name == "$facet":
                for sub in spec.values():
                    out += _stages(sub)
    return out


def test_campaign_analytics_gathers_nothing_that_grows_with_the_campaign() -> None:
    """By construction, the 16 MiB limit cannot be reached, whatever the campaign's size:
    no `$push`/`$addToSet`/`$facet`, and every `$lookup` joins ONE lead's rows (the lead by
    `_id`, or that lead's own links by `lead_id`), never the campaign's."""
    tenant, campaign = uuid4(), uuid4()
    for pipeline in (
        pipelines.campaign_analytics(tenant_id=tenant, campaign_id=campaign),
        pipelines.campaign_analytics_leads(tenant_id=tenant),
    ):
        stages = _stages(pipeline)
        text = repr(pipeline)
        assert "$push" not in text and "$addToSet" not in text
        assert all(name != "$facet" for name, _ in stages)
        for name, spec in stages:
            if name == "$lookup":
                assert spec["foreignField"] in ("_id", "lead_id"), spec
                assert spec["localField"] in ("_id", "lead_id"), spec  # a lead id per row
            if name == "$group":
                # Groups are per lead (`$lead_id`) or one counter document (`None`).
                assert spec["_id"] in ("$lead_id", None), spec


async def test_overview_counters_equal_the_pipeline_in_any_zone_and_range(owner: Account) -> None:
    """The quarter-hour counters (service/event_slots.py) summed into local buckets equal the
    pipeline over the events, for zones with whole, half and quarter hour offsets and for
    ranges whose edges fall inside a quarter hour (counted from those events)."""
    import random
    from datetime import timedelta

    from documents.event import TouchpointEvent
    from service.core.repository import Repository

    rng = random.Random(15)
    camp = await seed.campaign(owner.ctx)
    lead = await seed.lead(owner.ctx)
    await seed.link(owner.ctx, camp.id, lead.id)
    base = at("2024-03-08 00:00")  # across the US DST change of 2024-03-10
    for _ in range(120):
        moment = base + timedelta(minutes=rng.randrange(0, 9 * 24 * 60), seconds=rng.randrange(60))
        await seed.touch(owner.ctx, rng.choice(pipelines.CHANNELS), camp.id, lead.id, moment)
    # Either side of the partial edges below (New York 03:07 EST and 11:53 EDT, Kathmandu
    # 05:50 and 00:05 in UTC), where the slot counters alone would be wrong.
    for edge in ("2024-03-08 08:07", "2024-03-16 15:53", "2024-03-08 00:05", "2024-03-16 18:20"):
        for minutes in (-3, -1, 0, 1, 4):
            moment = at(edge) + timedelta(minutes=minutes, seconds=rng.randrange(-20, 20))
            await seed.touch(owner.ctx, "call", camp.id, lead.id, moment)
    cases = [
        ("UTC", "day", None, None),
        ("America/New_York", "day", "2024-03-08T03:07:00", "2024-03-16T11:53:00"),
        ("Asia/Kolkata", "week", "2024-03-07", "2024-03-20"),
        ("Asia/Kathmandu", "day", "2024-03-08T05:50:00", "2024-03-17T00:05:00"),
        ("Europe/Berlin", "month", "2024-03-01", "2024-04-01"),
    ]
    for tz, interval, since, until in cases:
        params = {"interval": interval, "tz": tz}
        params |= {"since": since or "2024-03-01", "until": until or "2024-03-20"}
        r = await owner.client.get("/v1/analytics/overview", params=params)
        assert r.status_code == 200, r.text
        start, end, names = analytics.resolve_local_range(
            datetime.fromisoformat(params["since"]),
            datetime.fromisoformat(params["until"]),
            interval,
            tz,
        )
        rows = await Repository(TouchpointEvent, owner.ctx).aggregate(
            pipelines.overview(interval=interval, tz=tz),
            match={"occurred_at": {"$gte": start, "$lt": end}},
        )
        counted = {row["_id"]: row for row in rows}
        expected = [
            {"bucket": n, **{c: counted[n][c] if n in counted else 0 for c in pipelines.CHANNELS}}
            for n in names
        ]
        assert r.json()["series"] == expected, (tz, interval)
    assert sum(sum(b[c] for c in pipelines.CHANNELS) for b in expected) > 0
