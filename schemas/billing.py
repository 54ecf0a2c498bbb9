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

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic_core import PydanticCustomError

from documents.base import Email, Name, ShortText, UTCDateTime, utcnow
from documents.user import (
    BillingAddress,
    BillingHistoryItem,
    BillingInfo,
    BillingStatus,
    GlobalBilling,
    PaymentDetails,
    PlanChange,
    Subscription,
    SubscriptionStatus,
    SubscriptionType,
)
from schemas.common import IgnoreTenantId, Money, cents_to_money

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

    @classmethod
    def from_model(cls, change: PlanChange) -> PlanChangeRead:
        """The response shape of a stored plan change."""
        return cls(from_plan=change.from_plan, to_plan=change.to_plan, changed_at=change.changed_at)


class SubscriptionRead(BaseModel):
    """The caller's subscription; `plan` is the current `subscription_type`."""

    plan: SubscriptionType
    status: SubscriptionStatus
    started_at: datetime
    ends_at: datetime | None
    plan_history: list[PlanChangeRead]

    @classmethod
    def from_model(cls, sub: Subscription) -> SubscriptionRead:
        """The response shape of the embedded subscription."""
        return cls(
            plan=sub.subscription_type,
            status=sub.status,
            started_at=sub.started_at,
            ends_at=sub.ends_at,
            plan_history=[PlanChangeRead.from_model(c) for c in sub.plan_history],
        )


class BillingHistoryRead(BaseModel):
    """An invoice or charge; `amount` in major units."""

    id: UUID
    amount: Money
    currency: str
    date: datetime
    status: BillingStatus
    description: str | None

    @classmethod
    def from_model(cls, item: BillingHistoryItem) -> BillingHistoryRead:
        """The response shape of a stored history item."""
        return cls(
            **item.model_dump(exclude={"amount_cents"}), amount=cents_to_money(item.amount_cents)
        )


class PaymentMethodRead(BaseModel):
    """A stored payment method: safe data only."""

    id: UUID
    provider: str
    brand: str | None
    last4: str
    exp_month: int
    exp_year: int
    is_default: bool

    @classmethod
    def from_model(cls, method: PaymentDetails) -> PaymentMethodRead:
        """The response shape of a stored payment method."""
        return cls(**method.model_dump())


class BillingAddressRead(BaseModel):
    """A billing address."""

    line1: str | None
    line2: str | None
    city: str | None
    state: str | None
    postal_code: str | None
    country: str | None

    @classmethod
    def from_model(cls, address: BillingAddress) -> BillingAddressRead:
        """The response shape of a stored address."""
        return cls(**address.model_dump())


class BillingInfoRead(BaseModel):
    """Who and where to bill."""

    billing_name: str | None
    billing_email: str | None
    address: BillingAddressRead
    tax_id: str | None
    default_payment_method_id: UUID | None

    @classmethod
    def from_model(cls, info: BillingInfo) -> BillingInfoRead:
        """The response shape of stored billing info."""
        return cls(
            **info.model_dump(exclude={"address"}),
            address=BillingAddressRead.from_model(info.address),
        )


class BillingAccountRead(BaseModel):
    """The billing part of a user: who to bill, recent history (amounts in major units), cards."""

    billing_info: BillingInfoRead
    billing_history: list[BillingHistoryRead]
    payment_methods: list[PaymentMethodRead]

    @classmethod
    def from_model(cls, billing: GlobalBilling) -> BillingAccountRead:
        """The response shape of the embedded billing part."""
        return cls(
            billing_info=BillingInfoRead.from_model(billing.billing_info),
            billing_history=[BillingHistoryRead.from_model(i) for i in billing.billing_history],
            payment_methods=[PaymentMethodRead.from_model(m) for m in billing.payment_methods],
        )


class BillingRead(BillingAccountRead):
    """`GET /v1/billing`: subscription, billing info, recent history, payment methods."""

    subscription: SubscriptionRead

    @classmethod
    def from_user(cls, subscription: Subscription, billing: GlobalBilling) -> BillingRead:
        """The response shape of a user's subscription and billing parts."""
        return cls(
            subscription=SubscriptionRead.from_model(subscription),
            **dict(BillingAccountRead.from_model(billing)),
        )
