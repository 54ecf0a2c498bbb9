"""AI usage: one append-only document per model call in `ai_usage`.

Usage grows with every call, so it is its own collection (not a list on the user). The user's AI
settings (`GlobalAIConfig`, `GlobalAIContext`) are embedded in the User aggregate.
`ai_usage_totals` keeps, for a short while, the per-model totals a paged usage listing computed
on its first page, so its later pages reuse them (see service/ai.py).
"""

from __future__ import annotations

from typing import Annotated, ClassVar
from uuid import UUID

from beanie import Document
from pydantic import BaseModel, Field, StringConstraints
from pymongo import IndexModel
from uuid6 import uuid7

from documents.base import NOT_BLANK, Cents, RootDocument, UTCDateTime, utcnow

ModelName = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:/@-]+$"
    ),
]
"""An LLM model name; used as a key of `totals`, so no spaces, dots-only names or `$`."""

FeatureName = Annotated[
    str,
    StringConstraints(strip_whitespace=True, to_lower=True, min_length=1, max_length=100),
    Field(json_schema_extra=NOT_BLANK),
]

MAX_TOKENS_PER_CALL = 100_000_000


class AIUsageLog(RootDocument):
    """One model call: who, which model, for which feature, tokens and cost (integer cents)."""

    aggregate_type: ClassVar[str] = "ai_usage"

    user_id: UUID | None = None  # the user it is billed to; None for tenant-level service usage
    model: ModelName
    feature: FeatureName
    prompt_tokens: int = Field(ge=0, le=MAX_TOKENS_PER_CALL)
    completion_tokens: int = Field(ge=0, le=MAX_TOKENS_PER_CALL)
    cost_cents: Cents = 0
    occurred_at: UTCDateTime = Field(default_factory=utcnow)

    class Settings:
        name = "ai_usage"
        indexes = [
            # The list (newest first by time) and the totals' `$match` on a time range.
            IndexModel(
                [("tenant_id", 1), ("occurred_at", -1), ("_id", -1)], name="tenant_occurred"
            ),
            IndexModel(
                [("tenant_id", 1), ("user_id", 1), ("occurred_at", -1), ("_id", -1)],
                name="tenant_user_occurred",
            ),
            # Equality → sort (`occurred_at`, then `_id` for the keyset) → range on the time.
            IndexModel(
                [("tenant_id", 1), ("model", 1), ("occurred_at", -1), ("_id", -1)],
                name="tenant_model_occurred_id",
            ),
            IndexModel(
                [("tenant_id", 1), ("feature", 1), ("occurred_at", -1), ("_id", -1)],
                name="tenant_feature_occurred_id",
            ),
        ]


MAX_CACHED_MODELS = 1000


class ModelUsageTotals(BaseModel):
    """One model's usage over a range (cost in integer cents)."""

    model: ModelName
    calls: int = Field(ge=0)
    prompt_tokens: int = Field(ge=0)
    completion_tokens: int = Field(ge=0)
    cost_cents: Cents


class AIUsageTotals(Document):
    """The per-model totals of one paged `GET /v1/ai/usage` walk, kept until `expires_at`.

    Written when a listing's first page has a next page; the next pages' cursors point at it,
    so the totals are computed once per walk instead of once per page. Operational state like
    a cursor, not business data: not versioned, not journaled; MongoDB's TTL monitor removes
    it and readers also check `expires_at` themselves.
    """

    id: UUID = Field(default_factory=uuid7)  # type: ignore[assignment]
    tenant_id: UUID
    filters_key: str = Field(min_length=1, max_length=128)  # the listing's filters, hashed
    totals: list[ModelUsageTotals] = Field(default_factory=list, max_length=MAX_CACHED_MODELS)
    computed_at: UTCDateTime
    expires_at: UTCDateTime

    class Settings:
        name = "ai_usage_totals"
        indexes = [IndexModel([("expires_at", 1)], expireAfterSeconds=0, name="expires_ttl")]
