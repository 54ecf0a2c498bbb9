"""Structured JSON logs, the request-id context, Prometheus metrics and optional tracing.

Logs: every line is one JSON object (`JsonFormatter`), the server's own lines included when
uvicorn runs with `service/logging.json` (`python -m service.serve` does).

Tracing (OpenTelemetry) is an optional extra (`pip install '.[otel]'`), off unless the
standard variables ask for it; see `start_tracing` (and routes/tracing.py for requests).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from contextvars import ContextVar
from importlib import metadata
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from pymongo import monitoring

from service.embedded import observers

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

REQUESTS = Counter(
    "http_requests_total",
    "HTTP requests by route template, method and status.",
    ["route", "method", "status"],
)
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency by route template and method.",
    ["route", "method"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
DB_LATENCY = Histogram(
    "mongodb_command_duration_seconds",
    "MongoDB command latency by command and outcome.",
    ["command", "outcome"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# Fields of a log record that are not worth repeating in the JSON line (uvicorn adds
# `color_message`, the message with terminal colour codes).
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and any `extra`."""

    converter = staticmethod(time.gmtime)  # the "Z" in the time field is true

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id:
            data["request_id"] = request_id
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                data[key] = value
        if record.exc_info:
            data["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


def configure_logging(level: str) -> None:
    """Send every log line to stderr as JSON (idempotent)."""
    root = logging.getLogger()
    root.setLevel(level.upper())
    if not any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(JsonFormatter())
        root.handlers = [handler]
    for noisy in ("uvicorn.access", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def metrics_payload() -> tuple[bytes, str]:
    """The Prometheus exposition of this process's metrics."""
    return generate_latest(), CONTENT_TYPE_LATEST


class CommandLatency(monitoring.CommandListener):
    """Records every MongoDB command's latency (registered on the real driver client)."""

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        DB_LATENCY.labels(event.command_name, "ok").observe(event.duration_micros / 1e6)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        DB_LATENCY.labels(event.command_name, "error").observe(event.duration_micros / 1e6)


# -- tracing (OpenTelemetry, optional) ----------------------------------------------------------

SERVICE_NAME = "lead-ignite-data-service"
_tracing: dict[str, Any] = {}  # the process's tracer provider, once configured


def tracing_requested(env: Mapping[str, str] = os.environ) -> bool:
    """Whether the standard OTEL_* variables ask for traces.

    On when OTEL_TRACES_EXPORTER names an exporter other than `none`, or, without it, when an
    OTLP endpoint is set (OTEL_EXPORTER_OTLP_ENDPOINT / OTEL_EXPORTER_OTLP_TRACES_ENDPOINT);
    always off with OTEL_SDK_DISABLED=true.
    """
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters:
        return exporters != "none"
    return bool(
        env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def tracing_exporters(env: Mapping[str, str]) -> list[Any]:
    """The span exporters OTEL_TRACES_EXPORTER names (default `otlp`)."""
    # Loaded through the entry points the OpenTelemetry packages register; `otlp` is gRPC unless
    # OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL says `http/protobuf`, as in the OpenTelemetry SDK.
    names = [n.strip() for n in env.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    protocol = (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip()
    exporters = []
    for name in names:
        if name == "otlp":
            name = "otlp_proto_http" if protocol.startswith("http") else "otlp_proto_grpc"
        found = metadata.entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            raise RuntimeError(f"OTEL_TRACES_EXPORTER: no installed span exporter {name!r}")
        exporters.append(next(iter(found)).load()())
    return exporters


def tracing_resource(settings: Any) -> Any:
    """The resource spans are reported with: OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES first.

    Defaults where those are silent: service.name `lead-ignite-data-service`, the package's
    version, and `deployment.environment.name` from APP_ENV.
    """
    from opentelemetry.sdk.resources import Resource

    try:
        version = metadata.version(SERVICE_NAME)
    except metadata.PackageNotFoundError:
        version = "unknown"
    defaults = {"service.version": version, "deployment.environment.name": settings.app_env}
    detected = Resource.create({})  # the SDK's defaults plus the OTEL_* variables
    resource = Resource(defaults).merge(detected)
    if str(resource.attributes.get("service.name", "")).startswith("unknown_service"):
        resource = resource.merge(Resource({"service.name": SERVICE_NAME}))
    return resource


def _provider(settings: Any, env: Mapping[str, str]) -> Any:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    # The sampler comes from OTEL_TRACES_SAMPLER (parent-based always-on by default).
    provider = TracerProvider(resource=tracing_resource(settings))
    for exporter in tracing_exporters(env):
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    return provider


def _record_embedded_operation(op: Any) -> None:
    # The embedded backend runs in-process and tells observers of an operation before it runs,
    # not when it ends: each one is an event on the current span (a request's), not a span.
    from opentelemetry import trace

    span = trace.get_current_span()
    if span.is_recording():
        span.add_event(
            "db.embedded",
            {
                "db.system.name": "mongodb",
                "db.collection.name": op.collection,
                "db.operation.name": op.method,
            },
        )


def start_tracing(
    settings: Any, *, provider: Any = None, env: Mapping[str, str] = os.environ
) -> Any:
    """Trace database commands with OpenTelemetry when OTEL_* asks for it; the provider or None.

    Real MongoDB: a client span per command (opentelemetry-instrumentation-pymongo). The
    embedded backend: an event per operation on the current span. Exporters, endpoint,
    headers, sampler and resource come from the standard OTEL_* variables. `provider` (a
    TracerProvider) turns tracing on with it, for tests. The HTTP layer instruments the app
    with the returned provider (routes/tracing.py).
    """
    if provider is None and not tracing_requested(env):
        return None
    try:
        from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    except ImportError:
        logging.getLogger(__name__).warning(
            "OTEL_* variables ask for tracing, but OpenTelemetry is not installed "
            "(pip install '.[otel]'): tracing is off"
        )
        return None
    if provider is None:
        provider = _tracing.get("provider") or _provider(settings, env)
        _tracing["provider"] = provider
    pymongo = PymongoInstrumentor()
    if not pymongo.is_instrumented_by_opentelemetry:
        pymongo.instrument(tracer_provider=provider)  # before the app's client is created
    if _record_embedded_operation not in observers:
        observers.append(_record_embedded_operation)
    return provider
