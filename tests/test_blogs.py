"""Blogs: create, lifecycle (planned → scheduled → posted), calendar, stats, tenancy, delete."""

from __future__ import annotations

from typing import Any

from bson import Binary

from documents.blog import Blog
from documents.journal import DomainEvent
from tests.support.helpers import Account, assert_problem


async def make_blog(account: Account, **body: Any) -> dict[str, Any]:
    response = await account.client.post("/v1/blogs", json={"title": "Post", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_returns_the_blog_with_etag_and_ignores_tenant_id(
    owner: Account, stranger: Account
) -> None:
    response = await owner.client.post(
        "/v1/blogs",
        json={
            "title": "Open house tips",
            "content": "Body",
            "tags": ["Staging"],
            "tenant_id": str(stranger.tenant_id),
        },
    )
    assert response.status_code == 201, response.text
    blog = response.json()
    assert blog["status"] == "planned" and blog["posted_at"] is None
    assert blog["tenant_id"] == str(owner.tenant_id)
    assert blog["user_id"] == str(owner.id)
    assert blog["tags"] == ["staging"] and blog["version"] == 1
    assert response.headers["ETag"] == '"1"'


async def test_validation_failures_are_422(owner: Account) -> None:
    bad_bodies = [
        {"content": "no title"},
        {"title": ""},
        {"title": "x" * 201},
        {"title": "t", "status": "draft"},
        {"title": "t", "status": "scheduled"},  # scheduling needs a date
        {"title": "t", "scheduled_for": "not a date"},
        {"title": "t", "owner": "someone"},  # unknown field: no mass assignment
        {"title": "t", "version": 9},
    ]
    for body in bad_bodies:
        assert_problem(await owner.client.post("/v1/blogs", json=body), 422)


async def test_lifecycle_planned_scheduled_posted(owner: Account) -> None:
    blog = await make_blog(owner)
    url = f"/v1/blogs/{blog['id']}"
    # Scheduling without a date is refused, with a date it works.
    assert_problem(await owner.client.patch(url, json={"status": "scheduled"}), 422)
    response = await owner.client.patch(
        url, json={"status": "scheduled", "scheduled_for": "2026-11-03T09:00:00Z"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "scheduled"
    # A scheduled blog cannot lose its date; PATCH cannot post (that is /publish).
    assert_problem(await owner.client.patch(url, json={"scheduled_for": None}), 422)
    assert_problem(await owner.client.patch(url, json={"status": "posted"}), 422)

    response = await owner.client.post(
        f"{url}/publish", json={"url": "https://blog.example.com/p", "platform": "wordpress"}
    )
    assert response.status_code == 200, response.text
    posted = response.json()
    assert posted["status"] == "posted" and posted["posted_at"] is not None
    assert posted["url"] == "https://blog.example.com/p" and posted["version"] == 3
    assert response.headers["ETag"] == '"3"'

    # Posted is final.
    assert_problem(await owner.client.post(f"{url}/publish"), 409)
    assert_problem(await owner.client.patch(url, json={"status": "planned"}), 409)
    assert_problem(await owner.client.patch(url, json={"scheduled_for": None}), 409)
    # Its text stays editable.
    response = await owner.client.patch(url, json={"title": "Fixed typo"})
    assert response.status_code == 200 and response.json()["status"] == "posted"

    events = await DomainEvent.find({"aggregate_id": Binary.from_uuid(_uuid(blog["id"]))}).to_list()
    types = sorted(e.event_type for e in events)
    assert types == ["blog.created", "blog.published", "blog.scheduled", "blog.updated"]


async def test_publish_rejects_future_time_and_accepts_past(owner: Account) -> None:
    blog = await make_blog(owner)
    url = f"/v1/blogs/{blog['id']}/publish"
    assert_problem(await owner.client.post(url, json={"posted_at": "2999-01-01T00:00:00Z"}), 422)
    assert_problem(await owner.client.post(url, json={"card": 1}), 422)
    response = await owner.client.post(url, json={"posted_at": "2026-01-02"})
    assert response.status_code == 200, response.text
    assert response.json()["posted_at"].startswith("2026-01-02T00:00:00")


async def test_create_posted_stamps_posted_at(owner: Account) -> None:
    blog = await make_blog(owner, status="posted")
    assert blog["status"] == "posted" and blog["posted_at"] is not None


async def test_null_for_a_required_field_is_422(owner: Account) -> None:
    blog = await make_blog(owner)
    assert_problem(await owner.client.patch(f"/v1/blogs/{blog['id']}", json={"title": None}), 422)


async def test_if_match_stale_is_412_and_changes_nothing(owner: Account) -> None:
    blog = await make_blog(owner)
    url = f"/v1/blogs/{blog['id']}"
    stale = {"If-Match": '"7"'}
    assert_problem(await owner.client.patch(url, json={"title": "B"}, headers=stale), 412)
    assert_problem(await owner.client.delete(url, headers=stale), 412)
    response = await owner.client.patch(url, json={"title": "B"}, headers={"If-Match": '"1"'})
    assert response.status_code == 200 and response.headers["ETag"] == '"2"'
    assert (await owner.client.get(url)).json()["title"] == "B"


async def test_list_filters_and_pagination(owner: Account) -> None:
    ids = [
        (await make_blog(owner, title=f"B{i}", tags=["a" if i % 2 else "b"]))["id"]
        for i in range(5)
    ]
    await owner.client.post(f"/v1/blogs/{ids[0]}/publish")
    page = (await owner.client.get("/v1/blogs", params={"limit": 2})).json()
    assert [b["id"] for b in page["items"]] == [ids[4], ids[3]] and page["next_cursor"]
    rest = (await owner.client.get("/v1/blogs", params={"cursor": page["next_cursor"]})).json()
    assert [b["id"] for b in rest["items"]] == [ids[2], ids[1], ids[0]]
    tagged = (await owner.client.get("/v1/blogs", params={"tag": "a"})).json()
    assert {b["id"] for b in tagged["items"]} == {ids[1], ids[3]}
    posted = (await owner.client.get("/v1/blogs", params={"status": "posted"})).json()
    assert [b["id"] for b in posted["items"]] == [ids[0]]
    assert_problem(await owner.client.get("/v1/blogs", params={"limit": 201}), 422)
    assert_problem(await owner.client.get("/v1/blogs", params={"sort": "x"}), 422)


async def test_calendar_places_blogs_on_their_day(owner: Account) -> None:
    a = await make_blog(owner, title="A", status="scheduled", scheduled_for="2026-11-03T18:00:00Z")
    b = await make_blog(owner, title="B", scheduled_for="2026-11-03T08:00:00Z")  # planned, dated
    c = await make_blog(owner, title="C")
    await owner.client.post(
        f"/v1/blogs/{c['id']}/publish", json={"posted_at": "2026-11-20T10:00:00Z"}
    )
    await make_blog(owner, title="Undated")  # no day: not on any calendar
    await make_blog(
        owner, title="December", status="scheduled", scheduled_for="2026-12-01T00:00:00Z"
    )
    d = await make_blog(
        owner, title="Deleted", status="scheduled", scheduled_for="2026-11-05T00:00:00Z"
    )
    await owner.client.delete(f"/v1/blogs/{d['id']}")
    # Posted after being scheduled: it stays on its scheduled day.
    e = await make_blog(owner, title="E", status="scheduled", scheduled_for="2026-11-30T23:59:59Z")
    await owner.client.post(
        f"/v1/blogs/{e['id']}/publish", json={"posted_at": "2026-10-01T00:00:00Z"}
    )

    response = await owner.client.get("/v1/blogs/calendar", params={"month": "2026-11"})
    assert response.status_code == 200, response.text
    calendar = response.json()
    assert calendar["month"] == "2026-11" and calendar["truncated"] is False
    days = {d["date"]: [x["id"] for x in d["blogs"]] for d in calendar["days"]}
    assert days == {
        "2026-11-03": [b["id"], a["id"]],  # in time order within the day
        "2026-11-20": [c["id"]],
        "2026-11-30": [e["id"]],
    }
    assert list(days) == sorted(days)
    october = (await owner.client.get("/v1/blogs/calendar", params={"month": "2026-10"})).json()
    assert october["days"] == []


async def test_schedule_details_round_trip_and_are_stored_as_the_embedded_calendar(
    owner: Account,
) -> None:
    blog = await make_blog(
        owner,
        status="scheduled",
        scheduled_for="2026-11-03T14:00:00Z",
        timezone="America/New_York",
        channel="linkedin",
        recurrence={"frequency": "weekly", "count": 3},
    )
    assert blog["timezone"] == "America/New_York" and blog["channel"] == "linkedin"
    assert blog["recurrence"] == {"frequency": "weekly", "interval": 1, "count": 3, "until": None}
    raw = await Blog.get_pymongo_collection().find_one({"_id": Binary.from_uuid(_uuid(blog["id"]))})
    assert raw is not None and "calendar_at" not in raw and "scheduled_for" not in raw["plan"]
    assert raw["calendar"]["channel"] == "linkedin" and raw["calendar"]["months"] == ["2026-11"]

    url = f"/v1/blogs/{blog['id']}"
    # Patching one detail keeps the others; clearing the recurrence clears only it.
    changed = (await owner.client.patch(url, json={"channel": "newsletter"})).json()
    assert changed["channel"] == "newsletter" and changed["recurrence"]["count"] == 3
    changed = (await owner.client.patch(url, json={"recurrence": None})).json()
    assert changed["recurrence"] is None and changed["timezone"] == "America/New_York"
    # Back to planned, then unscheduled: the schedule's details go with the date.
    await owner.client.patch(url, json={"status": "planned"})
    cleared = (await owner.client.patch(url, json={"scheduled_for": None})).json()
    assert cleared["scheduled_for"] is None and cleared["timezone"] is None
    assert cleared["channel"] is None
    raw = await Blog.get_pymongo_collection().find_one({"_id": Binary.from_uuid(_uuid(blog["id"]))})
    assert raw is not None and raw["calendar"] is None


async def test_schedule_details_are_validated(owner: Account) -> None:
    when = "2026-11-03T14:00:00Z"
    bad_bodies: list[dict[str, Any]] = [
        {"timezone": "America/New_York"},  # details need scheduled_for
        {"channel": "linkedin"},
        {"recurrence": {"frequency": "daily", "count": 2}},
        {"scheduled_for": when, "timezone": "Mars/Olympus_Mons"},
        {"scheduled_for": when, "timezone": "/etc/localtime"},
        {"scheduled_for": when, "timezone": ""},
        {"scheduled_for": when, "channel": "fax"},
        {"scheduled_for": when, "recurrence": {"frequency": "daily"}},  # never ends
        {"scheduled_for": when, "recurrence": {"frequency": "daily", "count": 101}},
        {"scheduled_for": when, "recurrence": {"frequency": "yearly", "count": 2}},
        {"scheduled_for": when, "recurrence": {"frequency": "daily", "count": 2, "interval": 0}},
        {"scheduled_for": when, "recurrence": {"frequency": "daily", "count": True}},
        {"scheduled_for": when, "recurrence": {"frequency": "daily", "count": 2, "x": 1}},
        # More than 100 occurrences, or an end before the start.
        {"scheduled_for": when, "recurrence": {"frequency": "daily", "until": "2027-11-03"}},
        {"scheduled_for": when, "recurrence": {"frequency": "daily", "until": "2026-11-01"}},
    ]
    for body in bad_bodies:
        response = await owner.client.post("/v1/blogs", json={"title": "t", **body})
        assert_problem(response, 422)
    blog = await make_blog(owner, status="scheduled", scheduled_for=when)
    url = f"/v1/blogs/{blog['id']}"
    too_long = {"recurrence": {"frequency": "daily", "until": "2027-11-03T00:00:00Z"}}
    problem = assert_problem(await owner.client.patch(url, json=too_long), 422)
    assert problem["errors"][0]["loc"] == ["body", "recurrence"]
    assert_problem(await owner.client.patch(url, json={"timezone": None}), 422)
    # A posted blog's schedule is final.
    await owner.client.post(f"{url}/publish")
    assert_problem(await owner.client.patch(url, json={"channel": "x"}), 409)
    assert_problem(await owner.client.patch(url, json={"timezone": "Europe/Paris"}), 409)


async def test_calendar_lists_a_recurring_blog_on_every_day_it_occurs(owner: Account) -> None:
    # 09:00 in New York every two weeks from 2027-02-28, over the DST change of 2027-03-14.
    weekly = await make_blog(
        owner,
        title="Market update",
        status="scheduled",
        scheduled_for="2027-02-28T14:00:00Z",
        timezone="America/New_York",
        channel="newsletter",
        recurrence={"frequency": "weekly", "interval": 2, "until": "2027-04-30T00:00:00Z"},
    )
    once = await make_blog(owner, title="Once", scheduled_for="2027-03-14T13:00:00Z")
    march = (await owner.client.get("/v1/blogs/calendar", params={"month": "2027-03"})).json()
    entries = [(d["date"], e["title"], e["occurs_at"]) for d in march["days"] for e in d["blogs"]]
    # Within a day by time, then by id (creation order).
    assert entries == [
        ("2027-03-14", "Market update", "2027-03-14T13:00:00Z"),  # 09:00 EDT
        ("2027-03-14", "Once", "2027-03-14T13:00:00Z"),
        ("2027-03-28", "Market update", "2027-03-28T13:00:00Z"),
    ]
    entry = march["days"][-1]["blogs"][0]
    assert entry["id"] == weekly["id"] and entry["scheduled_for"] == "2027-02-28T14:00:00Z"
    assert entry["channel"] == "newsletter" and entry["timezone"] == "America/New_York"
    february = (await owner.client.get("/v1/blogs/calendar", params={"month": "2027-02"})).json()
    assert [(d["date"], [e["occurs_at"] for e in d["blogs"]]) for d in february["days"]] == [
        ("2027-02-28", ["2027-02-28T14:00:00Z"])  # 09:00 EST
    ]
    april = (await owner.client.get("/v1/blogs/calendar", params={"month": "2027-04"})).json()
    assert [d["date"] for d in april["days"]] == ["2027-04-11", "2027-04-25"]
    may = (await owner.client.get("/v1/blogs/calendar", params={"month": "2027-05"})).json()
    assert may["days"] == []
    assert once["recurrence"] is None


async def test_calendar_validates_month_and_is_tenant_scoped(
    owner: Account, stranger: Account
) -> None:
    await make_blog(owner, status="scheduled", scheduled_for="2026-11-03T09:00:00Z")
    for month in ("2026-13", "2026-1", "november", "", "0000-01", "9999-12"):
        assert_problem(await owner.client.get("/v1/blogs/calendar", params={"month": month}), 422)
    assert_problem(await owner.client.get("/v1/blogs/calendar"), 422)
    other = (await stranger.client.get("/v1/blogs/calendar", params={"month": "2026-11"})).json()
    assert other["days"] == []


async def test_other_tenant_gets_404_on_every_verb(owner: Account, stranger: Account) -> None:
    blog = await make_blog(owner)
    url = f"/v1/blogs/{blog['id']}"
    c = stranger.client
    assert_problem(await c.get(url), 404)
    assert_problem(await c.patch(url, json={"title": "x"}), 404)
    assert_problem(await c.delete(url), 404)
    assert_problem(await c.post(f"{url}/publish"), 404)
    assert_problem(await c.post(f"{url}/restore"), 404)
    assert_problem(await c.post(f"{url}/archive"), 404)
    assert_problem(await c.get(f"{url}/history"), 404)
    assert (await c.get("/v1/blogs")).json()["items"] == []
    assert (await owner.client.get(url)).json()["title"] == "Post"


async def test_soft_delete_restore_archive_and_history(owner: Account) -> None:
    blog = await make_blog(owner)
    url = f"/v1/blogs/{blog['id']}"
    assert (await owner.client.delete(url)).status_code == 204
    assert_problem(await owner.client.get(url), 404)
    assert_problem(await owner.client.delete(url), 404)
    assert (await Blog.get(_uuid(blog["id"]))) is not None  # still stored
    listed = (await owner.client.get("/v1/blogs", params={"include_deleted": True})).json()
    assert [b["id"] for b in listed["items"]] == [blog["id"]]
    restored = await owner.client.post(f"{url}/restore")
    assert restored.status_code == 200 and restored.json()["is_deleted"] is False
    assert (await owner.client.post(f"{url}/archive")).json()["archived_at"] is not None
    assert (await owner.client.get("/v1/blogs")).json()["items"] == []
    history = (await owner.client.get(f"{url}/history")).json()["items"]
    assert [h["event_type"] for h in history] == [
        "blog.created",
        "blog.deleted",
        "blog.restored",
        "blog.archived",
    ]


async def test_roles_viewer_reads_member_writes(
    owner: Account, viewer: Account, member: Account
) -> None:
    blog = await make_blog(owner)
    assert (await viewer.client.get(f"/v1/blogs/{blog['id']}")).status_code == 200
    assert_problem(await viewer.client.post("/v1/blogs", json={"title": "t"}), 403)
    assert_problem(await viewer.client.post(f"/v1/blogs/{blog['id']}/publish"), 403)
    assert (await member.client.post(f"/v1/blogs/{blog['id']}/publish")).status_code == 200


async def test_unauthenticated_is_401(client: Any) -> None:
    assert_problem(await client.get("/v1/blogs"), 401)


async def test_stats_rollup(owner: Account, member: Account, stranger: Account) -> None:
    await make_blog(owner)
    await make_blog(owner, status="scheduled", scheduled_for="2026-11-03T09:00:00Z")
    await make_blog(owner, status="scheduled", scheduled_for="2026-10-03T09:00:00Z")
    posted = await make_blog(owner)
    await owner.client.post(f"/v1/blogs/{posted['id']}/publish", json={"posted_at": "2026-01-05"})
    gone = await make_blog(owner)
    await owner.client.delete(f"/v1/blogs/{gone['id']}")
    await make_blog(member)

    stats = (await owner.client.get("/v1/blogs/stats")).json()
    assert stats["user_id"] == str(owner.id) and stats["total"] == 4
    assert stats["by_status"] == {"planned": 1, "scheduled": 2, "posted": 1}
    assert stats["last_posted_at"].startswith("2026-01-05")
    assert stats["next_scheduled_for"].startswith("2026-10-03")
    of_member = await owner.client.get("/v1/blogs/stats", params={"user_id": str(member.id)})
    assert of_member.json()["total"] == 1
    assert_problem(
        await stranger.client.get("/v1/blogs/stats", params={"user_id": str(owner.id)}), 404
    )


def _uuid(value: str) -> Any:
    from uuid import UUID

    return UUID(value)
