"""API keys for internal services: only a hash is stored; the key is shown once."""

from __future__ import annotations

from typing import ClassVar

from pymongo import IndexModel

from documents.base import Name, RootDocument, UTCDateTime
from documents.user import Role


class ApiKey(RootDocument):
    """A credential for a service; revoking it soft-deletes it (the key then answers 401)."""

    aggregate_type: ClassVar[str] = "api_key"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"key_hash"})

    name: Name
    role: Role = Role.member
    prefix: str  # first characters of the key, to recognise it in listings
    key_hash: str  # SHA-256 of the key (keys are 256-bit random, so a fast hash is enough)
    # Not updated on use: every write of an aggregate is journaled, and a journal entry per
    # request would drown the key's history. Access logs record key use instead.
    last_used_at: UTCDateTime | None = None

    class Settings:
        name = "api_keys"
        indexes = [
            IndexModel([("key_hash", 1)], unique=True, name="key_hash_unique"),
            IndexModel([("tenant_id", 1), ("is_deleted", 1), ("_id", -1)], name="tenant_list"),
        ]
