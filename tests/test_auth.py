"""Registration, login (throttling, constant time), tokens and TOTP two-factor authentication."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import jwt
import pyotp
import pytest
from bson import Binary

from documents.journal import DomainEvent
from documents.tenant import Tenant
from documents.throttle import ThrottleCounter
from documents.user import User
from service.auth import AuthCache, authenticate
from service.core import journal, security
from service.core.errors import TooManyRequests, Unauthorized
from service.core.settings import Settings
from service.core.throttle import Throttle
from tests.support.helpers import PASSWORD, Account, assert_problem

GOOD_PASSWORD = "a-long-password-42"


async def register(client: httpx.AsyncClient, **body: Any) -> httpx.Response:
    data = {"username": "ana.silva", "email": "Ana@Example.com", "password": GOOD_PASSWORD}
    return await client.post("/v1/auth/register", json={**data, **body})


async def login(client: httpx.AsyncClient, username: str, password: str, **extra: str) -> Any:
    return await client.post(
        "/v1/auth/token", data={"username": username, "password": password, **extra}
    )


# -- registration -----------------------------------------------------------------------------


async def test_register_creates_a_tenant_owned_by_the_new_user(client: httpx.AsyncClient) -> None:
    response = await register(client, organization_name="Silva Realty")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["role"] == "owner" and body["email"] == "ana@example.com"
    assert body["version"] == 1 and response.headers["ETag"] == '"1"'
    assert GOOD_PASSWORD not in response.text and "password_hash" not in response.text
    assert "$argon2" not in response.text
    tenant = await Tenant.find_one({"_id": Binary.from_uuid(_uuid(body["tenant_id"]))})
    assert tenant is not None and tenant.name == "Silva Realty"
    assert str(tenant.owner_id) == body["id"]


def _uuid(value: str) -> Any:
    from uuid import UUID

    return UUID(value)


async def test_register_ignores_a_tenant_id_in_the_body(
    client: httpx.AsyncClient, owner: Account
) -> None:
    response = await register(client, tenant_id=str(owner.tenant_id))
    assert response.status_code == 201
    assert response.json()["tenant_id"] != str(owner.tenant_id)


@pytest.mark.parametrize(
    "clash", [{"email": "ANA@example.com", "username": "other"}, {"email": "x@example.com"}]
)
async def test_email_and_username_are_unique_across_the_service(
    client: httpx.AsyncClient, clash: dict[str, str]
) -> None:
    assert (await register(client)).status_code == 201
    assert_problem(await register(client, **clash), 409)


@pytest.mark.parametrize(
    ("password", "rule"), [("short1", "12 characters"), ("no-digits-in-here", "a digit")]
)
async def test_the_password_policy_is_enforced(
    client: httpx.AsyncClient, password: str, rule: str
) -> None:
    body = assert_problem(await register(client, password=password), 422)
    assert rule in body["detail"] and body["errors"][0]["loc"] == ["body", "password"]
    assert await User.find_one({"username": "ana.silva"}) is None


@pytest.mark.parametrize(
    "extra",
    [
        {"role": "admin"},
        {"password_hash": "x"},
        {"is_active": False},
        {"username": "a b"},
        {"email": "not-an-email"},
        {"organization_name": "x" * 201},
        {"invitation_token": "short"},
    ],
)
async def test_register_refuses_unknown_fields_and_bad_values(
    client: httpx.AsyncClient, extra: dict[str, Any]
) -> None:
    assert_problem(await register(client, **extra), 422)


# -- login ------------------------------------------------------------------------------------


async def test_login_with_email_or_username(client: httpx.AsyncClient, owner: Account) -> None:
    for name in (owner.user.email.upper(), owner.user.username):
        response = await login(client, name, PASSWORD)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 3600
        me = await client.get(
            "/v1/users/me", headers={"Authorization": f"Bearer {body['access_token']}"}
        )
        assert me.status_code == 200 and me.json()["id"] == str(owner.id)
    stored = await User.get(owner.id)
    assert stored is not None and stored.last_login_at is not None


async def test_wrong_password_and_unknown_account_answer_the_same_401(
    client: httpx.AsyncClient, owner: Account
) -> None:
    wrong = assert_problem(await login(client, owner.user.email, "wrong-password-1"), 401)
    unknown = assert_problem(await login(client, "nobody@example.com", PASSWORD), 401)
    assert wrong["detail"] == unknown["detail"]


async def test_login_burns_a_hash_when_the_account_does_not_exist(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str | None] = []
    real = security.verify_and_update

    async def spy(settings: Settings, password: str, password_hash: str | None) -> Any:
        calls.append(password_hash)
        return await real(settings, password, password_hash)

    monkeypatch.setattr(security, "verify_and_update", spy)
    assert_problem(await login(client, "ghost", "whatever-123"), 401)
    assert calls == [None]  # verify_and_update(pw, None) verifies against the dummy hash


async def test_login_form_needs_username_and_password(client: httpx.AsyncClient) -> None:
    assert_problem(await client.post("/v1/auth/token", data={"username": "x"}), 422)
    # JSON instead of the OAuth2 form: 415, saying what to send (tests/test_http_semantics.py).
    assert_problem(await client.post("/v1/auth/token", json={"username": "x"}), 415)


async def test_disabled_user_cannot_log_in(client: httpx.AsyncClient, owner: Account) -> None:
    await User.get_pymongo_collection().update_one(
        {"_id": Binary.from_uuid(owner.id)}, {"$set": {"is_active": False}}
    )
    assert_problem(await login(client, owner.user.username, PASSWORD), 401)
    assert_problem(await owner.client.get("/v1/users/me"), 401)


# -- throttling -------------------------------------------------------------------------------


async def test_repeated_failures_are_throttled_then_released(
    client: httpx.AsyncClient, owner: Account, settings: Settings
) -> None:
    for _ in range(settings.login_max_failures):
        assert_problem(await login(client, owner.user.username, "wrong-password-1"), 401)
    # Locked: even the right password (and the account's email) answers 429 with Retry-After.
    response = await login(client, owner.user.email, PASSWORD)
    assert_problem(response, 429)
    assert 1 <= int(response.headers["Retry-After"]) <= settings.login_lockout_seconds
    # The lock is short: once it has passed the real owner gets in again.
    past = datetime.now(UTC) - timedelta(seconds=1)
    await ThrottleCounter.get_pymongo_collection().update_many({}, {"$set": {"locked_until": past}})
    assert (await login(client, owner.user.username, PASSWORD)).status_code == 200


async def test_unknown_accounts_are_throttled_too(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    for _ in range(settings.login_max_failures):
        assert_problem(await login(client, "ghost", "wrong-password-1"), 401)
    assert_problem(await login(client, "ghost", "wrong-password-1"), 429)


async def test_a_success_resets_the_failure_count(
    client: httpx.AsyncClient, owner: Account, settings: Settings
) -> None:
    for _ in range(2):
        for _ in range(settings.login_max_failures - 1):
            assert_problem(await login(client, owner.user.username, "wrong-password-1"), 401)
        assert (await login(client, owner.user.username, PASSWORD)).status_code == 200


@pytest.mark.usefixtures("app")
async def test_throttle_is_keyed_and_reusable_per_address() -> None:
    throttle = Throttle("register-ip", max_failures=2, lockout_seconds=30, window_seconds=60)
    assert await throttle.retry_after("10.0.0.1") == 0
    await throttle.attempt("10.0.0.1")
    await throttle.attempt("10.0.0.1")  # the last ticket: locks the key
    with pytest.raises(TooManyRequests) as exc:
        await throttle.attempt("10.0.0.1")
    assert 29 <= int(exc.value.headers["Retry-After"]) <= 30
    await throttle.attempt("10.0.0.2")  # other keys are unaffected
    with pytest.raises(TooManyRequests):  # attempts while locked do not lift the lock
        await throttle.attempt("10.0.0.1")
    stored = await ThrottleCounter.get_pymongo_collection().find_one(
        {"_id": "register-ip:10.0.0.1"}
    )
    assert stored is not None and stored["expires_at"] is not None  # the TTL index cleans up


@pytest.mark.usefixtures("app")
async def test_stale_failures_are_forgotten() -> None:
    throttle = Throttle("t", max_failures=2, lockout_seconds=30, window_seconds=60)
    await throttle.attempt("k")
    past = datetime.now(UTC) - timedelta(seconds=1)
    await ThrottleCounter.get_pymongo_collection().update_one(
        {"_id": "t:k"}, {"$set": {"expires_at": past}}
    )
    await throttle.attempt("k")  # the window restarted: this is failure 1 of 2, not 2
    stored = await ThrottleCounter.get_pymongo_collection().find_one({"_id": "t:k"})
    assert stored is not None and stored["failures"] == 1 and stored["locked_until"] is None


@pytest.mark.usefixtures("app")
async def test_a_refund_gives_back_the_ticket_and_the_lock() -> None:
    throttle = Throttle("t", max_failures=2, lockout_seconds=30, window_seconds=60)
    await throttle.attempt("k")
    await throttle.attempt("k")  # locks
    await throttle.refund("k")  # …but that attempt was no wrong guess
    assert await throttle.retry_after("k") == 0
    await throttle.attempt("k")
    with pytest.raises(TooManyRequests):
        await throttle.attempt("k")
    await throttle.reset("k")  # a proven secret forgives everything
    await throttle.attempt("k")


# -- tokens -----------------------------------------------------------------------------------


async def test_missing_expired_forged_and_malformed_tokens_are_401(
    client: httpx.AsyncClient, owner: Account, settings: Settings
) -> None:
    assert_problem(await client.get("/v1/users/me"), 401)
    now = datetime.now(UTC)
    claims = {"sub": str(owner.id), "tid": str(owner.tenant_id), "role": "owner"}
    expired = jwt.encode(
        {**claims, "iat": now - timedelta(hours=2), "exp": now - timedelta(hours=1)},
        settings.jwt_secret,
        algorithm="HS256",
    )
    forged = jwt.encode(
        {**claims, "iat": now, "exp": now + timedelta(hours=1)},
        "another-secret-" + "y" * 40,
        algorithm="HS256",
    )
    unsigned = jwt.encode({**claims, "iat": now, "exp": now + timedelta(hours=1)}, None, "none")
    for token in (expired, forged, unsigned, "not-a-jwt"):
        response = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
        assert_problem(response, 401)
        assert response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_cached_token_is_refused_once_it_expires(
    owner: Account, settings: Settings
) -> None:
    # The auth cache kept a verified token for AUTH_CACHE_SECONDS whatever its `exp`: an
    # expired token went on working for up to 30 s (found hunting issue 30).
    expires = int(time.time()) + 1
    claims = {"sub": str(owner.id), "tid": str(owner.tenant_id), "ver": 0, "exp": expires}
    token = jwt.encode({**claims, "iat": expires - 1}, settings.jwt_secret, algorithm="HS256")
    cache = AuthCache(60)
    ctx = await authenticate(settings=settings, cache=cache, bearer=token, api_key=None)
    assert ctx.actor_id == owner.id and cache.get("jwt:" + token) is not None
    await asyncio.sleep(expires - time.time() + 0.05)
    with pytest.raises(Unauthorized):
        await authenticate(settings=settings, cache=cache, bearer=token, api_key=None)


async def test_credentials_are_read_from_the_headers_as_the_schemes_say(
    client: httpx.AsyncClient, owner: Account
) -> None:
    # `get_context` reads the headers itself (no security sub-dependencies on the hot path):
    # the scheme name in any case and extra spaces are fine; another scheme, a bare `Bearer`
    # or an empty API key are no credentials at all.
    for value in (f"Bearer {owner.token}", f"bearer {owner.token}", f"BEARER  {owner.token} "):
        response = await client.get("/v1/users/me", headers={"Authorization": value})
        assert response.status_code == 200, value
    for value in (f"Basic {owner.token}", "Bearer", "Bearer ", owner.token, ""):
        response = await client.get("/v1/users/me", headers={"Authorization": value})
        assert_problem(response, 401)
    assert_problem(await client.get("/v1/users/me", headers={"X-API-Key": ""}), 401)
    created = await owner.client.post("/v1/api-keys", json={"name": "reader", "role": "viewer"})
    key = created.json()["key"]
    # A key next to an unusable Authorization header still authenticates, as before.
    both = {"Authorization": "Basic abc", "X-API-Key": key}
    assert (await client.get("/v1/leads", headers=both)).status_code == 200
    assert_problem(await client.get("/v1/leads", headers={"X-API-Key": key + "x"}), 401)


async def test_a_token_claiming_another_tenant_is_refused(
    client: httpx.AsyncClient, owner: Account, stranger: Account, settings: Settings
) -> None:
    token, _ = security.create_access_token(
        settings, user_id=owner.id, tenant_id=stranger.tenant_id, role="owner"
    )
    response = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401)


# -- two-factor authentication ----------------------------------------------------------------

FROZEN = datetime(2030, 1, 1, 12, 0, 10, tzinfo=UTC)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Freeze the TOTP clock so codes for chosen steps are deterministic."""

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:  # noqa: ARG003  (datetime.now's signature)
            return FROZEN

    monkeypatch.setattr(security, "datetime", Clock)


def code_at(secret: str, steps_from_now: int) -> str:
    totp = pyotp.TOTP(secret)
    return totp.generate_otp(totp.timecode(FROZEN) + steps_from_now)


async def enrol(account: Account) -> str:
    response = await account.client.post("/v1/users/me/2fa")
    assert response.status_code == 200, response.text
    uri = response.json()["provisioning_uri"]
    assert uri.startswith("otpauth://totp/")
    return parse_qs(urlparse(uri).query)["secret"][0]


async def test_two_factor_enrol_confirm_login_and_disable(
    client: httpx.AsyncClient,
    owner: Account,
    settings: Settings,
    frozen_clock: None,  # noqa: ARG001  (requested after `owner`: its token is not frozen)
) -> None:
    secret = await enrol(owner)
    me = await owner.client.get("/v1/users/me")
    assert secret not in me.text and me.json()["security"]["two_factor_auth"]["enabled"] is False
    stored = await User.get(owner.id)
    assert stored is not None and stored.security.two_factor_auth.secret != secret
    assert security.decrypt(settings, stored.security.two_factor_auth.secret or "") == secret

    wrong = await owner.client.post("/v1/users/me/2fa/confirm", json={"code": "000000"})
    assert_problem(wrong, 422)
    ok = await owner.client.post("/v1/users/me/2fa/confirm", json={"code": code_at(secret, -1)})
    assert ok.status_code == 200 and ok.json()["enabled"] is True and secret not in ok.text
    me = await owner.client.get("/v1/users/me")
    assert me.json()["security"]["two_factor_auth"]["enabled"] is True
    assert "secret" not in me.json()["security"]["two_factor_auth"]
    assert_problem(await owner.client.post("/v1/users/me/2fa"), 409)  # already on

    name = owner.user.username
    assert_problem(await login(client, name, PASSWORD), 401)  # otp missing
    assert_problem(await login(client, name, PASSWORD, otp="123456"), 401)  # otp wrong
    assert_problem(await login(client, name, PASSWORD, otp=code_at(secret, -1)), 401)  # reused
    good = await login(client, name, PASSWORD, otp=code_at(secret, 0))
    assert good.status_code == 200, good.text
    assert_problem(await login(client, name, PASSWORD, otp=code_at(secret, 0)), 401)  # replay

    bad_off = await owner.client.request("DELETE", "/v1/users/me/2fa", json={"code": "999999"})
    assert_problem(bad_off, 422)
    off = await owner.client.request(
        "DELETE", "/v1/users/me/2fa", json={"code": code_at(secret, 1)}
    )
    assert off.status_code == 200 and off.json()["enabled"] is False
    assert (await login(client, name, PASSWORD)).status_code == 200
    assert_problem(
        await owner.client.request("DELETE", "/v1/users/me/2fa", json={"code": "123456"}), 409
    )


async def test_two_factor_secret_never_reaches_the_journal(
    owner: Account,
    frozen_clock: None,  # noqa: ARG001  (requested after `owner`: its token is not frozen)
) -> None:
    secret = await enrol(owner)
    await owner.client.post("/v1/users/me/2fa/confirm", json={"code": code_at(secret, 0)})
    events = await DomainEvent.find({"aggregate_id": Binary.from_uuid(owner.id)}).to_list()
    changes = [c for e in events for c in e.changes if "two_factor_auth.secret" in c.field]
    assert changes and all(c.new in (journal.REDACTED, None) for c in changes)
    assert secret not in str([e.model_dump() for e in events])
    history = await owner.client.get(f"/v1/users/{owner.id}/history")
    assert history.status_code == 200 and secret not in history.text


async def test_confirm_without_enrolment_and_malformed_codes(owner: Account) -> None:
    assert_problem(
        await owner.client.post("/v1/users/me/2fa/confirm", json={"code": "123456"}), 409
    )
    for code in ("12345", "abcdef", "1234567"):
        response = await owner.client.post("/v1/users/me/2fa/confirm", json={"code": code})
        assert_problem(response, 422)


async def test_api_keys_have_no_two_factor_of_their_own(owner: Account, app: Any) -> None:
    created = await owner.client.post("/v1/api-keys", json={"name": "svc", "role": "admin"})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport,
        base_url="http://test",
        headers={"X-API-Key": created.json()["key"]},
    ) as key_client:
        assert_problem(await key_client.post("/v1/users/me/2fa"), 403)
        assert_problem(await key_client.get("/v1/users/me"), 403)
