"""Credential primitives: password hashing, JWTs, API-key hashing, TOTP and encryption at rest."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any, TypeVar
from uuid import UUID

import jwt
import pyotp
from cryptography.fernet import InvalidToken
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictInt, ValidationError

from service.core.settings import Settings

T = TypeVar("T")


@dataclass
class _Passwords:
    """Argon2id at one cost, with the thread pool its hashes run in."""

    argon2: Argon2Hasher
    hasher: PasswordHash
    pool: ThreadPoolExecutor
    # Verified against when the account does not exist, so login takes the same time either
    # way; made on first use, in the pool.
    dummy_hash: str | None = None

    def dummy(self) -> str:
        if self.dummy_hash is None:
            self.dummy_hash = self.hasher.hash(secrets.token_urlsafe(16))
        return self.dummy_hash


@lru_cache(maxsize=8)
def _passwords(time_cost: int, memory_kib: int, parallelism: int, concurrency: int) -> _Passwords:
    argon2 = Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    # A pool of its own bounds how many hashes run at once (each holds `memory_kib`), and
    # argon2 releases the GIL, so the event loop keeps answering while they run.
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="argon2")
    return _Passwords(argon2, PasswordHash((argon2,)), pool)


def _configured(settings: Settings) -> _Passwords:
    return _passwords(
        settings.password_hash_time_cost,
        settings.password_hash_memory_kib,
        settings.password_hash_parallelism,
        settings.password_hash_concurrency,
    )


async def _off_loop(passwords: _Passwords, fn: Callable[[], T]) -> T:
    return await asyncio.get_running_loop().run_in_executor(passwords.pool, fn)


async def hash_password(settings: Settings, password: str) -> str:
    """Argon2id hash of a password at the configured cost, computed off the event loop."""
    passwords = _configured(settings)
    return await _off_loop(passwords, lambda: passwords.hasher.hash(password))


async def verify_password(settings: Settings, password: str, password_hash: str | None) -> bool:
    """Check a password off the event loop; with no hash, burn the same time and say no."""
    ok, _ = await verify_and_update(settings, password, password_hash)
    return ok


async def verify_and_update(
    settings: Settings, password: str, password_hash: str | None
) -> tuple[bool, str | None]:
    """Check a password; when right but hashed at another cost, also its new hash (else None)."""
    passwords = _configured(settings)

    def check() -> tuple[bool, str | None]:
        if password_hash is None:
            passwords.hasher.verify(password, passwords.dummy())
            return False, None
        try:
            if not passwords.hasher.verify(password, password_hash):
                return False, None
        except Exception:  # a malformed stored hash must not turn into a 500
            return False, None
        if passwords.argon2.check_needs_rehash(password_hash):
            return True, passwords.hasher.hash(password)
        return True, None

    return await _off_loop(passwords, check)


API_KEY_PREFIX = "lik_"


def create_access_token(
    settings: Settings, *, user_id: UUID, tenant_id: UUID, role: str, token_version: int = 0
) -> tuple[str, int]:
    """A signed JWT for a user (at its credentials' `token_version`) and its lifetime in seconds."""
    now = datetime.now(UTC)
    ttl = settings.jwt_ttl_seconds
    claims = {
        "sub": str(user_id),
        "tid": str(tenant_id),
        "role": role,
        "ver": token_version,
        "iat": now,
        "nbf": now,
        "exp": now + timedelta(seconds=ttl),
        "jti": secrets.token_urlsafe(12),
    }
    assert settings.jwt_secret is not None
    return jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm), ttl


def _text(value: Any) -> Any:
    # A claim that names an id must be a JSON string: a list or an object is a forged shape.
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


ClaimId = Annotated[UUID, BeforeValidator(_text)]


class AccessClaims(BaseModel):
    """The claims this service reads from an access token, each of exactly its JSON type."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    sub: ClaimId
    tid: ClaimId
    iat: StrictInt
    exp: float  # seconds since the epoch (checked by `jwt.decode`; bounds the auth cache too)
    ver: StrictInt = Field(ge=0)


def decode_access_token(settings: Settings, token: str) -> AccessClaims:
    """Verified claims of a JWT; raises jwt.InvalidTokenError when forged, expired or malformed."""
    assert settings.jwt_secret is not None
    raw = jwt.decode(
        token,
        settings.jwt_secret,
        algorithms=[settings.jwt_algorithm],
        options={"require": ["sub", "tid", "exp", "iat", "ver"]},
    )
    try:
        return AccessClaims.model_validate(raw)
    except ValidationError:
        # Signed by us yet shaped wrongly (a list as tenant, a number as subject…): a bad token.
        raise jwt.InvalidTokenError("malformed claims") from None


def generate_api_key() -> str:
    """A new API key: 32 random bytes, URL-safe, with a recognisable prefix."""
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    """SHA-256 hex of an API key (keys are high-entropy, so no slow hash is needed)."""
    return hashlib.sha256(key.encode()).hexdigest()


def generate_token() -> str:
    """An unguessable token for links such as invitations."""
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """SHA-256 hex of a link token (invitations); only this hash is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


def encrypt(settings: Settings, plaintext: str) -> str:
    """Encrypt a secret for storage (Fernet)."""
    return settings.fernet.encrypt(plaintext.encode()).decode()


def decrypt(settings: Settings, token: str) -> str | None:
    """Decrypt a stored secret; None if it was encrypted with another key."""
    try:
        return settings.fernet.decrypt(token.encode()).decode()
    except InvalidToken:
        return None


def new_totp_secret() -> str:
    """A random base32 TOTP secret."""
    return pyotp.random_base32()


def totp_uri(secret: str, *, account: str, issuer: str = "Lead Ignite") -> str:
    """The otpauth:// provisioning URI for authenticator apps."""
    return pyotp.TOTP(secret).provisioning_uri(name=account, issuer_name=issuer)


def verify_totp(secret: str, code: str, *, last_used_step: int | None = None) -> int | None:
    """The matched time step if `code` is valid now (±1 step) and not reused, else None."""
    if not code.isdigit() or len(code) != 6:
        return None
    totp = pyotp.TOTP(secret)
    now_step = totp.timecode(datetime.now(UTC))
    for step in (now_step, now_step - 1, now_step + 1):
        if last_used_step is not None and step <= last_used_step:
            continue
        if secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None
