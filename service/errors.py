"""Domain errors carry their HTTP status; one set of handlers renders all errors as problem+json."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    ServerSelectionTimeoutError,
    WTimeoutError,
)
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.openapi import documented_methods

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"

DATABASE_UNAVAILABLE = (
    AutoReconnect,
    ConnectionFailure,
    ServerSelectionTimeoutError,
    NetworkTimeout,
    ExecutionTimeout,
    WTimeoutError,
)


class DomainError(Exception):
    """Base of errors the API answers on purpose; `status` and `title` make the problem."""

    status: int = 400
    title: str = "Bad Request"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.extra = extra
        self.headers: dict[str, str] = {}


class Unauthorized(DomainError):
    status, title = 401, "Unauthorized"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail, **extra)
        self.headers = {"WWW-Authenticate": "Bearer"}


class Forbidden(DomainError):
    status, title = 403, "Forbidden"


class NotFound(DomainError):
    status, title = 404, "Not Found"


class Conflict(DomainError):
    status, title = 409, "Conflict"


class Gone(DomainError):
    """The resource existed but is no longer usable (an expired or revoked invitation)."""

    status, title = 410, "Gone"


class PreconditionFailed(DomainError):
    status, title = 412, "Precondition Failed"


class Unprocessable(DomainError):
    """422 with the contract's `errors` list; `loc` names the offending input."""

    status, title = 422, "Unprocessable Entity"

    def __init__(
        self, detail: str, *, loc: Sequence[str | int] | None = None, type: str = "value_error"
    ) -> None:
        where = list(loc) if loc else ["body"]
        super().__init__(detail, errors=[{"loc": where, "msg": detail, "type": type}])


class TooManyRequests(DomainError):
    status, title = 429, "Too Many Requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        super().__init__(detail)
        self.headers = {"Retry-After": str(max(1, retry_after))}


class ServiceUnavailable(DomainError):
    status, title = 503, "Service Unavailable"


def problem(
    status: int, title: str, detail: str, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    """An RFC 9457 problem+json response."""
    body = {"type": "about:blank", "title": title, "status": status, "detail": detail, **extra}
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def validation_errors(errors: list[Any]) -> list[dict[str, Any]]:
    """Pydantic/FastAPI errors reduced to JSON-safe `{loc, msg, type}` items."""
    return [
        {
            "loc": [str(p) if not isinstance(p, int) else p for p in e.get("loc", ())],
            "msg": str(e.get("msg", "")),
            "type": str(e.get("type", "value_error")),
        }
        for e in errors
    ]


async def _domain(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    return problem(exc.status, exc.title, exc.detail, exc.headers or None, **exc.extra)


def _method_not_allowed(request: Request) -> JSONResponse | None:
    """405 when the path names a fixed resource that lacks this method.

    Without this, `PATCH /v1/blogs/calendar` would reach `PATCH /v1/blogs/{id}` and answer
    422 for the id "calendar"; HTTP says the resource exists but not the method.
    """
    found = documented_methods(request.app, request.scope.get("path", ""))
    if found is None or not found.fixed or request.method in found.methods:
        return None
    return problem(
        405, "Method Not Allowed", "Method Not Allowed", {"Allow": ", ".join(found.methods)}
    )


async def _request_validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError | ValidationError)
    if isinstance(exc, RequestValidationError):
        not_allowed = _method_not_allowed(request)
        if not_allowed is not None:
            return not_allowed
    return problem(
        422,
        "Unprocessable Entity",
        "The request is not valid.",
        errors=validation_errors(list(exc.errors())),
    )


async def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    titles = {404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large"}
    detail = exc.detail if isinstance(exc.detail, str) else titles.get(exc.status_code, "Error")
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        # The router names only the first route that matched the path; RFC 9110 wants them all.
        found = documented_methods(request.app, request.scope.get("path", ""))
        if found is not None:
            headers["Allow"] = ", ".join(found.methods)
    return problem(exc.status_code, titles.get(exc.status_code, detail), detail, headers)


async def _duplicate(_: Request, exc: Exception) -> JSONResponse:
    # Unique indexes are the last word on uniqueness; services usually turn this into a richer 409.
    return problem(409, "Conflict", "A resource with the same unique key already exists.")


async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
    log.error("database unavailable: %s", type(exc).__name__)
    return problem(
        503,
        "Service Unavailable",
        "The database is not reachable; retry shortly.",
        {"Retry-After": "5"},
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
