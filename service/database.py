"""The one place that builds the MongoDB client and binds the Beanie documents to it.

With `MONGODB_URL` set the service talks to that server through PyMongo's native async client
(`AsyncMongoClient`); without it, to the embedded backend (service/embedded/), kept in the file
`EMBEDDED_DB_PATH`. Nothing else in the service knows which one runs.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from typing import Any, Literal

from beanie import init_beanie
from pymongo import AsyncMongoClient, ReadPreference, WriteConcern
from pymongo.read_concern import ReadConcern

from documents import AGGREGATE_ROOTS, ALL_DOCUMENTS
from service.core import journal
from service.core.observability import CommandLatency
from service.core.settings import Settings
from service.embedded import EmbeddedDatabase, Snapshotter, open_embedded
from service.embedded import embedded_database as _fresh_embedded
from service.feeds import sequencer
from service.storage.indexes import IndexReport, build_missing, compare

log = logging.getLogger(__name__)

DatabaseKind = Literal["mongodb", "embedded"]


@dataclass
class Database:
    """A connected database, what kind of server is behind it, and how to let it go."""

    db: Any  # pymongo's AsyncDatabase, or an EmbeddedDatabase
    kind: DatabaseKind
    owned: bool = False  # opened here (closed at shutdown), not handed in by a caller
    snapshotter: Snapshotter | None = None

    def start(self) -> None:
        """Begin background work that needs the running loop (embedded snapshots)."""
        if self.snapshotter is not None:
            self.snapshotter.start()

    async def close(self) -> None:
        """Close a client this module opened (an embedded one writes its last snapshot)."""
        if self.owned:
            await self.db.client.close()


def connect(settings: Settings) -> Database:
    """Connect to MONGODB_URL, or open the embedded database when it is unset."""
    if settings.mongodb_url:
        client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
            settings.mongodb_url,
            uuidRepresentation="standard",
            tz_aware=True,
            retryWrites=True,
            w="majority",
            readConcernLevel="majority",
            # No client-wide `timeoutMS`: it would cap every cursor over its whole life and,
            # inside a request, replace server selection's timeout. Each use has its own
            # budget instead (service/core/deadlines.py): requests and background steps run under
            # `pymongo.timeout`, batch work is bounded per round trip by the socket timeout.
            serverSelectionTimeoutMS=settings.mongodb_timeout_ms,
            connectTimeoutMS=settings.mongodb_timeout_ms,
            socketTimeoutMS=settings.mongodb_batch_timeout_ms,
            appname="lead-ignite-data-service",
            event_listeners=[CommandLatency()],
        )
        real = client.get_database(
            settings.mongodb_db,
            write_concern=WriteConcern("majority"),
            read_concern=ReadConcern("majority"),
            read_preference=ReadPreference.PRIMARY,
        )
        return Database(db=real, kind="mongodb", owned=True)
    _share_the_gil_with_the_engine()
    if not settings.embedded_db_path:
        log.warning(
            "MONGODB_URL is not set: running on the EMBEDDED database in memory only "
            "(EMBEDDED_DB_PATH is empty): data is lost on exit. Not for production."
        )
        return Database(db=_fresh_embedded(settings.mongodb_db), kind="embedded", owned=True)
    db, snapshotter = open_embedded(
        settings.embedded_db_path,
        settings.mongodb_db,
        interval=settings.embedded_snapshot_seconds,
        fsync=settings.embedded_fsync,
    )
    log.warning(
        "MONGODB_URL is not set: running on the EMBEDDED database kept in %s (one process, "
        "every write logged before it is acknowledged, fsync %s). Not for production.",
        settings.embedded_db_path,
        "on" if settings.embedded_fsync else "off",
    )
    return Database(db=db, kind="embedded", owned=True, snapshotter=snapshotter)


# The embedded engine works on a thread of this process and holds the GIL while it does;
# the event loop gets it back after at most the switch interval (5 ms by default), once per
# wake-up. At 1 ms (bench_embedded.py --profile, quiet machine, three pairs): worst event
# loop stall during two 10k imports 82-106 -> 42-54 ms, worst create after them 133-179 ->
# 66-84 ms, import times unchanged.
EMBEDDED_SWITCH_INTERVAL = 0.001


def _share_the_gil_with_the_engine() -> None:
    # Never longer than someone else set it.
    sys.setswitchinterval(min(sys.getswitchinterval(), EMBEDDED_SWITCH_INTERVAL))


def embedded_database(name: str = "lead_ignite") -> EmbeddedDatabase:
    """A fresh, empty, in-memory embedded database (nothing persisted), for tests and tools."""
    return _fresh_embedded(name)


def kind_of(db: Any) -> DatabaseKind:
    """Whether a database object is a real MongoDB database or the embedded one."""
    return "embedded" if isinstance(db, EmbeddedDatabase) else "mongodb"


async def init_models(db: Any) -> IndexReport:
    """Bind every Beanie document to `db`, build missing indexes; report changed ones.

    An index whose definition changed since it was built is left as it is (a warning, and
    `/ready` says so): `python -m service.cli indexes --apply` changes it without a gap
    (service/storage/indexes.py). The journal's outbox and the feeds' sequencing indexes belong to
    shared mechanisms rather than to one document, so they are created here too: every
    database the models are bound to (app, CLI, tests) has them.
    """
    report = await compare(db, ALL_DOCUMENTS)
    if not report.clean:
        log.warning("indexes: %s", report.summary())
    await init_beanie(database=db, document_models=list(ALL_DOCUMENTS), skip_indexes=True)
    await build_missing(db, ALL_DOCUMENTS)
    await journal.ensure_outbox_indexes(AGGREGATE_ROOTS)
    await sequencer.ensure_feed_indexes()
    return report


async def ping(db: Any) -> bool:
    """True when the database answers a ping."""
    try:
        await db.command("ping")
    except Exception as exc:  # any driver failure means "not ready"
        log.warning("database ping failed: %s", exc)
        return False
    return True
