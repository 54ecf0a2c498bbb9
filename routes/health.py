"""Liveness and readiness."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel

from service.database import ping
from service.errors import ServiceUnavailable
from service.observability import metrics_payload

router = APIRouter(tags=["health"])


class Health(BaseModel):
    """Liveness: the process is up; `database` says which kind it runs on."""

    status: Literal["ok"] = "ok"
    database: Literal["mongodb", "embedded"]
    version: str


class Ready(BaseModel):
    """Readiness: the database answered a ping."""

    status: Literal["ready"] = "ready"
    database: Literal["mongodb", "embedded"]


@router.get("/health", response_model=Health)
async def health(request: Request) -> Health:
    """Liveness; never touches the database."""
    return Health(database=request.app.state.database.kind, version=request.app.version)


@router.get(
    "/ready",
    response_model=Ready,
    responses={503: {"description": "The database does not answer."}},
)
async def ready(request: Request) -> Ready:
    """200 when the database answers a ping, else 503."""
    database = request.app.state.database
    if not await ping(database.db):
        raise ServiceUnavailable("The database does not answer a ping.")
    return Ready(database=database.kind)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus metrics."}},
)
async def metrics() -> Response:
    """Prometheus metrics: request counts and latency by route and status, MongoDB latency."""
    payload, content_type = metrics_payload()
    return Response(payload, media_type=content_type)
