"""The ASGI entry point (`uvicorn service.main:app`) and the app factory, as the contract names
them. The application is built in the HTTP layer (routes/app.py); this module only exposes it.
"""

from __future__ import annotations

from routes.app import create_app

__all__ = ["app", "create_app"]

app = create_app()
