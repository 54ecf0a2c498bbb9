"""The one place that builds the MongoDB client and binds the Beanie documents to it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from beanie import init_beanie
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import ReadPreference, WriteConcern
from pymongo.read_concern import ReadConcern

from documents import ALL_DOCUMENTS
from service.observability import CommandLatency
from service.settings import Settings

log = logging.getLogger(__name__)

DatabaseKind = Literal["mongodb", "embedded"]


@dataclass
class Database:
    """A connected database and what kind of server is behind it."""

    db: Any  # AsyncIOMotorDatabase or its mongomock-motor twin
    kind: DatabaseKind


def connect(settings: Settings) -> Database:
    """Connect to MONGODB_URL, or to an in-memory embedded MongoDB when it is unset."""
    if settings.mongodb_url:
        client: Any = AsyncIOMotorClient(
            settings.mongodb_url,
            uuidRepresentation="standard",
            tz_aware=True,
            retryWrites=True,
            w="majority",
            readConcernLevel="majority",
            serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
            connectTimeoutMS=settings.mongodb_timeout_ms,
            socketTimeoutMS=max(settings.mongodb_timeout_ms * 5, 10_000),
            appname="lead-ignite-data-service",
            event_listeners=[CommandLatency()],
        )
        db = client.get_database(
            settings.mongodb_db,
            write_concern=WriteConcern("majority"),
            read_concern=ReadConcern("majority"),
            read_preference=ReadPreference.PRIMARY,
        )
        return Database(db=db, kind="mongodb")
    log.warning(
        "MONGODB_URL is not set: running on an EMBEDDED in-memory MongoDB (mongomock-motor). "
        "Data is lost on exit; do not use this in production."
    )
    return Database(db=embedded_database(settings.mongodb_db), kind="embedded")


def _forward_index_options_in_mongomock() -> None:
    """Make mongomock's `create_indexes` keep IndexModel options such as partial filters.

    Beanie creates indexes with `create_indexes([IndexModel, ...])`; mongomock 4.x only
    forwards `unique`/`sparse`/`expireAfterSeconds`/`name` there and silently drops
    `partialFilterExpression` (its `create_index` honours it), which would turn the leads'
    partial unique indexes into full ones on the embedded backend.
    """
    from mongomock.collection import Collection

    if getattr(Collection.create_indexes, "_forwards_options", False):
        return

    def create_indexes(self: Any, indexes: Any, session: Any = None) -> list[str]:
        names = []
        for index in indexes:
            options = {k: v for k, v in index.document.items() if k != "key"}
            names.append(
                self.create_index(list(index.document["key"].items()), session=session, **options)
            )
        return names

    create_indexes._forwards_options = True  # type: ignore[attr-defined]
    Collection.create_indexes = create_indexes  # type: ignore[method-assign]


def embedded_database(name: str = "lead_ignite") -> Any:
    """A fresh in-memory database (mongomock-motor), as tests and the embedded default use."""
    from mongomock_motor import AsyncMongoMockClient

    _forward_index_options_in_mongomock()
    return AsyncMongoMockClient(uuidRepresentation="standard", tz_aware=True)[name]


def kind_of(db: Any) -> DatabaseKind:
    """Whether a database object is a real Motor database or the embedded one."""
    # mongomock-motor disguises its classes as Motor's; its database has a mongomock delegate.
    mocked = any(c.__module__.startswith("mongomock") for c in type(db).__mro__)
    return "embedded" if mocked else "mongodb"


async def init_models(db: Any) -> None:
    """Bind every Beanie document to `db` and create the declared indexes."""
    await init_beanie(database=db, document_models=list(ALL_DOCUMENTS))


async def ping(db: Any) -> bool:
    """True when the database answers a ping."""
    try:
        await db.command("ping")
    except Exception as exc:  # any driver failure means "not ready"
        log.warning("database ping failed: %s", exc)
        return False
    return True
