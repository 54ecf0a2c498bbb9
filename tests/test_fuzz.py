"""Schemathesis fuzzes the whole API in-process: every check, two tenants, fixed seed, 0 failures.

The run is what `schemathesis run --checks all` does (probing, coverage, fuzzing and stateful
phases), driven through `schemathesis.engine` against `create_app(...)` on a fresh embedded
database, so it needs no server and runs in the normal `pytest` suite. Two owners of two
tenants are the WFC `peers`, which turns on `object_level_authorization`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema
from schemathesis.openapi.checks import RejectedPositiveData, UseAfterFree
from schemathesis.python import asgi

from service.core.settings import Settings
from service.database import embedded_database
from service.main import create_app
from tests.support.helpers import Account, assert_problem
from tests.support.problem_audit import AUDIT, audit_answer

SEED = 20_261_124
# Per operation and phase; with the coverage and stateful phases this is about 2 minutes on 2 cores.
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "15"))
STATEFUL_STEPS = 10
PASSWORD = "correct-horse-battery-9"
PEERS = ("alice", "bob")
REPORTED = int(os.environ.get("FUZZ_REPORTED", "40"))

ALL_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
    "positive_data_acceptance",
    "negative_data_rejection",
    "use_after_free",
    "ensure_resource_availability",
    "missing_required_header",
    "ignored_auth",
    "object_level_authorization",
    "unsupported_method",
    "allow_header_conformance",
)
# Checks that only run in particular situations; the test proves they did run.
MUST_RUN = {"ignored_auth", "object_level_authorization", "unsupported_method", "use_after_free"}

# Schema-valid requests the contract itself answers with 422: the rule depends on stored data,
# on the clock, or relates fields in a way JSON Schema cannot state. `positive_data_acceptance`
# cannot know that. Each entry is (operation or "*", the error's exact `loc`); a `loc` ending in
# "*" also covers what lies under it. Anything else rejected stays a failure.
_CAMPAIGN_DATES = "`ends_at` must come after `starts_at` (cross-field)"
SEMANTIC_422: dict[tuple[str, tuple[str, ...]], str] = {
    ("*", ("query", "cursor")): "the cursor is an opaque token the API issued; a forged one is 422",
    ("GET /v1/changes", ("query", "after")): "the change-feed cursor, opaque like `cursor`",
    ("POST /v1/events", ("body", "campaign_id")): "contract: the campaign must exist (422)",
    ("POST /v1/events", ("body", "lead_id")): "contract: the lead must exist (422)",
    ("POST /v1/kanban/tasks", ("body", "state_id")): "the state must exist on the board",
    ("POST /v1/kanban/tasks/{task_id}/move", ("body", "state_id")): "the state must exist",
    ("POST /v1/teams/{id}/members", ("body", "user_id")): "the user must exist in the tenant",
    ("POST /v1/billing/history", ("body", "user_id")): "the user must exist in the tenant",
    ("POST /v1/users/me/2fa/confirm", ("body", "code")): "contract: a wrong TOTP code is 422",
    ("DELETE /v1/users/me/2fa", ("body", "code")): "contract: a wrong TOTP code is 422",
    ("POST /v1/billing/payment-methods", ("body",)): "a card must not have expired (clock)",
    ("POST /v1/campaigns", ("body",)): _CAMPAIGN_DATES,
    ("PATCH /v1/campaigns/{id}", ("body", "type")): "a campaign keeps the type it was made with",
    ("PATCH /v1/campaigns/{id}", ("body",)): "`ends_at` after `starts_at` (with stored data)",
    ("PATCH /v1/leads/{id}", ("body", "type")): "a lead keeps the type it was made with",
    ("PATCH /v1/leads/{id}", ("body",)): "a generic lead keeps an email or a phone (stored data)",
    ("POST /v1/leads", ("body",)): "a generic lead needs an email or a phone",
    ("POST /v1/leads/{id}/merge", ("body", "source_ids", "*")): "sources must be live leads",
    ("POST /v1/saved-searches", ("body", "filters", "*")): "filters are that list's parameters",
    ("PATCH /v1/saved-searches/{id}", ("body", "filters", "*")): "filters match the resource",
    ("POST /v1/blogs", ("body",)): "a scheduled blog needs `scheduled_for` (cross-field)",
    ("PATCH /v1/blogs/{id}", ("body",)): "status and schedule must agree (stored data)",
    ("PUT /v1/ai/config", ("body",)): "`default_model` must be one of `allowed_models`",
}
# The same, recognised by the rule's message wherever the input sits.
SEMANTIC_MESSAGES = {
    "Not a phone number": "phones must be valid numbers (libphonenumber)",
    "Not a valid phone number": "phones must be valid numbers (libphonenumber)",
    "Not a valid email address": "deliverable-looking email (email-validator)",
    "campaigns have no field": "a PATCH lists every type's fields; the stored type decides",
    "leads have no field": "a PATCH lists every type's fields; the stored type decides",
    "ends_at must be after starts_at": _CAMPAIGN_DATES,
    "The range spans more than": "a time range is at most 366 buckets (cross-parameter)",
    "The range must lie within": "a time range lies within 1900..9999 (cross-parameter)",
    "must be after `since`": "`until` must come after `since` (a cross-parameter rule)",
    "cannot lie in the future": "a time ahead of the service's clock is refused (clock)",
    "until must not be before since": "`until` must come after `since` (a cross-parameter rule)",
    "since must be before until": "`until` must come after `since` (a cross-parameter rule)",
    "No integration": "an integration must exist in the tenant (stored data)",
    "not an IANA time zone name": "a blog's time zone is a name of the IANA database",
    "a recurrence needs exactly one of count or until": "a recurrence ends one way (cross-field)",
    "needs scheduled_for.": "a blog's schedule details need its time (cross-field)",
    "Invalid schedule:": "a recurrence stays within 100 occurrences after its start",
    "near cannot be combined with campaign_id": "a geo search cannot walk a campaign's links",
    "within_km needs near": "a radius needs its centre (a cross-parameter rule)",
    "unknown IANA time zone": "a time zone is a name of the IANA database (zoneinfo)",
    "quiet_hours.end must be after quiet_hours.start": "a quiet-hours window (cross-field)",
    "provider and external_id go together": "a provider id needs its provider (cross-field)",
    "The assignee is not an active user of this tenant": "the assignee must exist (stored data)",
    "lies in the future": "a time ahead of the service's clock is refused (clock)",
}
# Error types that name a rule rather than a shape.
SEMANTIC_TYPES = {
    "card_data_refused": "free text that looks like a card number is refused (PCI)",
}


@dataclass
class Outcome:
    """What one engine run produced."""

    failures: list[str] = field(default_factory=list)
    checks_run: set[str] = field(default_factory=set)
    scenarios: int = 0
    dropped: dict[str, int] = field(default_factory=dict)


def _loc_matches(pattern: tuple[str, ...], loc: tuple[str, ...]) -> bool:
    if pattern and pattern[-1] == "*":
        return loc[: len(pattern) - 1] == pattern[:-1]
    return loc == pattern


def _semantic_rule(label: str, response: Any) -> str | None:
    """The SEMANTIC_422 reason covering every error of a 422 problem, or None."""
    if response.status_code != 422:
        return None
    try:
        errors = response.json().get("errors") or []
    except ValueError:
        return None
    reasons = []
    for error in errors:
        loc = tuple(str(part) for part in error.get("loc", ()))
        message = str(error.get("msg", "")).removeprefix("Value error, ")
        kind = str(error.get("type", ""))
        by_message = next((w for m, w in SEMANTIC_MESSAGES.items() if m in message), None)
        by_loc = next(
            (
                why
                for (operation, pattern), why in SEMANTIC_422.items()
                if operation in ("*", label) and _loc_matches(pattern, loc)
            ),
            None,
        )
        reason = SEMANTIC_TYPES.get(kind) or by_message or by_loc
        if reason is None:
            return None
        reasons.append(reason)
    return reasons[0] if reasons else None


HISTORY = "a soft-deleted resource's history stays readable (audit), as its restore does"


def _history_of_deleted(case: Any, response: Any) -> bool:
    """`GET .../{id}/history` of a soft-deleted resource answers 200 on purpose.

    Soft delete hides the resource (GET and DELETE answer 404) but not its journal: history is
    how an admin sees who deleted it and what it was before restoring it.
    """
    return bool(
        case.method == "GET" and case.path.endswith("/{id}/history") and response.status_code == 200
    )


def _register(client: Any, name: str) -> str:
    body = {"username": name, "email": f"{name}@example.com", "password": PASSWORD}
    created = client.post("/v1/auth/register", json=body)
    assert created.status_code == 201, created.text
    token = client.post("/v1/auth/token", data={"username": name, "password": PASSWORD})
    assert token.status_code == 200, token.text
    access: str = token.json()["access_token"]
    return access


def _config(wfc_path: Path) -> SchemathesisConfig:
    checks: dict[str, Any] = {name: {"enabled": True} for name in ALL_CHECKS}
    # 412 answers a schema-valid If-Match that names another version: a state-dependent outcome
    # like 409, so it counts as acceptance (malformed If-Match values are 422).
    checks["positive_data_acceptance"]["expected-statuses"] = [
        "2xx", "3xx", "401", "403", "404", "409", "412", "429", "5xx",
    ]  # fmt: skip
    # A body over the size cap is refused with 413 before it is read: a rejection too.
    checks["negative_data_rejection"]["expected-statuses"] = [
        "400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx",
    ]  # fmt: skip
    return SchemathesisConfig.from_dict(
        {
            "seed": SEED,
            "max-failures": 200,
            "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
            "checks": checks,
            "phases": {"stateful": {"max-steps": STATEFUL_STEPS}},
            "cache": {"enabled": False},
            "workers": 1,
            "auth": {"wfc": {"path": str(wfc_path), "peers": list(PEERS)}},
        }
    )


SHOWN_HEADERS = {"if-match", "idempotency-key", "x-api-key", "content-type"}


def _describe(label: str, check: str, failure: Any, interaction: Any) -> str:
    """One failure as text: the check, the operation, the request and the answer."""
    lines = [f"[{check}] {label}: {failure.title}: {failure.message[:300]}"]
    if interaction is not None:
        request = interaction.request
        headers = {k: v for k, v in request.headers.items() if k.lower() in SHOWN_HEADERS}
        body = f" body={request.body[:300]!r}" if request.body else ""
        lines.append(f"    {request.method} {request.uri} headers={headers}{body}")
        if interaction.response is not None:
            answer = interaction.response
            lines.append(f"    -> {answer.status_code} {answer.content[:300]!r}")
    return "\n".join(lines)


def _run(schema: Any) -> Outcome:
    outcome = Outcome()
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            outcome.scenarios += 1
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    outcome.checks_run.add(check.name)
                    if check.failure_info is None:
                        continue
                    interaction = event.recorder.interactions.get(case_id)
                    outcome.failures.append(
                        _describe(
                            event.recorder.label,
                            check.name,
                            check.failure_info.failure,
                            interaction,
                        )
                    )
        elif isinstance(event, events.NonFatalError):
            outcome.failures.append(f"[error] {event.label}: {event.value!r}")
        elif isinstance(event, events.FatalError):
            outcome.failures.append(f"[fatal] {event.exception!r}")
    return outcome


@pytest.fixture
def fuzz_schema(tmp_path: Path) -> Iterator[tuple[Any, dict[str, int]]]:
    """The app's OpenAPI loaded by Schemathesis, with two tenants' owners as WFC peers."""
    settings = Settings(
        app_env="test",
        jwt_secret="fuzz-secret-" + "x" * 40,
        fernet_key="yQ8hR3Hh6p4VbYdG0o8tYgq1w9H2sM3bGk7Zr8cXw5E=",
        auth_cache_seconds=0,
        log_level="WARNING",
        metrics_token="fuzz-metrics-token-" + "m" * 20,  # /metrics on: its auth gets fuzzed too
    )
    app = create_app(settings=settings, database=embedded_database(f"fuzz_{uuid4().hex}"))
    with asgi.get_client(app) as client:
        tokens = {name: _register(client, name) for name in PEERS}
    wfc = {
        "auth": [
            {"name": name, "fixedHeaders": [{"name": "Authorization", "value": f"Bearer {t}"}]}
            for name, t in tokens.items()
        ]
    }
    wfc_path = tmp_path / "wfc.json"
    wfc_path.write_text(json.dumps(wfc))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=_config(wfc_path))
    dropped: dict[str, int] = {}

    @schema.hook
    def after_call(context: Any, case: Any, response: Any) -> None:  # noqa: ARG001  (hook signature)
        # Schemathesis sends through its own transport: its answers join the problem audit.
        headers = [(k, v) for k, values in response.headers.items() for v in values]
        request = response.request
        audit_answer(request.method, request.url, response.status_code, headers, response.content)

    @schema.hook
    def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:  # noqa: ARG001  (hook)
        if isinstance(failure, UseAfterFree) and _history_of_deleted(case, response):
            dropped[HISTORY] = dropped.get(HISTORY, 0) + 1
            return False
        if not isinstance(failure, RejectedPositiveData):
            return True
        reason = _semantic_rule(f"{case.method} {case.path}", response)
        if reason is None:
            return True
        dropped[reason] = dropped.get(reason, 0) + 1
        return False

    yield schema, dropped
    asgi.shutdown_lifespans()


@pytest.mark.fuzz
def test_the_whole_api_is_fuzz_clean(fuzz_schema: tuple[Any, dict[str, int]]) -> None:
    schema, dropped = fuzz_schema
    audited = AUDIT.counts["422"]
    outcome = _run(schema)
    assert AUDIT.counts["422"] > audited, "the problem audit saw none of the fuzz run's 422s"
    # Shown with `pytest -s`: how often each contract rule answered a schema-valid request.
    print(f"fuzz: {outcome.scenarios} scenarios; semantic 422s by rule: {dropped}")
    assert outcome.scenarios > 50, "the engine tested too few operations"
    assert outcome.checks_run >= MUST_RUN, f"never ran: {MUST_RUN - outcome.checks_run}"
    report = "\n".join(outcome.failures[:REPORTED])
    assert not outcome.failures, f"{len(outcome.failures)} Schemathesis failures:\n{report}"


def test_semantic_allow_list_is_narrow() -> None:
    class Fake:
        def __init__(self, status: int, errors: list[dict[str, Any]]) -> None:
            self.status_code = status
            self._body = {"errors": errors}

        def json(self) -> dict[str, Any]:
            return self._body

    cursor = [{"loc": ["query", "cursor"]}]
    assert _semantic_rule("GET /v1/leads", Fake(422, cursor))
    assert _semantic_rule("GET /v1/leads", Fake(400, cursor)) is None
    # A listed rule covers only its own operation and input.
    campaign = [{"loc": ["body", "campaign_id"]}]
    assert _semantic_rule("POST /v1/events", Fake(422, campaign))
    assert _semantic_rule("POST /v1/leads", Fake(422, [{"loc": ["body", "email"]}])) is None
    # One unlisted error among listed ones keeps the failure.
    mixed = [*cursor, {"loc": ["query", "limit"]}]
    assert _semantic_rule("GET /v1/leads", Fake(422, mixed)) is None


# -- the fixes the fuzzer drove, pinned down one by one -----------------------------------------


async def test_405_lists_every_documented_method_of_the_resource(owner: Account) -> None:
    created = await owner.client.post("/v1/blogs", json={"title": "T", "content": "c"})
    assert created.status_code == 201, created.text
    response = await owner.client.request("OPTIONS", f"/v1/blogs/{created.json()['id']}")
    assert_problem(response, 405)
    assert response.headers["allow"] == "DELETE, GET, PATCH"
    events = await owner.client.put(f"/v1/events/{created.json()['id']}", json={})
    assert_problem(events, 405)
    assert events.headers["allow"] == "GET"


async def test_unsupported_method_on_a_fixed_path_is_405_not_a_bad_id(owner: Account) -> None:
    # `/v1/blogs/calendar` exists (GET only); PATCH must not fall through to `/v1/blogs/{id}`.
    response = await owner.client.patch("/v1/blogs/calendar", json={"title": "x"})
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET"
    # A malformed id on the template itself is still 422.
    assert_problem(await owner.client.patch("/v1/blogs/not-a-uuid", json={}), 422)


async def test_malformed_if_match_is_422_and_a_stale_one_412(owner: Account) -> None:
    created = await owner.client.post("/v1/blogs", json={"title": "T", "content": "c"})
    url = f"/v1/blogs/{created.json()['id']}"
    for bad in ("null", "abc", '"1"x'):
        response = await owner.client.patch(url, json={"title": "B"}, headers={"If-Match": bad})
        body = assert_problem(response, 422)
        assert body["errors"][0]["loc"] == ["header", "if-match"]
    stale = await owner.client.patch(url, json={"title": "B"}, headers={"If-Match": '"9"'})
    assert_problem(stale, 412)


async def test_numbers_and_booleans_are_not_coerced(owner: Account) -> None:
    blog = await owner.client.post(
        "/v1/blogs", json={"title": "T", "content": "c", "scheduled_for": 0}
    )
    assert assert_problem(blog, 422)["errors"][0]["loc"][-1] == "scheduled_for"
    state = await owner.client.post("/v1/kanban/states", json={"name": "S", "position": False})
    assert_problem(state, 422)
    usage = {"model": "gpt-4o", "prompt_tokens": 1, "completion_tokens": 1, "feature": "x"}
    as_text = await owner.client.post("/v1/ai/usage", json={**usage, "cost": "1.50"})
    assert_problem(as_text, 422)
    # Binary-float noise on a whole number of cents is that number of cents.
    ok = await owner.client.post("/v1/ai/usage", json={**usage, "cost": 57 * 0.01})
    assert ok.status_code == 201, ok.text
    assert ok.json()["cost"] == 0.57
    since = await owner.client.get("/v1/events", params={"since": "0.5"})
    assert_problem(since, 422)


async def test_openapi_documents_what_the_service_answers(client: Any) -> None:
    schema = (await client.get("/openapi.json")).json()
    patch = schema["paths"]["/v1/blogs/{id}"]["patch"]
    if_match = next(p for p in patch["parameters"] if p["name"].lower() == "if-match")
    assert "anyOf" not in if_match["schema"] and if_match["schema"]["pattern"]
    for code in ("400", "401", "404", "412", "422"):
        assert "application/problem+json" in patch["responses"][code]["content"]
    # Events are facts: no verb but GET on one event is offered.
    assert set(schema["paths"]["/v1/events/{id}"]) == {"get"}
    # A PATCH documents `null` only where it clears a field.
    team_patch = schema["components"]["schemas"]["TeamUpdate"]["properties"]
    assert "anyOf" not in team_patch["tags"] and "anyOf" in team_patch["description"]
