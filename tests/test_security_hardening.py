"""Issue 12: each defect an outside probe found, as a test that failed before its fix."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from service import security
from service.settings import Settings
from tests.conftest import PASSWORD, Account, assert_problem

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
    body = {"segments": {"farm area": "north", "Tier-1": "gold"}, "feature_flags": {"beta_ui": True}}
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
    with pytest.raises(ValueError):
        as_utc(datetime.fromisoformat(OUT_OF_RANGE[0]))
