"""Configuration from the environment (every variable is listed in the README)."""

from __future__ import annotations

import logging
import secrets
from functools import cached_property
from typing import Literal

from cryptography.fernet import Fernet
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

log = logging.getLogger(__name__)


class Settings(BaseSettings):
    """Service settings; secrets must be set explicitly outside development."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore")

    app_env: Literal["development", "test", "production"] = "development"
    log_level: str = "INFO"

    mongodb_url: str | None = None
    mongodb_db: str = "lead_ignite"
    mongodb_timeout_ms: int = Field(default=2000, ge=100, le=60_000)
    mongodb_max_time_ms: int = Field(default=15_000, ge=100, le=600_000)
    # The embedded backend (MONGODB_URL unset) keeps its data here; empty = memory only.
    embedded_db_path: str = ".data/lead_ignite.embedded"
    embedded_snapshot_seconds: float = Field(default=5.0, ge=0, le=3600)

    jwt_secret: str | None = Field(default=None, min_length=32)
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_ttl_seconds: int = Field(default=3600, ge=60, le=7 * 24 * 3600)
    fernet_key: str | None = None
    auth_cache_seconds: float = Field(default=30.0, ge=0, le=300)

    invitation_ttl_hours: int = Field(default=168, ge=1)
    idempotency_ttl_hours: int = Field(default=48, ge=24)
    login_max_failures: int = Field(default=5, ge=1)
    login_lockout_seconds: int = Field(default=60, ge=1)
    # Failures older than this are forgotten (the counter restarts), see service/throttle.py.
    login_failure_window_seconds: int = Field(default=900, ge=1)
    register_max_per_minute: int = Field(default=20, ge=1)

    max_body_bytes: int = Field(default=1_048_576, ge=1024)
    bulk_max_body_bytes: int = Field(default=16 * 1_048_576, ge=1024)
    default_phone_region: str = Field(default="US", pattern=r"^[A-Z]{2}$")
    # What MongoDB does with a write failing a collection's `$jsonSchema` validator once
    # installed (service/validators.py): refuse it, or accept it and log a warning.
    validation_action: Literal["error", "warn"] = "error"

    @model_validator(mode="after")
    def _secrets(self) -> Settings:
        if self.app_env == "production":
            missing = [
                n for n in ("jwt_secret", "fernet_key", "mongodb_url") if not getattr(self, n)
            ]
            if missing:
                raise ValueError(f"set {', '.join(n.upper() for n in missing)} in production")
        if self.jwt_secret is None:
            log.warning("JWT_SECRET is not set: generated a random one (tokens die on restart)")
            self.jwt_secret = secrets.token_urlsafe(48)
        if self.fernet_key is None:
            log.warning("FERNET_KEY is not set: generated one (stored credentials die on restart)")
            self.fernet_key = Fernet.generate_key().decode()
        else:
            Fernet(self.fernet_key.encode())  # fail fast on a malformed key
        return self

    @cached_property
    def fernet(self) -> Fernet:
        """The cipher for credentials at rest."""
        assert self.fernet_key is not None
        return Fernet(self.fernet_key.encode())
