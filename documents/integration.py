"""Integrations: a user's connection to an outside system, in `integrations`.

Credentials are write-only: they are stored only as a Fernet token (`credentials_encrypted`,
made by `service.core.security.encrypt` with `FERNET_KEY`), are redacted in the journal, and no
response ever carries them (responses say `has_credentials`).
"""

from __future__ import annotations

from enum import StrEnum
from typing import ClassVar
from uuid import UUID

from pymongo import IndexModel

from documents.base import RootDocument, ShortText, UTCDateTime


class IntegrationType(StrEnum):
    """The outside systems Lead Ignite connects to."""

    google = "google"
    facebook = "facebook"
    instagram = "instagram"
    linkedin = "linkedin"
    twitter = "twitter"
    tiktok = "tiktok"
    youtube = "youtube"
    mailchimp = "mailchimp"
    sendgrid = "sendgrid"
    twilio = "twilio"
    hubspot = "hubspot"
    salesforce = "salesforce"
    zapier = "zapier"
    mls = "mls"
    webhook = "webhook"
    custom = "custom"


class IntegrationStatus(StrEnum):
    """Connection state; `connected_at` is set when it becomes `connected`."""

    pending = "pending"
    connected = "connected"
    disconnected = "disconnected"
    error = "error"


class Integration(RootDocument):
    """One connection of a user (or, with an API key, of the tenant) to an outside system."""

    aggregate_type: ClassVar[str] = "integration"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"credentials_encrypted"})

    user_id: UUID | None = None
    type: IntegrationType
    name: ShortText | None = None
    status: IntegrationStatus = IntegrationStatus.pending
    connected_at: UTCDateTime | None = None
    credentials_encrypted: str | None = None  # Fernet token of the credentials' JSON

    @property
    def has_credentials(self) -> bool:
        """Whether credentials are stored (their content never leaves the service)."""
        return self.credentials_encrypted is not None

    class Settings:
        name = "integrations"
        indexes = [
            IndexModel([("tenant_id", 1), ("is_deleted", 1), ("_id", -1)], name="tenant_list"),
            IndexModel([("tenant_id", 1), ("type", 1), ("_id", -1)], name="tenant_type"),
            IndexModel([("tenant_id", 1), ("user_id", 1), ("_id", -1)], name="tenant_user"),
        ]
