"""Research topics: create, read, list, edit and append results (bounded per topic)."""

from __future__ import annotations

from uuid import UUID

from documents.base import utcnow
from documents.research import MAX_RESULTS_PER_TOPIC, ResearchTopic, TopicResearchResult
from documents.workspace_read_models import GlobalResearchStats
from schemas.research import (
    RESEARCH_TOPIC_VIEW,
    ResearchFilters,
    ResearchResultIn,
    ResearchTopicCreate,
    ResearchTopicRead,
    ResearchTopicUpdate,
)
from service import read_models
from service.core.context import RequestContext
from service.core.errors import Conflict
from service.core.pagination import PageResult
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository, equal_to

POLICY: ResourcePolicy[ResearchTopic] = register_policy(ResourcePolicy(model=ResearchTopic))
"""Members and above write ResearchTopic documents (the default roles)."""


def _result(data: ResearchResultIn) -> TopicResearchResult:
    values = data.model_dump(exclude={"researched_at"})
    return TopicResearchResult(**values, researched_at=data.researched_at or utcnow())


async def create_topic(*, ctx: RequestContext, data: ResearchTopicCreate) -> ResearchTopic:
    """Create a research topic (with its first results, if any)."""
    POLICY.require(ctx, Action.create)
    topic = ResearchTopic(
        tenant_id=ctx.tenant_id,
        user_id=ctx.user_id,
        topic=data.topic,
        description=data.description,
        market=data.market,
        tags=data.tags,
        results=[_result(r) for r in data.results],
    )
    return await Repository(ResearchTopic, ctx).create(topic)


async def get_topic(*, ctx: RequestContext, id: UUID) -> ResearchTopicRead:
    """One topic of the tenant."""
    return await Repository(ResearchTopic, ctx).read(id, RESEARCH_TOPIC_VIEW)


async def list_topics(
    *, ctx: RequestContext, filters: ResearchFilters
) -> PageResult[ResearchTopicRead]:
    """A page of the tenant's topics, newest first."""
    query = equal_to(filters, {"tag": "tags", "user_id": "user_id"})
    return await Repository(ResearchTopic, ctx).page_for(query, filters, view=RESEARCH_TOPIC_VIEW)


async def update_topic(
    *, ctx: RequestContext, id: UUID, patch: ResearchTopicUpdate, expected_version: int | None
) -> ResearchTopic:
    """Change a topic's own fields."""
    POLICY.require(ctx, Action.update)
    repo = Repository(ResearchTopic, ctx)
    topic = await repo.get(id)
    return await repo.update(topic, patch.changes(), expected_version=expected_version)


async def add_result(
    *, ctx: RequestContext, id: UUID, data: ResearchResultIn, expected_version: int | None
) -> ResearchTopic:
    """Append a research result; 409 once the topic holds `MAX_RESULTS_PER_TOPIC`."""
    POLICY.require(ctx, Action.update)
    repo = Repository(ResearchTopic, ctx)
    topic = await repo.get(id)
    if len(topic.results) >= MAX_RESULTS_PER_TOPIC:
        raise Conflict(f"A topic holds at most {MAX_RESULTS_PER_TOPIC} results; start a new topic.")
    results = [*(r.model_dump() for r in topic.results), _result(data).model_dump()]
    return await repo.update(
        topic, {"results": results}, expected_version=expected_version, event_type="result_added"
    )


async def research_stats(*, ctx: RequestContext, user_id: UUID | None) -> GlobalResearchStats:
    """The `GlobalResearchStats` read model of a user (the caller's; another's needs admin)."""
    return await read_models.research_stats(ctx=ctx, user_id=user_id)
