"""Documents of identity and teams: BSON round trips and validation edge cases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest
from beanie.odm.utils.encoder import Encoder
from bson import BSON, Binary
from bson.binary import UuidRepresentation
from bson.codec_options import CodecOptions
from pydantic import BaseModel, ValidationError
from uuid6 import uuid7

from documents.api_key import ApiKey
from documents.base import utcnow
from documents.team import (
    MAX_TEAM_MEMBERS,
    Invitation,
    InvitationStatus,
    MemberStatus,
    Team,
    TeamMember,
    TeamRole,
)
from documents.tenant import Tenant
from documents.user import (
    BillingHistoryItem,
    BillingInfo,
    CompanyInfo,
    ContactInfo,
    GlobalAIConfig,
    GlobalAIContext,
    GlobalBilling,
    GlobalUserSettings,
    LocationInfo,
    MarketingProfile,
    NotificationPreferences,
    OnboardingStatus,
    PaymentDetails,
    PlanChange,
    Security,
    SecuritySettings,
    SocialLinks,
    Subscription,
    TwoFactorAuth,
    User,
    UserProfile,
    UserSettings,
)
from service.core.repository import Repository
from tests.support.helpers import Account


@pytest.fixture(autouse=True)
def _bound(app: Any) -> None:
    """Beanie documents need their collections bound (the app's lifespan does it)."""


CODEC = CodecOptions(uuid_representation=UuidRepresentation.STANDARD, tz_aware=True, tzinfo=UTC)
TENANT = uuid7()


def through_bson(model: BaseModel) -> dict[str, Any]:
    """Encode as the driver would store it and decode it back (UUIDs, dates, nesting)."""
    raw = Encoder().encode(model)
    return BSON.encode(raw, codec_options=CODEC).decode(codec_options=CODEC)


def full_user() -> User:
    now = utcnow()
    return User(
        tenant_id=TENANT,
        username="Ana.Silva",
        email=" Ana@Example.COM ",
        password_hash="$argon2id$v=19$m=65536,t=3,p=4$x$y",
        role="admin",
        last_login_at=now,
        tags=["VIP", "north"],
        segments={"region": "west"},
        profile=UserProfile(
            first_name="Ana",
            bio="b" * 5000,
            contact_info=ContactInfo(email="A@X.com", phone="+1 415 555 2671", mobile="4155552672"),
        ),
        location=LocationInfo(country="US", city="SF", timezone="America/Los_Angeles"),
        company=CompanyInfo(name="Silva Realty", license_number="CA-1"),
        marketing=MarketingProfile(target_markets=["SF"], niches=["condos"]),
        socials=SocialLinks(linkedin="https://linkedin.com/in/ana"),
        settings=GlobalUserSettings(
            preferences=UserSettings(theme="dark"),
            notifications=NotificationPreferences(sms=True, quiet_hours_start="22:00"),
        ),
        onboarding=OnboardingStatus(completed=True, steps_completed=["a"], completed_at=now),
        security=Security(
            two_factor_auth=TwoFactorAuth(
                enabled=True, methods=["totp"], secret="enc", last_used_step=5
            ),
            security_settings=SecuritySettings(min_password_length=16, password_changed_at=now),
        ),
        subscription=Subscription(
            subscription_type="pro",
            plan_history=[PlanChange(**{"from": "free", "to": "pro"})],
        ),
        billing=GlobalBilling(
            billing_info=BillingInfo(billing_email="Bill@X.com"),
            billing_history=[
                BillingHistoryItem(id=uuid7(), amount_cents=4900, date=now, status="paid")
            ],
            payment_methods=[
                PaymentDetails(
                    id=uuid7(), provider="stripe", last4="4242", exp_month=1, exp_year=2030
                )
            ],
        ),
        ai_config=GlobalAIConfig(temperature=0.2, allowed_models=["gpt-4o"]),
        ai_context=GlobalAIContext(goals=["more listings"]),
        feature_flags={"beta": True},
    )


def test_user_round_trips_through_bson_with_every_part() -> None:
    user = full_user()
    stored = through_bson(user)
    assert stored["_id"] == user.id and isinstance(stored["created_at"], datetime)
    assert stored["subscription"]["plan_history"][0]["from"] == "free"  # readable aliases
    assert stored["billing"]["billing_history"][0]["amount_cents"] == 4900  # integer cents
    back = User.model_validate(stored)
    assert back == user
    assert back.username == "ana.silva" and back.email == "ana@example.com"
    assert back.profile.contact_info.mobile == "+14155552672"
    assert back.tags == ["vip", "north"]


async def test_user_round_trips_through_the_database(owner: Account) -> None:
    user = full_user()
    user.username, user.email = "dbuser", "db@example.com"
    created = await Repository(User, owner.ctx).create(user)
    loaded = await User.get(created.id)
    assert loaded is not None
    assert loaded.model_dump(exclude={"revision_id"}) == created.model_dump(exclude={"revision_id"})
    assert loaded.created_at.tzinfo is not None


@pytest.mark.parametrize(
    ("model", "data"),
    [
        (User, {"username": "ab"}),
        (User, {"username": "-lead"}),
        (User, {"username": "x" * 65}),
        (User, {"email": "nope"}),
        (User, {"role": "god"}),
        (User, {"feature_flags": {"a.b": True}}),
        (User, {"feature_flags": {"$set": True}}),
        (User, {"tags": ["t"] * 51}),
        (User, {"tags": [""]}),
        (User, {"version": 0}),
        (ContactInfo, {"phone": "12"}),
        (ContactInfo, {"email": "x"}),
        (ContactInfo, {"fax": "1"}),
        (UserProfile, {"bio": "b" * 5001}),
        (UserProfile, {"first_name": "x" * 201}),
        (LocationInfo, {"city": "x" * 201}),
        (CompanyInfo, {"website": "x" * 2049}),
        (MarketingProfile, {"niches": ["n"] * 51}),
        (SocialLinks, {"myspace": "x"}),
        (NotificationPreferences, {"quiet_hours_end": "10pm"}),
        (UserSettings, {"theme": "x" * 201}),
        (OnboardingStatus, {"steps_completed": ["s"] * 51}),
        (TwoFactorAuth, {"methods": ["sms"]}),
        (SecuritySettings, {"min_password_length": 7}),
        (SecuritySettings, {"session_timeout_minutes": 1}),
        (PlanChange, {"from": "free", "to": "platinum"}),
        (Subscription, {"status": "paused"}),
        (
            BillingHistoryItem,
            {"id": str(uuid7()), "amount_cents": -1, "date": "2030-01-01", "status": "paid"},
        ),
        (
            BillingHistoryItem,
            {
                "id": str(uuid7()),
                "amount_cents": 1,
                "date": "2030-01-01",
                "status": "paid",
                "currency": "usd",
            },
        ),
        (
            PaymentDetails,
            {"id": str(uuid7()), "provider": "s", "last4": "42", "exp_month": 1, "exp_year": 2030},
        ),
        (
            PaymentDetails,
            {
                "id": str(uuid7()),
                "provider": "s",
                "last4": "4242",
                "exp_month": 13,
                "exp_year": 2030,
            },
        ),
        (GlobalBilling, {"payment_methods": [{}] * 11}),
        (GlobalAIConfig, {"temperature": 2.5}),
        (GlobalAIConfig, {"top_p": 0}),
        (GlobalAIContext, {"keywords": ["k"] * 101}),
    ],
)
def test_invalid_values_are_refused(model: type[BaseModel], data: dict[str, Any]) -> None:
    base: dict[str, Any] = (
        {"tenant_id": TENANT, "username": "valid", "email": "v@example.com", "password_hash": "h"}
        if model is User
        else {}
    )
    with pytest.raises(ValidationError):
        model.model_validate({**base, **data})


def test_embedded_parts_refuse_unknown_keys_and_revalidate_assignment() -> None:
    profile = UserProfile()
    with pytest.raises(ValidationError):
        profile.first_name = "x" * 201
    with pytest.raises(ValidationError):
        Security.model_validate({"two_factor_auth": {"enabled": True, "backdoor": 1}})


def test_naive_stored_times_are_read_as_utc() -> None:
    user = User.model_validate(
        {
            "tenant_id": TENANT,
            "username": "valid",
            "email": "v@example.com",
            "password_hash": "h",
            "created_at": datetime(2030, 1, 1, 12, 0),
        }
    )
    assert user.created_at == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)


def test_user_secret_fields_cover_every_secret() -> None:
    assert {
        "password_hash",
        "security.two_factor_auth.secret",
        "security.two_factor_auth.last_used_step",
    } <= User.secret_fields


# -- tenant and API key -----------------------------------------------------------------------


def test_tenant_round_trip_and_region() -> None:
    tenant = Tenant(tenant_id=TENANT, name=" Acme ", owner_id=uuid7(), default_phone_region="GB")
    back = Tenant.model_validate(through_bson(tenant))
    assert back == tenant and back.name == "Acme"
    for bad in ({"default_phone_region": "gb"}, {"name": ""}, {"name": "x" * 201}):
        with pytest.raises(ValidationError):
            Tenant.model_validate({"tenant_id": TENANT, "name": "A", **bad})


def test_api_key_round_trip_and_role() -> None:
    key = ApiKey(
        tenant_id=TENANT, name="svc", role="admin", prefix="lik_abcdefgh", key_hash="f" * 64
    )
    assert ApiKey.model_validate(through_bson(key)) == key
    assert "key_hash" in ApiKey.secret_fields
    with pytest.raises(ValidationError):
        ApiKey(tenant_id=TENANT, name="svc", role="root", prefix="p", key_hash="h")


# -- team and invitation ----------------------------------------------------------------------


def test_team_round_trip_with_members() -> None:
    owner, member = uuid7(), uuid7()
    team = Team(
        tenant_id=TENANT,
        name="Listings",
        members=[
            TeamMember(user_id=owner, role=TeamRole.owner),
            TeamMember(user_id=member, status=MemberStatus.suspended),
        ],
    )
    stored = through_bson(team)
    assert stored["members"][0]["user_id"] == owner and stored["members"][1]["role"] == "member"
    back = Team.model_validate(stored)
    assert back == team and back.member(member) is not None and back.member(uuid7()) is None


def test_team_member_list_is_bounded_and_unique() -> None:
    same = uuid7()
    with pytest.raises(ValidationError):
        Team(tenant_id=TENANT, name="t", members=[TeamMember(user_id=same)] * 2)
    too_many = [TeamMember(user_id=uuid7()) for _ in range(MAX_TEAM_MEMBERS + 1)]
    with pytest.raises(ValidationError):
        Team(tenant_id=TENANT, name="t", members=too_many)
    with pytest.raises(ValidationError):
        TeamMember(user_id=same, role="viewer")
    with pytest.raises(ValidationError):
        TeamMember(user_id=same, status="gone")


def invitation(**extra: Any) -> Invitation:
    data: dict[str, Any] = {
        "tenant_id": TENANT,
        "team_id": uuid7(),
        "email": "Bo@Example.com",
        "token_hash": "a" * 64,
        "expires_at": utcnow() + timedelta(hours=1),
        **extra,
    }
    return Invitation(**data)


def test_invitation_round_trip_and_derived_expiry() -> None:
    inv = invitation(role="viewer")
    back = Invitation.model_validate(through_bson(inv))
    assert back == inv and back.email == "bo@example.com"
    assert back.effective_status() == InvitationStatus.pending
    past = invitation(expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert past.effective_status() == InvitationStatus.expired
    used = invitation(expires_at=datetime.now(UTC) - timedelta(seconds=1), status="accepted")
    assert used.effective_status() == InvitationStatus.accepted  # expiry only affects pending
    assert "token_hash" in Invitation.secret_fields


@pytest.mark.parametrize(
    "bad",
    [{"role": "owner"}, {"token_hash": "raw-token"}, {"email": "x"}, {"team_role": "viewer"}],
)
def test_invitation_validation(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        invitation(**bad)


def test_stored_uuids_are_bson_standard_binaries() -> None:
    inv = invitation()
    raw = BSON.encode(Encoder().encode(inv), codec_options=CODEC).decode()  # no UUID decoding
    assert raw["_id"] == Binary.from_uuid(inv.id) and raw["_id"].subtype == 4
    assert UUID(bytes=bytes(raw["team_id"])) == inv.team_id


def test_role_is_defined_once_and_ordered_by_rank() -> None:
    import ast
    from pathlib import Path

    from documents.user import Role
    from service.core import context

    assert context.Role is Role
    assert Role.viewer < Role.member < Role.admin < Role.owner  # not alphabetical
    assert Role.owner >= Role.admin and not Role.admin >= Role.owner
    assert max(Role) is Role.owner
    # Schemas describe the API from documents; they never import the service layer.
    for path in Path("schemas").glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = [
            n.module
            for n in ast.walk(tree)
            if isinstance(n, ast.ImportFrom) and n.module is not None
        ]
        assert not [m for m in imported if m.split(".")[0] == "service"], path
