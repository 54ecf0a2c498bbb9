"""Workspace documents: round trips through the database and validation edge cases."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import uuid4

import pytest
from bson import Binary
from pydantic import ValidationError
from pymongo.errors import DuplicateKeyError

from documents.ai import AIUsageLog
from documents.blog import Blog, BlogCalendar, BlogPlan, BlogStatus, PostedBlog, Recurrence
from documents.integration import Integration, IntegrationStatus, IntegrationType
from documents.journal import DomainEvent
from documents.kanban import MAX_KANBAN_STATES, GlobalKanban, KanbanState, KanbanTask
from documents.research import MAX_RESULTS_PER_TOPIC, ResearchTopic, TopicResearchResult
from documents.saved_search import MAX_FILTERS, SavedSearch, SavedSearchResource
from documents.workspace_read_models import BlogCounts, GlobalBlog, GlobalResearchStats
from service.core.repository import Repository
from tests.support.helpers import Account

TENANT = uuid4()
WHEN = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)


async def round_trip(account: Account, doc: Any) -> Any:
    """Create through the repository and read back the stored document."""
    created = await Repository(type(doc), account.ctx).create(doc)
    stored = await type(doc).get(created.id)
    assert stored is not None
    assert stored.model_dump(exclude={"revision_id"}) == created.model_dump(exclude={"revision_id"})
    return stored


# -- blogs ------------------------------------------------------------------------------------


async def test_blog_round_trip_and_embedded_calendar(owner: Account) -> None:
    blog = Blog(
        tenant_id=owner.tenant_id,
        title="  Tips ",
        status=BlogStatus.scheduled,
        plan=BlogPlan(outline=["intro"], keywords=[" SEO "]),
        calendar=BlogCalendar(scheduled_for=WHEN, timezone="Europe/Lisbon", channel="linkedin"),
        tags=["Homes"],
    )
    stored = await round_trip(owner, blog)
    assert stored.title == "Tips" and stored.plan.keywords == ["seo"] and stored.tags == ["homes"]
    assert stored.scheduled_for == WHEN and stored.scheduled_for.tzinfo is not None
    assert stored.calendar.months == ["2026-11"] and stored.schema_version == 2
    raw = await Blog.get_pymongo_collection().find_one({"_id": Binary.from_uuid(stored.id)})
    assert raw["status"] == "scheduled" and "calendar_at" not in raw
    assert isinstance(raw["calendar"]["scheduled_for"], datetime)
    assert (
        raw["calendar"]["timezone"] == "Europe/Lisbon" and raw["calendar"]["channel"] == "linkedin"
    )
    assert raw["schema_version"] == 2


def test_blog_posted_without_schedule_sits_on_its_posting_day() -> None:
    blog = Blog(
        tenant_id=TENANT, title="t", status=BlogStatus.posted, posted=PostedBlog(posted_at=WHEN)
    )
    assert blog.calendar is not None and blog.calendar.scheduled_for is None
    assert blog.calendar_anchor == WHEN and blog.calendar.months == ["2026-11"]
    assert Blog(tenant_id=TENANT, title="t").calendar is None


def test_recurrence_keeps_wall_clock_time_across_daylight_saving() -> None:
    # 09:00 in New York every week from 2027-03-07 (EST) over the DST change of 2027-03-14.
    first = datetime(2027, 3, 7, 14, 0, tzinfo=UTC)
    calendar = BlogCalendar(
        scheduled_for=first,
        timezone="America/New_York",
        recurrence=Recurrence(frequency="weekly", count=3),
    )
    assert [when.hour for when in calendar.occurrences(first)] == [14, 13, 13]
    blog = Blog(tenant_id=TENANT, title="t", calendar=calendar)
    assert blog.calendar is not None and blog.calendar.months == ["2027-03"]
    # Monthly on the 31st skips months without one (RFC 5545), until is inclusive.
    monthly = BlogCalendar(
        scheduled_for=datetime(2027, 1, 31, 9, tzinfo=UTC),
        recurrence=Recurrence(frequency="monthly", until=datetime(2027, 5, 31, 9, tzinfo=UTC)),
    )
    assert [w.month for w in monthly.occurrences(monthly.scheduled_for)] == [1, 3, 5]


@pytest.mark.parametrize(
    "fields",
    [
        {"title": ""},
        {"title": "x" * 201},
        {"title": "t", "status": "scheduled"},  # no scheduled_for
        {"title": "t", "status": "posted"},  # no posted part
        {"title": "t", "posted": {"posted_at": WHEN}},  # posted part but not posted
        {"title": "t", "status": "draft"},
        {"title": "t", "plan": {"outline": ["x"] * 101}},
        {"title": "t", "plan": {"unknown": 1}},
        {"title": "t", "plan": {"scheduled_for": WHEN}},  # shape 1 in code: not accepted
        {"title": "t", "calendar": {"channel": "x"}},  # a calendar needs a time
        {"title": "t", "calendar": {"scheduled_for": WHEN, "timezone": "Mars/Olympus"}},
        {"title": "t", "calendar": {"scheduled_for": WHEN, "timezone": "../etc/passwd"}},
        {"title": "t", "calendar": {"scheduled_for": WHEN, "channel": "fax"}},
        {"title": "t", "calendar": {"recurrence": {"frequency": "daily", "count": 2}}},
        *(
            {"title": "t", "calendar": {"scheduled_for": WHEN, "recurrence": rule}}
            for rule in (
                {"frequency": "daily"},  # unbounded
                {"frequency": "daily", "count": 2, "until": WHEN},  # both ends
                {"frequency": "daily", "count": 101},
                {"frequency": "daily", "count": 2, "interval": 0},
                {"frequency": "hourly", "count": 2},
                {"frequency": "daily", "until": datetime(2027, 11, 3, tzinfo=UTC)},  # > 100
                {"frequency": "daily", "until": datetime(2026, 11, 2, tzinfo=UTC)},  # before
            )
        ),
        {"title": "t", "tags": ["t"] * 51},
    ],
)
def test_blog_validation(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        Blog(tenant_id=TENANT, **fields)


# -- kanban -----------------------------------------------------------------------------------


def _board(states: list[KanbanState], tasks: list[KanbanTask]) -> GlobalKanban:
    return GlobalKanban(
        tenant_id=TENANT,
        user_id=uuid4(),
        states={str(s.id): s for s in states},
        tasks={str(t.id): t for t in tasks},
    )


async def test_kanban_round_trip_and_order(owner: Account) -> None:
    todo, done = KanbanState(name="To do", position=0), KanbanState(name="Done", position=1)
    b = KanbanTask(title="b", state_id=todo.id, position=1)
    a = KanbanTask(title="a", state_id=todo.id, position=0)
    c = KanbanTask(title="c", state_id=done.id, position=0)
    board = _board([done, todo], [c, b, a])
    board.tenant_id, board.user_id = owner.tenant_id, owner.id
    stored = await round_trip(owner, board)
    assert [s.name for s in stored.ordered_states()] == ["To do", "Done"]
    assert [t.title for t in stored.ordered_tasks()] == ["a", "b", "c"]
    assert [t.title for t in stored.tasks_in(todo.id)] == ["a", "b"]


async def test_one_board_per_user(owner: Account) -> None:
    repo = Repository(GlobalKanban, owner.ctx)
    await repo.create(GlobalKanban(tenant_id=owner.tenant_id, user_id=owner.id))
    with pytest.raises(DuplicateKeyError):
        await repo.create(GlobalKanban(tenant_id=owner.tenant_id, user_id=owner.id))


def test_kanban_invariants() -> None:
    s0, s1 = KanbanState(name="A", position=0), KanbanState(name="B", position=1)
    ok = KanbanTask(title="t", state_id=s0.id, position=0)
    _board([s0, s1], [ok])  # valid
    with pytest.raises(ValidationError, match=r"0\.\.n-1"):
        _board([s0, KanbanState(name="B", position=2)], [])
    with pytest.raises(ValidationError, match="within each state"):
        _board([s0], [ok, KanbanTask(title="u", state_id=s0.id, position=0)])
    with pytest.raises(ValidationError, match="unknown state"):
        _board([s0], [KanbanTask(title="u", state_id=uuid4(), position=0)])
    with pytest.raises(ValidationError, match="keyed by their id"):
        GlobalKanban(tenant_id=TENANT, user_id=uuid4(), states={str(uuid4()): s0})
    too_many = [KanbanState(name=f"S{i}", position=i) for i in range(MAX_KANBAN_STATES + 1)]
    with pytest.raises(ValidationError):
        _board(too_many, [])
    with pytest.raises(ValidationError):
        KanbanState(name="A", position=0, color="red")
    with pytest.raises(ValidationError):
        KanbanTask(title="t", state_id=s0.id, position=-1)


# -- research ---------------------------------------------------------------------------------


async def test_research_round_trip(owner: Account) -> None:
    topic = ResearchTopic(
        tenant_id=owner.tenant_id,
        topic="Condos",
        results=[
            TopicResearchResult(
                keywords=[" Miami Condos "], search_volume=10, sources=["https://a.example/x"]
            )
        ],
    )
    stored = await round_trip(owner, topic)
    assert stored.results[0].keywords == ["miami condos"]
    assert stored.results[0].researched_at.tzinfo is not None


@pytest.mark.parametrize(
    "result",
    [
        {"search_volume": -1},
        {"competition": 1.5},
        {"sources": ["ftp://x"]},
        {"sources": ["https://has space"]},
        {"keywords": [""]},
        {"keywords": ["k"] * 101},
        {"summary": "s" * 20_001},
    ],
)
def test_research_result_validation(result: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TopicResearchResult(**result)


def test_research_results_are_bounded() -> None:
    results = [TopicResearchResult() for _ in range(MAX_RESULTS_PER_TOPIC + 1)]
    with pytest.raises(ValidationError):
        ResearchTopic(tenant_id=TENANT, topic="t", results=results)


# -- AI usage ---------------------------------------------------------------------------------


async def test_ai_usage_round_trip(owner: Account) -> None:
    log = AIUsageLog(
        tenant_id=owner.tenant_id,
        model="gpt-4o",
        feature=" Blog_Writer ",
        prompt_tokens=10,
        completion_tokens=5,
        cost_cents=12,
        occurred_at=WHEN,
    )
    stored = await round_trip(owner, log)
    assert stored.feature == "blog_writer" and stored.occurred_at == WHEN
    raw = await AIUsageLog.get_pymongo_collection().find_one({"_id": Binary.from_uuid(stored.id)})
    assert raw["cost_cents"] == 12 and isinstance(raw["cost_cents"], int)


@pytest.mark.parametrize(
    "fields",
    [
        {"model": ""},
        {"model": "$where"},
        {"model": "has space"},
        {"prompt_tokens": -1},
        {"completion_tokens": 10**9},
        {"cost_cents": -5},
        {"cost_cents": 1.5},
    ],
)
def test_ai_usage_validation(fields: dict[str, Any]) -> None:
    base = {"model": "m", "feature": "f", "prompt_tokens": 1, "completion_tokens": 1}
    with pytest.raises(ValidationError):
        AIUsageLog(tenant_id=TENANT, **{**base, **fields})


# -- saved searches ---------------------------------------------------------------------------


async def test_saved_search_round_trip(owner: Account) -> None:
    search = SavedSearch(
        tenant_id=owner.tenant_id,
        name="Hot",
        resource=SavedSearchResource.leads,
        filters={"status": "new", "include_deleted": False},
    )
    stored = await round_trip(owner, search)
    assert stored.filters == {"status": "new", "include_deleted": False}


@pytest.mark.parametrize(
    "fields",
    [
        {"resource": "tasks"},
        {"filters": {"$where": "1"}},
        {"filters": {"a.b": 1}},
        {"filters": {f"f{i}": 1 for i in range(MAX_FILTERS + 1)}},
        {"name": ""},
    ],
)
def test_saved_search_validation(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        SavedSearch(**{"tenant_id": TENANT, "name": "n", "resource": "leads", **fields})


# -- integrations -----------------------------------------------------------------------------


async def test_integration_round_trip_and_redacted_journal(owner: Account) -> None:
    integration = Integration(
        tenant_id=owner.tenant_id,
        type=IntegrationType.twilio,
        status=IntegrationStatus.connected,
        connected_at=WHEN,
        credentials_encrypted="gAAAA-sealed-token",
    )
    stored = await round_trip(owner, integration)
    assert stored.has_credentials and stored.type == "twilio"
    event = await DomainEvent.find_one({"aggregate_id": Binary.from_uuid(stored.id)})
    assert event is not None
    sealed = [c for c in event.changes if c.field == "credentials_encrypted"]
    assert sealed and sealed[0].new == "***"


def test_integration_validation() -> None:
    with pytest.raises(ValidationError):
        Integration(tenant_id=TENANT, type="myspace")
    with pytest.raises(ValidationError):
        Integration(tenant_id=TENANT, type="zapier", status="on")
    assert not Integration(tenant_id=TENANT, type="zapier").has_credentials


# -- read models ------------------------------------------------------------------------------


async def test_read_models_round_trip(owner: Account) -> None:
    blog = GlobalBlog(
        tenant_id=owner.tenant_id, user_id=owner.id, total=3, by_status=BlogCounts(posted=3)
    )
    await blog.insert()
    assert (await GlobalBlog.get(blog.id)).by_status.posted == 3  # type: ignore[union-attr]
    stats = GlobalResearchStats(tenant_id=owner.tenant_id, user_id=owner.id, topics_total=2)
    await stats.insert()
    assert (await GlobalResearchStats.get(stats.id)).topics_total == 2  # type: ignore[union-attr]
    with pytest.raises(DuplicateKeyError):
        await GlobalResearchStats(tenant_id=owner.tenant_id, user_id=owner.id).insert()
