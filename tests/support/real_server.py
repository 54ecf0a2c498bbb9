"""The real-server test mode: `TEST_MONGODB_URL=mongodb://…` runs the suite on a MongoDB server.

Each test then gets a database of its own on that server (`fresh_database`), built by the
service's own `connect()` (service/database.py) and dropped after the test. The session starts
with one ping (`unreachable`), so a wrong URL ends the run with one readable message instead of
a timeout per test. The markers that pick which tests run in which mode are applied in
tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pymongo

from service.core.settings import Settings
from service.database import Database, connect

URL_VARIABLE = "TEST_MONGODB_URL"

# One token per test process: two runs against the same server never share a database name.
_RUN = secrets.token_hex(3)


def url() -> str | None:
    """The server the suite runs on, or None for the embedded backend."""
    return os.environ.get(URL_VARIABLE) or None


def redacted(value: str) -> str:
    """The URL without its credentials, for messages."""
    return re.sub(r"//[^@/]*@", "//***@", value)


def database_name(worker: str, n: int) -> str:
    """`test_<run>_<worker>_<n>`: unique per run, xdist worker and test (MongoDB allows 63)."""
    return f"test_{_RUN}_{worker}_{n}"


@asynccontextmanager
async def fresh_database(settings: Settings, name: str) -> AsyncIterator[Any]:
    """A new, empty database `name` on TEST_MONGODB_URL; dropped and its client closed after."""
    server = url()
    assert server is not None, f"{URL_VARIABLE} is not set"
    database: Database = connect(
        settings.model_copy(update={"mongodb_url": server, "mongodb_db": name})
    )
    client = database.db.client
    try:
        # A leftover of an interrupted run with the same name would not be fresh.
        await client.drop_database(name)
        yield database.db
    finally:
        try:
            await client.drop_database(name)
        finally:
            await database.close()


async def _ping(settings: Settings) -> dict[str, Any]:
    database = connect(settings)
    try:
        # One short budget for the session's first ping (server selection included), as a
        # request has REQUEST_TIMEOUT_MS (service/core/deadlines.py).
        with pymongo.timeout(settings.mongodb_timeout_ms / 1000):
            await database.db.command("ping")
        hello: dict[str, Any] = await database.db.command("hello")
        info: dict[str, Any] = await database.db.client.server_info()
        return {"version": info.get("version"), "set": hello.get("setName")}
    finally:
        await database.close()


def unreachable(settings: Settings) -> str | None:
    """None when TEST_MONGODB_URL answers a ping, else a readable reason (one line)."""
    server = url()
    assert server is not None
    try:
        found = asyncio.run(_ping(settings.model_copy(update={"mongodb_url": server})))
    except Exception as exc:  # any driver error: the run cannot start
        first = re.split(r" \(configured timeouts|, Timeout:|\n", str(exc))[0][:300]
        return (
            f"{URL_VARIABLE}={redacted(server)}: MongoDB did not answer a ping within "
            f"{settings.mongodb_timeout_ms} ms ({type(exc).__name__}: {first}). Start the server "
            f"or unset {URL_VARIABLE} to run on the embedded backend."
        )
    describe.update(found)
    return None


# What the session-start ping learnt about the server (for the report header and summary).
describe: dict[str, Any] = {}
