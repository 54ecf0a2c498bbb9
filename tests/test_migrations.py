"""Shape migrations: upcast on read, write back whole, `migrate` in place (journaling nothing).

The first real migration is blogs' shape 1 (`plan.scheduled_for` + derived `calendar_at`) →
shape 2 (embedded `calendar`, the plan's `BlogCalendar`).
"""

from __future__ import annotations

from typing import Any, ClassVar
from uuid import UUID

import pytest
from bson import Binary
from uuid6 import uuid7

from documents.blog import Blog
from documents.campaign import CampaignBase
from documents.journal import DomainEvent
from documents.migrations import Versioned, current_schema_version, upcast
from service.projections.runner import rebuild
from service.storage import migrations
from service.storage.migrations import migrate
from tests.factories import POSTED, SCHEDULED, shape_1_blog
from tests.support.helpers import Account, stored_form


async def insert_shape_1_blogs(account: Account) -> dict[str, dict[str, Any]]:
    blogs = {
        "scheduled": shape_1_blog(account, status="scheduled", scheduled_for=SCHEDULED),
        "posted_unscheduled": shape_1_blog(
            account, status="posted", posted={"posted_at": POSTED, "url": None, "platform": "wp"}
        ),
        "posted_scheduled": shape_1_blog(
            account,
            status="posted",
            scheduled_for=SCHEDULED,
            posted={"posted_at": POSTED, "url": None, "platform": None},
        ),
        "planned": shape_1_blog(account),
    }
    await Blog.get_pymongo_collection().insert_many(list(blogs.values()))
    return blogs


def blog_id(raw: dict[str, Any]) -> UUID:
    return raw["_id"].as_uuid()


async def stored(raw: dict[str, Any]) -> dict[str, Any]:
    found = await stored_form(Blog.get_pymongo_collection()).find_one({"_id": raw["_id"]})
    assert found is not None
    return dict(found)


# -- the declaration ------------------------------------------------------------------------


def test_blog_declares_its_version_and_upcasters() -> None:
    assert current_schema_version(Blog) == 2 and set(Blog.upcasters) == {1}
    assert current_schema_version(CampaignBase) == 1 and not CampaignBase.upcasters


def test_a_gap_in_the_upcaster_chain_is_refused_at_class_definition() -> None:
    with pytest.raises(TypeError, match="upcaster"):

        class Gappy(Versioned):
            schema_version: int = 3
            upcasters: ClassVar[dict[int, Any]] = {1: dict}


def test_upcast_is_pure_and_keeps_new_shape_leaves() -> None:
    old = {"schema_version": 1, "plan": {"scheduled_for": SCHEDULED}, "calendar_at": SCHEDULED}
    new = upcast(Blog, old)
    assert old == {
        "schema_version": 1,
        "plan": {"scheduled_for": SCHEDULED},
        "calendar_at": SCHEDULED,
    }
    assert new == {"schema_version": 2, "plan": {}, "calendar": {"scheduled_for": SCHEDULED}}
    assert upcast(Blog, new) == new  # current documents pass through unchanged
    # A version rebuilt from the journal has no schema_version and may mix both shapes: the
    # new-shape leaves it already has win.
    mixed = {"plan": {"scheduled_for": SCHEDULED}, "calendar": {"timezone": "Europe/Lisbon"}}
    assert upcast(Blog, mixed)["calendar"] == {
        "scheduled_for": SCHEDULED,
        "timezone": "Europe/Lisbon",
    }


# -- the round trip -------------------------------------------------------------------------


async def test_old_documents_read_through_the_api_then_migrate_converts_them_once(
    owner: Account,
) -> None:
    blogs = await insert_shape_1_blogs(owner)
    # These documents predate the journal's feed; their rollup was built from the collection.
    await rebuild("blog_stats")
    journal_before = await DomainEvent.get_pymongo_collection().count_documents({})

    # 1. Read at once, upcast: one blog, the list, the month view, the author rollup.
    scheduled = (await owner.client.get(f"/v1/blogs/{blog_id(blogs['scheduled'])}")).json()
    assert scheduled["scheduled_for"] == "2026-05-04T09:30:00Z"
    assert scheduled["timezone"] == "UTC" and scheduled["status"] == "scheduled"
    unscheduled = (
        await owner.client.get(f"/v1/blogs/{blog_id(blogs['posted_unscheduled'])}")
    ).json()
    assert unscheduled["scheduled_for"] is None and unscheduled["timezone"] is None
    assert unscheduled["posted_at"] == "2026-05-20T17:00:00Z"
    listed = (await owner.client.get("/v1/blogs")).json()["items"]
    assert {b["id"] for b in listed} == {str(blog_id(b)) for b in blogs.values()}
    month = (await owner.client.get("/v1/blogs/calendar", params={"month": "2026-05"})).json()
    by_day = {day["date"]: sorted(b["title"] for b in day["blogs"]) for day in month["days"]}
    assert by_day == {"2026-05-04": ["Old post", "Old post"], "2026-05-20": ["Old post"]}
    stats = (await owner.client.get("/v1/blogs/stats")).json()
    assert stats["next_scheduled_for"] == "2026-05-04T09:30:00Z"

    # 2. The first write to an old document stores it whole in the current shape.
    url = f"/v1/blogs/{blog_id(blogs['scheduled'])}"
    response = await owner.client.patch(url, json={"title": "Renamed"})
    assert response.status_code == 200, response.text
    rewritten = await stored(blogs["scheduled"])
    assert rewritten["schema_version"] == 2 and "calendar_at" not in rewritten
    assert "scheduled_for" not in rewritten["plan"]
    assert rewritten["calendar"]["scheduled_for"] == SCHEDULED
    assert rewritten["calendar"]["months"] == ["2026-05"] and rewritten["version"] == 2
    history = (await owner.client.get(f"{url}/history")).json()["items"]
    changed = {c["field"] for c in history[-1]["changes"]}
    assert changed == {"title"}  # the shape change is not a business change
    journal_before += 1

    # 3. migrate converts the rest: no journal entry, no version bump, no new updated_at.
    before = {name: await stored(raw) for name, raw in blogs.items()}
    month = (await owner.client.get("/v1/blogs/calendar", params={"month": "2026-05"})).json()
    calls: list[tuple[str, int, int]] = []
    report = await migrate(models=[Blog], batch_size=2, progress=lambda *call: calls.append(call))
    (blog_report,) = report.collections
    assert (blog_report.pending, blog_report.migrated, blog_report.skipped) == (3, 3, 0)
    assert blog_report.failed == [] and report.migrated == 3
    # No count first (issue 23): progress runs against the collection's size (4 blogs, one
    # already current) until the walk ends.
    assert calls == [("blogs", 0, 4), ("blogs", 2, 4), ("blogs", 3, 4), ("blogs", 3, 3)]
    after = {name: await stored(raw) for name, raw in blogs.items()}
    assert after["scheduled"] == before["scheduled"]  # already current: untouched
    for name in ("posted_unscheduled", "posted_scheduled", "planned"):
        doc = after[name]
        assert doc["schema_version"] == 2 and "calendar_at" not in doc
        assert "scheduled_for" not in doc["plan"] and doc["plan"]["outline"] == ["intro"]
        for kept in ("version", "updated_at", "updated_by", "created_at", "tenant_id"):
            assert doc[kept] == before[name][kept], (name, kept)
        assert "pending_event" not in doc
    assert after["planned"]["calendar"] is None
    assert after["posted_unscheduled"]["calendar"]["scheduled_for"] is None
    assert after["posted_unscheduled"]["calendar"]["months"] == ["2026-05"]
    assert after["posted_scheduled"]["calendar"]["scheduled_for"] == SCHEDULED
    assert await DomainEvent.get_pymongo_collection().count_documents({}) == journal_before
    assert await Blog.get_pymongo_collection().count_documents({"schema_version": 1}) == 0

    # The API answers exactly as before the migration.
    month_after = (await owner.client.get("/v1/blogs/calendar", params={"month": "2026-05"})).json()
    assert month_after == month

    # 4. Running it twice changes nothing.
    again = await migrate(models=[Blog], batch_size=2)
    assert again.migrated == 0 and again.collections[0].pending == 0
    assert {name: await stored(raw) for name, raw in blogs.items()} == after


async def test_migrate_defaults_to_every_versioned_collection(owner: Account) -> None:
    await insert_shape_1_blogs(owner)
    report = await migrate()
    names = [c.collection for c in report.collections]
    assert len(names) == len(set(names)) and {"blogs", "users", "campaigns", "leads"} <= set(names)
    assert {c.collection: c.migrated for c in report.collections if c.migrated} == {"blogs": 4}


@pytest.mark.stores_invalid_documents  # a broken blog, to be reported
async def test_migrate_leaves_documents_changed_meanwhile_and_reports_broken_ones(
    owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    blogs = await insert_shape_1_blogs(owner)
    broken = shape_1_blog(owner, title="")  # not a valid blog in any shape
    await Blog.get_pymongo_collection().insert_one(broken)
    raced = blog_id(blogs["planned"])
    real = migrations.rewritten

    def racing(model: Any, raw: dict[str, Any]) -> dict[str, Any]:
        new = real(model, raw)
        if raw["_id"] == raced:  # a live writer moved this one on after it was read
            raw["version"] = 2
        return new

    monkeypatch.setattr(migrations, "rewritten", racing)
    report = await migrate(models=[Blog])
    (blog_report,) = report.collections
    assert (blog_report.migrated, blog_report.skipped) == (3, 1)
    assert blog_report.failed == [(str(blog_id(broken)), "String should have at least 1 character")]
    assert (await stored(blogs["planned"]))["schema_version"] == 1
    assert (await stored(broken)) == broken
    # A later run finishes the job; the broken document stays reported.
    monkeypatch.setattr(migrations, "rewritten", real)
    report = await migrate(models=[Blog])
    assert report.migrated == 1 and report.failed == 1


async def test_migrate_keeps_a_crashed_writes_outbox(owner: Account) -> None:
    outbox = {"version": 2, "id": Binary.from_uuid(uuid7()), "event_type": "blog.updated"}
    raw = shape_1_blog(owner, version=1, pending_event=outbox, scheduled_for=SCHEDULED)
    await Blog.get_pymongo_collection().insert_one(raw)
    await migrate(models=[Blog])
    assert (await stored(raw))["pending_event"] == outbox


@pytest.mark.usefixtures("app")
async def test_models_with_upcasters_read_whole_documents() -> None:
    # Beanie projects a model's own fields by default; upcasters need the retired ones too.
    from beanie.odm.utils.projection import get_projection

    from documents import ALL_DOCUMENTS

    with_upcasters = [m for m in ALL_DOCUMENTS if getattr(m, "upcasters", None)]
    assert Blog in with_upcasters
    assert [m for m in with_upcasters if get_projection(m) is not None] == []
