"""Request ids, access logs, metrics and request size caps."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any
from uuid import uuid4

import httpx
import pytest
from pydantic import SecretStr

from service.main import create_app
from service.observability import JsonFormatter
from service.settings import Settings
from tests.conftest import assert_problem


async def test_request_id_is_generated_and_returned(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert len(r.headers["x-request-id"]) == 32


async def test_incoming_request_id_is_honoured(client: httpx.AsyncClient) -> None:
    r = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert r.headers["x-request-id"] == "abc-123"


async def test_malformed_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    r = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces" * 20})
    assert r.headers["x-request-id"] != "bad id"
    assert len(r.headers["x-request-id"]) == 32


async def test_error_responses_carry_request_id(client: httpx.AsyncClient) -> None:
    r = await client.get("/v1/does-not-exist")
    assert_problem(r, 404)
    assert r.headers["x-request-id"]


METRICS_TOKEN = "metrics-token-" + "m" * 32


@pytest.fixture
async def metrics_client(settings: Settings, database: Any) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose METRICS_TOKEN is set."""
    configured = settings.model_copy(update={"metrics_token": SecretStr(METRICS_TOKEN)})
    app = create_app(settings=configured, database=database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            yield c


async def test_metrics_count_requests_by_route_template(metrics_client: httpx.AsyncClient) -> None:
    await metrics_client.get("/health")
    await metrics_client.get(f"/v1/leads/{uuid4()}")  # 401, under its template
    r = await metrics_client.get("/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'http_requests_total{method="GET",route="/health",status="200"}' in r.text
    assert 'http_requests_total{method="GET",route="/v1/leads/{id}",status="401"}' in r.text
    assert "http_request_duration_seconds_bucket" in r.text


async def test_metrics_need_the_token(metrics_client: httpx.AsyncClient) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": METRICS_TOKEN}):
        r = await metrics_client.get("/metrics", headers=headers)
        assert_problem(r, 401)
        assert r.headers["www-authenticate"] == "Bearer"
        assert "http_requests_total" not in r.text


async def test_metrics_are_off_without_a_token(client: httpx.AsyncClient) -> None:
    r = await client.get("/metrics", headers={"Authorization": "Bearer anything-at-all"})
    assert "METRICS_TOKEN" in assert_problem(r, 404)["detail"]


async def test_access_log_is_json_with_request_fields(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="service.access"):
        await client.get("/health", headers={"X-Request-ID": "req-42"})
    record = next(r for r in caplog.records if r.name == "service.access")
    line = json.loads(JsonFormatter().format(record))
    assert line["route"] == "/health"
    assert line["status"] == 200
    assert line["method"] == "GET"
    assert "duration_ms" in line


async def test_oversized_body_is_413_problem(client: httpx.AsyncClient) -> None:
    r = await client.post(
        "/v1/auth/register", content=b"x" * 2_000_000, headers={"content-type": "application/json"}
    )
    assert_problem(r, 413)


async def test_oversized_chunked_body_is_413_problem(client: httpx.AsyncClient) -> None:
    async def chunks():  # no Content-Length: the middleware counts what arrives
        for _ in range(40):
            yield b"x" * 65536

    r = await client.post(
        "/v1/auth/register", content=chunks(), headers={"content-type": "application/json"}
    )
    assert_problem(r, 413)


async def test_login_and_registration_are_capped_per_client_address(
    client: httpx.AsyncClient, settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import UTC, datetime, timedelta

    from service import throttle

    # Freeze the clock mid-window so a minute boundary cannot reset the count mid-test; a
    # minute ahead, so the window's counter is not due for TTL removal while the test runs.
    frozen = (datetime.now(UTC) + timedelta(minutes=1)).replace(second=30, microsecond=0)
    monkeypatch.setattr(throttle, "utcnow", lambda: frozen)
    limit = settings.register_max_per_minute  # type: ignore[attr-defined]
    for i in range(limit):
        r = await client.post("/v1/auth/token", data={"username": f"nobody{i}", "password": "x"})
        assert r.status_code == 401
    r = await client.post("/v1/auth/token", data={"username": "nobody", "password": "x"})
    body = assert_problem(r, 429)
    assert r.headers["retry-after"] == "30"
    assert "address" in body["detail"]
    r = await client.post(
        "/v1/auth/register",
        json={"username": "late", "email": "late@example.com", "password": "long-password-123"},
    )
    assert_problem(r, 429)
