"""OpenAPI post-processing: every error a route can answer is documented as problem+json."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from schemas.common import Problem

PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}
TITLES = {
    400: "The request body could not be parsed",
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


_HTTP_METHODS = frozenset({"get", "put", "post", "delete", "patch", "head", "options", "trace"})


@dataclass(frozen=True, slots=True)
class PathMethods:
    """The methods OpenAPI documents for one path; `fixed` when the path has no parameters."""

    template: str
    fixed: bool
    methods: tuple[str, ...]
    regex: re.Pattern[str]


def _path_index(app: FastAPI) -> list[PathMethods]:
    index: list[PathMethods] | None = getattr(app.state, "openapi_path_index", None)
    if index is None:
        index = []
        for template, item in app.openapi().get("paths", {}).items():
            pattern = re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template))
            methods = tuple(sorted(m.upper() for m in item if m in _HTTP_METHODS))
            index.append(PathMethods(template, "{" not in template, methods, re.compile(pattern)))
        # A fixed path (`/v1/blogs/calendar`) outranks a template that also matches it.
        index.sort(key=lambda entry: not entry.fixed)
        app.state.openapi_path_index = index
    return index


def documented_methods(app: FastAPI, path: str) -> PathMethods | None:
    """The documented resource a request path names, with its methods (for `Allow` and 405)."""
    return next((e for e in _path_index(app) if e.regex.fullmatch(path)), None)


def _problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": PROBLEM_REF}},
    }


def _errors_as_problems(responses: dict[str, Any]) -> None:
    """Every error a route declares itself is problem+json too, whatever media type it named."""
    for key, response in responses.items():
        if not key.isdigit() or int(key) < 400:
            continue
        content: dict[str, Any] = response.get("content") or {}
        if set(content) != {"application/problem+json"}:
            first: dict[str, Any] = next(iter(content.values()), {})
            schema = first.get("schema") or PROBLEM_REF
            response["content"] = {"application/problem+json": {"schema": schema}}


def _closed_pattern_properties(node: Any) -> None:
    """Maps with constrained keys (`patternProperties`) refuse other keys: say so.

    Pydantic validates dict keys, so a key outside the pattern is a 422; without
    `additionalProperties: false` the schema would call such a body valid.
    """
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for value in node.values():
            _closed_pattern_properties(value)
    elif isinstance(node, list):
        for value in node:
            _closed_pattern_properties(value)


def _without_null(schema: dict[str, Any]) -> None:
    options = schema.get("anyOf")
    if not options or {"type": "null"} not in options:
        return
    rest = [o for o in options if o != {"type": "null"}]
    del schema["anyOf"]
    if len(rest) == 1:
        schema.update(rest[0])
    else:
        schema["anyOf"] = rest


def _no_null_form_fields(operation: dict[str, Any], components: dict[str, Any]) -> None:
    """Form fields, like parameters, are left out rather than sent as the text `null`."""
    content = operation.get("requestBody", {}).get("content", {})
    form = content.get("application/x-www-form-urlencoded")
    if form is None:
        return
    schema = form.get("schema", {})
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        schema = components.get(ref.rsplit("/", 1)[1], {})
    for prop in schema.get("properties", {}).values():
        _without_null(prop)


def _no_null_parameters(operation: dict[str, Any]) -> None:
    """Optional parameters are left out, never sent as `null`: drop `null` from their schemas.

    FastAPI documents `str | None` as `anyOf: [string, null]`, which tells clients that the
    literal text `null` is a valid header or query value.
    """
    for parameter in operation.get("parameters", []):
        _without_null(parameter.get("schema", {}))


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
        _closed_pattern_properties(components)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                if not isinstance(operation, dict) or "responses" not in operation:
                    continue
                codes = AUTHENTICATED if operation.get("security") else PUBLIC
                if "requestBody" in operation:
                    # FastAPI answers 400 when a body is not decodable at all (e.g. not UTF-8).
                    codes = codes | {400}
                responses = operation["responses"]
                for code in sorted(codes):
                    key = str(code)
                    if key in responses and "content" in responses[key] and key != "422":
                        continue
                    responses[key] = _problem(TITLES[code])
                _errors_as_problems(responses)
                _no_null_parameters(operation)
                _no_null_form_fields(operation, components)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
