"""The database's indexes against the ones the documents declare: compared at start-up, changed
only on request, and never by dropping the index that serves the queries first.

Start-up (`service.database.init_models`, run by every process) only **compares and reports**:
it builds declared indexes that do not exist yet (a new name: nothing is dropped) and leaves a
changed definition as it is, with a warning log line and a note in `/ready`. Dropping and
rebuilding there would, on a large collection, leave the queries on a scan for the length of
the build, and in a rolling deploy old and new pods would flip the definition back and forth.

`python -m service.cli indexes --apply` (`apply_changes`) changes a definition without a gap:
for each index whose definition changed it

1. builds a serving index beside the old one and waits for it (`createIndexes` returns once
   the build is done): the declared index itself when it has a new name and MongoDB can hold
   both (the keys, partial filter or collation differ); otherwise a temporary non-unique
   *bridge* (`<name>__next`) on the old keys plus `_id`, which serves the same queries;
2. hides the old index (`collMod` `hidden: true`: the planner stops using it; a unique one
   still guards writes);
3. drops the old index;
4. with a bridge: builds the declared index under its name, then drops the bridge.

A unique index changed under the same name has no uniqueness guard between steps 3 and 4 (a
duplicate written then makes step 4 fail, and the bridge stays until it is fixed): give a
changed unique index a new name in the release to avoid that window.

At every step a visible index with the old key prefix serves the queries
(tests/test_indexes.py checks each one). Indexes no document declares (an operator's own, the
`shard_key` indexes of a sharded cluster) are only reported, never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import IndexModel
from pymongo.errors import ExecutionTimeout, NetworkTimeout, OperationFailure

from service.core.deadlines import deadline

log = logging.getLogger(__name__)

# Indexes of shared mechanisms, created by code rather than declared on a document
# (service/core/journal/outbox.py, service/feeds/sequencer.py; both run from
# service/database.init_models).
EXTRA = {"pending_outbox", "seq_pending", "seq_unique"}
# Options that describe an index's behaviour; the rest (`v`, `ns`, `background`, `hidden`) do
# not change what it holds.
_MEANINGFUL = ("unique", "sparse", "partialFilterExpression", "expireAfterSeconds", "collation")
# What MongoDB answers when an index cannot be created beside an existing one.
_CONFLICTS = {85, 86}  # IndexOptionsConflict, IndexKeySpecsConflict
NEXT = "__next"  # suffix of the temporary index `apply_changes` builds first

Step = Callable[[str, str], Awaitable[None]]
"""Called after each step of `apply_changes` with the collection and what was done."""


@dataclass
class IndexReport:
    """What comparing found, per collection: changed, missing and undeclared index names."""

    changed: dict[str, list[str]] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)
    undeclared: dict[str, list[str]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """No existing index differs from its declaration (undeclared ones are not conflicts)."""
        return not any(self.changed.values())

    def summary(self) -> str:
        """One line for logs and `/ready`."""
        changed = [f"{c}.{n}" for c, names in sorted(self.changed.items()) for n in names]
        if not changed:
            return "as declared"
        return (
            f"{len(changed)} differ from their declaration ({', '.join(changed)}); "
            "`python -m service.cli indexes --apply` changes them"
        )


def declared(models: Iterable[type[Any]]) -> dict[str, list[IndexModel]]:
    """The indexes each collection's documents declare (`Settings.indexes`), by collection."""
    out: dict[str, list[IndexModel]] = {}
    for model in models:
        settings = getattr(model, "Settings", None)
        name = getattr(settings, "name", None)
        if name is None:
            continue
        for index in getattr(settings, "indexes", None) or []:
            if isinstance(index, IndexModel):
                existing = out.setdefault(name, [])
                if all(i.document["name"] != index.document["name"] for i in existing):
                    existing.append(index)
    return out


def _definition(spec: Mapping[str, Any]) -> tuple[Any, ...]:
    keys = tuple(
        (str(k), v if isinstance(v, str) else int(v)) for k, v in dict(spec["key"]).items()
    )
    options = tuple((k, _plain(spec[k])) for k in _MEANINGFUL if spec.get(k) not in (None, False))
    return keys, options


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return tuple(sorted((k, _plain(v)) for k, v in value.items()))
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def _changed(have: dict[str, Any], want: dict[str, Any]) -> dict[str, str]:
    """Existing index name -> the declared name it stands for (same name, or same keys)."""
    out: dict[str, str] = {}
    for name, definition in have.items():
        if name in want:
            if want[name] != definition:
                out[name] = name
        else:
            for wanted, w in want.items():
                if definition[0] == w[0] and wanted not in have:
                    out[name] = wanted
                    break
    return out


async def compare(db: Any, models: Iterable[type[Any]]) -> IndexReport:
    """The database's indexes against the declared ones; nothing changes."""
    report = IndexReport()
    existing_collections = set(await db.list_collection_names())
    for collection, wanted in declared(models).items():
        if collection not in existing_collections:  # start-up creates it with every index
            report.missing[collection] = sorted(i.document["name"] for i in wanted)
            continue
        have = await _existing(db, collection)
        want = {i.document["name"]: _definition(i.document) for i in wanted}
        changed = _changed(have, want)
        report.changed[collection] = sorted(changed)
        report.missing[collection] = sorted(n for n in want if n not in have)
        report.undeclared[collection] = sorted(
            n for n in have if n not in want and n not in changed and n not in EXTRA
        )
    return report


async def _existing(db: Any, collection: str) -> dict[str, tuple[Any, ...]]:
    info = await db[collection].index_information()
    return {name: _definition(spec) for name, spec in info.items() if name != "_id_"}


async def build_missing(
    db: Any, models: Iterable[type[Any]], *, build_seconds: float | None = None
) -> list[str]:
    """Build declared indexes that do not exist yet; `collection.name` of those built.

    A declared index that cannot be built beside a changed one (the same name, or the same
    keys and options) is left for `indexes --apply`: nothing is dropped here. Each build runs
    within `build_seconds` (None: one round trip's socket timeout, MONGODB_BATCH_TIMEOUT_MS);
    a build that takes longer is logged and left to the server, never a failed start-up.
    """
    built: list[str] = []
    for collection, wanted in declared(models).items():
        info = await db[collection].index_information()
        for index in wanted:
            name = index.document["name"]
            if name in info:
                continue
            try:
                with deadline(build_seconds):
                    await db[collection].create_indexes([index])
            except (NetworkTimeout, ExecutionTimeout):
                log.warning(
                    "index %s.%s: the build outlasted its budget; `indexes` shows when it is "
                    "there (`indexes --apply` waits for it)",
                    collection,
                    name,
                )
                continue
            except OperationFailure as exc:
                if exc.code not in _CONFLICTS:
                    raise
                log.warning("index %s.%s not built: %s", collection, name, exc.details)
                continue
            built.append(f"{collection}.{name}")
    return built


def _coexists(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    """Whether MongoDB can hold both definitions at once (else the same index, other options)."""
    a, b = _definition(old), _definition(new)
    if a[0] != b[0]:
        return True
    return any(
        _plain(old.get(k)) != _plain(new.get(k)) for k in ("partialFilterExpression", "collation")
    )


def _bridge(spec: Mapping[str, Any], name: str) -> IndexModel:
    """A non-unique index on the old keys plus `_id`: serves what the old one served."""
    keys = list(dict(spec["key"]).items())
    if all(k != "_id" for k, _ in keys):
        keys.append(("_id", 1))
    return IndexModel(keys, name=name)


async def _drop(collection: Any, name: str) -> None:
    try:
        await collection.drop_index(name)
    except OperationFailure as exc:  # another process dropped it first
        if exc.code != 27:  # IndexNotFound
            raise


async def apply_changes(
    db: Any,
    models: Iterable[type[Any]],
    *,
    step: Step | None = None,
    build_seconds: float | None = None,
) -> IndexReport:
    """Change every changed index to its declaration without a gap (module docstring).

    Returns the report from before; missing indexes are built too. Each build waits up to
    `build_seconds` (INDEX_BUILD_TIMEOUT_MS from the CLI).
    """
    models = list(models)
    report = await compare(db, models)

    async def build(coll: Any, index: IndexModel) -> None:
        with deadline(build_seconds):  # createIndexes returns once the build is done
            await coll.create_indexes([index])

    async def done(collection: str, what: str) -> None:
        log.info("indexes %s: %s", collection, what)
        if step is not None:
            await step(collection, what)

    wanted_by_collection = {
        c: {i.document["name"]: i for i in wanted} for c, wanted in declared(models).items()
    }
    for collection, names in report.changed.items():
        coll = db[collection]
        wanted = wanted_by_collection[collection]
        for old in names:
            info = await coll.index_information()
            have = {n: _definition(s) for n, s in info.items() if n != "_id_"}
            want = {n: _definition(i.document) for n, i in wanted.items()}
            target = _changed(have, want).get(old)
            if target is None:  # another process finished it meanwhile
                continue
            declared_index = wanted[target]
            bridge = None
            if target != old and _coexists(info[old], declared_index.document):
                # Renamed: the declared index is built beside the old one, under its name.
                try:
                    await build(coll, declared_index)
                    await done(collection, f"built {target}")
                except OperationFailure as exc:  # this server cannot hold both: bridge it
                    if exc.code not in _CONFLICTS:
                        raise
                    bridge = target + NEXT
            else:
                bridge = target + NEXT
            if bridge is not None:
                await build(coll, _bridge(info[old], bridge))
                await done(collection, f"built {bridge}")
            await db.command({"collMod": collection, "index": {"name": old, "hidden": True}})
            await done(collection, f"hid {old}")
            await _drop(coll, old)
            await done(collection, f"dropped {old}")
            if bridge is not None:
                await build(coll, declared_index)
                await done(collection, f"built {target}")
                await _drop(coll, bridge)
                await done(collection, f"dropped {bridge}")
    for built in await build_missing(db, models, build_seconds=build_seconds):
        collection, name = built.split(".", 1)
        await done(collection, f"built {name}")
    return report


__all__ = [
    "EXTRA",
    "IndexReport",
    "apply_changes",
    "build_missing",
    "compare",
    "declared",
]
