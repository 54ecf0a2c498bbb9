"""HTTP adapters: each module is one domain's router; ALL_ROUTERS is what the app mounts."""

from fastapi import APIRouter

from routes import ai, billing, blogs, health, integrations, kanban, research, saved_searches
from routes import api_keys, auth, invitations, teams, users
from routes import analytics, audit, read_models
from routes import campaigns, events, leads

ALL_ROUTERS: list[APIRouter] = [
    health.router,
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
    campaigns.router,
    leads.router,
    events.router,
]
