"""The HTTP layer: one router per domain, plus the shell around them.

`app.py` builds the application (lifespan, middleware, error handlers, docs, OpenAPI);
`errors.py` renders every error as problem+json; `openapi.py` shapes the document;
`docs.py` serves /docs and /redoc offline; `middleware.py`, `paths.py` and `deps.py` hold
what routers share. `API_ROUTERS` is mounted under `API_PREFIX`; each router carries only
its own part of the path (`APIRouter(prefix="/leads")`).
"""

from fastapi import APIRouter

from routes import (
    ai,
    analytics,
    api_keys,
    audit,
    auth,
    billing,
    blogs,
    campaigns,
    changes,
    consent,
    events,
    integrations,
    invitations,
    kanban,
    leads,
    read_models,
    recipients,
    research,
    saved_searches,
    suppressions,
    teams,
    tenant,
    users,
    webhooks,
)

API_PREFIX = "/v1"

# Routes are matched in order: the hottest read paths come first.
API_ROUTERS: list[APIRouter] = [
    campaigns.router,
    leads.router,
    events.router,
    auth.router,
    users.router,
    api_keys.router,
    teams.router,
    invitations.router,
    blogs.router,
    kanban.router,
    research.router,
    ai.router,
    billing.router,
    integrations.router,
    saved_searches.router,
    analytics.router,
    audit.router,
    read_models.router,
    changes.router,
    webhooks.router,
    tenant.router,
    consent.router,
    suppressions.router,
    recipients.router,
]
