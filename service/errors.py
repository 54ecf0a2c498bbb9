"""Domain errors: exceptions carrying their HTTP status, raised by services, rendered elsewhere.

The HTTP layer (routes/errors.py) turns a `DomainError` into a problem+json answer: `status`,
`title` and `detail` plus the keyword extras (`existing_id`, `field`, `retry_after`…) as body
fields, and `headers` as response headers. Nothing here knows about the web framework.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any
from uuid import UUID

from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    ExecutionTimeout,
    NetworkTimeout,
    ServerSelectionTimeoutError,
    WTimeoutError,
)

# Driver errors that mean "the database is away or too slow": answered 503 with Retry-After.
DATABASE_UNAVAILABLE = (
    AutoReconnect,
    ConnectionFailure,
    ServerSelectionTimeoutError,
    NetworkTimeout,
    ExecutionTimeout,
    WTimeoutError,
)
DATABASE_RETRY_AFTER = 5


class DomainError(Exception):
    """Base of errors the API answers on purpose; `status` and `title` make the problem."""

    status: int = 400
    title: str = "Bad Request"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(detail or self.title)
        self.detail = readable(detail or self.title)
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
    """409. A clash with an existing resource names it: `existing_id` and the clashing `field`.

    Every duplicate clash (create, update, restore, merge) answers the same body, so raise
    `Conflict.duplicate(...)` for those; other conflicts (a state transition, a full board)
    carry only `detail`.
    """

    status, title = 409, "Conflict"

    def __init__(
        self,
        detail: str | None = None,
        *,
        existing_id: UUID | str | None = None,
        field: str | None = None,
        **extra: Any,
    ) -> None:
        if existing_id is not None:
            extra["existing_id"] = str(existing_id)
        if field is not None:
            extra["field"] = field
        super().__init__(detail, **extra)

    @classmethod
    def duplicate(cls, *, resource: str, field: str, existing_id: UUID | str) -> Conflict:
        """The clash of a unique `field` with the live `resource` `existing_id`."""
        return cls(
            f"A {resource} with the same {field} already exists.",
            existing_id=existing_id,
            field=field,
        )


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
        super().__init__(detail, errors=[{"loc": where, "msg": readable(detail), "type": type}])


class TooManyRequests(DomainError):
    """429; `retry_after` (seconds) is sent both as the `Retry-After` header and in the body."""

    status, title = 429, "Too Many Requests"

    def __init__(self, detail: str, *, retry_after: int) -> None:
        seconds = max(1, retry_after)
        super().__init__(detail, retry_after=seconds)
        self.headers = {"Retry-After": str(seconds)}


class ServiceUnavailable(DomainError):
    status, title = 503, "Service Unavailable"


# -- error text for people ----------------------------------------------------------------------

# `<CampaignType.call: 'call'>` (an enum's repr) reads as `'call'`.
_ENUM_REPR = re.compile(r"<[A-Za-z_][\w.]*: ('[^']*'|\"[^\"]*\"|-?\d+(?:\.\d+)?)>")
# Pydantic's prefixes for errors raised inside validators.
_PREFIXES = ("Value error, ", "Assertion failed, ")
# Pydantic names internal validator steps in `loc` (`function-after[_check(), LeadCreate]`).
_INTERNAL_LOC = re.compile(r"^[a-z][a-z-]*\[.*\]$")


def readable(text: str) -> str:
    """Text for people: enum reprs become their values; pydantic's prefixes go."""
    for prefix in _PREFIXES:
        text = text.removeprefix(prefix)
    return _ENUM_REPR.sub(r"\1", text)


def _message(error: dict[str, Any]) -> str:
    kind = error.get("type")
    ctx: dict[str, Any] = error.get("ctx") or {}
    if kind == "union_tag_not_found":
        return "A `type` is required: it chooses which kind of resource this is."
    if kind == "union_tag_invalid":
        expected = readable(str(ctx.get("expected_tags", "")))
        return f"`type` must be one of {expected}; got {ctx.get('tag')!r}."
    if kind in ("model_type", "model_attributes_type", "dataclass_type"):
        return "Input should be a JSON object."
    if kind == "json_invalid":
        reason = ctx.get("error")
        return f"The body is not valid JSON: {reason}." if reason else "The body is not valid JSON."
    return readable(str(error.get("msg", "")))


def _location(error: dict[str, Any]) -> list[str | int]:
    loc = [p if isinstance(p, int) else str(p) for p in error.get("loc", ())]
    loc = [p for p in loc if not (isinstance(p, str) and _INTERNAL_LOC.match(p))]
    if error.get("type") in ("union_tag_not_found", "union_tag_invalid"):
        loc.append(str(error.get("ctx", {}).get("discriminator", "type")).strip("'"))
    return loc


def validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Pydantic errors as the contract's JSON-safe `{loc, msg, type}` items, worded for people."""
    return [
        {
            "loc": _location(e),
            "msg": _message(e),
            "type": str(e.get("type", "value_error")),
        }
        for e in errors
    ]
