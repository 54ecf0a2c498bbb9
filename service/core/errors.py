"""Domain errors: exceptions carrying their HTTP status, raised by services, rendered elsewhere.

The HTTP layer (routes/errors.py) turns a `DomainError` into a problem+json answer: `status`,
`title` and `detail` plus the keyword extras (`existing_id`, `field`, `retry_after`…) as body
fields, and `headers` as response headers. Nothing here knows about the web framework.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
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


# Plain words for the `pattern`s the API's fields use; any other pattern gets the generic text.
_PATTERNS = {
    r"^[^$.\x00]+$": "Must not contain `$`, `.` or a NUL character.",
    r"^[^\x00-\x1f]+$": "Must not contain control characters.",
    r"^\d{6}$": "Must be 6 digits.",
    r"^\d{4}$": "Must be 4 digits.",
    r"^\d{2}:\d{2}$": "Must be a time of day as HH:MM, such as 09:30.",
    r"^\d{4}-\d{2}$": "Must be a month as YYYY-MM, such as 2026-01.",
    r"^(19[7-9]\d|2\d{3})-(0[1-9]|1[0-2])$": "Must be a month as YYYY-MM, such as 2026-01.",
    r"^[A-Z]{2}$": "Must be a two-letter region code in capitals, such as US.",
    r"^[A-Z]{3}$": "Must be a three-letter currency code in capitals, such as USD.",
    r"^#[0-9a-fA-F]{6}$": "Must be a colour as #RRGGBB, such as #1a2b3c.",
    r"^[A-Za-z0-9_-]+$": "May contain only letters, digits, `_` and `-`.",
    r"^[A-Za-z0-9_=-]+$": "Is not a token this API issued.",
    r"^[a-z][a-z0-9_]*$": "Must start with a lower-case letter, then lower-case letters, "
    "digits or `_`.",
    r"^[0-9a-f]{64}$": "Must be 64 lower-case hexadecimal digits.",
}
_EMAIL = "value is not a valid email address"
# Keys that choose the member of a discriminated union (`type` for leads and campaigns).
_TAG_KEYS = ("type", "resource")
_SENTINEL = "\x00?"

Loc = Sequence[str | int]
Revalidate = Callable[[Any], Sequence[Any]]
"""Validates an input again and returns its pydantic errors (finds a union's valid tags)."""


def _message(error: dict[str, Any], tags: str | None = None) -> str:
    kind = error.get("type")
    ctx: dict[str, Any] = error.get("ctx") or {}
    if kind == "union_tag_not_found":
        listed = f" one of {tags}" if tags else ""
        return f"A `type` is required:{listed} it chooses which kind of resource this is."
    if kind == "union_tag_invalid":
        expected = readable(str(ctx.get("expected_tags", "")))
        return f"`type` must be one of {expected}; got {ctx.get('tag')!r}."
    if kind in ("model_type", "model_attributes_type", "dataclass_type"):
        return "Input should be a JSON object."
    if kind == "json_invalid":
        reason = ctx.get("error")
        return f"The body is not valid JSON: {reason}." if reason else "The body is not valid JSON."
    if kind == "string_pattern_mismatch":
        return _PATTERNS.get(
            str(ctx.get("pattern", "")),
            "Is not in the form this field takes (see its description in the API reference).",
        )
    text = readable(str(error.get("msg", "")))
    if text.startswith(_EMAIL):  # email-validator's reasons are its own wording
        return "Not a valid email address: expected something like name@example.com."
    return text


def _location(error: dict[str, Any], body: Any = None, under: Loc = ()) -> list[str | int]:
    """Where the error is in the input as sent: the JSON path, never a union member's tag.

    Pydantic puts the tag of the union member it tried into `loc` (`["body", "generic",
    "email"]`); the API reports the field where it is in the JSON (`["body", "email"]`), the
    same place a service-raised 422 names. `body` is the input, found in `loc` under `under`
    (`("body",)` for a request body).
    """
    loc = [p if isinstance(p, int) else str(p) for p in error.get("loc", ())]
    loc = [p for p in loc if not (isinstance(p, str) and _INTERNAL_LOC.match(p))]
    if body is not None and tuple(loc[: len(under)]) == tuple(under):
        node, kept = body, loc[: len(under)]
        for part in loc[len(under) :]:
            if isinstance(node, dict) and part not in node and part in _tags_of(node):
                continue  # the union member pydantic tried, not a place in the JSON
            kept.append(part)
            node = _child(node, part)
        loc = kept
    if error.get("type") in ("union_tag_not_found", "union_tag_invalid"):
        loc.append(str(error.get("ctx", {}).get("discriminator", "type")).strip("'"))
    return loc


def _tags_of(node: dict[str, Any]) -> set[Any]:
    return {node[k] for k in _TAG_KEYS if isinstance(node.get(k), str)}


def _child(node: Any, part: str | int) -> Any:
    if isinstance(node, dict):
        return node.get(part)
    if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
        return node[part]
    return None


def _valid_tags(
    error: dict[str, Any], body: Any, under: Loc, revalidate: Revalidate | None
) -> str | None:
    """The valid values of a missing union tag: the input again with a wrong tag says them."""
    loc = list(error.get("loc", ()))
    if revalidate is None or not isinstance(body, dict | list) or loc[: len(under)] != [*under]:
        return None
    key = str((error.get("ctx") or {}).get("discriminator", "type")).strip("'")
    copy = json.loads(json.dumps(body, default=str))
    node = copy
    for part in loc[len(under) :]:
        node = _child(node, part)
    if not isinstance(node, dict):
        return None
    node[key] = _SENTINEL
    for again in revalidate(copy):
        ctx = again.get("ctx") or {}
        if again.get("type") == "union_tag_invalid" and ctx.get("tag") == _SENTINEL:
            return readable(str(ctx.get("expected_tags", "")))
    return None


def validation_errors(
    errors: Sequence[Any],
    *,
    body: Any = None,
    under: Loc = (),
    revalidate: Revalidate | None = None,
) -> list[dict[str, Any]]:
    """Pydantic errors as the contract's JSON-safe `{loc, msg, type}` items, worded for people.

    With the `body` that failed (found in `loc` under `under`), `loc` is the JSON path of the
    field; with `revalidate`, a missing union tag lists its valid values.
    """
    return [
        {
            "loc": _location(e, body, under),
            "msg": _message(
                e,
                _valid_tags(e, body, under, revalidate)
                if e.get("type") == "union_tag_not_found"
                else None,
            ),
            "type": str(e.get("type", "value_error")),
        }
        for e in errors
    ]
