"""The application factory: the HTTP shell around the routers.

`create_app()` wires the lifespan (database, Beanie, journal repair, background work), the
middleware, the problem+json error handlers, the offline docs and the OpenAPI document.
`service.main` re-exports it with the ASGI entry point `app`, as the contract names them.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from importlib.metadata import version
from typing import Any

from fastapi import FastAPI

from documents import AGGREGATE_ROOTS
from routes import API_PREFIX, API_ROUTERS, health
from routes.docs import install_docs
from routes.errors import install_error_handlers
from routes.middleware import (
    BodySizeLimitMiddleware,
    ConditionalGetMiddleware,
    RequestContextMiddleware,
    RequestDeadlineMiddleware,
    TrustedProxyMiddleware,
)
from routes.openapi import TAGS, install_openapi, operation_id
from routes.paths import RouteIndex
from routes.tracing import configure_tracing
from service.auth import AuthCache
from service.background import start_background
from service.core.observability import configure_logging
from service.core.settings import Settings
from service.database import Database, connect, init_models, kind_of
from service.projections import repair

log = logging.getLogger("service")

# One version string: the package's (pyproject.toml), as installed.
API_VERSION = version("lead-ignite-data-service")

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]


def lifespan(settings: Settings, database: Any | None) -> Lifespan:
    """Start-up and shutdown: each step one call; cleanups run in reverse order."""

    @asynccontextmanager
    async def run(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            db = (
                Database(db=database, kind=kind_of(database))
                if database is not None
                else connect(settings)
            )
            stack.push_async_callback(db.close)
            app.state.database = db
            app.state.indexes = await init_models(db.db)  # changed ones: reported in /ready
            await repair(AGGREGATE_ROOTS)  # a crash may have left journal outboxes behind
            background = app.state.background = await start_background(settings)
            stack.push_async_callback(background.stop)  # before the database closes
            db.start()  # embedded snapshots
            # Everything built so far (modules, schemas, routes) lives as long as the process:
            # keep it out of the cyclic GC's full collections, which otherwise walk it each
            # time and pause every request for tens of milliseconds.
            gc.freeze()
            log.info("lead ignite data service started on %s database", db.kind)
            yield

    return run


def create_app(*, settings: Settings | None = None, database: Any | None = None) -> FastAPI:
    """Build a fresh app; with `database` given (an async database object) it is used as is."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    app = FastAPI(
        title="Lead Ignite data service",
        version=API_VERSION,
        description=(
            "The document store behind Lead Ignite: users, teams, campaigns, leads, touchpoint "
            "events, content and analytics. Errors are `application/problem+json`."
        ),
        contact={"name": "Lead Ignite platform team"},
        servers=[{"url": "/", "description": "This service (paths relative to where it runs)"}],
        openapi_tags=TAGS,
        generate_unique_id_function=operation_id,
        docs_url=None,  # served offline by routes/docs.py
        redoc_url=None,
        lifespan=lifespan(settings, database),
    )
    app.state.settings = settings
    app.state.auth_cache = AuthCache(settings.auth_cache_seconds)
    install_error_handlers(app)
    install_openapi(app)
    install_docs(app)
    app.include_router(health.router)
    for router in API_ROUTERS:
        app.include_router(router, prefix=API_PREFIX)
    app.state.route_index = RouteIndex(app.routes)
    # Added last = outermost: proxies first (everything after sees the real client), then the
    # request id and access log, which cover the body-size refusals and 304s too.
    app.add_middleware(
        RequestDeadlineMiddleware,
        seconds=settings.request_timeout_ms / 1000,
        overrides={f"{API_PREFIX}/leads/bulk": None},  # up to 16 MiB of leads: batch work
    )
    app.add_middleware(ConditionalGetMiddleware)
    app.add_middleware(
        BodySizeLimitMiddleware,
        default=settings.max_body_bytes,
        overrides={f"{API_PREFIX}/leads/bulk": settings.bulk_max_body_bytes},
    )
    app.add_middleware(RequestContextMiddleware)
    if settings.trusted_proxies:
        app.add_middleware(TrustedProxyMiddleware, trusted=settings.trusted_proxies)
    configure_tracing(app, settings)  # off unless the OTEL_* variables ask for it
    return app
