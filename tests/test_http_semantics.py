"""HTTP as clients expect it: Location, ETag preconditions, 304, replays, 415, readable errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from fastapi import FastAPI

from service.core.errors import Conflict, validation_errors
from tests.factories import make_campaign
from tests.support.helpers import Account, assert_problem
from tests.support.problem_audit import leaks

ROOT = Path(__file__).resolve().parents[1]


async def _lead(owner: Account, **fields: Any) -> httpx.Response:
    body = {"type": "generic", "email": f"{uuid4().hex[:8]}@example.com", **fields}
    return await owner.client.post("/v1/leads", json=body)


# -- Location ----------------------------------------------------------------------------------


async def test_a_201_points_at_the_created_resource(owner: Account) -> None:
    created = await _lead(owner)
    assert created.status_code == 201
    location = created.headers["location"]
    assert location == f"/v1/leads/{created.json()['id']}"
    fetched = await owner.client.get(location)
    assert fetched.status_code == 200 and fetched.json() == created.json()


async def test_register_points_at_the_new_user(client: httpx.AsyncClient) -> None:
    body = {"username": "newbie", "email": "newbie@example.com", "password": "long-password-123"}
    created = await client.post("/v1/auth/register", json=body)
    assert created.headers["location"] == f"/v1/users/{created.json()['id']}"


# -- If-Match: strong comparison ---------------------------------------------------------------


async def test_if_match_compares_strongly(owner: Account) -> None:
    url = f"/v1/leads/{(await _lead(owner)).json()['id']}"
    for stale in ('W/"1"', '"2"', '"abc"'):
        refused = await owner.client.patch(
            url, json={"first_name": "A"}, headers={"If-Match": stale}
        )
        assert_problem(refused, 412)
    assert (await owner.client.get(url)).json()["version"] == 1  # nothing changed
    for bad in ("null", 'W/"1', '"1", "2"'):
        malformed = await owner.client.patch(
            url, json={"first_name": "A"}, headers={"If-Match": bad}
        )
        assert assert_problem(malformed, 422)["errors"][0]["loc"] == ["header", "if-match"]
    ok = await owner.client.patch(url, json={"first_name": "A"}, headers={"If-Match": '"1"'})
    assert ok.status_code == 200 and ok.headers["etag"] == '"2"'
    bare = await owner.client.patch(url, json={"first_name": "Al"}, headers={"If-Match": "2"})
    assert bare.status_code == 200 and bare.headers["etag"] == '"3"'
    anything = await owner.client.patch(url, json={"first_name": "B"}, headers={"If-Match": "*"})
    assert anything.status_code == 200 and anything.headers["etag"] == '"4"'
    deleted = await owner.client.delete(url, headers={"If-Match": 'W/"4"'})
    assert_problem(deleted, 412)
    # A tag that cannot match still comes after "is there such a resource" and "is the id valid".
    weak = {"If-Match": 'W/"1"'}
    assert_problem(await owner.client.delete(f"/v1/leads/{uuid4()}", headers=weak), 404)
    assert_problem(await owner.client.delete("/v1/leads/not-a-uuid", headers=weak), 422)


# -- If-None-Match: 304 -------------------------------------------------------------------------


async def test_if_none_match_answers_304_while_the_etag_is_current(owner: Account) -> None:
    url = f"/v1/leads/{(await _lead(owner)).json()['id']}"
    etag = (await owner.client.get(url)).headers["etag"]
    for held in (etag, f"W/{etag}", f'"77", {etag}', "*"):
        cached = await owner.client.get(url, headers={"If-None-Match": held})
        assert cached.status_code == 304, held
        assert cached.content == b""
        assert cached.headers["etag"] == etag
        assert cached.headers["x-request-id"]
        assert "content-type" not in cached.headers
    await owner.client.patch(url, json={"first_name": "A"})
    changed = await owner.client.get(url, headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.json()["first_name"] == "A"
    assert changed.headers["etag"] == '"2"'


async def test_if_none_match_never_hides_errors_or_lists(owner: Account, stranger: Account) -> None:
    url = f"/v1/leads/{(await _lead(owner)).json()['id']}"
    assert_problem(await stranger.client.get(url, headers={"If-None-Match": "*"}), 404)
    listed = await owner.client.get("/v1/leads", headers={"If-None-Match": "*"})
    assert listed.status_code == 200  # lists carry no ETag


# -- Idempotent-Replayed -----------------------------------------------------------------------


async def test_a_replayed_event_says_so(owner: Account) -> None:
    lead = (await _lead(owner)).json()
    campaign = await make_campaign(owner)
    attached = await owner.client.post(
        f"/v1/campaigns/{campaign['id']}/leads", json={"lead_ids": [lead["id"]]}
    )
    assert attached.status_code == 200
    body = {
        "type": "call",
        "campaign_id": campaign["id"],
        "lead_id": lead["id"],
        "outcome": "answered",
    }
    headers = {"Idempotency-Key": "k-1"}
    first = await owner.client.post("/v1/events", json=body, headers=headers)
    again = await owner.client.post("/v1/events", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert "idempotent-replayed" not in first.headers
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()
    assert again.headers["location"] == first.headers["location"]
    fresh = await owner.client.post("/v1/events", json=body)
    assert "idempotent-replayed" not in fresh.headers


# -- 415 ----------------------------------------------------------------------------------------


async def test_a_body_in_another_media_type_is_415(owner: Account) -> None:
    text = await owner.client.post(
        "/v1/leads", content=b'{"type": "generic"}', headers={"Content-Type": "text/plain"}
    )
    assert "JSON" in assert_problem(text, 415)["detail"]
    assert text.headers["accept"] == "application/json"
    untyped = await owner.client.post("/v1/leads", content=b'{"type": "generic"}')
    assert_problem(untyped, 415)
    # JSON with a parameter, or a +json type, is JSON.
    typed = await owner.client.post(
        "/v1/leads",
        content=b'{"type": "generic", "email": "p@example.com"}',
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert typed.status_code == 201
    # No body at all is a missing body (422), not a media type problem.
    assert_problem(await owner.client.post("/v1/leads"), 422)


async def test_json_to_the_token_endpoint_says_to_send_a_form(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/auth/token", json={"username": "x", "password": "y"})
    detail = assert_problem(response, 415)["detail"]
    assert "application/x-www-form-urlencoded" in detail
    assert "`username`, `password`" in detail
    assert "application/x-www-form-urlencoded" in response.headers["accept"]


# -- error text for people ----------------------------------------------------------------------


async def test_422s_read_as_text_for_people(owner: Account) -> None:
    cases: list[tuple[str, Any, list[Any], str]] = [
        ("/v1/campaigns", {"name": "x"}, ["body", "type"], "A `type` is required"),
        ("/v1/campaigns", {"type": "fax"}, ["body", "type"], "one of 'call', 'social'"),
        ("/v1/leads", [1], ["body"], "Input should be a JSON object."),
        ("/v1/leads", {"type": "generic"}, ["body"], "needs an email or a phone"),
    ]
    for path, body, loc, text in cases:
        problem = assert_problem(await owner.client.post(path, json=body), 422)
        error = problem["errors"][0]
        assert error["loc"] == loc and text in error["msg"], error
        assert not leaks(problem)
    bad_json = await owner.client.post(
        "/v1/leads", content=b'{"type":', headers={"Content-Type": "application/json"}
    )
    assert "not valid JSON" in assert_problem(bad_json, 422)["errors"][0]["msg"]


def test_pydantic_wording_is_rewritten_centrally() -> None:
    raw = [
        {"type": "value_error", "loc": ("body", "x"), "msg": "Value error, x must be set"},
        {"type": "assertion_error", "loc": ("body",), "msg": "Assertion failed, nope"},
        {
            "type": "literal_error",
            "loc": ("body", "function-after[_check(), LeadCreate]", "type"),
            "msg": "Input should be <CampaignType.call: 'call'>",
        },
        {
            "type": "model_type",
            "loc": ("body",),
            "msg": "Input should be a valid dictionary or instance of GenericLeadCreate",
        },
        {
            "type": "union_tag_not_found",
            "loc": ("body",),
            "msg": "Unable to extract tag using discriminator 'type'",
            "ctx": {"discriminator": "'type'"},
        },
    ]
    errors = validation_errors(raw)
    assert [e["msg"] for e in errors] == [
        "x must be set",
        "nope",
        "Input should be 'call'",
        "Input should be a JSON object.",
        "A `type` is required: it chooses which kind of resource this is.",
    ]
    assert errors[2]["loc"] == ["body", "type"]
    assert errors[4]["loc"] == ["body", "type"]
    assert not leaks({"detail": "", "errors": errors})


def test_the_audit_catches_each_kind_of_leak() -> None:
    for text in (
        "Input should be <CampaignType.call: 'call'>",
        "Value error, bad",
        "Unable to extract tag using discriminator 'type'",
        "Input should be a valid dictionary or instance of LeadCreate",
    ):
        assert leaks({"detail": "x", "errors": [{"loc": ["body"], "msg": text}]}), text
    assert leaks({"detail": "x", "errors": [{"loc": ["function-after[f(), A]"], "msg": "m"}]})
    assert not leaks({"detail": "x", "errors": [{"loc": ["body", 0], "msg": "Field required"}]})


def test_the_audit_fails_a_test_that_gets_a_leaky_422(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makepyfile(
        test_leaky="""
        import httpx

        def leaky(request):
            body = {"type": "about:blank", "title": "x", "status": 422, "detail": "d",
                    "errors": [{"loc": ["body"], "msg": "Value error, boom", "type": "v"}]}
            return httpx.Response(422, json=body,
                                  headers={"content-type": "application/problem+json"})

        def created(request):
            return httpx.Response(201, json={})

        def test_leak():
            httpx.Client(transport=httpx.MockTransport(leaky)).get("http://t/x")

        def test_no_location():
            httpx.Client(transport=httpx.MockTransport(created)).post("http://t/v1/things")

        def test_clean():
            httpx.Client(transport=httpx.MockTransport(lambda r: httpx.Response(200))).get("http://t")
        """
    )
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # a fresh process, so the audit starts clean
    result = pytester.runpytest_subprocess(
        "-p", "tests.support.problem_audit", "-p", "no:cacheprovider"
    )
    result.assert_outcomes(passed=1, failed=2)
    result.stdout.fnmatch_lines(["*a pydantic prefix*", "*201 without Location*"])


# -- 409 ----------------------------------------------------------------------------------------


async def test_a_duplicate_names_the_existing_resource(owner: Account) -> None:
    first = (await _lead(owner, email="same@example.com")).json()
    clash = assert_problem(await _lead(owner, email="same@example.com"), 409)
    assert clash["existing_id"] == first["id"] and clash["field"] == "email"


def test_conflict_duplicate_is_the_one_clash_body() -> None:
    existing = uuid4()
    error = Conflict.duplicate(resource="lead", field="phone", existing_id=existing)
    assert error.status == 409
    assert error.extra == {"existing_id": str(existing), "field": "phone"}
    assert error.detail == "A lead with the same phone already exists."


# -- the shell stays cheap ----------------------------------------------------------------------


async def test_405_and_422_do_not_build_the_openapi_document(app: FastAPI, owner: Account) -> None:
    assert_problem(await owner.client.patch("/v1/blogs/calendar", json={}), 405)
    assert_problem(await owner.client.get("/v1/leads", params={"limit": 0}), 422)
    assert_problem(await owner.client.put("/v1/events/x", json={}), 405)
    assert app.openapi_schema is None  # the 405 index comes from the routes (routes/paths.py)
