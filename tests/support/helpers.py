"""Helpers shared by tests: accounts, problem+json checks, stored-form reads.

Fixtures live in conftest.py; anything a test module imports lives here, or in tests/factories.py
for the resources a test sets up through the API. No test module imports another.
"""

from __future__ import annotations

import asyncio
import csv
import logging
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from unittest.mock import patch
from uuid import UUID, uuid4

import httpx
from beanie import Document
from bson.codec_options import CodecOptions
from cryptography.fernet import Fernet
from pymongo import IndexModel
from typer.testing import CliRunner

from documents.lead import LeadBase
from documents.user import User
from service import projections
from service.core.context import RequestContext, Role
from service.core.repository import Repository
from service.core.settings import Settings
from service.embedded import aio

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


# The `service_client` fixture: `await service_client(account, role=...)` → a client
# authenticated with a new API key of the account's tenant.
ServiceClient = Callable[..., Coroutine[Any, Any, httpx.AsyncClient]]

T = TypeVar("T")


def on_embedded_file(path: Path, work: Callable[[], Awaitable[T]]) -> T:
    """Run `work` with the documents bound to the embedded file at `path`, as a command would."""
    from service.database import connect, init_models

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


# -- the operator CLI, run on an embedded file ------------------------------------------------

# Password hashing at the test suite's low cost (the test settings' values).
CHEAP = Settings(
    app_env="test",
    jwt_secret="cli-test-" + "x" * 40,
    fernet_key=Fernet.generate_key().decode(),
    password_hash_time_cost=1,
    password_hash_memory_kib=8,
    password_hash_parallelism=1,
)

# Wide help: Rich would otherwise fold long choice lists in the middle of a name.
WIDE = {"COLUMNS": "400", "TERMINAL_WIDTH": "400"}


def cli_runner() -> CliRunner:
    """A runner for `service.cli.app`."""
    return CliRunner()


def cli_env(path: Path, **more: str) -> dict[str, str | None]:
    """The environment of a command run against the embedded file at `path`."""
    return {"EMBEDDED_DB_PATH": str(path), "MONGODB_URL": None, **WIDE, **more}


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    """A CSV file at `path` with `header` and `rows`."""
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def stored_leads(db_file: Path, tenant_id: UUID) -> list[LeadBase]:
    """The tenant's leads stored in the embedded file (a command's results, read back)."""

    async def leads() -> list[LeadBase]:
        ctx = RequestContext(tenant_id=tenant_id, actor_id=uuid4(), role=Role.viewer)
        return await LeadBase.find(Repository(LeadBase, ctx).scope(), with_children=True).to_list()

    return on_embedded_file(db_file, leads)


# -- read models under concurrency --------------------------------------------------------------


class Failures(logging.Handler):
    """Collects the tracebacks the app logs with its 500s ("unhandled error")."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info:
            self.records.append(record)

    def text(self) -> str:
        fmt = logging.Formatter()
        return "\n\n".join(fmt.format(r) for r in self.records[:3])


@asynccontextmanager
async def watching() -> AsyncIterator[Failures]:
    handler = Failures()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


async def read_model_snapshot() -> dict[str, list[dict[str, Any]]]:
    """Every read model's rows (without computation stamps), in key order."""
    out = {}
    for projector in projections.PROJECTORS.values():
        model: type[Document] = projector.model
        hidden = {"computed_at": 0, "fence": 0, "built": 0}
        live = {"gone": {"$ne": True}}  # tombstones of keys that no longer exist aside
        rows = await model.get_pymongo_collection().find(live, hidden).to_list(None)
        out[projector.name] = sorted(rows, key=lambda r: str(r["_id"]))
    return out


async def install_older_claim_indexes(database: Any) -> None:
    """An older release's definitions of the two lead-claim indexes, and an operator's own.

    `tenant_lead`: the same name with another option (unique); `old_value_name`: the declared
    unique keys under another name, with a partial filter; `operators_own`: undeclared.
    """
    claims = database["lead_claims"]
    await claims.drop_index("tenant_lead")
    await claims.drop_index("tenant_field_value_unique")
    await claims.create_indexes(
        [
            IndexModel([("tenant_id", 1), ("lead_id", 1)], name="tenant_lead", unique=True),
            IndexModel(
                [("tenant_id", 1), ("field", 1), ("value", 1)],
                name="old_value_name",
                unique=True,
                partialFilterExpression={"value": {"$type": "string"}},
            ),
            IndexModel([("claimed_at", 1)], name="operators_own"),
        ]
    )


def client_of(app: Any, token: str | None = None) -> httpx.AsyncClient:
    """An in-process client of `app` (a 500 is answered, not raised), with a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url="http://t", headers=headers)


def crash_image(path: Path, into: Path) -> Path:
    """The embedded database's files as a `kill -9` would leave them now (copied into `into`)."""
    into.mkdir()
    for file in path.parent.glob(path.name + "*"):
        if not file.name.endswith(".lock"):
            shutil.copy(file, into / file.name)
    return into / path.name


@contextmanager
def around_engine_calls(
    before: Callable[[], Awaitable[None]], after: Callable[[], Awaitable[None]] | None = None
) -> Iterator[None]:
    """Every call into the embedded backend (`aio.run`, `run_point`, and `run_sliced`: a large
    write, one call here) awaits `before` first and `after` once it returned (the stress
    tools' pauses)."""

    def wrapped(real: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            await before()
            result = await real(*args, **kwargs)
            if after is not None:
                await after()
            return result

        return call

    with patch.multiple(
        aio,
        run=wrapped(aio.run),
        run_point=wrapped(aio.run_point),
        run_sliced=wrapped(aio.run_sliced),
    ):
        yield


class MemoryLog:
    """A stand-in for the embedded write-ahead log: the records appended, in order."""

    def __init__(self) -> None:
        self.records: list[bytes] = []

    def append(self, record: bytes) -> None:
        """Keep one record."""
        self.records.append(record)


def decoded_fields(monkeypatch: Any) -> list[list[str]]:
    """The fields of every stored document the embedded engine decodes from now on, in order."""
    from service.embedded import codec

    decoded: list[list[str]] = []
    real = codec.to_canonical

    def spy(raw: bytes) -> dict[str, Any]:
        out = real(raw)
        decoded.append(list(out))
        return out

    monkeypatch.setattr(codec, "to_canonical", spy)
    return decoded


def engine_state(coll: Any, log: MemoryLog) -> dict[str, Any]:
    """An embedded collection's whole state: stored documents, every index, the log's records."""
    store = coll._store
    return {
        "docs": dict(store.docs),
        "indexes": {
            name: (list(i.entries), dict(i.by_doc), i.owners, i.multikey)
            for name, i in store.indexes.items()
        },
        "log": list(log.records),
    }


def engine_outcome(call: Callable[[], Any]) -> Any:
    """An embedded engine call's answer (or error) and the work it counted, to compare."""
    from pymongo.errors import PyMongoError

    from service.embedded import work

    with work.measuring() as counted:
        try:
            answer: Any = call()
            if isinstance(answer, dict):  # each engine is its own client
                answer = {k: v for k, v in answer.items() if k != "connectionId"}
        except (PyMongoError, NotImplementedError) as exc:  # mongomock: no Decimal128 order
            answer = (type(exc).__name__, str(exc), getattr(exc, "details", None))
    return answer, counted.summary()
