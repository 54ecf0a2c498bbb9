"""HTTP adapters: each module is one domain's router; ALL_ROUTERS is what the app mounts."""

from fastapi import APIRouter

from routes import health

ALL_ROUTERS: list[APIRouter] = [
    health.router,
]
