"""Database outages answer 503 problem+json quickly, and the service recovers by itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest.mock import patch

import pytest
from pymongo.errors import AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError

from tests.helpers import Account, assert_problem

DRIVER_ERRORS = [
    ServerSelectionTimeoutError("no servers available"),
    AutoReconnect("connection reset"),
    NetworkTimeout("timed out"),
]


@contextmanager
def database_down(database: Any, error: Exception) -> Iterator[None]:
    """Make every collection call (reads, writes, aggregations) raise a driver error."""

    def fail(*_: Any, **__: Any) -> Any:
        raise error

    names = [
        "find",
        "find_one",
        "insert_one",
        "insert_many",
        "update_one",
        "update_many",
        "aggregate",
        "count_documents",
        "find_one_and_update",
    ]
    with patch.multiple(type(database["any"]), **{n: fail for n in names}):
        yield


@pytest.mark.parametrize("error", DRIVER_ERRORS, ids=lambda e: type(e).__name__)
async def test_reads_answer_503_while_down_and_recover(
    owner: Account, database: Any, error: Exception
) -> None:
    with database_down(database, error):
        r = await owner.client.get("/v1/users/me")
        body = assert_problem(r, 503)
        assert "retry" in body["detail"].lower()
        assert r.headers["retry-after"]
    r = await owner.client.get("/v1/users/me")
    assert r.status_code == 200


async def test_writes_answer_503_while_down(owner: Account, database: Any) -> None:
    with database_down(database, ServerSelectionTimeoutError("down")):
        r = await owner.client.patch("/v1/users/me", json={"profile": {"first_name": "Ana"}})
    assert_problem(r, 503)
    r = await owner.client.get("/v1/users/me")
    assert r.json()["profile"]["first_name"] is None  # nothing half-applied


async def test_ready_reports_503_while_down(client: Any, database: Any) -> None:
    async def fail(*_: Any, **__: Any) -> Any:
        raise ServerSelectionTimeoutError("down")

    with patch.object(type(database), "command", fail):
        assert_problem(await client.get("/ready"), 503)
    assert (await client.get("/ready")).status_code == 200


async def test_real_client_fails_fast_instead_of_hanging() -> None:
    """The driver's 30 s default server selection is replaced by the configured timeout."""
    from service.database import connect
    from service.settings import Settings

    settings = Settings(mongodb_url="mongodb://127.0.0.1:1/", mongodb_timeout_ms=1500)
    database = connect(settings)
    client = database.db.client
    assert client.options.server_selection_timeout == 1.5
    assert client.options.pool_options.connect_timeout == 1.5
    assert database.kind == "mongodb"
    # Every operation is also time-limited on the server (PyMongo sends it as maxTimeMS).
    assert client.options.timeout == settings.mongodb_max_time_ms / 1000
    await client.close()
