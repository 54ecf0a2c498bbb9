"""Authentication: turning credentials into a RequestContext, registration and login."""

from __future__ import annotations

import time
import weakref
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import jwt
from bson import Binary
from uuid6 import uuid7

from documents.api_key import ApiKey
from documents.base import utcnow
from documents.tenant import Tenant
from documents.user import SecuritySettings, User
from service import invitations
from service.core import security
from service.core.context import RequestContext, Role
from service.core.errors import Conflict, Unauthorized, Unprocessable
from service.core.repository import Repository
from service.core.settings import Settings
from service.core.throttle import guess_throttle


@dataclass(frozen=True, slots=True)
class _Cached:
    ctx: RequestContext
    expires: float


class AuthCache:
    """A short-lived cache of verified credentials, so the hot path skips a database lookup.

    Revocations made by this process evict entries at once; other processes see them within
    `AUTH_CACHE_SECONDS`.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, _Cached] = {}
        _CACHES.add(self)

    def get(self, key: str) -> RequestContext | None:
        """The cached context for a credential, if still fresh."""
        hit = self._entries.get(key)
        if hit is None or hit.expires < time.monotonic():
            self._entries.pop(key, None)
            return None
        return hit.ctx

    def put(self, key: str, ctx: RequestContext, *, valid_until: float | None = None) -> None:
        """Remember a verified credential (never past `valid_until`, an epoch time: a token's
        `exp`, so an expired token is refused even while its entry would still be fresh)."""
        ttl = self.ttl if valid_until is None else min(self.ttl, valid_until - time.time())
        if ttl <= 0:
            return
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[key] = _Cached(ctx, time.monotonic() + ttl)

    def evict_actor(self, actor_id: UUID) -> None:
        """Forget every credential of a user or key (after revoke, delete, role change)."""
        for key in [k for k, v in self._entries.items() if v.ctx.actor_id == actor_id]:
            self._entries.pop(key, None)

    def clear(self) -> None:
        """Forget everything."""
        self._entries.clear()


# Every cache of this process, so a revocation reaches them all without carrying one around.
_CACHES: weakref.WeakSet[AuthCache] = weakref.WeakSet()


def forget_actor(actor_id: UUID) -> None:
    """Evict a user's or key's credentials from every cache of this process (at once)."""
    for cache in list(_CACHES):
        cache.evict_actor(actor_id)


async def _context_for_user(claims: security.AccessClaims) -> RequestContext:
    user_id, tenant_id = claims.sub, claims.tid
    user = await User.find_one(
        {
            "_id": Binary.from_uuid(user_id),
            "tenant_id": Binary.from_uuid(tenant_id),
            "is_deleted": False,
        }
    )
    if user is None or not user.is_active:
        raise Unauthorized("The account no longer exists or is disabled.")
    changed = user.security.security_settings.password_changed_at
    # Tokens issued before the last password change are dead: the version counter decides
    # exactly (`iat` has whole seconds); the time check also covers a change stamped outside
    # the service.
    stale_time = changed is not None and claims.iat < int(changed.timestamp())
    if claims.ver != user.security.token_version or stale_time:
        raise Unauthorized("The access token predates a password change; log in again.")
    tenant = await Tenant.find_one({"_id": Binary.from_uuid(tenant_id)})
    region = tenant.default_phone_region if tenant else "US"
    return RequestContext(
        tenant_id=tenant_id, actor_id=user.id, role=Role(user.role), phone_region=region
    )


async def authenticate(
    *, settings: Settings, cache: AuthCache, bearer: str | None, api_key: str | None
) -> RequestContext:
    """The caller's context from a Bearer JWT or an API key; 401 when missing or invalid."""
    if bearer:
        cached = cache.get("jwt:" + bearer)
        if cached:
            return cached
        try:
            claims = security.decode_access_token(settings, bearer)
        except jwt.InvalidTokenError:
            raise Unauthorized("The access token is invalid or expired.") from None
        ctx = await _context_for_user(claims)
        cache.put("jwt:" + bearer, ctx, valid_until=claims.exp)
        return ctx
    if api_key:
        digest = security.hash_api_key(api_key)
        cached = cache.get("key:" + digest)
        if cached:
            return cached
        key = await ApiKey.find_one({"key_hash": digest, "is_deleted": False})
        if key is None:
            raise Unauthorized("The API key is invalid or revoked.")
        tenant = await Tenant.find_one({"_id": Binary.from_uuid(key.tenant_id)})
        ctx = RequestContext(
            tenant_id=key.tenant_id,
            actor_id=key.id,
            role=Role(key.role),
            actor_type="api_key",
            phone_region=tenant.default_phone_region if tenant else "US",
        )
        cache.put("key:" + digest, ctx)
        return ctx
    raise Unauthorized("Credentials are required: a Bearer token or an X-API-Key header.")


def check_password_policy(password: str, user: User | None = None) -> None:
    """Enforce the account's SecuritySettings password policy (422 with the broken rule)."""
    policy = user.security.security_settings if user else SecuritySettings()
    problems = []
    if len(password) < policy.min_password_length:
        problems.append(f"at least {policy.min_password_length} characters")
    if len(password) > 1024:
        problems.append("at most 1024 characters")
    if policy.require_digit and not any(c in "0123456789" for c in password):
        problems.append("a digit")
    if policy.require_uppercase and not any(c.isupper() for c in password):
        problems.append("an upper-case letter")
    if policy.require_symbol and all(c.isalnum() for c in password):
        problems.append("a symbol")
    if problems:
        raise Unprocessable(
            "The password needs " + ", ".join(problems) + ".", loc=["body", "password"]
        )


async def ensure_unique_identity(*, email: str, username: str) -> None:
    """409 when the email or username is already taken anywhere in the service."""
    taken = await User.find_one({"$or": [{"email": email}, {"username": username}]})
    if taken is not None:
        field = "email" if taken.email == email else "username"
        raise Conflict(f"That {field} is already registered.")


async def register_owner(
    *,
    settings: Settings,
    username: str,
    email: str,
    password: str,
    organization_name: str | None,
) -> User:
    """Create a new tenant and its owner user."""
    await ensure_unique_identity(email=email, username=username)
    check_password_policy(password)
    user_id, tenant_id = uuid7(), uuid7()
    ctx = RequestContext(tenant_id=tenant_id, actor_id=user_id, role=Role.owner)
    user = User(
        id=user_id,
        tenant_id=tenant_id,
        username=username,
        email=email,
        password_hash=await security.hash_password(settings, password),
        role=Role.owner.value,
    )
    user.security.security_settings.password_changed_at = utcnow()
    user = await Repository(User, ctx).create(user)
    tenant = Tenant(
        id=tenant_id,
        tenant_id=tenant_id,
        name=organization_name or f"{username}'s organization",
        owner_id=user_id,
    )
    await Repository(Tenant, ctx).create(tenant)
    return user


async def register(
    *,
    settings: Settings,
    client: str,
    username: str,
    email: str,
    password: str,
    organization_name: str | None = None,
    invitation_token: str | None = None,
) -> User:
    """Register a user: the owner of a new tenant, or an invitee joining the inviter's tenant.

    `client` is the caller's address: unknown invitation tokens are guesses counted per address.
    """
    if invitation_token is None:
        return await register_owner(
            settings=settings,
            username=username,
            email=email,
            password=password,
            organization_name=organization_name,
        )
    return await register_invited(
        settings=settings,
        client=client,
        username=username,
        email=email,
        password=password,
        invitation_token=invitation_token,
    )


async def register_invited(
    *,
    settings: Settings,
    client: str,
    username: str,
    email: str,
    password: str,
    invitation_token: str,
) -> User:
    """Join the inviting tenant with the invitation's role and become a member of its team.

    The invitation is consumed first, under its version guard, so a token redeemed twice at
    once yields one user and one 409. Unknown tokens are throttled per client address.
    """
    await ensure_unique_identity(email=email, username=username)
    check_password_policy(password)
    invitation = await invitations.invitation_by_token(
        invitation_token, throttle=guess_throttle(settings, "invitation"), key=f"address:{client}"
    )
    user_id = uuid7()
    ctx = RequestContext(
        tenant_id=invitation.tenant_id, actor_id=user_id, role=Role(invitation.role)
    )
    team, invitation = await invitations.redeem_invitation(
        ctx=ctx, invitation=invitation, email=email, user_id=user_id
    )
    user = User(
        id=user_id,
        tenant_id=invitation.tenant_id,
        username=username,
        email=email,
        password_hash=await security.hash_password(settings, password),
        role=invitation.role,
    )
    user.security.security_settings.password_changed_at = utcnow()
    user = await Repository(User, ctx).create(user)
    await invitations.add_invited_member(ctx=ctx, team=team, invitation=invitation)
    return user


async def find_login_user(login: str) -> User | None:
    """The live user whose email or username is `login` (case-insensitive)."""
    key = login.strip().lower()
    return await User.find_one({"$or": [{"email": key}, {"username": key}], "is_deleted": False})


def verify_user_otp(settings: Settings, user: User, code: str | None) -> int | None:
    """The TOTP step `code` matches for this user's (pending or enabled) secret, else None."""
    tfa = user.security.two_factor_auth
    if not code or tfa.secret is None:
        return None
    secret = security.decrypt(settings, tfa.secret)
    if secret is None:  # encrypted with a key this service no longer has
        return None
    return security.verify_totp(secret, code, last_used_step=tfa.last_used_step)


async def login(
    *, settings: Settings, username: str, password: str, otp: str | None = None
) -> tuple[str, int]:
    """Check a password (and the TOTP code once 2FA is on) and issue an access token.

    Any mismatch is 401 and costs one Argon2 verification whether or not the account exists.
    Each attempt takes a ticket of the account's password throttle before the password is
    checked (per submitted name when no account matches, so the 429 does not reveal which names
    exist), and of its 2FA-code throttle before the code is; past LOGIN_MAX_FAILURES the account
    answers 429 for LOGIN_LOCKOUT_SECONDS, even to the right password. A hash made at another
    Argon2 cost than configured is replaced on the way.
    """
    user = await find_login_user(username)
    passwords = guess_throttle(settings, "password")
    key = f"user:{user.id}" if user else f"name:{username.strip().lower()}"
    await passwords.attempt(key)
    ok, new_hash = await security.verify_and_update(
        settings, password, user.password_hash if user else None
    )
    if user is None or not ok or not user.is_active:
        raise Unauthorized("Incorrect username or password.")
    changes: dict[str, Any] = {"last_login_at": utcnow()}
    if new_hash is not None:
        changes["password_hash"] = new_hash
    tfa = user.security.two_factor_auth
    codes = guess_throttle(settings, "totp")
    if tfa.enabled:
        await codes.attempt(key)
        step = verify_user_otp(settings, user, otp)
        if step is None:
            raise Unauthorized("A valid one-time code (`otp`) is required.")
        # Remember the step so the same code cannot be replayed.
        used = tfa.model_copy(update={"last_used_step": step})
        changes["security"] = user.security.model_copy(update={"two_factor_auth": used})
    ctx = RequestContext(tenant_id=user.tenant_id, actor_id=user.id, role=Role(user.role))
    try:
        await Repository(User, ctx).update(user, changes, event_type="logged_in")
    except Conflict:
        # A concurrent write won; with 2FA it may have been a replay of this very code.
        if tfa.enabled:
            raise Unauthorized("A valid one-time code (`otp`) is required.") from None
    await passwords.reset(key)
    if tfa.enabled:
        await codes.reset(key)
    return security.create_access_token(
        settings,
        user_id=user.id,
        tenant_id=user.tenant_id,
        role=user.role,
        # The version the password was checked against: a change racing this login wins.
        token_version=user.security.token_version,
    )
