"""The application factory: `create_app()` builds the API, `app` is the ASGI entry point."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from documents import AGGREGATE_ROOTS
from routes import ALL_ROUTERS
from routes.middleware import BodySizeLimitMiddleware, RequestContextMiddleware
from service.auth import AuthCache
from service.background import start_background
from service.database import Database, connect, init_models, kind_of
from service.errors import install_error_handlers
from service.journal import ensure_outbox_indexes
from service.observability import configure_logging
from service.openapi import install_openapi
from service.projections import repair
from service.settings import Settings

log = logging.getLogger("service")

API_VERSION = "1.0.0"


def create_app(*, settings: Settings | None = None, database: Any | None = None) -> FastAPI:
    """Build a fresh app; with `database` given (a Motor-compatible database) it is used as is."""
    settings = settings or Settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db: Database = (
            Database(db=database, kind=kind_of(database))
            if database is not None
            else connect(settings)
        )
        app.state.database = db
        try:
            await init_models(db.db)
            await ensure_outbox_indexes(AGGREGATE_ROOTS)
            await repair(AGGREGATE_ROOTS)  # a crash may have left journal outboxes behind
            background = app.state.background = await start_background(settings)
            db.start()
            # Everything built so far (modules, schemas, routes) lives as long as the process:
            # keep it out of the cyclic GC's full collections, which otherwise walk it each
            # time and pause every request for tens of milliseconds.
            gc.freeze()
            log.info("lead ignite data service started on %s database", db.kind)
            try:
                yield
            finally:
                await background.stop()
        finally:
            await db.close()

    app = FastAPI(
        title="Lead Ignite data service",
        version=API_VERSION,
        description=(
            "The document store behind Lead Ignite: users, teams, campaigns, leads, touchpoint "
            "events, content and analytics. Errors are `application/problem+json`."
        ),
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.auth_cache = AuthCache(settings.auth_cache_seconds)
    install_error_handlers(app)
    install_openapi(app)
    # Added last = outermost: the request id and access log cover the body-size refusals too.
    app.add_middleware(
        BodySizeLimitMiddleware,
        default=settings.max_body_bytes,
        overrides={"/v1/leads/bulk": settings.bulk_max_body_bytes},
    )
    app.add_middleware(RequestContextMiddleware)
    for router in ALL_ROUTERS:
        app.include_router(router)
    return app


app = create_app()
