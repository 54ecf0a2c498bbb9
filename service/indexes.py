"""Reconciling the indexes a database has with the ones the documents declare.

Beanie creates the declared indexes at start-up with `createIndexes`, which MongoDB refuses
when an index of the same name (or the same keys) exists with another definition — say a
partial filter changed in a release. Refused, start-up fails, the orchestrator restarts the
process and it fails again: a crash loop. `reconcile` runs before Beanie: an existing index
that conflicts with a declared one (same name, or same keys under another name, with other
options) is dropped so that Beanie builds the declared one (index builds do not block reads
or writes since MongoDB 4.2). It never drops an index that no document declares (an
operator's index, the `shard_key` indexes of a sharded cluster): those are only reported.
`python -m service.cli indexes` shows the same comparison without changing anything.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pymongo import IndexModel
from pymongo.errors import OperationFailure

log = logging.getLogger(__name__)

# Indexes of shared mechanisms, created by code rather than declared on a document
# (service/journal.py, service/sequencer.py; both run from service/database.init_models).
EXTRA = {"pending_outbox", "seq_pending", "seq_unique"}
# Options that describe an index's behaviour; the rest (`v`, `ns`, `background`) do not matter.
_MEANINGFUL = ("unique", "sparse", "partialFilterExpression", "expireAfterSeconds", "collation")


@dataclass
class IndexReport:
    """What reconciling found: per collection, the indexes rebuilt and those left alone."""

    rebuilt: dict[str, list[str]] = field(default_factory=dict)
    undeclared: dict[str, list[str]] = field(default_factory=dict)
    missing: dict[str, list[str]] = field(default_factory=dict)

    @property
    def clean(self) -> bool:
        """Nothing conflicted (undeclared and not-yet-built indexes are not conflicts)."""
        return not any(self.rebuilt.values())


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


async def reconcile(db: Any, models: Iterable[type[Any]], *, apply: bool = True) -> IndexReport:
    """Drop existing indexes that conflict with declared ones (with `apply`), report the rest.

    Without `apply` nothing changes: `rebuilt` then lists what start-up would rebuild.
    """
    report = IndexReport()
    existing_collections = set(await db.list_collection_names())
    for collection, wanted in declared(models).items():
        if collection not in existing_collections:  # Beanie creates it with every index
            report.missing[collection] = sorted(i.document["name"] for i in wanted)
            continue
        info = await db[collection].index_information()
        have = {name: _definition(spec) for name, spec in info.items() if name != "_id_"}
        want = {i.document["name"]: _definition(i.document) for i in wanted}
        conflicts = [
            name
            for name, definition in have.items()
            if (name in want and want[name] != definition)
            or (name not in want and any(definition[0] == w[0] for w in want.values()))
        ]
        report.missing[collection] = sorted(n for n in want if n not in have)
        report.undeclared[collection] = sorted(
            n for n in have if n not in want and n not in conflicts and n not in EXTRA
        )
        report.rebuilt[collection] = sorted(conflicts)
        for name in conflicts if apply else []:
            log.warning("index %s.%s differs from its declaration: rebuilding it", collection, name)
            try:
                await db[collection].drop_index(name)
            except OperationFailure as exc:  # another process dropped it first
                if exc.code != 27:  # IndexNotFound
                    raise
    return report
