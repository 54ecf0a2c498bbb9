"""The User aggregate: one document in `users` with every one-to-one part embedded.

Lists that grow with use (campaigns, leads, events, blogs, research, usage, saved searches,
integrations, the change history) live in their own collections and point back by `user_id`.
The few embedded lists are bounded by validation (see the README's data-model table).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import Field, StringConstraints
from pymongo import IndexModel

from documents.base import (
    Cents,
    Email,
    FieldKey,
    Phone,
    PostalAddress,
    RootDocument,
    Segmented,
    ShortText,
    SubDocument,
    Url,
    UTCDateTime,
    utcnow,
)

Username = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True,
        to_lower=True,
        min_length=3,
        max_length=64,
        # Checked before lower-casing, so "Ana.Silva" is accepted and stored as "ana.silva".
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
    ),
]


# -- profile ----------------------------------------------------------------------------------


class ContactInfo(SubDocument):
    """How to reach the person."""

    email: Email | None = None
    phone: Phone | None = None
    mobile: Phone | None = None
    preferred_channel: ShortText | None = None


class UserProfile(SubDocument):
    """Who the user is (one-to-one with User)."""

    first_name: ShortText | None = None
    last_name: ShortText | None = None
    display_name: ShortText | None = None
    title: ShortText | None = None
    bio: Annotated[str, StringConstraints(max_length=5000)] | None = None
    avatar_url: Url | None = None
    contact_info: ContactInfo = Field(default_factory=ContactInfo)


class LocationInfo(SubDocument):
    """Where the user works."""

    country: ShortText | None = None
    state: ShortText | None = None
    city: ShortText | None = None
    postal_code: ShortText | None = None
    address_line: ShortText | None = None
    timezone: ShortText | None = None


class CompanyInfo(SubDocument):
    """The user's brokerage or company."""

    name: ShortText | None = None
    industry: ShortText | None = None
    website: Url | None = None
    size: ShortText | None = None
    license_number: ShortText | None = None


class MarketingProfile(SubDocument):
    """Marketing positioning: markets served, niches, brand voice."""

    target_markets: list[ShortText] = Field(default_factory=list, max_length=50)
    niches: list[ShortText] = Field(default_factory=list, max_length=50)
    brand_voice: ShortText | None = None
    target_audience: ShortText | None = None
    unique_value_proposition: Annotated[str, StringConstraints(max_length=2000)] | None = None


class SocialLinks(SubDocument):
    """Public social profiles."""

    website: Url | None = None
    twitter: Url | None = None
    linkedin: Url | None = None
    facebook: Url | None = None
    instagram: Url | None = None
    youtube: Url | None = None
    tiktok: Url | None = None


class OnboardingStatus(SubDocument):
    """Progress through onboarding."""

    completed: bool = False
    current_step: ShortText | None = None
    steps_completed: list[ShortText] = Field(default_factory=list, max_length=50)
    completed_at: UTCDateTime | None = None


# -- settings ---------------------------------------------------------------------------------


class NotificationPreferences(SubDocument):
    """Which notifications the user wants, per channel."""

    email: bool = True
    sms: bool = False
    push: bool = True
    in_app: bool = True
    marketing_emails: bool = False
    weekly_digest: bool = True
    lead_alerts: bool = True
    quiet_hours_start: Annotated[str, StringConstraints(pattern=r"^\d{2}:\d{2}$")] | None = None
    quiet_hours_end: Annotated[str, StringConstraints(pattern=r"^\d{2}:\d{2}$")] | None = None


class UserSettings(SubDocument):
    """Display and locale preferences."""

    language: ShortText = "en"
    timezone: ShortText = "UTC"
    theme: ShortText = "system"
    date_format: ShortText = "YYYY-MM-DD"


class GlobalUserSettings(SubDocument):
    """All of a user's settings: preferences and notification choices."""

    preferences: UserSettings = Field(default_factory=UserSettings)
    notifications: NotificationPreferences = Field(default_factory=NotificationPreferences)


# -- security ---------------------------------------------------------------------------------


class TwoFactorMethod(StrEnum):
    totp = "totp"


class TwoFactorAuth(SubDocument):
    """TOTP second factor. `secret` is encrypted at rest and never leaves the service."""

    enabled: bool = False
    methods: list[TwoFactorMethod] = Field(default_factory=list, max_length=4)
    secret: str | None = None  # Fernet token of the TOTP secret
    confirmed_at: UTCDateTime | None = None
    last_used_step: int | None = None  # the last accepted TOTP time step: codes are single-use


class SecuritySettings(SubDocument):
    """Password policy and session rules applied to this account."""

    min_password_length: int = Field(default=12, ge=8, le=128)
    require_uppercase: bool = False
    require_digit: bool = True
    require_symbol: bool = False
    session_timeout_minutes: int = Field(default=60, ge=5, le=7 * 24 * 60)
    password_changed_at: UTCDateTime | None = None


class Security(SubDocument):
    """The one-to-one security part of the user."""

    two_factor_auth: TwoFactorAuth = Field(default_factory=TwoFactorAuth)
    security_settings: SecuritySettings = Field(default_factory=SecuritySettings)
    # Bumped by every password change: access tokens carry the version they were issued at
    # (`ver`), and one carrying an older version is dead, however close in time it was issued.
    token_version: int = Field(default=0, ge=0)


# -- subscription and billing -----------------------------------------------------------------


class SubscriptionType(StrEnum):
    free = "free"
    starter = "starter"
    pro = "pro"
    team = "team"
    enterprise = "enterprise"


class SubscriptionStatus(StrEnum):
    active = "active"
    trialing = "trialing"
    past_due = "past_due"
    canceled = "canceled"


MAX_PLAN_HISTORY = 100


class PlanChange(SubDocument):
    """One change of plan (`from` → `to`)."""

    from_plan: SubscriptionType = Field(alias="from")
    to_plan: SubscriptionType = Field(alias="to")
    changed_at: UTCDateTime = Field(default_factory=utcnow)

    model_config = SubDocument.model_config | {"populate_by_name": True, "serialize_by_alias": True}


class Subscription(SubDocument):
    """The user's plan; `plan_history` keeps the latest changes (the journal keeps them all)."""

    subscription_type: SubscriptionType = SubscriptionType.free
    status: SubscriptionStatus = SubscriptionStatus.active
    started_at: UTCDateTime = Field(default_factory=utcnow)
    ends_at: UTCDateTime | None = None
    plan_history: list[PlanChange] = Field(default_factory=list, max_length=MAX_PLAN_HISTORY)


class BillingAddress(PostalAddress):
    """Where invoices go."""


class BillingInfo(SubDocument):
    """Who and where to bill."""

    billing_name: ShortText | None = None
    billing_email: Email | None = None
    address: BillingAddress = Field(default_factory=BillingAddress)
    tax_id: ShortText | None = None
    default_payment_method_id: UUID | None = None


class BillingStatus(StrEnum):
    paid = "paid"
    pending = "pending"
    failed = "failed"
    refunded = "refunded"


MAX_BILLING_HISTORY = 36
MAX_PAYMENT_METHODS = 10


class BillingHistoryItem(SubDocument):
    """One invoice or charge (amount in integer cents)."""

    id: UUID
    amount_cents: Cents
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    date: UTCDateTime
    status: BillingStatus
    description: ShortText | None = None


class PaymentDetails(SubDocument):
    """A stored payment method: only safe card data (never a full number or CVC)."""

    id: UUID
    provider: ShortText
    brand: ShortText | None = None
    last4: Annotated[str, StringConstraints(pattern=r"^\d{4}$")]
    exp_month: int = Field(ge=1, le=12)
    exp_year: int = Field(ge=2000, le=2100)
    is_default: bool = False


class GlobalBilling(SubDocument):
    """Billing: who to bill, recent history and payment methods (all bounded)."""

    billing_info: BillingInfo = Field(default_factory=BillingInfo)
    billing_history: list[BillingHistoryItem] = Field(
        default_factory=list, max_length=MAX_BILLING_HISTORY
    )
    payment_methods: list[PaymentDetails] = Field(
        default_factory=list, max_length=MAX_PAYMENT_METHODS
    )


# -- AI ---------------------------------------------------------------------------------------


class GlobalAIConfig(SubDocument):
    """The user's LLM settings."""

    default_model: ShortText = "gpt-4o-mini"
    temperature: float = Field(default=0.7, ge=0.0, le=2.0)
    max_tokens: int = Field(default=1024, ge=1, le=200_000)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    monthly_token_limit: int | None = Field(default=None, ge=0)
    monthly_cost_limit_cents: Cents | None = None
    allowed_models: list[ShortText] = Field(default_factory=list, max_length=50)


class GlobalAIContext(SubDocument):
    """What the assistant knows about the user's business."""

    business_description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    target_audience: ShortText | None = None
    tone: ShortText | None = None
    goals: list[ShortText] = Field(default_factory=list, max_length=50)
    keywords: list[ShortText] = Field(default_factory=list, max_length=100)
    custom_instructions: Annotated[str, StringConstraints(max_length=10_000)] | None = None


# -- the aggregate root -----------------------------------------------------------------------


class Role(StrEnum):
    """The tenant-wide role of a user or an API key, lowest to highest.

    Defined here, where it is stored (`users.role`, `api_keys.role`, `invitations.role`);
    `service.core.context` and the schemas use this one. Compared by rank, never alphabetically.
    """

    viewer = "viewer"
    member = "member"
    admin = "admin"
    owner = "owner"

    @property
    def rank(self) -> int:
        """Position in the hierarchy (viewer 0 … owner 3)."""
        return _RANKS[self.value]

    def __ge__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank >= other.rank

    def __gt__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank > other.rank

    def __le__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank <= other.rank

    def __lt__(self, other: object) -> bool:  # type: ignore[override]
        if not isinstance(other, Role):
            return NotImplemented
        return self.rank < other.rank


_RANKS = {"viewer": 0, "member": 1, "admin": 2, "owner": 3}

FeatureFlags = dict[FieldKey, bool]


class User(RootDocument, Segmented):
    """A person using Lead Ignite: the aggregate root with all its one-to-one parts embedded."""

    aggregate_type: ClassVar[str] = "user"
    secret_fields: ClassVar[frozenset[str]] = frozenset(
        {
            "password_hash",
            "security.two_factor_auth.secret",
            "security.two_factor_auth.last_used_step",
        }
    )

    username: Username
    email: Email
    password_hash: str
    role: Role = Role.member  # the tenant-wide role
    is_active: bool = True
    last_login_at: UTCDateTime | None = None

    profile: UserProfile = Field(default_factory=UserProfile)
    location: LocationInfo = Field(default_factory=LocationInfo)
    company: CompanyInfo = Field(default_factory=CompanyInfo)
    marketing: MarketingProfile = Field(default_factory=MarketingProfile)
    socials: SocialLinks = Field(default_factory=SocialLinks)
    settings: GlobalUserSettings = Field(default_factory=GlobalUserSettings)
    onboarding: OnboardingStatus = Field(default_factory=OnboardingStatus)
    security: Security = Field(default_factory=Security)
    subscription: Subscription = Field(default_factory=Subscription)
    billing: GlobalBilling = Field(default_factory=GlobalBilling)
    ai_config: GlobalAIConfig = Field(default_factory=GlobalAIConfig)
    ai_context: GlobalAIContext = Field(default_factory=GlobalAIContext)
    feature_flags: FeatureFlags = Field(default_factory=dict, max_length=200)

    class Settings:
        name = "users"
        indexes = [
            # Email and username are unique across the service (normalised to lower case in code:
            # collation-based case-insensitive indexes are not portable to the embedded backend).
            IndexModel([("email", 1)], unique=True, name="email_unique"),
            IndexModel([("username", 1)], unique=True, name="username_unique"),
            IndexModel([("tenant_id", 1), ("is_deleted", 1), ("_id", -1)], name="tenant_list"),
            # `GET /v1/users?role=`.
            IndexModel(
                [("tenant_id", 1), ("role", 1), ("is_deleted", 1), ("_id", -1)], name="tenant_role"
            ),
        ]


__all__ = [
    "BillingAddress",
    "BillingHistoryItem",
    "BillingInfo",
    "BillingStatus",
    "CompanyInfo",
    "ContactInfo",
    "GlobalAIConfig",
    "GlobalAIContext",
    "GlobalBilling",
    "GlobalUserSettings",
    "LocationInfo",
    "MarketingProfile",
    "NotificationPreferences",
    "OnboardingStatus",
    "PaymentDetails",
    "PlanChange",
    "Role",
    "Security",
    "SecuritySettings",
    "SocialLinks",
    "Subscription",
    "SubscriptionStatus",
    "SubscriptionType",
    "TwoFactorAuth",
    "TwoFactorMethod",
    "User",
    "UserProfile",
    "UserSettings",
]
