"""Health, readiness and the error format."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import httpx
import pytest

from tests.support.helpers import assert_problem


@pytest.mark.embedded_only  # the embedded backend's name
async def test_health_reports_embedded_database(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200
    assert r.json()["status"] == "ok"
    assert r.json()["database"] == "embedded"


async def test_ready_when_database_answers(client: httpx.AsyncClient) -> None:
    r = await client.get("/ready")
    assert r.status_code == 200
    assert r.json()["status"] == "ready"


async def test_ready_503_when_ping_fails(client: httpx.AsyncClient, database: Any) -> None:
    from pymongo.errors import ServerSelectionTimeoutError

    async def failing(*_: Any, **__: Any) -> None:
        raise ServerSelectionTimeoutError("down")

    with patch.object(type(database), "command", failing):
        r = await client.get("/ready")
    assert_problem(r, 503)


async def test_unknown_route_is_problem_404(client: httpx.AsyncClient) -> None:
    assert_problem(await client.get("/v1/nope"), 404)


async def test_wrong_method_is_problem_405_with_allow(client: httpx.AsyncClient) -> None:
    r = await client.post("/health")
    assert_problem(r, 405)
    assert "GET" in r.headers["allow"]
