"""The caller's own user aggregate (`/me`, 2FA) and the tenant's users (admin management)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Response

from documents.user import User
from routes.deps import CurrentContext, IfMatch, SettingsDep, page_response, set_etag
from routes.lifecycle import add_lifecycle_routes
from schemas.common import Page
from schemas.users import (
    PasswordChange,
    TwoFactorCode,
    TwoFactorEnrolment,
    TwoFactorRead,
    UserAdminPatch,
    UserFilters,
    UserMe,
    UserMePatch,
    UserRead,
    to_user_me,
    to_user_read,
)
from service import users

router = APIRouter(prefix="/users", tags=["users"])

# -- /me (declared before /{id}) --------------------------------------------------------------


@router.get("/me", response_model=UserMe, summary="The caller's whole user aggregate")
async def get_me(ctx: CurrentContext, response: Response) -> Any:
    user = await users.get_me(ctx=ctx)
    set_etag(response, user.version)
    return to_user_me(user)


@router.patch(
    "/me",
    response_model=UserMe,
    summary="JSON merge patch of the caller's profile, settings and other parts",
    responses={409: {"description": "The new username is taken"}},
)
async def patch_me(
    body: UserMePatch, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    user = await users.update_me(ctx=ctx, patch=body.as_patch(), expected_version=if_match)
    set_etag(response, user.version)
    return to_user_me(user)


@router.post(
    "/me/password",
    response_model=UserMe,
    summary="Change the caller's password (403 when the current one is wrong)",
    responses={429: {"description": "Too many wrong passwords for this account; see Retry-After"}},
)
async def change_password(
    body: PasswordChange, ctx: CurrentContext, settings: SettingsDep, response: Response
) -> Any:
    user = await users.change_password(
        ctx=ctx,
        settings=settings,
        current_password=body.current_password,
        new_password=body.new_password,
    )
    set_etag(response, user.version)
    return to_user_me(user)


@router.post(
    "/me/2fa",
    response_model=TwoFactorEnrolment,
    summary="Start TOTP enrolment: the provisioning URI is the only time the secret is shown",
    responses={409: {"description": "2FA is already enabled"}},
)
async def enrol_two_factor(ctx: CurrentContext, settings: SettingsDep) -> Any:
    uri = await users.enrol_two_factor(ctx=ctx, settings=settings)
    return TwoFactorEnrolment(provisioning_uri=uri)


@router.post(
    "/me/2fa/confirm",
    response_model=TwoFactorRead,
    summary="Turn 2FA on with a valid code (422 when wrong)",
    responses={
        409: {"description": "Not enrolled, or already enabled"},
        429: {"description": "Too many wrong codes for this account; see Retry-After"},
    },
)
async def confirm_two_factor(
    body: TwoFactorCode, ctx: CurrentContext, settings: SettingsDep, response: Response
) -> Any:
    user = await users.confirm_two_factor(ctx=ctx, settings=settings, code=body.code)
    set_etag(response, user.version)
    return TwoFactorRead.model_validate(user.security.two_factor_auth.model_dump())


@router.delete(
    "/me/2fa",
    response_model=TwoFactorRead,
    summary='Turn 2FA off with a valid current code (body `{"code"}`; 422 when wrong)',
    responses={
        409: {"description": "2FA is not enabled"},
        429: {"description": "Too many wrong codes for this account; see Retry-After"},
    },
)
async def disable_two_factor(
    body: TwoFactorCode, ctx: CurrentContext, settings: SettingsDep, response: Response
) -> Any:
    user = await users.disable_two_factor(ctx=ctx, settings=settings, code=body.code)
    set_etag(response, user.version)
    return TwoFactorRead.model_validate(user.security.two_factor_auth.model_dump())


# -- the tenant's users -----------------------------------------------------------------------


@router.get("", response_model=Page[UserRead], summary="The tenant's users, newest first")
async def list_users(ctx: CurrentContext, filters: Annotated[UserFilters, Query()]) -> Any:
    page = await users.list_users(ctx=ctx, filters=filters)
    return page_response(page, Page[UserRead])


@router.get(
    "/{id}",
    response_model=UserRead,
    summary="A user of the tenant",
    description="What colleagues see of a user; their private parts (settings, security, "
    "subscription, billing, AI) are only in the user's own `GET /v1/users/me`.",
)
async def get_user(id: UUID, ctx: CurrentContext, response: Response) -> Any:
    user = await users.get_user(ctx=ctx, id=id)
    set_etag(response, user["version"])
    return UserRead.model_validate(user)


@router.patch(
    "/{id}",
    response_model=UserRead,
    summary="Change a user's tenant role or active flag (admin+; only owners manage admins)",
)
async def manage_user(
    id: UUID, body: UserAdminPatch, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    user = await users.manage_user(
        ctx=ctx,
        id=id,
        role=body.role,
        is_active=body.is_active,
        expected_version=if_match,
    )
    set_etag(response, user.version)
    return to_user_read(user)


# DELETE /{id} (admin+; not yourself; their credentials stop working), restore, history and
# versions, under the users' policy (service/users.py POLICY).
add_lifecycle_routes(
    router,
    model=User,
    read_model=UserRead,
    to_read=to_user_read,
    policy=users.POLICY,
    archive=False,
    notes={
        "delete": "Admin+; not yourself; only an owner deletes an admin or owner. The user's "
        "credentials stop working.",
        "restore": "Admin+; only an owner restores an admin or owner.",
    },
)
