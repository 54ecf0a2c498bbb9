"""`/docs` (Swagger UI) and `/redoc` (ReDoc), served with no request outside the service.

The pages are FastAPI's own; their scripts, stylesheet and icon come from the assets the
`fastapi-offline` package ships (Swagger UI 5 and ReDoc 2 bundles, refreshed from their npm
releases by that package), mounted at `/docs/assets`. The other outside requests the pages
would make are turned off: Google Fonts, Swagger UI's online validator badge, and ReDoc's
"API docs by Redocly" logo, which its bundle loads from a CDN (replaced by an inline image).
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

ASSETS_URL = "/docs/assets"
ASSETS = files("fastapi_offline") / "static"
_REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"
_BLANK_IMAGE = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg'/%3E"


@cache
def redoc_bundle() -> bytes:
    """ReDoc's standalone bundle with its one CDN image replaced by an inline blank one."""
    return (
        (ASSETS / "redoc.standalone.js")
        .read_bytes()
        .replace(_REDOC_LOGO.encode(), _BLANK_IMAGE.encode())
    )


def install_docs(app: FastAPI) -> None:
    """Mount the bundled assets and the two documentation pages (not part of the API)."""
    assert app.openapi_url and app.swagger_ui_oauth2_redirect_url
    openapi_url, oauth2_redirect_url = app.openapi_url, app.swagger_ui_oauth2_redirect_url

    @app.get(f"{ASSETS_URL}/redoc.standalone.js", include_in_schema=False)
    async def redoc_js() -> Response:
        return Response(redoc_bundle(), media_type="text/javascript")

    app.mount(ASSETS_URL, StaticFiles(directory=str(ASSETS)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            oauth2_redirect_url=root + oauth2_redirect_url,
            # No validator badge: it would send the document's URL to validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
