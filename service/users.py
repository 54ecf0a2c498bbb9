"""The User aggregate: the caller's own profile (merge patch), 2FA, and tenant user management.

`PATCH /v1/users/me` is a JSON merge patch (RFC 7396) of a fixed set of parts. `username` is
patchable (unique across the service → 409); `email` is not (it is the login and invitation
identity and would need a verified change flow); role, secrets, subscription, billing and the AI
parts are not patchable here (the AI parts have their own routes).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from pydantic import ValidationError
from pymongo.errors import DuplicateKeyError

from documents.base import utcnow
from documents.user import TwoFactorAuth, TwoFactorMethod, User
from schemas.users import USER_VIEW, UserFilters, UserRead
from service.auth import check_password_policy, forget_actor, verify_user_otp
from service.core import security, visibility
from service.core.context import RequestContext, Role
from service.core.errors import Conflict, Forbidden, Unprocessable
from service.core.pagination import PageResult
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository, equal_to
from service.core.settings import Settings
from service.core.throttle import guess_throttle

PATCHABLE = frozenset(
    {
        "username",
        "profile",
        "location",
        "company",
        "marketing",
        "socials",
        "settings",
        "onboarding",
        "security",
        "feature_flags",
        "tags",
        "segments",
    }
)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396: objects merge key by key, `null` removes a key, anything else replaces."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _unprocessable(exc: ValidationError) -> Unprocessable:
    first = exc.errors()[0]
    return Unprocessable(
        str(first.get("msg", "invalid value")),
        loc=["body", *first.get("loc", ())],
        type=str(first.get("type", "value_error")),
    )


async def _update(
    repo: Repository[User],
    user: User,
    changes: Mapping[str, Any],
    *,
    expected_version: int | None = None,
    event_type: str = "updated",
) -> User:
    # Values are re-validated by the document model on update; a failure is the caller's 422.
    try:
        return await repo.update(
            user, changes, expected_version=expected_version, event_type=event_type
        )
    except ValidationError as exc:
        raise _unprocessable(exc) from None
    except DuplicateKeyError:
        raise Conflict("That username is already taken.") from None


# -- the caller's own aggregate ---------------------------------------------------------------


async def get_me(*, ctx: RequestContext) -> User:
    """The calling user's own aggregate (403 for API keys, which have none); every service
    that acts on the caller's own user loads it here."""
    return await Repository(User, ctx).get(ctx.require_user())


async def replace_own(
    *, ctx: RequestContext, fields: Mapping[str, Any], expected_version: int | None, event_type: str
) -> User:
    """Replace whole top-level fields of the caller's own user, journaled as `event_type`."""
    user = await get_me(ctx=ctx)
    return await Repository(User, ctx).update(
        user, dict(fields), expected_version=expected_version, event_type=event_type
    )


async def update_me(
    *, ctx: RequestContext, patch: Mapping[str, Any], expected_version: int | None = None
) -> User:
    """Apply a JSON merge patch to the calling user's patchable parts (a null resets a part)."""
    refused = sorted(set(patch) - PATCHABLE)
    if refused:  # the API schema refuses these already; services keep the rule too
        raise Unprocessable(f"Not patchable: {', '.join(refused)}.", loc=["body", refused[0]])
    if "security" in patch and patch["security"] is None:
        # Only the password policy is the caller's to reset; 2FA changes need a code.
        patch = {**patch, "security": {"security_settings": None}}
    repo = Repository(User, ctx)
    user = await get_me(ctx=ctx)
    current = user.model_dump(include=set(patch))
    merged = merge_patch(current, patch)
    changes: dict[str, Any] = {}
    for key in patch:
        if key in merged:
            changes[key] = merged[key]
        elif key == "username":
            raise Unprocessable("username cannot be removed.", loc=["body", "username"])
        else:
            changes[key] = User.model_fields[key].get_default(call_default_factory=True)
    if "security" in changes:
        # `password_changed_at` is the service's, not the policy's: a reset keeps it.
        policy = changes["security"].setdefault("security_settings", {})
        policy["password_changed_at"] = user.security.security_settings.password_changed_at
    username = changes.get("username")
    if (
        username is not None
        and username != user.username
        and await User.find_one({"username": username}) is not None
    ):
        raise Conflict("That username is already taken.")
    return await _update(repo, user, changes, expected_version=expected_version)


async def change_password(
    *,
    ctx: RequestContext,
    settings: Settings,
    current_password: str,
    new_password: str,
) -> User:
    """Change the caller's password after checking the current one (403 when wrong).

    Guesses of the current password share the login throttle of the account (429).
    """
    repo = Repository(User, ctx)
    user = await get_me(ctx=ctx)
    throttle, key = guess_throttle(settings, "password"), f"user:{user.id}"
    await throttle.attempt(key)
    if not await security.verify_password(settings, current_password, user.password_hash):
        raise Forbidden("The current password is not correct.")
    await throttle.reset(key)
    check_password_policy(new_password, user)
    policy = user.security.security_settings.model_copy(update={"password_changed_at": utcnow()})
    security_part = user.security.model_copy(
        update={"security_settings": policy, "token_version": user.security.token_version + 1}
    )
    updated = await _update(
        repo,
        user,
        {
            "password_hash": await security.hash_password(settings, new_password),
            "security": security_part,
        },
        event_type="password_changed",
    )
    forget_actor(user.id)
    return updated


# -- two-factor authentication ----------------------------------------------------------------


async def _checked_code(settings: Settings, user: User, code: str) -> int:
    """The TOTP step `code` matches, as one throttled guess (422 when wrong, 429 past the limit).

    Confirm, disable and login count the same codes of the account (one `totp` throttle).
    """
    throttle, key = guess_throttle(settings, "totp"), f"user:{user.id}"
    await throttle.attempt(key)
    step = verify_user_otp(settings, user, code)
    if step is None:
        raise Unprocessable("The code is not valid.", loc=["body", "code"])
    await throttle.reset(key)
    return step


async def enrol_two_factor(*, ctx: RequestContext, settings: Settings) -> str:
    """Start TOTP enrolment: store a new encrypted secret, return its provisioning URI.

    The URI is the only time the secret leaves the service. 409 when 2FA is already on.
    """
    repo = Repository(User, ctx)
    user = await get_me(ctx=ctx)
    if user.security.two_factor_auth.enabled:
        raise Conflict("Two-factor authentication is already enabled.")
    secret = security.new_totp_secret()
    pending = TwoFactorAuth(enabled=False, secret=security.encrypt(settings, secret))
    part = user.security.model_copy(update={"two_factor_auth": pending})
    await _update(repo, user, {"security": part}, event_type="two_factor_enrolled")
    return security.totp_uri(secret, account=user.email)


async def confirm_two_factor(*, ctx: RequestContext, settings: Settings, code: str) -> User:
    """Turn 2FA on with a first valid code (422 when wrong, 409 without enrolment)."""
    repo = Repository(User, ctx)
    user = await get_me(ctx=ctx)
    tfa = user.security.two_factor_auth
    if tfa.enabled:
        raise Conflict("Two-factor authentication is already enabled.")
    if tfa.secret is None:
        raise Conflict("Start enrolment with POST /v1/users/me/2fa first.")
    step = await _checked_code(settings, user, code)
    enabled = tfa.model_copy(
        update={
            "enabled": True,
            "methods": [TwoFactorMethod.totp],
            "confirmed_at": utcnow(),
            "last_used_step": step,
        }
    )
    part = user.security.model_copy(update={"two_factor_auth": enabled})
    return await _update(repo, user, {"security": part}, event_type="two_factor_enabled")


async def disable_two_factor(*, ctx: RequestContext, settings: Settings, code: str) -> User:
    """Turn 2FA off with a valid current code (422 when wrong, 409 when it is off)."""
    repo = Repository(User, ctx)
    user = await get_me(ctx=ctx)
    if not user.security.two_factor_auth.enabled:
        raise Conflict("Two-factor authentication is not enabled.")
    await _checked_code(settings, user, code)
    part = user.security.model_copy(update={"two_factor_auth": TwoFactorAuth()})
    return await _update(repo, user, {"security": part}, event_type="two_factor_disabled")


# -- the tenant's users -----------------------------------------------------------------------


async def list_users(*, ctx: RequestContext, filters: UserFilters) -> PageResult[UserRead]:
    """A page of the tenant's users, newest first."""
    query = equal_to(filters, {"role": "role", "is_active": "is_active"})
    return await Repository(User, ctx).page_for(query, filters, view=USER_VIEW)


async def get_user(*, ctx: RequestContext, id: UUID) -> dict[str, Any]:
    """One live user of the tenant, as the caller may see them (service/core/visibility.py)."""
    return visibility.visible_document(ctx, await Repository(User, ctx).get(id))


async def _guard(ctx: RequestContext, action: Action, target: User) -> None:
    """Admins manage members and viewers; only an owner manages admins and owners; not oneself."""
    verb = "change" if action == Action.update else action.value
    if target.id == ctx.actor_id:
        raise Conflict(f"You cannot {verb} yourself.")
    if Role(target.role) >= Role.admin and ctx.role != Role.owner:
        raise Forbidden(f"Only an owner can {verb} an {target.role}.")


async def _forget_credentials(ctx: RequestContext, user: User) -> None:  # noqa: ARG001  (a policy hook)
    forget_actor(user.id)  # a deleted user's tokens stop working at once in this process


# The tenant's users are managed by admins and owners (a user changes their own aggregate
# through /me, which needs no role). Registration creates users; nobody archives them.
POLICY: ResourcePolicy[User] = register_policy(
    ResourcePolicy(
        model=User,
        roles={**dict.fromkeys(Action, Role.admin), Action.read: Role.viewer},  # colleagues see
        guard=_guard,
        after_delete=_forget_credentials,
    )
)


async def manage_user(
    *,
    ctx: RequestContext,
    id: UUID,
    role: Role | None = None,
    is_active: bool | None = None,
    expected_version: int | None = None,
) -> User:
    """Change a user's tenant role and/or active flag (admin+, never one's own; `role_changed`)."""
    repo = Repository(User, ctx)
    user = await repo.get(id)
    await POLICY.check(ctx, Action.update, user)
    changes: dict[str, Any] = {}
    if role is not None:
        if not ctx.role >= role:
            raise Forbidden("You cannot grant a role higher than your own.")
        changes["role"] = role.value
    if is_active is not None:
        changes["is_active"] = is_active
    if role is not None and role.value != user.role:
        event = "role_changed"
    elif is_active is not None and is_active != user.is_active:
        event = "activated" if is_active else "deactivated"
    else:
        event = "updated"
    updated = await _update(
        repo, user, changes, expected_version=expected_version, event_type=event
    )
    forget_actor(user.id)  # the next request re-reads role and active flag
    return updated
