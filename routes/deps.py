"""FastAPI dependencies shared by every router: settings, caller context, If-Match.

Routes take the caller as `ctx: CurrentContext` only: which role an action needs is the
resource's policy's (service/core/policy.py), checked by the service.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import BaseModel

from schemas.common import CountedPage, Page, ReadView
from service.auth import AuthCache, authenticate
from service.core.context import RequestContext
from service.core.pagination import PageResult, StoredPage
from service.core.settings import Settings

# Dependencies are `async def` on purpose: FastAPI runs plain `def` dependencies in a worker
# thread, which costs more than the work they do on every request.
_bearer = HTTPBearer(auto_error=False, description="A JWT from POST /v1/auth/token.")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="An internal API key.")


async def get_settings(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


async def get_auth_cache(request: Request) -> AuthCache:
    """The app's cache of verified credentials."""
    cache: AuthCache = request.app.state.auth_cache
    return cache


SettingsDep = Annotated[Settings, Depends(get_settings)]
AuthCacheDep = Annotated[AuthCache, Depends(get_auth_cache)]


# The credentials are read from the headers here rather than through `_bearer` and `_api_key`
# as sub-dependencies: each dependency FastAPI resolves costs more than this whole function,
# on every request. The OpenAPI document still names both schemes on every operation that
# depends on this function (routes/openapi.py, `CREDENTIAL_SCHEMES`).
CREDENTIAL_SCHEMES = (_bearer, _api_key)


async def get_context(request: Request) -> RequestContext:
    """Authenticate the caller (Bearer JWT or X-API-Key) into a RequestContext."""
    # Every authenticated request runs this: the two headers are read from the raw list in one
    # pass (the first of each, as `request.headers.get` would), not through a Headers object.
    scope = request.scope
    authorization: bytes | None = None
    api_key: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"authorization" and authorization is None:
            authorization = value
        elif name == b"x-api-key" and api_key is None:
            api_key = value
    # As HTTPBearer reads it: `Bearer <token>`, the scheme in any case; anything else is none.
    scheme, _, token = (authorization or b"").decode("latin-1").partition(" ")
    token = token.strip()
    state = scope["app"].state
    ctx = await authenticate(
        settings=state.settings,
        cache=state.auth_cache,
        bearer=token if token and scheme.lower() == "bearer" else None,
        api_key=(api_key or b"").decode("latin-1") or None,
    )
    scope.setdefault("state", {})["ctx"] = ctx  # `request.state.ctx`, for access logs
    return ctx


CurrentContext = Annotated[RequestContext, Depends(get_context)]


# RFC 9110 entity-tags: `"3"` (strong) or `W/"3"` (weak); ours are the version, quoted. A bare
# version (`3`, as some clients send it) is read as `"3"`.
_ENTITY_TAG = r'(?:W/)?"[\x21\x23-\x7e]{0,64}"'
IF_MATCH_PATTERN = rf"^(?:\*|[0-9]{{1,12}}|{_ENTITY_TAG})$"
_STRONG_VERSION = re.compile(r'"(\d{1,12})"|(\d{1,12})')
# What a tag that can never match (weak, or not one of ours) expects: no resource has version 0,
# so the write fails with 412 exactly where a stale version would, after the 404 and 422 checks.
NO_VERSION = 0


async def parse_if_match(
    if_match: Annotated[
        str | None,
        Header(
            description='`*` or the ETag of the version you read (`"3"`, or just `3`); another '
            "version answers 412 and nothing changes. Compared strongly: a weak tag "
            '(`W/"3"`) never matches. One tag: a list is 422.',
            # Malformed values are bad input (422), not a failed precondition.
            pattern=IF_MATCH_PATTERN,
            max_length=200,
        ),
    ] = None,
) -> int | None:
    """The version an If-Match header requires (None: `*` or no header, no precondition)."""
    if if_match is None or if_match == "*":
        return None
    match = _STRONG_VERSION.fullmatch(if_match)
    if match is None:  # weak, or not a tag this API issues: it cannot match (RFC 9110 13.1.1)
        return NO_VERSION
    return int(match.group(1) or match.group(2))


IfMatch = Annotated[int | None, Depends(parse_if_match)]


def set_etag(response: Response, version: int) -> None:
    """Expose a resource's version as its (strong) ETag."""
    response.headers["ETag"] = f'"{version}"'


def read_response(view: ReadView[Any], item: Any) -> Response:
    """A 200 with one resource as its view serialised it, and its version as the ETag.

    The single GETs' answer: FastAPI neither validates nor serialises a returned Response
    again (the route's `response_model` still documents the body).
    """
    response = Response(view.json(item), media_type="application/json")
    set_etag(response, item.version)
    return response


def page_response(page: PageResult[Any], declared: type[BaseModel]) -> Any:
    """A list's answer, as the route's `declared` page model (its `response_model`) writes it.

    A page of stored documents read through the view of that model's item schema is written
    by `StoredPage.json()`, straight from the documents: byte for byte what FastAPI writes for
    `page.body()` through `declared`, without a model per item (issue 27). Any other page is
    answered as `page.body()`, for FastAPI to validate and serialise through `declared`.
    """
    if isinstance(page, StoredPage) and _writes_as(declared, page):
        return Response(page.json(), media_type="application/json")
    return page.body()


def _writes_as(declared: type[BaseModel], page: StoredPage[Any]) -> bool:
    # Only where FastAPI would write exactly the page's fields with the view's own schema: a
    # model declaring other items (a narrower shape) or more fields re-validates the page.
    view_schema = getattr(page.view, "schema", None)
    if not issubclass(declared, Page) or _page_item(declared) is not view_schema:
        return False
    extra = declared.model_fields.keys() - {"items", "next_cursor", "total"}
    return not extra and (page.total is None or issubclass(declared, CountedPage))


@lru_cache(maxsize=128)
def _page_item(declared: type[BaseModel]) -> Any:
    """The item schema `T` a `Page[T]` / `CountedPage[T]` (or a subclass of one) declares."""
    for cls in declared.__mro__:
        meta = getattr(cls, "__pydantic_generic_metadata__", None) or {}
        if meta.get("origin") is not None and meta.get("args"):
            return meta["args"][0]
    return None


def set_location(request: Request, response: Response, route_name: str, **params: Any) -> None:
    """Point `Location` at a created resource: the path of the route `route_name` with `params`.

    Naming a route (rather than writing a path) keeps the header on a URL the API serves.
    """
    response.headers["Location"] = str(request.app.url_path_for(route_name, **params))


def set_replayed(response: Response, replayed: bool) -> None:
    """`Idempotent-Replayed: true` when the answer is a stored one (an idempotent replay)."""
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
