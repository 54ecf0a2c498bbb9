"""API shapes of billing and subscription; bodies refuse anything that looks like card data.

Only safe card data is ever accepted (provider, brand, last4, expiry). A body carrying a value
that looks like a full card number (12-19 digits, Luhn-valid, spaces/dashes allowed) anywhere,
or a CVC-like key (`cvc`, `cvv`, …), is refused with 422 before validation, so it is never
stored, journaled or echoed (problem details never repeat input values).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)
from pydantic_core import PydanticCustomError

from documents.base import Email, Name, ShortText, UTCDateTime, utcnow
from documents.user import (
    BillingStatus,
    SubscriptionStatus,
    SubscriptionType,
)
from schemas.common import IgnoreTenantId, Money, ReadView, from_stored_cents

SECRET_CARD_KEYS = frozenset(
    {"cvc", "cvv", "cvv2", "cvc2", "cid", "csc", "security_code", "card_number", "pan"}
)
_DIGIT_RUN = re.compile(r"\d(?:[ -]?\d){11,18}")


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum of a string of digits."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def looks_like_pan(value: str) -> bool:
    """Whether a text contains a plausible full card number (12-19 digits, Luhn-valid)."""
    for run in _DIGIT_RUN.findall(value):
        digits = re.sub(r"[ -]", "", run)
        if 12 <= len(digits) <= 19 and luhn_valid(digits):
            return True
    return False


def _find_card_data(value: Any) -> str | None:
    # Iterative (not recursive), so a deeply nested body cannot exhaust the stack.
    stack: list[tuple[str, Any]] = [("", value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                where = f"{path}.{key}" if path else str(key)
                if str(key).lower().replace("-", "_") in SECRET_CARD_KEYS:
                    return where
                stack.append((where, inner))
        elif isinstance(item, list):
            stack.extend((f"{path}[{i}]", inner) for i, inner in enumerate(item))
        elif (
            isinstance(item, str | int | float)
            and not isinstance(item, bool)
            and looks_like_pan(str(item))
        ):
            return path or "body"
    return None


class CardSafeBody(IgnoreTenantId):
    """A request body that refuses full card numbers and CVCs anywhere in it (422)."""

    @model_validator(mode="before")
    @classmethod
    def _no_card_data(cls, data: Any) -> Any:
        found = _find_card_data(data)
        if found:
            raise PydanticCustomError(
                "card_data_refused",
                "{field} looks like a full card number or a card security code; only provider, "
                "brand, last4 and expiry may be sent",
                {"field": found},
            )
        return data


# -- requests ---------------------------------------------------------------------------------


class SubscriptionChange(IgnoreTenantId):
    """`PUT /v1/subscription`: the plan to be on."""

    plan: SubscriptionType


class BillingAddressBody(CardSafeBody):
    """A billing address."""

    line1: ShortText | None = None
    line2: ShortText | None = None
    city: ShortText | None = None
    state: ShortText | None = None
    postal_code: ShortText | None = None
    country: ShortText | None = None


class BillingInfoBody(CardSafeBody):
    """`PUT /v1/billing/info`: who and where to bill (replaced whole)."""

    billing_name: ShortText | None = None
    billing_email: Email | None = None
    address: BillingAddressBody = Field(default_factory=BillingAddressBody)
    tax_id: ShortText | None = None


Last4 = Annotated[str, StringConstraints(pattern=r"^\d{4}$")]


class PaymentMethodCreate(CardSafeBody):
    """`POST /v1/billing/payment-methods`: safe card data only (never the number or CVC)."""

    provider: Name = Field(description="The payment provider holding the card, e.g. `stripe`.")
    brand: ShortText | None = None
    last4: Last4
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    is_default: bool = False

    @model_validator(mode="after")
    def _not_expired(self) -> PaymentMethodCreate:
        now = utcnow()
        if (self.exp_year, self.exp_month) < (now.year, now.month):
            raise ValueError("the card has expired")
        return self


class BillingHistoryCreate(CardSafeBody):
    """`POST /v1/billing/history`: an invoice or charge (from the billing integration)."""

    user_id: UUID | None = Field(default=None, description="Defaults to the caller.")
    amount: Money
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    date: UTCDateTime
    status: BillingStatus
    description: ShortText | None = None


# -- responses --------------------------------------------------------------------------------


class PlanChangeRead(BaseModel):
    """One plan change."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    from_plan: SubscriptionType = Field(alias="from")
    to_plan: SubscriptionType = Field(alias="to")
    changed_at: datetime


class SubscriptionRead(BaseModel):
    """The caller's subscription; `plan` is the current `subscription_type`."""

    # Stored as `subscription_type`.
    plan: SubscriptionType = Field(validation_alias=AliasChoices("plan", "subscription_type"))
    status: SubscriptionStatus
    started_at: datetime
    ends_at: datetime | None
    plan_history: list[PlanChangeRead]


class BillingHistoryRead(BaseModel):
    """An invoice or charge; `amount` in major units."""

    id: UUID
    amount: Money
    currency: str
    date: datetime
    status: BillingStatus
    description: str | None

    @model_validator(mode="before")
    @classmethod
    def _stored(cls, data: Any) -> Any:
        return from_stored_cents(data, {"amount": "amount_cents"})


class PaymentMethodRead(BaseModel):
    """A stored payment method: safe data only."""

    id: UUID
    provider: str
    brand: str | None
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool


class BillingAddressRead(BaseModel):
    """A billing address."""

    line1: str | None
    line2: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None


class BillingInfoRead(BaseModel):
    """Who and where to bill."""

    billing_name: str | None
    billing_email: str | None
    address: BillingAddressRead
    tax_id: str | None
    default_payment_method_id: UUID | None


class BillingAccountRead(BaseModel):
    """The billing part of a user: who to bill, recent history (amounts in major units), cards."""

    billing_info: BillingInfoRead
    billing_history: list[BillingHistoryRead]
    payment_methods: list[PaymentMethodRead]


class BillingRead(BillingAccountRead):
    """`GET /v1/billing`: subscription, billing info, recent history, payment methods."""

    subscription: SubscriptionRead

    @model_validator(mode="before")
    @classmethod
    def _from_user(cls, data: Any) -> Any:
        # A stored user: its `billing` part flattened beside its `subscription`.
        if isinstance(data, dict) and isinstance(data.get("billing"), dict):
            return {**data["billing"], "subscription": data["subscription"]}
        return data


SUBSCRIPTION_VIEW: ReadView[SubscriptionRead] = ReadView(SubscriptionRead)
"""A user's stored subscription → `SubscriptionRead` (`plan`, the current type)."""
BILLING_INFO_VIEW: ReadView[BillingInfoRead] = ReadView(BillingInfoRead)
"""A user's stored billing info → `BillingInfoRead`."""
PAYMENT_METHOD_VIEW: ReadView[PaymentMethodRead] = ReadView(PaymentMethodRead)
"""A stored payment method → `PaymentMethodRead` (safe data only)."""
BILLING_HISTORY_VIEW: ReadView[BillingHistoryRead] = ReadView(BillingHistoryRead)
"""A stored invoice or charge → `BillingHistoryRead` (money in major units)."""
BILLING_VIEW: ReadView[BillingRead] = ReadView(BillingRead)
"""A stored user → `BillingRead`, its subscription and billing parts."""
