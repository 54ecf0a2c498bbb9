"""API shapes of AI settings (config, context) and AI usage logs with per-model totals."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints, model_validator

from documents.ai import (
    MAX_TOKENS_PER_CALL,
    FeatureName,
    ModelName,
)
from documents.base import ShortText, UTCDateTime
from documents.user import GlobalAIConfig, GlobalAIContext
from schemas.common import (
    IgnoreTenantId,
    Money,
    PageParams,
    ReadView,
    ResourceRead,
    from_stored_cents,
    money_to_cents,
)

LongNote = Annotated[str, StringConstraints(max_length=10_000)]


def _with_total_tokens(data: Any) -> Any:
    """Stored usage keeps prompt and completion tokens; the API adds their sum."""
    if isinstance(data, dict) and "total_tokens" not in data and "prompt_tokens" in data:
        return {**data, "total_tokens": data["prompt_tokens"] + data["completion_tokens"]}
    return data


Tokens = Annotated[int, Field(ge=0, le=MAX_TOKENS_PER_CALL)]


class AIConfigBody(IgnoreTenantId):
    """`PUT /v1/ai/config`: the whole config (omitted fields take their defaults).

    When `allowed_models` is not empty, `default_model` must be one of them.
    """

    default_model: ModelName = "gpt-4o-mini"
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=1024, ge=1, le=200_000)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    monthly_token_limit: int | None = Field(default=None, ge=0, le=10**12)
    monthly_cost_limit: Money | None = None
    allowed_models: list[ModelName] = Field(default_factory=list, max_length=50)

    @model_validator(mode="after")
    def _default_allowed(self) -> AIConfigBody:
        if self.allowed_models and self.default_model not in self.allowed_models:
            raise ValueError("default_model must be one of allowed_models")
        return self

    def to_model(self) -> GlobalAIConfig:
        """The embedded config this body describes (money as cents)."""
        limit = self.monthly_cost_limit
        return GlobalAIConfig(
            **self.model_dump(exclude={"monthly_cost_limit"}),
            monthly_cost_limit_cents=None if limit is None else money_to_cents(limit),
        )


class AIConfigRead(BaseModel):
    """The caller's AI config."""

    default_model: str
    temperature: float
    max_tokens: int
    top_p: float
    monthly_token_limit: int | None
    monthly_cost_limit: Money | None
    allowed_models: list[str]

    @model_validator(mode="before")
    @classmethod
    def _stored(cls, data: Any) -> Any:
        return from_stored_cents(data, {"monthly_cost_limit": "monthly_cost_limit_cents"})


class AIContextBody(IgnoreTenantId):
    """`PUT /v1/ai/context`: what the assistant knows about the business (replaced whole)."""

    business_description: LongNote | None = None
    target_audience: ShortText | None = None
    tone: ShortText | None = None
    goals: list[ShortText] = Field(default_factory=list, max_length=50)
    keywords: list[ShortText] = Field(default_factory=list, max_length=100)
    custom_instructions: LongNote | None = None

    def to_model(self) -> GlobalAIContext:
        """The embedded context this body describes."""
        return GlobalAIContext(**self.model_dump())


class AIContextRead(AIContextBody):
    """The caller's AI context."""


class AIUsageCreate(IgnoreTenantId):
    """`POST /v1/ai/usage`: one model call.

    `user_id` is the user it is billed to: a user may only log their own usage (it defaults to
    them); an API key may name any user of the tenant, or none for tenant-level usage.
    """

    model: ModelName
    prompt_tokens: Tokens
    completion_tokens: Tokens
    feature: FeatureName
    cost: Money | None = Field(default=None, description="Major units; defaults to 0.")
    occurred_at: UTCDateTime | None = Field(default=None, description="Defaults to now.")
    user_id: UUID | None = None


class AIUsageRead(ResourceRead):
    """A logged model call."""

    user_id: UUID | None
    model: str
    feature: str
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Money
    occurred_at: datetime

    @model_validator(mode="before")
    @classmethod
    def _stored(cls, data: Any) -> Any:
        return _with_total_tokens(from_stored_cents(data, {"cost": "cost_cents"}))


class AIUsageFilters(PageParams):
    """`GET /v1/ai/usage`: `since` inclusive, `until` exclusive (a date alone = midnight UTC)."""

    since: UTCDateTime | None = None
    until: UTCDateTime | None = None
    model: ModelName | None = None
    feature: FeatureName | None = None
    user_id: UUID | None = None

    @model_validator(mode="after")
    def _range(self) -> AIUsageFilters:
        if self.since and self.until and self.since >= self.until:
            raise ValueError("since must be before until")
        return self


class ModelTotals(BaseModel):
    """Usage of one model over the whole requested range."""

    calls: int
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    cost: Money

    @model_validator(mode="before")
    @classmethod
    def _stored(cls, data: Any) -> Any:
        return _with_total_tokens(from_stored_cents(data, {"cost": "cost_cents"}))


class AIUsagePage(BaseModel):
    """A page of usage logs (newest first) plus per-model totals over the whole range.

    `totals` are computed when a walk through the pages begins (the request without `cursor`)
    and every page of that walk answers the same ones: those of the whole range at that
    moment, whichever page they come with.
    """

    items: list[AIUsageRead]
    next_cursor: str | None = None
    totals: dict[str, ModelTotals]


AI_CONFIG_VIEW: ReadView[AIConfigRead] = ReadView(AIConfigRead)
"""A user's stored AI config → `AIConfigRead` (money in major units)."""
AI_CONTEXT_VIEW: ReadView[AIContextRead] = ReadView(AIContextRead)
"""A user's stored AI context → `AIContextRead`."""
AI_USAGE_VIEW: ReadView[AIUsageRead] = ReadView(AIUsageRead)
"""Stored usage logs → `AIUsageRead`, one validation each."""
to_ai_usage_read = AI_USAGE_VIEW.document
"""The response shape of a usage log document in hand."""
MODEL_TOTALS_VIEW: ReadView[ModelTotals] = ReadView(ModelTotals)
"""One model's summed usage → `ModelTotals` (money in major units)."""
