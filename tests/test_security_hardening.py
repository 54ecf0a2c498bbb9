"""Issue 12: each defect an outside probe found, as a test that failed before its fix."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from service.core import security
from service.core.settings import Settings
from tests.factories import make_team
from tests.support.helpers import PASSWORD, Account, assert_problem

# -- defect 10: claims of a validly signed token are validated strictly -----------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"tid": ["a", "b"]},
        {"tid": {"$gt": ""}},
        {"sub": 42},
        {"sub": None},
        {"tid": "not-a-uuid"},
        {"iat": "yesterday"},
        {"iat": [1]},
    ],
)
async def test_a_signed_token_with_malformed_claims_is_401(
    client: httpx.AsyncClient, owner: Account, settings: Settings, bad: dict[str, Any]
) -> None:
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": str(owner.id),
        "tid": str(owner.tenant_id),
        "role": "owner",
        "iat": int(now.timestamp()),
        "exp": now + timedelta(hours=1),
        "ver": 0,
        **bad,
    }
    token = jwt.encode(claims, settings.jwt_secret, algorithm=settings.jwt_algorithm)
    response = await client.get("/v1/users/me", headers={"Authorization": f"Bearer {token}"})
    assert_problem(response, 401)


# -- defect 8: a password change revokes every token issued before it -------------------------


async def test_a_password_change_revokes_tokens_issued_in_the_same_second(
    client: httpx.AsyncClient, owner: Account, settings: Settings
) -> None:
    # Start at the beginning of a second, so the token and the change share it.
    await asyncio.sleep(1 - time.time() % 1 + 0.01)
    token, _ = security.create_access_token(
        settings, user_id=owner.id, tenant_id=owner.tenant_id, role="owner"
    )
    headers = {"Authorization": f"Bearer {token}"}
    changed = await client.post(
        "/v1/users/me/password",
        json={"current_password": PASSWORD, "new_password": "another-password-7"},
        headers=headers,
    )
    assert changed.status_code == 200, changed.text
    assert_problem(await client.get("/v1/users/me", headers=headers), 401)
    assert_problem(await owner.client.get("/v1/users/me"), 401)
    # A token issued right after the change (same second) works.
    fresh = await client.post(
        "/v1/auth/token",
        data={"username": owner.user.username, "password": "another-password-7"},
    )
    assert fresh.status_code == 200, fresh.text
    again = {"Authorization": f"Bearer {fresh.json()['access_token']}"}
    assert (await client.get("/v1/users/me", headers=again)).status_code == 200


# -- defect 6: keys that become MongoDB field paths are checked -------------------------------

BAD_KEYS = ["$gt", "a.b", "a\x00b", "", "$where"]


@pytest.mark.parametrize("key", BAD_KEYS)
@pytest.mark.parametrize("part", ["segments", "feature_flags"])
async def test_user_segment_and_flag_keys_are_checked(owner: Account, part: str, key: str) -> None:
    value: Any = "x" if part == "segments" else True
    response = await owner.client.patch("/v1/users/me", json={part: {key: value}})
    assert_problem(response, 422)
    me = (await owner.client.get("/v1/users/me")).json()
    assert key not in me[part]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_documents_refuse_such_keys_too(key: str) -> None:
    from uuid import uuid4

    from pydantic import ValidationError

    from documents.team import Team
    from documents.user import User

    base = {"tenant_id": uuid4(), "username": "ana", "email": "a@example.com"}
    with pytest.raises(ValidationError):
        User(**base, password_hash="x", segments={key: "x"})
    with pytest.raises(ValidationError):
        User(**base, password_hash="x", feature_flags={key: True})
    with pytest.raises(ValidationError):
        Team(tenant_id=uuid4(), name="t", segments={key: "x"})


async def test_good_segment_and_flag_keys_are_kept(owner: Account) -> None:
    body = {
        "segments": {"farm area": "north", "Tier-1": "gold"},
        "feature_flags": {"beta_ui": True},
    }
    response = await owner.client.patch("/v1/users/me", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["segments"] == body["segments"]
    assert response.json()["feature_flags"] == {"beta_ui": True}


# -- defect 5: date-times at the edges of the calendar are 422, never 500 ---------------------

# Valid ISO 8601 that Python parses, but that leave years 1..9999 once converted to UTC.
OUT_OF_RANGE = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]


def _cursor(field: str, when: str) -> str:
    import base64
    import json
    from uuid import uuid4

    raw = json.dumps({"f": field, "v": {"t": when}, "i": str(uuid4())})
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize("when", OUT_OF_RANGE)
async def test_out_of_range_date_times_are_422(owner: Account, when: str) -> None:
    c = owner.client
    bodies: list[tuple[str, str, dict[str, Any]]] = [
        ("PATCH", "/v1/users/me", {"onboarding": {"completed_at": when}}),
        ("POST", "/v1/campaigns", {"type": "call", "name": "c", "starts_at": when}),
        ("POST", "/v1/campaigns", {"type": "call", "name": "c", "ends_at": when}),
        (
            "POST",
            "/v1/blogs",
            {"title": "t", "content": "c", "status": "scheduled", "scheduled_for": when},
        ),
        (
            "POST",
            "/v1/ai/usage",
            {"model": "m", "prompt_tokens": 1, "completion_tokens": 1, "feature": "f"}
            | {"occurred_at": when},
        ),
    ]
    for method, path, body in bodies:
        assert_problem(await c.request(method, path, json=body), 422)
    for path in ("/v1/events", "/v1/ai/usage", "/v1/audit"):
        for param in ("since", "until"):
            assert_problem(await c.get(path, params={param: when}), 422)
    for path in ("/v1/ai/usage", "/v1/audit"):
        assert_problem(await c.get(path, params={"cursor": _cursor("occurred_at", when)}), 422)


def test_the_shared_types_refuse_what_utc_cannot_hold() -> None:
    from pydantic import TypeAdapter, ValidationError

    from documents.base import ISODateTime, UTCDateTime, as_utc

    for annotation in (UTCDateTime, ISODateTime):
        adapter: TypeAdapter[Any] = TypeAdapter(annotation)
        for when in OUT_OF_RANGE:
            with pytest.raises(ValidationError):
                adapter.validate_python(when)
        assert adapter.validate_python("0001-01-01T00:00:00Z").year == 1
        assert adapter.validate_python("9999-12-31T23:59:59+00:00").year == 9999
    with pytest.raises(ValueError, match="out of range once converted to UTC"):
        as_utc(datetime.fromisoformat(OUT_OF_RANGE[0]))


# -- defect 2: one conditional update decides each attempt ------------------------------------


async def test_parallel_wrong_logins_check_at_most_the_limit(
    client: httpx.AsyncClient, owner: Account, settings: Settings
) -> None:
    form = {"username": owner.user.username, "password": "wrong-password-1"}
    answers = await asyncio.gather(*(client.post("/v1/auth/token", data=form) for _ in range(20)))
    codes = sorted(r.status_code for r in answers)
    assert codes.count(401) == settings.login_max_failures, codes
    assert codes.count(429) == 20 - settings.login_max_failures, codes


@pytest.mark.usefixtures("app")
async def test_parallel_attempts_take_exactly_the_limit() -> None:
    from service.core.errors import TooManyRequests
    from service.core.throttle import Throttle

    throttle = Throttle("t", max_failures=5, lockout_seconds=30, window_seconds=60)

    async def one() -> bool:
        try:
            await throttle.attempt("k")
        except TooManyRequests:
            return False
        return True

    taken = await asyncio.gather(*(one() for _ in range(40)))
    assert taken.count(True) == 5


# -- defect 3: every secret a caller can guess is throttled ----------------------------------


async def _guesses_until_429(send: Any, limit: int) -> list[int]:
    codes = []
    for _ in range(limit + 1):
        codes.append((await send()).status_code)
    return codes


async def test_current_password_guesses_are_throttled(owner: Account, settings: Settings) -> None:
    limit = settings.login_max_failures

    async def guess() -> httpx.Response:
        body = {"current_password": "wrong-password-1", "new_password": "another-password-7"}
        return await owner.client.post("/v1/users/me/password", json=body)

    assert await _guesses_until_429(guess, limit) == [403] * limit + [429]
    right = {"current_password": PASSWORD, "new_password": "another-password-7"}
    locked = await owner.client.post("/v1/users/me/password", json=right)
    assert_problem(locked, 429)
    assert int(locked.headers["Retry-After"]) >= 1


async def test_the_password_is_one_secret_for_login_and_password_change(
    client: httpx.AsyncClient, owner: Account, settings: Settings
) -> None:
    body = {"current_password": "wrong-password-1", "new_password": "another-password-7"}
    for _ in range(settings.login_max_failures):
        assert_problem(await owner.client.post("/v1/users/me/password", json=body), 403)
    form = {"username": owner.user.username, "password": PASSWORD}
    assert_problem(await client.post("/v1/auth/token", data=form), 429)


async def _enrol(account: Account) -> str:
    from urllib.parse import parse_qs, urlparse

    uri = (await account.client.post("/v1/users/me/2fa")).json()["provisioning_uri"]
    return parse_qs(urlparse(uri).query)["secret"][0]


def _wrong_code(secret: str) -> str:
    import pyotp

    totp = pyotp.TOTP(secret)
    now = totp.timecode(datetime.now(UTC))
    valid = {totp.generate_otp(now + d) for d in (-1, 0, 1)}
    return next(c for c in (f"{n:06d}" for n in range(1000)) if c not in valid)


async def test_two_factor_codes_are_throttled_on_confirm_delete_and_login(
    client: httpx.AsyncClient, owner: Account, settings: Settings
) -> None:
    import pyotp

    limit = settings.login_max_failures
    secret = await _enrol(owner)
    wrong = {"code": _wrong_code(secret)}

    async def confirm() -> httpx.Response:
        return await owner.client.post("/v1/users/me/2fa/confirm", json=wrong)

    assert await _guesses_until_429(confirm, limit) == [422] * limit + [429]

    # The lock covers the right code too; once it is over, the right code turns 2FA on.
    from documents.throttle import ThrottleCounter

    await ThrottleCounter.get_pymongo_collection().delete_many({})
    code = pyotp.TOTP(secret).now()
    ok = await owner.client.post("/v1/users/me/2fa/confirm", json={"code": code})
    assert ok.status_code == 200, ok.text

    async def disable() -> httpx.Response:
        return await owner.client.request("DELETE", "/v1/users/me/2fa", json=wrong)

    assert await _guesses_until_429(disable, limit) == [422] * limit + [429]

    await ThrottleCounter.get_pymongo_collection().delete_many({})
    form = {"username": owner.user.username, "password": PASSWORD, "otp": wrong["code"]}

    async def login() -> httpx.Response:
        return await client.post("/v1/auth/token", data=form)

    assert await _guesses_until_429(login, limit) == [401] * limit + [429]


async def test_invitation_token_guesses_are_throttled(
    client: httpx.AsyncClient, member: Account, settings: Settings
) -> None:
    import secrets

    limit = settings.login_max_failures

    async def accept() -> httpx.Response:
        return await member.client.post(f"/v1/invitations/{secrets.token_urlsafe(32)}/accept")

    assert await _guesses_until_429(accept, limit) == [404] * limit + [429]

    async def register() -> httpx.Response:
        n = secrets.token_hex(4)
        body = {
            "username": f"guess{n}",
            "email": f"guess{n}@example.com",
            "password": "a-long-password-42",
            "invitation_token": secrets.token_urlsafe(32),
        }
        return await client.post("/v1/auth/register", json=body)

    codes = await _guesses_until_429(register, limit)
    assert codes == [404] * limit + [429]
    assert "invitation" in (await register()).json()["detail"].lower()


async def test_a_valid_invitation_does_not_count_as_a_guess(
    client: httpx.AsyncClient, owner: Account, settings: Settings
) -> None:
    team = await make_team(owner)
    for n in range(settings.login_max_failures + 2):
        created = await owner.client.post(
            f"/v1/teams/{team['id']}/invitations", json={"email": f"x{n}@example.com"}
        )
        body = {
            "username": f"invitee{n}",
            "email": f"x{n}@example.com",
            "password": "a-long-password-42",
            "invitation_token": created.json()["token"],
        }
        assert (await client.post("/v1/auth/register", json=body)).status_code == 201


# -- defect 4: Argon2 runs off the event loop, a bounded number at a time ---------------------


async def test_password_hashing_leaves_the_event_loop_free(
    client: httpx.AsyncClient, owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from pwdlib import PasswordHash

    loop_thread = threading.get_ident()
    finished: list[str] = []
    threads: list[int] = []
    real = PasswordHash.verify

    started = asyncio.Event()
    loop = asyncio.get_running_loop()

    def slow_verify(self: Any, password: Any, hash: Any) -> bool:
        threads.append(threading.get_ident())
        loop.call_soon_threadsafe(started.set)
        time.sleep(1.5)  # a slow hash: the loop must keep answering meanwhile
        finished.append("verify")
        return bool(real(self, password, hash))

    monkeypatch.setattr(PasswordHash, "verify", slow_verify)
    form = {"username": owner.user.username, "password": PASSWORD}
    login = asyncio.create_task(client.post("/v1/auth/token", data=form))
    await started.wait()
    health = await client.get("/health")
    finished.append("health")
    assert health.status_code == 200
    assert (await login).status_code == 200
    assert finished == ["health", "verify"]
    assert loop_thread not in threads


@pytest.mark.usefixtures("owner")
async def test_concurrent_hashes_are_bounded_by_the_setting(
    client: httpx.AsyncClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from pwdlib import PasswordHash

    running = 0
    peak = 0
    lock = threading.Lock()
    real = PasswordHash.verify

    def counting_verify(self: Any, password: Any, hash: Any) -> bool:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.05)
        with lock:
            running -= 1
        return bool(real(self, password, hash))

    monkeypatch.setattr(PasswordHash, "verify", counting_verify)
    # Unknown accounts: each login still burns one hash, and no account gets locked.
    forms = [{"username": f"ghost{n}", "password": "wrong-password-1"} for n in range(8)]
    answers = await asyncio.gather(*(client.post("/v1/auth/token", data=f) for f in forms))
    assert all(r.status_code == 401 for r in answers)
    assert 1 <= peak <= settings.password_hash_concurrency


def test_argon2_cost_comes_from_settings() -> None:
    from pydantic import ValidationError

    weak = {"password_hash_time_cost": 1, "password_hash_memory_kib": 64}
    production = {
        "app_env": "production",
        "jwt_secret": "s" * 40,
        "fernet_key": "yQ8hR3Hh6p4VbYdG0o8tYgq1w9H2sM3bGk7Zr8cXw5E=",
        "mongodb_url": "mongodb://db",
    }
    with pytest.raises(ValidationError, match="PASSWORD_HASH"):
        Settings(**production, **weak)
    assert Settings(**production).password_hash_memory_kib >= 19456
    cheap = Settings(app_env="test", **weak)
    stored = asyncio.run(security.hash_password(cheap, "a-long-password-42"))
    assert stored.startswith("$argon2id$") and "m=64,t=1," in stored


# -- defect 9: a campaign only references its own tenant's integrations ----------------------


async def test_a_campaign_refuses_another_tenants_integration(
    owner: Account, stranger: Account
) -> None:
    theirs = (await stranger.client.post("/v1/integrations", json={"type": "twilio"})).json()
    mine = (await owner.client.post("/v1/integrations", json={"type": "twilio"})).json()
    body: dict[str, Any] = {"type": "call", "name": "c"}
    foreign = [{"integration_id": mine["id"]}, {"integration_id": theirs["id"]}]
    refused = assert_problem(
        await owner.client.post("/v1/campaigns", json={**body, "integrations": foreign}), 422
    )
    assert refused["errors"][0]["loc"] == ["body", "integrations", 1, "integration_id"]
    created = await owner.client.post(
        "/v1/campaigns", json={**body, "integrations": [{"integration_id": mine["id"]}]}
    )
    assert created.status_code == 201, created.text
    campaign = created.json()
    patched = await owner.client.patch(
        f"/v1/campaigns/{campaign['id']}",
        json={"integrations": [{"integration_id": theirs["id"]}]},
    )
    assert_problem(patched, 422)
    # A deleted integration of one's own tenant is no valid reference either.
    assert (await owner.client.delete(f"/v1/integrations/{mine['id']}")).status_code == 204
    assert_problem(
        await owner.client.post(
            "/v1/campaigns", json={**body, "integrations": [{"integration_id": mine["id"]}]}
        ),
        422,
    )
    stored = (await owner.client.get(f"/v1/campaigns/{campaign['id']}")).json()
    assert [i["integration_id"] for i in stored["integrations"]] == [mine["id"]]


# -- defect 1: history shows no more than GET ------------------------------------------------

PRIVATE_VALUES = ["TAX-98765", "Silva Holdings", "Rua Privada 7", "Visa", "4242", "2031"]
PRIVATE_VALUES += ["never tell colleagues this", "Private Tower"]


async def _fill_private_parts(account: Account) -> None:
    info = {
        "billing_name": "Silva Holdings",
        "tax_id": "TAX-98765",
        "address": {"line1": "Rua Privada 7", "city": "Private Tower"},
    }
    assert (await account.client.put("/v1/billing/info", json=info)).status_code == 200
    card = {"provider": "stripe", "brand": "Visa", "last4": "4242", "exp_month": 1}
    created = await account.client.post(
        "/v1/billing/payment-methods", json=card | {"exp_year": 2031}
    )
    assert created.status_code == 201, created.text
    context = {"custom_instructions": "never tell colleagues this"}
    assert (await account.client.put("/v1/ai/context", json=context)).status_code == 200


@pytest.mark.parametrize("role", ["viewer", "member", "admin"])
async def test_a_colleagues_history_hides_what_their_get_hides(
    owner: Account, make_account: Any, role: str
) -> None:
    await _fill_private_parts(owner)
    colleague: Account = await make_account(role=role, tenant_of=owner)
    seen = await colleague.client.get(f"/v1/users/{owner.id}")
    history = await colleague.client.get(f"/v1/users/{owner.id}/history")
    assert seen.status_code == 200 and history.status_code == 200
    for value in PRIVATE_VALUES:
        assert value not in seen.text
        assert value not in history.text, value
    fields = {c["field"].split(".")[0] for e in history.json()["items"] for c in e["changes"]}
    assert fields <= set(seen.json())  # nothing but what GET shows
    assert {"billing", "ai_context", "security", "password_hash"}.isdisjoint(fields)
    # The events themselves stay listed (versions never skip), only their private changes go.
    versions = [e["version"] for e in history.json()["items"]]
    assert versions == list(range(1, len(versions) + 1))

    mine = await owner.client.get(f"/v1/users/{owner.id}/history")
    for value in PRIVATE_VALUES:
        assert value in mine.text, value  # one's own history shows it all (secrets aside)


def _request_models() -> list[type[Any]]:
    import importlib
    import pkgutil

    import schemas
    from schemas.common import IgnoreTenantId, ListParams, PageParams

    for info in pkgutil.iter_modules(schemas.__path__):
        importlib.import_module(f"schemas.{info.name}")
    found: list[type[Any]] = []
    pending: list[type[Any]] = [IgnoreTenantId, ListParams, PageParams]
    while pending:
        cls = pending.pop()
        found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def test_every_date_time_a_request_takes_refuses_what_utc_cannot_hold() -> None:
    import typing
    from datetime import datetime as dt

    from pydantic import BaseModel, TypeAdapter, ValidationError

    def mentions_datetime(annotation: Any) -> bool:
        if annotation is dt:
            return True
        return any(mentions_datetime(a) for a in typing.get_args(annotation))

    checked = 0
    seen: set[type[Any]] = set()
    models = _request_models()
    while models:
        model = models.pop()
        if model in seen or not (isinstance(model, type) and issubclass(model, BaseModel)):
            continue
        seen.add(model)
        for info in model.model_fields.values():
            annotation = info.annotation
            for arg in typing.get_args(annotation) or (annotation,):
                if isinstance(arg, type) and issubclass(arg, BaseModel):
                    models.append(arg)
            if not mentions_datetime(annotation):
                continue
            full = typing.Annotated[annotation, *info.metadata] if info.metadata else annotation
            adapter: TypeAdapter[Any] = TypeAdapter(full)
            for when in OUT_OF_RANGE:
                with pytest.raises(ValidationError):
                    adapter.validate_python(when)
            checked += 1
    assert checked >= 12


async def test_feature_flags_are_json_booleans(owner: Account) -> None:
    for value in (0, 1, "true"):
        response = await owner.client.patch("/v1/users/me", json={"feature_flags": {"x": value}})
        assert_problem(response, 422)
