"""OpenAPI post-processing: every error a route can answer is documented as problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from schemas.common import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
TITLES = {
    401: "Missing, invalid or expired credentials",
    403: "The caller's role is too low",
    404: "Not found (or another tenant's)",
    405: "Method not allowed",
    409: "Conflict",
    412: "If-Match names a stale version",
    413: "Request body too large",
    422: "Invalid input",
    429: "Too many requests",
    503: "The database is unavailable",
}
PUBLIC = {401, 404, 413, 422, 429, 503}
AUTHENTICATED = PUBLIC | {401, 403, 409, 412}


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
    }


def install_openapi(app: FastAPI) -> None:
    """Replace the app's OpenAPI builder with one that documents problem+json errors."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components["Problem"] = Problem.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        for name in ("HTTPValidationError", "ValidationError"):
            components.pop(name, None)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                codes = AUTHENTICATED if operation.get("security") else PUBLIC
                responses = operation["responses"]
                for code in sorted(codes):
                    key = str(code)
                    if key in responses and "content" in responses[key] and key != "422":
                        continue
                    responses[key] = _problem(TITLES[code])
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
