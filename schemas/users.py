"""API shapes of the User aggregate: reads without secrets, the merge-patch body, 2FA bodies.

The read shapes reuse the embedded part models of documents/user.py (they are plain, validated
value objects) except `security`, which gets its own secret-free shape. Patch bodies are built
from the same part models with every field optional (`partial`), so the edge validates types,
lengths and ranges and refuses unknown keys; the document re-validates the merged result.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, ClassVar, cast

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, create_model

from documents.base import FieldKey, SubDocument, Tag
from documents.user import (
    CompanyInfo,
    GlobalAIContext,
    GlobalUserSettings,
    LocationInfo,
    MarketingProfile,
    OnboardingStatus,
    Role,
    SecuritySettings,
    SocialLinks,
    TwoFactorMethod,
    Username,
    UserProfile,
)
from schemas.ai import AIConfigRead
from schemas.billing import BillingAccountRead, SubscriptionRead
from schemas.common import IgnoreTenantId, ListParams, ReadView, ResourceRead, strip_nulls

# -- reads ------------------------------------------------------------------------------------


class TwoFactorRead(BaseModel):
    """Whether 2FA is on; the secret never leaves the service."""

    enabled: bool
    methods: list[TwoFactorMethod] = []
    confirmed_at: datetime | None = None


class SecurityRead(BaseModel):
    """The security part without secrets."""

    two_factor_auth: TwoFactorRead
    security_settings: SecuritySettings


class UserRead(ResourceRead):
    """A user as colleagues in the tenant see it (`GET /v1/users`, `GET /v1/users/{id}`)."""

    username: str
    email: str
    role: Role
    is_active: bool
    last_login_at: datetime | None = None
    profile: UserProfile
    location: LocationInfo
    company: CompanyInfo
    socials: SocialLinks
    tags: list[str]
    segments: dict[str, str]


class UserMe(UserRead):
    """The caller's whole aggregate (`GET /v1/users/me`): every embedded part, no secrets.

    `subscription`, `billing` and `ai_config` use the same shapes as `/v1/subscription`,
    `/v1/billing` and `/v1/ai/config` (the plan is `plan`, money is in major units).
    """

    marketing: MarketingProfile
    settings: GlobalUserSettings
    onboarding: OnboardingStatus
    security: SecurityRead
    subscription: SubscriptionRead
    billing: BillingAccountRead
    ai_config: AIConfigRead
    ai_context: GlobalAIContext
    feature_flags: dict[str, bool]


USER_VIEW: ReadView[UserRead] = ReadView(UserRead)
"""Stored users → the colleague view (`UserRead`), one validation each."""
to_user_read = USER_VIEW.document
"""The colleague view of a user document in hand."""


USER_ME_VIEW: ReadView[UserMe] = ReadView(UserMe)
"""A stored user → the owner's view (`UserMe`): every part in its API shape, no secrets."""
to_user_me = USER_ME_VIEW.document
"""The owner's view of a user document in hand."""


class UserFilters(ListParams):
    """`GET /v1/users` filters."""

    role: Role | None = Field(default=None, description="Only users with this tenant role.")
    is_active: bool | None = Field(default=None, description="Only active (or inactive) users.")


# -- the merge patch --------------------------------------------------------------------------


def partial(
    model: type[BaseModel], *, exclude: frozenset[str] = frozenset(), name: str | None = None
) -> type[BaseModel]:
    """A copy of `model` whose fields are all optional (default None), nested parts too.

    Field constraints (lengths, ranges, patterns) are kept; unknown keys are refused.
    """
    fields: dict[str, Any] = {}
    for field_name, info in model.model_fields.items():
        if field_name in exclude:
            continue
        annotation: Any = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            annotation = partial(annotation)
        elif info.metadata:
            annotation = Annotated[annotation, *info.metadata]
        fields[field_name] = (
            annotation | None,
            Field(default=None, description=info.description, alias=info.alias),
        )
    return cast(
        type[BaseModel],
        create_model(  # type: ignore[call-overload]
            name or f"{model.__name__}Patch",
            # Unknown keys refused, no bool/number coercion (SubDocument, documents/base.py).
            __base__=SubDocument,
            **fields,
        ),
    )


ProfilePatch = partial(UserProfile)
LocationPatch = partial(LocationInfo)
CompanyPatch = partial(CompanyInfo)
MarketingPatch = partial(MarketingProfile)
SocialLinksPatch = partial(SocialLinks)
SettingsPatch = partial(GlobalUserSettings)
OnboardingPatch = partial(OnboardingStatus)
# `password_changed_at` is the service's to set.
SecuritySettingsPatch = partial(SecuritySettings, exclude=frozenset({"password_changed_at"}))

SegmentValue = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]


class SecurityPatch(BaseModel):
    """Only the password policy is patchable; 2FA has its own routes."""

    model_config = ConfigDict(extra="forbid")

    security_settings: SecuritySettingsPatch | None = None  # type: ignore[valid-type]


class UserMePatch(IgnoreTenantId):
    """`PATCH /v1/users/me`: a JSON merge patch (RFC 7396) of the patchable parts.

    Send only what changes; `null` resets a field (or a whole part) to its default. `email`,
    `role`, `password_hash`, `id`, `version`, 2FA, subscription, billing and the AI parts are
    not patchable here: sending them is refused with 422. `username` may change (409 if taken).
    """

    # Every part may be reset with `null`, but not the username: OpenAPI documents exactly that.
    model_config = ConfigDict(extra="forbid", json_schema_extra=strip_nulls)
    nullable: ClassVar[frozenset[str]] = frozenset(
        {"profile", "location", "company", "marketing", "socials", "settings", "onboarding"}
        | {"security", "feature_flags", "tags", "segments"}
    )

    username: Username | None = None
    profile: ProfilePatch | None = None  # type: ignore[valid-type]
    location: LocationPatch | None = None  # type: ignore[valid-type]
    company: CompanyPatch | None = None  # type: ignore[valid-type]
    marketing: MarketingPatch | None = None  # type: ignore[valid-type]
    socials: SocialLinksPatch | None = None  # type: ignore[valid-type]
    settings: SettingsPatch | None = None  # type: ignore[valid-type]
    onboarding: OnboardingPatch | None = None  # type: ignore[valid-type]
    security: SecurityPatch | None = None
    feature_flags: dict[FieldKey, StrictBool | None] | None = Field(default=None, max_length=200)
    tags: list[Tag] | None = Field(default=None, max_length=50)
    segments: dict[FieldKey, SegmentValue | None] | None = Field(default=None, max_length=50)

    def as_patch(self) -> dict[str, Any]:
        """The merge patch as sent: set fields only, explicit nulls kept."""
        return self.model_dump(exclude_unset=True)


class UserAdminPatch(IgnoreTenantId):
    """`PATCH /v1/users/{id}` (admin+): a colleague's tenant role and active flag."""

    role: Role | None = None
    is_active: bool | None = None


class PasswordChange(IgnoreTenantId):
    """`POST /v1/users/me/password`."""

    current_password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]
    new_password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


# -- 2FA --------------------------------------------------------------------------------------


class TwoFactorEnrolment(BaseModel):
    """The provisioning URI to scan into an authenticator app (shown once)."""

    provisioning_uri: str


class TwoFactorCode(IgnoreTenantId):
    """A 6-digit TOTP code."""

    code: Annotated[str, StringConstraints(strip_whitespace=True, pattern=r"^\d{6}$")]
