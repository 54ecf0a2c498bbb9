"""Request ids, access logs, metrics and request size caps."""

from __future__ import annotations

import json
import logging

import httpx
import pytest

from service.observability import JsonFormatter
from tests.helpers import assert_problem


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


async def test_metrics_count_requests_by_route_template(client: httpx.AsyncClient) -> None:
    await client.get("/health")
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    assert 'http_requests_total{method="GET",route="/health",status="200"}' in r.text
    assert "http_request_duration_seconds_bucket" in r.text


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
