"""Registration and login."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request, Response, status

from routes.deps import SettingsDep, set_etag, set_location
from schemas.auth import RegisterRequest, TokenResponse
from schemas.users import UserMe, to_user_me
from service import auth
from service.core.throttle import address_limit


def client_address(request: Request) -> str:
    """The caller's address, as the per-address limits count it."""
    return request.client.host if request.client else "unknown"


async def limit_per_address(request: Request, settings: SettingsDep) -> None:
    """Cap registration and login attempts per client address (429 with Retry-After)."""
    await address_limit(settings).consume(client_address(request))


router = APIRouter(prefix="/auth", tags=["auth"], dependencies=[Depends(limit_per_address)])


@router.post(
    "/register",
    status_code=status.HTTP_201_CREATED,
    response_model=UserMe,
    summary="Register: a new tenant and its owner, or join a tenant with an invitation token",
    responses={
        403: {"description": "The invitation was sent to another email address"},
        409: {"description": "Email or username taken, or the invitation was already used"},
        410: {"description": "The invitation expired or was revoked, or its team is gone"},
        429: {"description": "Too many requests, or unknown invitation tokens, from this address"},
    },
)
async def register(
    body: RegisterRequest, request: Request, settings: SettingsDep, response: Response
) -> Any:
    user = await auth.register(
        settings=settings,
        client=client_address(request),
        username=body.username,
        email=body.email,
        password=body.password,
        organization_name=body.organization_name,
        invitation_token=body.invitation_token,
    )
    set_etag(response, user.version)
    set_location(request, response, "get_user", id=user.id)
    return to_user_me(user)


@router.post(
    "/token",
    response_model=TokenResponse,
    summary="Log in (OAuth2 password form; `otp` required once 2FA is on)",
    responses={
        429: {"description": "Too many failed passwords or codes for this account; see Retry-After"}
    },
)
async def token(
    settings: SettingsDep,
    username: Annotated[str, Form(min_length=1, max_length=320, description="Email or username.")],
    password: Annotated[str, Form(min_length=1, max_length=1024)],
    otp: Annotated[
        str | None, Form(max_length=16, description="The current TOTP code when 2FA is on.")
    ] = None,
    # The OAuth2 password form's fields: validated and documented, not otherwise used.
    grant_type: Annotated[str | None, Form(pattern="^password$")] = None,  # noqa: ARG001
    scope: Annotated[str, Form(max_length=1024)] = "",  # noqa: ARG001
) -> Any:
    access_token, expires_in = await auth.login(
        settings=settings, username=username, password=password, otp=otp
    )
    return TokenResponse(access_token=access_token, expires_in=expires_in)
