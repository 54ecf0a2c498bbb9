"""One set of exception handlers renders every error as problem+json (RFC 9457).

Domain errors (service/core/errors.py) carry their status and extras; validation errors become
422 with `errors` worded for people; a body in a media type the operation does not take is
415; a fixed path asked for with a method it lacks is 405 with `Allow`; driver outages are
503 with `Retry-After`; anything unexpected is a logged 500 that shows no internals.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.params import Form
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pymongo.errors import DuplicateKeyError, PyMongoError, ServerSelectionTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

from routes.paths import PathMethods, RouteIndex
from service.core.errors import (
    DATABASE_RETRY_AFTER,
    DATABASE_UNAVAILABLE,
    DomainError,
    readable,
    validation_errors,
)

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
JSON = "application/json"
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_TITLES = {
    404: "Not Found",
    405: "Method Not Allowed",
    413: "Content Too Large",
    415: "Unsupported Media Type",
}


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """An RFC 9457 problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _documented(request: Request) -> PathMethods | None:
    index: RouteIndex = request.app.state.route_index
    return index.lookup(request.scope.get("path", ""))


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem(exc.status, exc.title, exc.detail, exc.headers or None, **exc.extra)


def _method_not_allowed(request: Request) -> JSONResponse | None:
    """405 when the path names a fixed resource that lacks this method.

    Without this, `PATCH /v1/blogs/calendar` would reach `PATCH /v1/blogs/{id}` and answer
    422 for the id "calendar"; HTTP says the resource exists but not the method.
    """
    found = _documented(request)
    if found is None or not found.fixed or request.method in found.methods:
        return None
    return problem(
        405, "Method Not Allowed", "Method Not Allowed", {"Allow": ", ".join(found.methods)}
    )


def _media_type(value: str) -> str:
    return value.split(";", 1)[0].strip().lower()


def _unsupported_media_type(request: Request) -> JSONResponse | None:
    """415 when a body comes in a media type the operation does not read (e.g. text/plain).

    Checked only once validation failed: the framework reads an unexpected media type as
    raw bytes (JSON operations) or as an empty form, which then fails validation.
    """
    body_field = getattr(request.scope.get("route"), "body_field", None)
    if body_field is None:
        return None
    content_type = request.headers.get("content-type")
    has_body = request.headers.get("content-length", "0") != "0" or (
        "transfer-encoding" in request.headers
    )
    if content_type is None and not has_body:
        return None  # no body at all: the 422 says what is missing
    form = isinstance(body_field.field_info, Form)
    kind = _media_type(content_type or "")
    if form and kind in FORM_TYPES:
        return None
    if not form and (kind == JSON or (kind.startswith("application/") and kind.endswith("+json"))):
        return None
    got = f"`{kind}`" if kind else "no Content-Type"
    if form:
        detail = (
            f"This operation reads a form (`application/x-www-form-urlencoded`) with "
            f"{_form_fields(body_field)}; it got {got}. JSON is not accepted here."
        )
        accept = ", ".join(FORM_TYPES)
    else:
        detail = f"This operation reads JSON (`Content-Type: {JSON}`); it got {got}."
        accept = JSON
    return problem(415, "Unsupported Media Type", detail, {"Accept": accept})


def _form_fields(body_field: Any) -> str:
    """`username`, `password` (optional: `otp`): the fields of a form body, for people."""
    model = getattr(body_field.field_info, "annotation", None)
    fields: dict[str, Any] = getattr(model, "model_fields", {})
    required = [f"`{info.alias or name}`" for name, info in fields.items() if info.is_required()]
    optional = [f"`{info.alias or n}`" for n, info in fields.items() if not info.is_required()]
    text = "the fields " + ", ".join(required or ["(none required)"])
    return f"{text} (optional: {', '.join(optional)})" if optional else text


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | ValidationError)
    if isinstance(exc, RequestValidationError):
        refused = _method_not_allowed(request) or _unsupported_media_type(request)
        if refused is not None:
            return refused
    body = getattr(exc, "body", None)
    body_field = getattr(request.scope.get("route"), "body_field", None)
    return problem(
        422,
        "Unprocessable Entity",
        "The request is not valid.",
        errors=validation_errors(
            list(exc.errors()),
            body=body,
            under=("body",),
            revalidate=(lambda value: body_field.validate(value)[1]) if body_field else None,
        ),
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = readable(exc.detail) if isinstance(exc.detail, str) else _TITLES.get(status, "Error")
    headers = dict(exc.headers or {})
    if status == 405:
        # The router names only the first route that matched the path; RFC 9110 wants them all.
        found = _documented(request)
        if found is not None:
            headers["Allow"] = ", ".join(found.methods)
    return problem(status, _TITLES.get(status, detail), detail, headers)


async def _duplicate(_: Request, exc: Exception) -> JSONResponse:  # noqa: ARG001  (handler signature)
    # Unique indexes are the last word on uniqueness; services usually turn this into a richer 409.
    return problem(409, "Conflict", "A resource with the same unique key already exists.")


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    # A time limit that ran out (the request's budget, `maxTimeMS`, a write concern's
    # `wtimeout`) is not an unreachable server: say which, so an operator looks in the right place.
    timed_out = (
        isinstance(exc, PyMongoError)
        and exc.timeout
        and not isinstance(exc, ServerSelectionTimeoutError)  # no server found: unreachable
    )
    log.error("database %s: %s", "timeout" if timed_out else "unavailable", type(exc).__name__)
    detail = (
        "The database did not answer within the request's time budget; retry shortly."
        if timed_out
        else "The database is not reachable; retry shortly."
    )
    return problem(
        503,
        "Service Unavailable",
        detail,
        {"Retry-After": str(DATABASE_RETRY_AFTER)},
        retry_after=DATABASE_RETRY_AFTER,
    )


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "Internal Server Error", "An unexpected error occurred.")


def install_error_handlers(app: FastAPI) -> None:
    """Register the problem+json renderers for every kind of error."""
    app.add_exception_handler(DomainError, _domain)
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ValidationError, _request_validation)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(DuplicateKeyError, _duplicate)
    for exc_type in DATABASE_UNAVAILABLE:
        app.add_exception_handler(exc_type, _unavailable)
    app.add_exception_handler(Exception, _unexpected)
