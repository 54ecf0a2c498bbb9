"""Helpers shared by tests: accounts, problem+json checks, stored-form reads.

Fixtures live in conftest.py; anything a test module imports lives here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import httpx
from bson.codec_options import CodecOptions

from documents.user import User
from service.context import RequestContext, Role

PASSWORD = "correct-horse-battery-9"

# Replies decoded without a UUID representation: UUIDs come back as the `Binary` subtype-4
# values they are stored as, which is what a test about the stored layout wants to see.
STORED_FORM = CodecOptions(tz_aware=True)


def stored_form(collection: Any) -> Any:
    """The collection answering with values as stored (BSON UUIDs as `Binary`), on any backend."""
    return collection.with_options(codec_options=STORED_FORM)


@dataclass
class Account:
    """A registered user with an authenticated client."""

    user: User
    token: str
    client: httpx.AsyncClient

    @property
    def id(self) -> UUID:
        return self.user.id

    @property
    def tenant_id(self) -> UUID:
        return self.user.tenant_id

    @property
    def ctx(self) -> RequestContext:
        return RequestContext(tenant_id=self.tenant_id, actor_id=self.id, role=Role(self.user.role))


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    """Assert a problem+json response with `status`; return its body."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json"), response.headers
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert {"type", "title", "detail"} <= body.keys()
    if status == 422:
        assert body["errors"] and all({"loc", "msg", "type"} <= e.keys() for e in body["errors"])
    return body


T = TypeVar("T")


def on_embedded_file(path: Path, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` with the documents bound to the embedded file at `path`, as a command would."""
    from cryptography.fernet import Fernet

    from service.database import connect, init_models
    from service.settings import Settings

    async def session() -> T:
        database = connect(
            Settings(
                embedded_db_path=str(path),
                mongodb_url=None,
                jwt_secret="cli-test-" + "x" * 40,
                fernet_key=Fernet.generate_key().decode(),
            )
        )
        try:
            await init_models(database.db)
            return await work()
        finally:
            await database.close()

    return asyncio.run(session())
