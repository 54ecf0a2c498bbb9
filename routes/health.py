"""The root (links to the docs), liveness, readiness and Prometheus metrics (`METRICS_TOKEN`)."""

from __future__ import annotations

import hmac
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from routes.deps import SettingsDep
from service.core.errors import NotFound, ServiceUnavailable, Unauthorized
from service.core.observability import metrics_payload
from service.database import ping

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
    # Start-up's index comparison (service/storage/indexes.py): "as declared", or what differs.
    indexes: str = "as declared"


class Root(BaseModel):
    """Where to start: the interactive docs, the reference and the OpenAPI document."""

    service: str
    version: str
    docs: str = Field(description="Interactive docs (Swagger UI, served offline).")
    redoc: str = Field(description="The API reference (ReDoc, served offline).")
    openapi: str = Field(description="The OpenAPI document.")
    api: str = Field(description="The prefix of the versioned API.")


@router.get("/", response_model=Root, summary="Links to the docs")
async def root(request: Request) -> Root:
    """What a first visit needs: links to `/docs`, `/redoc` and `/openapi.json`.

    Not part of the versioned API (`/v1`); it never touches the database.
    """
    return Root(
        service=request.app.title,
        version=request.app.version,
        docs="/docs",
        redoc="/redoc",
        openapi="/openapi.json",
        api="/v1",
    )


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
    report = getattr(request.app.state, "indexes", None)
    return Ready(database=database.kind, indexes=report.summary() if report else "as declared")


_metrics_bearer = HTTPBearer(
    auto_error=False, scheme_name="MetricsToken", description="The `METRICS_TOKEN` setting."
)


async def require_metrics_token(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_metrics_bearer)],
) -> None:
    """404 while METRICS_TOKEN is unset (metrics are off); 401 unless the bearer token is it."""
    if settings.metrics_token is None:
        raise NotFound("Metrics are off: set METRICS_TOKEN to turn them on.")
    expected = settings.metrics_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials else b""
    if not hmac.compare_digest(given, expected):  # constant time: the token cannot be guessed
        raise Unauthorized("`/metrics` needs `Authorization: Bearer <METRICS_TOKEN>`.")


@router.get(
    "/metrics",
    response_class=Response,
    dependencies=[Depends(require_metrics_token)],
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus metrics (text exposition format).",
        },
        404: {"description": "Metrics are off (METRICS_TOKEN is unset)."},
    },
)
async def metrics() -> Response:
    """Prometheus metrics: request counts and latency by route and status, MongoDB latency.

    Needs `Authorization: Bearer <METRICS_TOKEN>`; answers 404 while `METRICS_TOKEN` is unset.
    """
    payload, content_type = metrics_payload()
    return Response(payload, media_type=content_type)
