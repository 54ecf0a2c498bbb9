"""FastAPI dependencies shared by every router: settings, caller context, roles, If-Match."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, Header, Request, Response
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from service.auth import AuthCache, authenticate
from service.context import RequestContext, Role
from service.errors import PreconditionFailed
from service.settings import Settings

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


async def get_context(
    request: Request,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    api_key: Annotated[str | None, Depends(_api_key)],
) -> RequestContext:
    """Authenticate the caller (Bearer JWT or X-API-Key) into a RequestContext."""
    state = request.app.state  # read directly: this runs on every request (hot path)
    ctx = await authenticate(
        settings=state.settings,
        cache=state.auth_cache,
        bearer=bearer.credentials if bearer else None,
        api_key=api_key,
    )
    request.state.ctx = ctx  # for access logs
    return ctx


CurrentContext = Annotated[RequestContext, Depends(get_context)]


def require_role(role: Role) -> Any:
    """A dependency that yields the context when the caller has at least `role` (else 403)."""

    async def dependency(ctx: CurrentContext) -> RequestContext:
        ctx.require(role)
        return ctx

    return Depends(dependency)


Viewer = CurrentContext
Member = Annotated[RequestContext, require_role(Role.member)]
Admin = Annotated[RequestContext, require_role(Role.admin)]
Owner = Annotated[RequestContext, require_role(Role.owner)]

_ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,12})"?\s*$')
_ONE_ETAG = r'(?:W/)?"?[0-9]{1,12}"?'
_IF_MATCH = rf"^(?:\*|{_ONE_ETAG}(?:, ?{_ONE_ETAG})*)$"


async def parse_if_match(
    if_match: Annotated[
        str | None,
        Header(
            description='Expected version as an ETag (`"3"`); a stale one answers 412.',
            # Malformed values are bad input (422), not a failed precondition.
            pattern=_IF_MATCH,
            max_length=200,
        ),
    ] = None,
) -> int | None:
    """The version an If-Match header expects (`*` or none: no precondition)."""
    if if_match is None or if_match.strip() == "*":
        return None
    for part in if_match.split(","):
        match = _ETAG.match(part)
        if match:
            return int(match.group(1))
    raise PreconditionFailed("If-Match does not name a version of this resource.")


IfMatch = Annotated[int | None, Depends(parse_if_match)]


def set_etag(response: Response, version: int) -> None:
    """Expose a resource's version as its ETag."""
    response.headers["ETag"] = f'"{version}"'
