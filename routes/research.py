"""Research: `/v1/research/topics` (CRUD, results, lifecycle) and `/v1/research/stats`."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from documents.research import ResearchTopic
from routes.deps import (
    CurrentContext,
    IfMatch,
    page_response,
    read_response,
    set_etag,
    set_location,
)
from routes.lifecycle import add_lifecycle_routes
from schemas.common import Page
from schemas.research import (
    RESEARCH_TOPIC_VIEW,
    ResearchFilters,
    ResearchResultIn,
    ResearchStatsParams,
    ResearchStatsRead,
    ResearchTopicCreate,
    ResearchTopicRead,
    ResearchTopicUpdate,
    to_research_stats_read,
    to_research_topic_read,
)
from service import research

router = APIRouter(prefix="/research", tags=["research"])
topics = APIRouter(prefix="/topics")


@router.get("/stats", response_model=ResearchStatsRead)
async def research_stats(
    ctx: CurrentContext, params: Annotated[ResearchStatsParams, Query()]
) -> Any:
    """The `GlobalResearchStats` rollup of a user (the caller unless `user_id`), recomputed now."""
    stats = await research.research_stats(ctx=ctx, user_id=params.user_id)
    return to_research_stats_read(stats)


@topics.post("", response_model=ResearchTopicRead, status_code=status.HTTP_201_CREATED)
async def create_topic(
    body: ResearchTopicCreate, ctx: CurrentContext, request: Request, response: Response
) -> Any:
    """Create a research topic."""
    topic = await research.create_topic(ctx=ctx, data=body)
    set_etag(response, topic.version)
    set_location(request, response, "get_topic", id=topic.id)
    return to_research_topic_read(topic)


@topics.get("", response_model=Page[ResearchTopicRead])
async def list_topics(ctx: CurrentContext, filters: Annotated[ResearchFilters, Query()]) -> Any:
    """The tenant's research topics, newest first."""
    page = await research.list_topics(ctx=ctx, filters=filters)
    return page_response(page, Page[ResearchTopicRead])


@topics.get("/{id}", response_model=ResearchTopicRead)
async def get_topic(id: UUID, ctx: CurrentContext) -> Response:
    """One research topic with its results."""
    topic = await research.get_topic(ctx=ctx, id=id)
    return read_response(RESEARCH_TOPIC_VIEW, topic)


@topics.patch("/{id}", response_model=ResearchTopicRead)
async def update_topic(
    id: UUID, body: ResearchTopicUpdate, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    """Change a topic's name, description, market or tags."""
    topic = await research.update_topic(ctx=ctx, id=id, patch=body, expected_version=if_match)
    set_etag(response, topic.version)
    return to_research_topic_read(topic)


@topics.post("/{id}/results", response_model=ResearchTopicRead, status_code=status.HTTP_201_CREATED)
async def add_result(
    id: UUID,
    body: ResearchResultIn,
    ctx: CurrentContext,
    if_match: IfMatch,
    request: Request,
    response: Response,
) -> Any:
    """Append a research result (409 when the topic holds the most it may)."""
    topic = await research.add_result(ctx=ctx, id=id, data=body, expected_version=if_match)
    set_etag(response, topic.version)
    set_location(request, response, "get_topic", id=id)  # a result lives in its topic
    return to_research_topic_read(topic)


add_lifecycle_routes(
    topics, model=ResearchTopic, read_model=ResearchTopicRead, to_read=to_research_topic_read
)
router.include_router(topics)
