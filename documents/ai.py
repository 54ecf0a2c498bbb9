"""AI usage: one append-only document per model call in `ai_usage`.

Usage grows with every call, so it is its own collection (not a list on the user). The user's AI
settings (`GlobalAIConfig`, `GlobalAIContext`) are embedded in the User aggregate.
"""

from __future__ import annotations

from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import Field, StringConstraints
from pymongo import IndexModel

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
            IndexModel(
                [("tenant_id", 1), ("model", 1), ("occurred_at", -1)], name="tenant_model_occurred"
            ),
        ]
