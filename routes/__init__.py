"""HTTP adapters: each module is one domain's router; ALL_ROUTERS is what the app mounts."""

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
    events,
    health,
    integrations,
    invitations,
    kanban,
    leads,
    read_models,
    research,
    saved_searches,
    teams,
    users,
    webhooks,
)

# Routes are matched in order: the hottest read paths come first.
ALL_ROUTERS: list[APIRouter] = [
    health.router,
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
]
