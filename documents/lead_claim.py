"""Lead claims: the guard that keeps a tenant's lead dedupe keys unique on a sharded `leads`.

One small document per (tenant, dedupe field, value) held by a live lead, in `lead_claims`,
naming the lead that holds it. Its unique index on `(tenant_id, field, value)` is what makes
dedupe exact: `leads` is sharded on `{tenant_id, _id}`, which cannot prefix a unique index on
`(tenant_id, email)`, while this collection is sharded on exactly its unique key
(service/storage/sharding.py). service/leads/claims.py claims a value before a lead is written
with it and releases it after the lead lets it go; a claim whose lead does not hold the value live
(a crash between claim and write) is stale after a grace period and may be taken over.
Operational data: not journaled, not an aggregate root.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from beanie import Document
from pydantic import Field
from pymongo import IndexModel
from uuid6 import uuid7

from documents.base import UTCDateTime, utcnow

DedupeField = Literal["email", "phone", "mls_id"]


class LeadClaim(Document):
    """`lead_id` holds `value` of `field` (normalised as stored on the lead) in its tenant."""

    id: UUID = Field(default_factory=uuid7)  # type: ignore[assignment]
    tenant_id: UUID
    field: DedupeField
    value: str
    lead_id: UUID
    # Set when claimed (or taken over, or confirmed again): a claim is judged stale only
    # after a grace period, so a write in flight between its claim and its lead is never lost.
    claimed_at: UTCDateTime = Field(default_factory=utcnow)

    class Settings:
        name = "lead_claims"
        indexes = [
            # The guard itself, and every claim and take-over (by the tenant's field and value).
            IndexModel(
                [("tenant_id", 1), ("field", 1), ("value", 1)],
                unique=True,
                name="tenant_field_value_unique",
            ),
            # Releasing a lead's claims (delete, erase, merge) and the stale sweep's owner checks.
            IndexModel([("tenant_id", 1), ("lead_id", 1)], name="tenant_lead"),
        ]


__all__ = ["DedupeField", "LeadClaim"]
