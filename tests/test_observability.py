"""Request ids, access logs, metrics and request size caps."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import pytest
from opentelemetry import trace
from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr
from pymongo import monitoring

from routes.tracing import configure_tracing
from service.core import observability
from service.core.observability import (
    JsonFormatter,
    tracing_exporters,
    tracing_requested,
    tracing_resource,
)
from service.core.settings import Settings
from service.database import embedded_database
from service.embedded import observers
from service.main import create_app
from service.serve import LOG_CONFIG
from tests.support.helpers import assert_problem


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

    from service.core import throttle

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


# -- one JSON format for every line ---------------------------------------------------------------


def test_the_server_writes_every_line_as_json(tmp_path: Path) -> None:
    """`python -m service.serve` (make run, the image): uvicorn's own lines are JSON too."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MONGODB_", "OTEL_"))}
    env |= {"EMBEDDED_DB_PATH": "", "LOG_LEVEL": "INFO"}  # no secrets: their warnings show
    server = subprocess.Popen(
        [sys.executable, "-m", "service.serve", "--port", str(port)],
        cwd=tmp_path,  # the log configuration is found in the package, not the checkout
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                assert server.poll() is None, server.communicate()[1]
                time.sleep(0.1)
        assert (
            httpx.get(base + "/v1/nowhere", headers={"X-Request-ID": "json-1"}).status_code == 404
        )
    finally:
        server.send_signal(signal.SIGINT)
        stdout, stderr = server.communicate(timeout=60)
    lines = [json.loads(line) for line in stderr.splitlines()]  # every line parses
    assert stdout == ""
    by_logger = {(line["logger"], line["message"]) for line in lines}
    assert ("uvicorn.error", "Application startup complete.") in by_logger
    assert any(lg == "uvicorn.error" and m.startswith("Uvicorn running on") for lg, m in by_logger)
    assert ("uvicorn.error", "Shutting down") in by_logger
    assert (
        "service.core.settings",
        "JWT_SECRET is not set: generated a random one (tokens die on restart)",
    ) in by_logger
    access = [line for line in lines if line["logger"] == "service.access"]
    assert {(a["route"], a["status"], a["request_id"]) for a in access} >= {
        ("/health", 200, access[0]["request_id"]),
    }
    assert any(a["status"] == 404 and a["request_id"] == "json-1" for a in access)
    assert all(set(line) >= {"time", "level", "logger", "message"} for line in lines)
    assert not any("color_message" in line for line in lines)


def test_the_log_configuration_routes_uvicorn_through_the_json_formatter() -> None:
    config = json.loads(LOG_CONFIG.read_text())
    assert config["formatters"]["json"]["()"] == "service.core.observability.JsonFormatter"
    assert config["root"]["handlers"] == ["stderr"]
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert config["loggers"][name]["handlers"] == [] and config["loggers"][name]["propagate"]
    # The service writes its own access log (with request ids); uvicorn's stays off.
    assert config["loggers"]["uvicorn.access"]["level"] == "WARNING"
    record = logging.makeLogRecord(
        {"name": "uvicorn.error", "msg": "Started %s", "args": ("x",), "color_message": "\x1b[1m"}
    )
    assert json.loads(JsonFormatter().format(record))["message"] == "Started x"


# -- tracing (OpenTelemetry) -----------------------------------------------------------------------


def test_tracing_is_off_unless_the_standard_variables_ask() -> None:
    assert not tracing_requested({})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert tracing_requested({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318"})
    assert tracing_requested({"OTEL_TRACES_EXPORTER": "console"})
    assert not tracing_requested(
        {"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "x"}
    )
    assert not tracing_requested({"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"})


def test_exporters_and_resource_follow_the_standard_variables(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http
    from opentelemetry.sdk.trace.export import ConsoleSpanExporter

    def kinds(env: dict[str, str]) -> list[type]:
        return [type(e) for e in tracing_exporters(env)]

    endpoint = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"}
    assert kinds(endpoint) == [Grpc]  # the OpenTelemetry SDK's default protocol
    assert kinds(endpoint | {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}) == [Http]
    assert kinds({"OTEL_TRACES_EXPORTER": "console,otlp"}) == [ConsoleSpanExporter, Grpc]
    with pytest.raises(RuntimeError, match="no installed span exporter 'zipkin'"):
        tracing_exporters({"OTEL_TRACES_EXPORTER": "zipkin"})

    monkeypatch.delenv("OTEL_SERVICE_NAME", raising=False)
    monkeypatch.delenv("OTEL_RESOURCE_ATTRIBUTES", raising=False)
    resource = tracing_resource(settings).attributes
    assert resource["service.name"] == "lead-ignite-data-service"
    assert resource["deployment.environment.name"] == "test"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "crm-data")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=staging")
    resource = tracing_resource(settings).attributes
    assert resource["service.name"] == "crm-data"
    assert resource["deployment.environment.name"] == "staging"


@dataclass
class Tracing:
    provider: TracerProvider
    spans: InMemorySpanExporter


@pytest.fixture(scope="module")
def tracing() -> Iterator[Tracing]:
    """One in-memory tracer provider for this module (pymongo's tracer is bound only once)."""
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield Tracing(provider, spans)
    PymongoInstrumentor().uninstrument()
    if observability._record_embedded_operation in observers:
        observers.remove(observability._record_embedded_operation)


async def test_tracing_stays_off_by_default(settings: Settings, database: Any) -> None:
    app = create_app(settings=settings, database=database)
    assert configure_tracing(app, settings, env={}) is False
    assert not getattr(app, "_is_instrumented_by_opentelemetry", False)


@pytest.mark.embedded_only  # the embedded backend's span events
async def test_requests_and_database_operations_are_traced(
    settings: Settings, database: Any, tracing: Tracing
) -> None:
    tracing.spans.clear()
    app = create_app(settings=settings, database=database)
    assert configure_tracing(app, settings, provider=tracing.provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
            user = {"username": "traced", "email": "t@example.com", "password": "long-password-1"}
            assert (await c.post("/v1/auth/register", json=user)).status_code == 201
    (request,) = [s for s in tracing.spans.get_finished_spans() if s.kind == trace.SpanKind.SERVER]
    assert request.name == "POST /v1/auth/register"
    assert request.attributes is not None
    assert (
        request.attributes.get(
            "http.response.status_code", request.attributes.get("http.status_code")
        )
        == 201
    )
    touched = {
        (e.attributes or {}).get("db.collection.name")
        for e in request.events
        if e.name == "db.embedded"
    }
    assert {"users", "tenants", "domain_events"} <= touched


def test_real_driver_commands_become_client_spans(settings: Settings, tracing: Tracing) -> None:
    """On MONGODB_URL the driver reports each command; the instrumentation makes it a span.

    No MongoDB server here: the command events the driver emits are replayed to its listeners.
    """
    tracing.spans.clear()
    app = create_app(settings=settings, database=embedded_database("tracing"))
    assert configure_tracing(app, settings, provider=tracing.provider)
    listeners = monitoring._LISTENERS.command_listeners
    assert any(type(listener).__name__ == "CommandTracer" for listener in listeners)
    command = {"find": "leads", "filter": {}, "lsid": {}}
    started = monitoring.CommandStartedEvent(command, "lead_ignite", 7, ("db", 27017), 7)
    done = monitoring.CommandSucceededEvent(
        timedelta(microseconds=1500),
        {"ok": 1},
        "find",
        7,
        ("db", 27017),
        7,
        database_name="lead_ignite",
    )
    for listener in listeners:
        listener.started(started)
    for listener in listeners:
        listener.succeeded(done)
    (span,) = [s for s in tracing.spans.get_finished_spans() if s.kind == trace.SpanKind.CLIENT]
    assert span.name == "lead_ignite.find"
