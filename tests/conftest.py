"""Fixtures: every test gets a fresh database and an app bound to it.

The database is the embedded backend's, in memory; with `TEST_MONGODB_URL` set it is a new
database on that MongoDB server, dropped after the test (tests/support/real_server.py). Two markers
pick what runs where (applied here, counted in one summary line): `real_mongodb` tests run
only on a real server, `embedded_only` tests only on the embedded backend.

Helpers that test modules import (Account, assert_problem, PASSWORD...) live in helpers.py.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from documents.api_key import ApiKey
from documents.user import User
from service.auth import register_owner
from service.core import security
from service.core.context import RequestContext, Role
from service.core.repository import Repository
from service.core.settings import Settings
from service.database import embedded_database
from service.main import create_app
from tests.support import real_server
from tests.support.helpers import CHEAP, PASSWORD, Account, ServiceClient, on_embedded_file

# VALIDATE_STORED_DOCUMENTS=1 checks every test's stored documents against the validators.
pytest_plugins = ["tests.support.validate_stored"]
_seq = itertools.count(1)


REAL_ONLY = "real-server test: set TEST_MONGODB_URL to run it on MongoDB"
EMBEDDED_ONLY = "embedded-only test: it tests the embedded backend or uses its instruments"


def make_settings() -> Settings:
    """Test settings with fixed secrets."""
    return Settings(
        app_env="test",
        jwt_secret="test-secret-" + "x" * 40,
        fernet_key="yQ8hR3Hh6p4VbYdG0o8tYgq1w9H2sM3bGk7Zr8cXw5E=",
        auth_cache_seconds=0,
        embedded_db_path="",  # an app built without a database never touches a file
        # A loaded machine must not turn a slow call into a 503 (tests/test_outage.py sets
        # a short budget where the budget itself is tested).
        request_timeout_ms=30_000,
        # Argon2 at its lowest cost: the suite hashes hundreds of passwords (production refuses it).
        password_hash_time_cost=1,
        password_hash_memory_kib=8,
        password_hash_parallelism=1,
    )


@pytest.fixture
def settings() -> Settings:
    """Test settings with fixed secrets."""
    return make_settings()


if real_server.url() is None:

    @pytest.fixture
    def database() -> Any:
        """A fresh in-memory database for this test."""
        return embedded_database(f"test_{next(_seq)}")

else:

    @pytest.fixture
    async def database(settings: Settings, worker_id: str) -> AsyncIterator[Any]:
        """A fresh database for this test on TEST_MONGODB_URL, dropped after it."""
        name = real_server.database_name(worker_id, next(_seq))
        async with real_server.fresh_database(settings, name) as db:
            yield db


# -- which tests run where ----------------------------------------------------------------------


def pytest_sessionstart(session: pytest.Session) -> None:
    """On a real server, one ping first: an unreachable URL ends the run with one message."""
    if real_server.url() is None or session.config.option.collectonly:
        return
    reason = real_server.unreachable(make_settings())
    if reason is not None:
        pytest.exit(reason, returncode=pytest.ExitCode.INTERNAL_ERROR)


def pytest_report_header() -> str:
    """Which backend the run uses."""
    server = real_server.url()
    if server is None:
        return "database: the embedded backend (set TEST_MONGODB_URL to run on MongoDB)"
    found = real_server.describe
    return (
        f"database: MongoDB {found.get('version', '?')} at {real_server.redacted(server)} "
        f"(replica set: {found.get('set') or 'none'}), a fresh database per test"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Skip `real_mongodb` tests on the embedded backend and `embedded_only` ones on MongoDB."""
    if real_server.url() is None:
        marker, reason = "real_mongodb", REAL_ONLY
    else:
        marker, reason = "embedded_only", EMBEDDED_ONLY
    for item in items:
        if item.get_closest_marker(marker) is not None:
            item.add_marker(pytest.mark.skip(reason=reason))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """One line: how many tests this backend skipped, and how to run them."""
    reason = REAL_ONLY if real_server.url() is None else EMBEDDED_ONLY
    skipped = sum(
        1 for rep in terminalreporter.stats.get("skipped", []) if reason in str(rep.longrepr)
    )
    if real_server.url() is None:
        line = f"real-server tests: {skipped} skipped (set TEST_MONGODB_URL to run them on MongoDB)"
    else:
        line = (
            f"embedded-only tests: {skipped} skipped on MongoDB (they test the embedded backend "
            "or use its instruments; run without TEST_MONGODB_URL)"
        )
    terminalreporter.write_line(line)


@pytest.fixture
async def app(settings: Settings, database: Any) -> AsyncIterator[FastAPI]:
    """The app on the fresh database, with its lifespan running."""
    application = create_app(settings=settings, database=database)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An anonymous HTTP client for the app."""
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as c:
        yield c


@pytest.fixture
async def make_account(app: FastAPI, settings: Settings) -> AsyncIterator[Any]:
    """Factory: `await make_account(role="viewer", tenant_of=other)` → Account with a client.

    Without `tenant_of` it registers a new tenant whose owner is the user; with it, the user
    joins that account's tenant with `role`.
    """
    clients: list[httpx.AsyncClient] = []

    async def factory(*, role: str = "owner", tenant_of: Account | None = None) -> Account:
        n = next(_seq)
        username, email = f"user{n}", f"user{n}@example.com"
        if tenant_of is None:
            user = await register_owner(
                settings=settings,
                username=username,
                email=email,
                password=PASSWORD,
                organization_name=f"Org {n}",
            )
            if role != "owner":
                user = await Repository(User, _ctx(user)).update(user, {"role": role})
        else:
            user = User(
                tenant_id=tenant_of.tenant_id,
                username=username,
                email=email,
                password_hash=await security.hash_password(settings, PASSWORD),
                role=role,
            )
            user = await Repository(User, tenant_of.ctx).create(user)
        token, _ = security.create_access_token(
            settings, user_id=user.id, tenant_id=user.tenant_id, role=user.role
        )
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        c = httpx.AsyncClient(
            transport=transport,
            base_url="http://test",
            headers={"Authorization": f"Bearer {token}"},
        )
        clients.append(c)
        return Account(user=user, token=token, client=c)

    yield factory
    for c in clients:
        await c.aclose()


def _ctx(user: User) -> RequestContext:
    return RequestContext(tenant_id=user.tenant_id, actor_id=user.id, role=Role.owner)


@pytest.fixture
async def owner(make_account: Any) -> Account:
    """The owner of tenant A."""
    account: Account = await make_account()
    return account


@pytest.fixture
async def stranger(make_account: Any) -> Account:
    """The owner of another tenant (B), for cross-tenant checks."""
    account: Account = await make_account()
    return account


@pytest.fixture
async def viewer(make_account: Any, owner: Account) -> Account:
    """A viewer in tenant A."""
    account: Account = await make_account(role="viewer", tenant_of=owner)
    return account


@pytest.fixture
async def member(make_account: Any, owner: Account) -> Account:
    """A member in tenant A."""
    account: Account = await make_account(role="member", tenant_of=owner)
    return account


@pytest.fixture
async def admin(make_account: Any, owner: Account) -> Account:
    """An admin in tenant A."""
    account: Account = await make_account(role="admin", tenant_of=owner)
    return account


@pytest.fixture
async def key_client(app: FastAPI) -> AsyncIterator[Callable[[str], httpx.AsyncClient]]:
    """Factory: an HTTP client authenticating with a given API key (closed after the test)."""
    clients: list[httpx.AsyncClient] = []

    def make(key: str) -> httpx.AsyncClient:
        c = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://test",
            headers={"X-API-Key": key},
        )
        clients.append(c)
        return c

    yield make
    for c in clients:
        await c.aclose()


@pytest.fixture
def service_client(key_client: Callable[[str], httpx.AsyncClient]) -> ServiceClient:
    """Factory: an HTTP client authenticated with a new API key of `account`'s tenant."""

    async def factory(account: Account, role: str = "admin") -> httpx.AsyncClient:
        key = security.generate_api_key()
        await Repository(ApiKey, account.ctx).create(
            ApiKey(
                tenant_id=account.tenant_id,
                name="service",
                role=role,
                prefix=key[:8],
                key_hash=security.hash_api_key(key),
            )
        )
        return key_client(key)

    return factory


@pytest.fixture
def db_file(tmp_path: Path) -> Path:
    return tmp_path / "lead_ignite.embedded"


@pytest.fixture
def owner_of(db_file: Path) -> User:
    """The owner of a new tenant stored in the embedded file."""

    async def register() -> User:
        return await register_owner(
            settings=CHEAP,
            username="owner",
            email="owner@example.com",
            password=PASSWORD,
            organization_name="O",
        )

    return on_embedded_file(db_file, register)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
