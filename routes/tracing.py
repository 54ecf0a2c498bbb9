"""Request tracing: the app's server spans, on the provider the service's tracing set up."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI

from service.core.observability import start_tracing


def configure_tracing(
    app: FastAPI, settings: Any, *, provider: Any = None, env: Mapping[str, str] = os.environ
) -> bool:
    """Trace requests and database commands when OTEL_* asks for it; whether tracing is on.

    A server span per request (opentelemetry-instrumentation-fastapi; its own
    OTEL_PYTHON_FASTAPI_EXCLUDED_URLS applies), plus what `start_tracing` traces. Call it
    once per app, before the app serves.
    """
    provider = start_tracing(settings, provider=provider, env=env)
    if provider is None:
        return False
    try:
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    except ImportError:
        logging.getLogger(__name__).warning("opentelemetry-instrumentation-fastapi is missing")
        return False
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider)
    return True
