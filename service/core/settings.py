"""Configuration from the environment (every variable is listed in the README)."""

from __future__ import annotations

import logging
import os
import secrets
from functools import cached_property
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Annotated, Any, Literal

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

log = logging.getLogger(__name__)

# OWASP's minimum Argon2id configuration (m=19 MiB, t=2, p=1): production refuses less.
MIN_PRODUCTION_TIME_COST = 2
MIN_PRODUCTION_MEMORY_KIB = 19_456
# In development, the JWT secret kept beside the embedded data file (`<file>.jwt-secret`).
DEV_JWT_SECRET_SUFFIX = ".jwt-secret"


class Settings(BaseSettings):
    """Service settings; secrets must be set explicitly outside development."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_env: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"

    mongodb_url: str | None = None
    mongodb_db: str = "lead_ignite"
    # Time budgets (service/core/deadlines.py; docs/deployment.md "Time budgets"). No client-wide
    # cap: a request, a background step and a batch each have their own.
    # Server selection and connecting outside a request's budget (start-up, CLI, batches).
    mongodb_timeout_ms: int = Field(default=2000, ge=100, le=60_000)
    # Each request's database work, server selection included: an outage answers 503 after it.
    request_timeout_ms: int = Field(default=5000, ge=100, le=120_000)
    # Each step of a background worker (sequencer, projectors, journal repair).
    background_timeout_ms: int = Field(default=20_000, ge=100, le=3_600_000)
    # One round trip (one batch) of work without a cumulative cap: exports, rebuild, migrate,
    # imports, index builds. PyMongo's socketTimeoutMS.
    mongodb_batch_timeout_ms: int = Field(default=60_000, ge=1000, le=3_600_000)
    # One index build by `indexes --apply` (which waits for it); start-up never waits longer
    # than one round trip and leaves a longer build to the server.
    index_build_timeout_ms: int = Field(default=3_600_000, ge=1000, le=86_400_000)
    # The embedded backend (MONGODB_URL unset) keeps its data here; empty = memory only.
    embedded_db_path: str = ".data/lead_ignite.embedded"
    embedded_snapshot_seconds: float = Field(default=5.0, ge=0, le=3600)
    # Every write is in the embedded log before it is acknowledged; fsync'd too when true.
    embedded_fsync: bool = True

    jwt_secret: str | None = Field(default=None, min_length=32)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    fernet_key: str | None = None
    auth_cache_seconds: float = Field(default=30.0, ge=0, le=300)

    invitation_ttl_hours: int = Field(default=168, ge=1)
    idempotency_ttl_hours: int = Field(default=48, ge=24)
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_seconds: int = Field(default=60, ge=1)
    # Failures older than this are forgotten (the counter restarts), see service/core/throttle.py.
    login_failure_window_seconds: int = Field(default=900, ge=1)
    register_max_per_minute: int = Field(default=20, ge=1)
    # Argon2id cost of new password hashes (argon2-cffi's RFC 9106 defaults); production refuses
    # less than OWASP's minimum (t=2, 19 MiB). Hashes run in a pool of PASSWORD_HASH_CONCURRENCY
    # threads, off the event loop; more logins than that wait their turn.
    password_hash_time_cost: int = Field(default=3, ge=1, le=20)
    password_hash_memory_kib: int = Field(default=65_536, ge=8, le=4 * 1_048_576)
    password_hash_parallelism: int = Field(default=4, ge=1, le=16)
    password_hash_concurrency: int = Field(default=2, ge=1, le=64)

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    bulk_max_body_bytes: int = Field(default=16 * 1_048_576, ge=1024)
    default_phone_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    # What MongoDB does with a write failing a collection's `$jsonSchema` validator once
    # installed (service/storage/validators.py): refuse it, or accept it and log a warning.
    validation_action: Literal["error", "warn"] = "error"

    # Proxies whose X-Forwarded-For / Forwarded headers are believed for the client address
    # (comma-separated addresses or CIDRs in the environment). Empty: the socket peer is it.
    trusted_proxies: Annotated[list[IPv4Network | IPv6Network], NoDecode] = []
    # Bearer token `/metrics` asks for; unset, `/metrics` is off (404).
    metrics_token: SecretStr | None = Field(default=None, min_length=16)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _split_proxies(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list):
            return [ip_network(v, strict=False) if isinstance(v, str) else v for v in value]
        return value

    # Background workers (service/background.py): sequencer, projectors, journal repair,
    # webhook delivery. Every process runs them; leases make one process do each at a time.
    background_workers: bool = True
    worker_poll_seconds: float = Field(default=1.0, ge=0.01, le=60)
    lease_ttl_seconds: float = Field(default=30.0, ge=1, le=600)
    journal_repair_seconds: float = Field(default=60.0, ge=0.1, le=86_400)
    # Feed work a request does inline before answering (GET /v1/changes, read models): at
    # most this many sequencer passes and projector batches per feed, and this much time
    # after the first; the background workers do the rest (service/projections/runner.py).
    inline_feed_batches: int = Field(default=4, ge=1, le=100)
    inline_feed_budget_ms: int = Field(default=250, ge=0, le=60_000)

    # Webhook delivery (service/webhooks/delivery.py).
    webhook_timeout_seconds: float = Field(default=5.0, ge=0.1, le=60)
    webhook_retry_base_seconds: float = Field(default=5.0, ge=0.01, le=3600)
    webhook_retry_max_seconds: float = Field(default=3600.0, ge=0.01, le=86_400)
    webhook_disable_after_seconds: float = Field(default=3 * 86_400.0, ge=1)
    webhook_concurrency: int = Field(default=8, ge=1, le=256)

    @model_validator(mode="after")
    def _secrets(self) -> Settings:
        if self.app_env == "production":
            missing = [
                n for n in ("jwt_secret", "fernet_key", "mongodb_url") if not getattr(self, n)
            ]
            if missing:
                raise ValueError(f"set {', '.join(n.upper() for n in missing)} in production")
            if self.password_hash_time_cost < MIN_PRODUCTION_TIME_COST:
                raise ValueError(
                    f"PASSWORD_HASH_TIME_COST below {MIN_PRODUCTION_TIME_COST} is too weak "
                    "for production"
                )
            if self.password_hash_memory_kib < MIN_PRODUCTION_MEMORY_KIB:
                raise ValueError(
                    f"PASSWORD_HASH_MEMORY_KIB below {MIN_PRODUCTION_MEMORY_KIB} is too weak "
                    "for production"
                )
        if self.password_hash_memory_kib < 8 * self.password_hash_parallelism:
            raise ValueError(
                "PASSWORD_HASH_MEMORY_KIB must be at least 8 x PASSWORD_HASH_PARALLELISM"
            )
        if self.jwt_secret is None:
            self.jwt_secret = self._development_jwt_secret()
        if self.jwt_secret is None:
            log.warning("JWT_SECRET is not set: generated a random one (tokens die on restart)")
            self.jwt_secret = secrets.token_urlsafe(48)
        if self.fernet_key is None:
            log.warning("FERNET_KEY is not set: generated one (stored credentials die on restart)")
            self.fernet_key = Fernet.generate_key().decode()
        else:
            Fernet(self.fernet_key.encode())  # fail fast on a malformed key
        return self

    def _development_jwt_secret(self) -> str | None:
        """In development on the embedded file, a JWT secret kept beside it, else None.

        So a restart of `make run` keeps tokens valid. Never outside development: production
        must set JWT_SECRET, and tests make their own.
        """
        if self.app_env != "development" or self.mongodb_url or not self.embedded_db_path:
            return None
        path = Path(self.embedded_db_path + DEV_JWT_SECRET_SUFFIX)
        try:
            if not path.exists():
                # Written aside, then linked in: processes starting together agree on one.
                path.parent.mkdir(parents=True, exist_ok=True)
                aside = path.with_name(f"{path.name}.{os.getpid()}.tmp")
                with os.fdopen(
                    os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w"
                ) as f:
                    f.write(secrets.token_urlsafe(48) + "\n")
                try:
                    os.link(aside, path)
                    log.warning("JWT_SECRET is not set: created the development secret %s", path)
                except FileExistsError:
                    pass
                finally:
                    aside.unlink()
            kept = path.read_text(encoding="ascii").strip()
            if len(kept) < 32:
                raise OSError("shorter than 32 characters")
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("JWT_SECRET is not set and %s is unusable: %s", path, exc)
            return None
        log.warning("JWT_SECRET is not set: using the development secret %s (kept)", path)
        return kept

    @cached_property
    def fernet(self) -> Fernet:
        """The cipher for credentials at rest."""
        assert self.fernet_key is not None
        return Fernet(self.fernet_key.encode())
