"""A collection's documents and its indexes, kept in step with every write.

Each document is held as its BSON bytes only, with its insertion rank: `(raw, seq)`. Queries
decode the few candidates the indexes select (a few microseconds each); readers decode their
own copies; snapshots write the bytes as they are. Holding no Python containers per document
matters: the cyclic garbage collector walks every tracked object on a full collection, which
with decoded documents took half a second at 20,000 leads and stalled every request. Index
entries are tuples of atomic values, which the collector stops tracking. Each declared index
is a sorted list of `(key..., id)` tuples (see keys.py) — so equality, range and ordered
scans cost a bisection instead of a pass over the collection; a multikey one (tags, search
tokens) holds each entry as one byte string of the same order instead (`Index.encoded`, its
id recoverable), compared by one memcmp — and a unique index also keeps a hash map from key to
document, which decides duplicates in O(1). Partial and sparse unique indexes constrain only
the documents they cover, exactly as MongoDB's do; for lookups every index holds every
document, which can only widen a candidate set that the full filter then narrows.

Every change a store makes is also handed to its `Recorder`, which appends it to the
write-ahead log once the client is persistent (see wal.py): TTL deletions included.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from operator import itemgetter
from typing import TYPE_CHECKING, Any

import bson
from mongomock.filtering import filter_applies
from pymongo.errors import DuplicateKeyError, OperationFailure
from sortedcontainers import SortedList

from service.embedded import codec, geo, wal
from service.embedded.keys import (
    FAST_KEYS,
    FieldKeys,
    cached_entry_bytes,
    entry_id_bytes,
    has_path,
    id_tail,
    index_keys,
    key_value,
    sort_key,
    string_array,
    string_array_keys,
    string_keys,
    strings_bytes,
)

if TYPE_CHECKING:
    from service.embedded.wal import Log

IdKey = tuple[Any, ...]
Entries = tuple[Any, ...]
"""A document's entries in one index: its key tuples, each with the `_id` key appended (or
those as bytes: `Index.encode`)."""
Stored = tuple[bytes, int]
"""One document: its BSON bytes and its insertion rank (a plain tuple, untracked by the GC)."""
TTL_MONITOR_SECONDS = 60


@dataclass
class Index:
    """A declared index: its options as MongoDB reports them, and its sorted entries."""

    name: str
    keys: list[tuple[str, Any]]
    options: dict[str, Any] = field(default_factory=dict)
    entries: SortedList = field(default_factory=SortedList)
    by_doc: dict[IdKey, Entries] = field(default_factory=dict)
    owners: dict[tuple[Any, ...], IdKey] | None = None
    multikey: bool = False
    # Once `encoded`: each held document's id key by its bytes (see `id_of`).
    ids: dict[bytes, IdKey] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fields = tuple(name for name, _ in self.keys)
        self.unique = bool(self.options.get("unique"))
        self.sparse = bool(self.options.get("sparse"))
        self.partial: Mapping[str, Any] | None = self.options.get("partialFilterExpression")
        self.ttl: int | None = self.options.get("expireAfterSeconds")
        if self.unique:
            self.owners = {}
        # Top-level fields whose change can change this index's entries or membership.
        self.watched = frozenset(f.split(".", 1)[0] for f in (*self.fields, *(self.partial or {})))
        self._applies = _compile(self.partial) if self.partial is not None else None
        self.geo = geo.geo_fields(self.keys)  # keyed by cell (geo.py), walked by `$nearSphere`
        # Once multikey (tens of entries a document: tags, search tokens), each entry is held
        # as one byte string (see `keys.key_bytes`, `keys.id_tail`), compared by one memcmp
        # (a `(bytes, id)` pair took two, and one more object an entry); not a unique index
        # (its owners are keyed by the key tuples), nor a geo or TTL one (their walks read
        # the entries' parts).
        self.encodable = not self.unique and self.ttl is None and not self.geo
        self.encoded = False
        # An index of top-level fields only (no geo, no dotted path): its one entry, when
        # none of them holds an array, is picked from a document's `Scalars` in one call
        # (the key tuple with the `_id` key appended, which `Scalars` holds under "_id").
        self.pick: Callable[[Scalars], tuple[Any, ...]] | None = None
        if not self.geo and not any("." in f for f in self.fields):
            self.pick = itemgetter(*self.fields, "_id")

    @property
    def info(self) -> dict[str, Any]:
        """The index as `index_information()` describes it."""
        return {"key": list(self.keys), "v": 2, **self.options}

    def keys_of(
        self, doc: Mapping[str, Any], memo: FieldKeys | None = None
    ) -> list[tuple[Any, ...]]:
        """The key tuples of a document (several for array values); `memo`: see index_keys."""
        if self.geo:
            return index_keys(doc, self.fields, geo.cell_value, self.geo, memo)
        return index_keys(doc, self.fields, memo=memo)

    def encode(self, entries: Entries) -> Entries:
        """Entries (key tuples with the id key appended) as this index holds them."""
        if not self.encoded or not entries:
            return entries
        tail = id_tail(entries[0][-1])  # one document's entries: one id key
        return tuple([cached_entry_bytes(entry[:-1]) + tail for entry in entries])

    def id_of(self, entry: Any) -> IdKey:
        """The id key of one of the entries this index holds."""
        if self.encoded:
            return self.ids[entry_id_bytes(entry)]
        return entry[-1]  # type: ignore[no-any-return]

    def sort_entries(self) -> None:
        """The sorted list made from `by_doc`, just filled with key-tuple entries (held as
        bytes when the index is multikey: see `encodable`)."""
        if self.multikey and self.encodable:
            self.become_encoded()
        else:
            self.entries = SortedList(e for entries in self.by_doc.values() for e in entries)

    def become_encoded(self) -> None:
        """Hold the entries as bytes from now on (see `encodable`): every one re-encoded,
        the sorted list rebuilt."""
        self.encoded = True
        self.by_doc = {key: self.encode(entries) for key, entries in self.by_doc.items()}
        self.ids = {
            entry_id_bytes(entries[0]): key for key, entries in self.by_doc.items() if entries
        }
        self.entries = SortedList(e for entries in self.by_doc.values() for e in entries)

    def bound(self, bound: tuple[Any, ...], entry: bool = False) -> Any:
        """A bound of a walk (key tuples; `entry`: an entry, its id key last, as a walk
        resumes after) as this index's entries compare with it."""
        if not self.encoded:
            return bound
        if entry:
            return cached_entry_bytes(bound[:-1]) + id_tail(bound[-1])
        return cached_entry_bytes(bound)

    def constrains(self, doc: Mapping[str, Any]) -> bool:
        """Whether the unique constraint applies to this document (sparse and partial rules)."""
        if self.sparse and not any(has_path(doc, f) for f in self.fields):
            return False
        return self._applies is None or self._applies(doc)


_TYPE_CHECKS: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "date": lambda v: isinstance(v, datetime),
    "null": lambda v: v is None,
}


def _compile(expr: Mapping[str, Any]) -> Any:
    """A fast test for the partial filters indexes use (`{f: literal}`, `{f: {"$type": t}}`,
    `{f: {"$exists": b}}`); anything else is left to mongomock's matcher."""
    checks = []
    for name, spec in expr.items():
        if "." in name or name.startswith("$"):
            return lambda doc: filter_applies(expr, doc)
        if isinstance(spec, Mapping) and len(spec) == 1 and "$type" in spec:
            check = _TYPE_CHECKS.get(spec["$type"]) if isinstance(spec["$type"], str) else None
            if check is None:
                return lambda doc: filter_applies(expr, doc)
            checks.append(lambda doc, n=name, c=check: n in doc and c(doc[n]))
        elif isinstance(spec, Mapping) and len(spec) == 1 and "$exists" in spec:
            checks.append(lambda doc, n=name, e=bool(spec["$exists"]): (n in doc) == e)
        elif isinstance(spec, bool | str) or spec is None:
            # Equality with a boolean, string or null literal (null also matches missing).
            checks.append(
                lambda doc, n=name, v=spec: (
                    doc.get(n) is v if v is None or isinstance(v, bool) else doc.get(n) == v
                )
            )
        else:
            return lambda doc: filter_applies(expr, doc)
    return lambda doc: all(check(doc) for check in checks)


class Scalars(dict):  # type: ignore[type-arg]
    """A document's top-level scalar fields' keys, each computed on first use and shared by
    the document's indexes (`Index.pick`); KeyError for a field holding an array (such an
    index takes `index_keys`'s route). Each key is `field_keys`' one key of that field."""

    __slots__ = ("doc",)

    def __init__(self, doc: Mapping[str, Any], key: IdKey) -> None:
        super().__init__()
        self.doc = doc
        if not isinstance(doc.get("_id"), list):
            self["_id"] = key  # `_id`'s key is known (see `_memo`)

    def __missing__(self, name: str) -> tuple[Any, ...]:
        value = self.doc.get(name)
        if isinstance(value, list):
            raise KeyError(name)
        fast = FAST_KEYS.get(type(value))
        key = self[name] = fast(value) if fast is not None else sort_key(value)
        return key  # type: ignore[no-any-return]


def _string_array_entries(
    fields: tuple[str, ...], scalars: Scalars, key: IdKey, encoded: bool = False
) -> Entries | None:
    """The entries (`index_keys` with `key` appended) of an index of top-level fields where
    one field holds a non-empty array of strings only (tags, search tokens) and the others
    scalars: one per distinct string, in order, the scalars' keys taken from `scalars`
    (`encoded`: as `Index.encode` makes them). None for any other document."""
    parts: list[Any] = []
    at = -1
    strings = None
    doc = scalars.doc
    for position, name in enumerate(fields):
        known = scalars.get(name)  # (a key computed before; `get` computes none)
        if known is not None:
            parts.append(known)
            continue
        value = doc.get(name)
        if type(value) is not list:
            parts.append(scalars[name])
            continue
        if strings is not None:
            return None  # two arrays: their product, on the general route
        strings = string_array(value)
        if strings is None:
            return None
        at = position
        parts.append(None)
    if strings is None:
        return None
    head, tail = tuple(parts[:at]), (*parts[at + 1 :], key)
    if encoded:
        # The entries' bytes share a head and a tail: each string's own bytes computed once.
        first, last = cached_entry_bytes(head), cached_entry_bytes(tail[:-1]) + id_tail(key)
        return tuple([first + middle + last for middle in strings_bytes(strings)])
    return tuple([(*head, string, *tail) for string in string_keys(strings)])


class Recorder:
    """Where the stores of one client send their changes: the log, once one is attached."""

    __slots__ = ("log",)

    def __init__(self) -> None:
        self.log: Log | None = None

    def __call__(self, kind: int, database: str, collection: str, payload: bytes = b"") -> None:
        """Append a change to the log (nothing when the client is not persistent)."""
        if self.log is not None:
            self.log.append(wal.encode(kind, database, collection, payload))


def index_spec(index: Index) -> dict[str, Any]:
    """An index as the snapshot and the log store it."""
    return {"name": index.name, "key": [[k, d] for k, d in index.keys], "options": index.options}


class CollectionStore:
    """Documents by `_id` (in insertion order) plus the collection's indexes."""

    def __init__(self, name: str, database: str = "", recorder: Recorder | None = None) -> None:
        self.name = name
        self.database = database
        self.recorder = recorder
        self.docs: dict[IdKey, Stored] = {}
        self.indexes: dict[str, Index] = {}
        self.created = False
        self.options: dict[str, Any] = {}
        self._seq = 0
        self._next_expiry: datetime | None = None
        self.indexes["_id_"] = Index("_id_", [("_id", 1)])
        self.index_version = 0  # counts changes of the index set (see `indexed_fields`)
        # What the engine derives from the index set, keyed with `index_version` among others.
        self.derived: dict[Any, Any] = {}
        self._indexed: tuple[int, frozenset[str] | None] | None = None

    @property
    def fast_paths(self) -> bool:
        """Whether keys come through `Scalars` (EngineStore follows `engine.FAST_PATHS`)."""
        return True

    def indexed_fields(self) -> tuple[int, frozenset[str] | None]:
        """The top-level fields the indexes read (keys, sparse and partial rules) and `_id`
        (None when a partial filter names an operator: it may read any field), with the
        version of the index set they were read from (`index_version`)."""
        cached = self._indexed
        if cached is not None and cached[0] == self.index_version:
            return cached
        names: set[str] | None = {"_id"}
        for index in self.indexes.values():
            if any(name.startswith("$") for name in index.watched):
                names = None
                break
            names |= index.watched  # type: ignore[operator]
        self._indexed = (self.index_version, None if names is None else frozenset(names))
        return self._indexed

    def _entries(
        self, doc: Mapping[str, Any], key: IdKey, indexes: Iterable[tuple[str, Index]]
    ) -> dict[str, Entries]:
        """The entries of a document in each of `indexes` (its key tuples, each with `key`
        appended: what the sorted lists hold), by index name."""
        if not self.fast_paths:
            general = _memo(doc, key)
            return {
                name: index.encode(tuple([(*k, key) for k in index.keys_of(doc, general)]))
                for name, index in indexes
            }
        scalars = Scalars(doc, key)
        out: dict[str, Entries] = {}
        memo: FieldKeys | None = None
        for name, index in indexes:
            pick = index.pick
            if pick is not None:
                try:
                    picked = (pick(scalars),)
                    out[name] = index.encode(picked) if index.encoded else picked
                    continue
                except KeyError:  # a field holds an array: several keys
                    pass
                found = _string_array_entries(index.fields, scalars, key, index.encoded)
                if found is not None:
                    out[name] = found
                    continue
                if memo is None:
                    memo = _memo(doc, key)
                for field in index.fields:  # arrays of strings (tags, search tokens) at once
                    if field not in memo:
                        strings = string_array_keys(doc.get(field))
                        if strings is not None:
                            memo[field] = strings
            if memo is None:
                memo = _memo(doc, key)
            out[name] = index.encode(tuple([(*k, key) for k in index.keys_of(doc, memo)]))
        return out

    def _record(self, kind: int, payload: bytes = b"") -> None:
        recorder = self.recorder
        if recorder is not None and recorder.log is not None:
            recorder(kind, self.database, self.name, payload)

    # -- documents ------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.docs)

    def __contains__(self, key: IdKey) -> bool:
        return key in self.docs

    def get(self, key: IdKey) -> Stored | None:
        """The stored document with this `_id` key, if any."""
        return self.docs.get(key)

    def key_of(self, raw: bytes) -> IdKey:
        """The `_id` key of a stored document, its `_id` alone decoded."""
        return sort_key(codec.to_canonical(_id_record(raw))["_id"])

    def all(self) -> Iterator[Stored]:
        """Every document in insertion order (a snapshot: writes during iteration are safe)."""
        return iter(list(self.docs.values()))

    def insert(self, doc: dict[str, Any], raw: bytes) -> None:
        """Add a new document (`doc` is `raw` decoded); DuplicateKeyError if a key is taken."""
        key = sort_key(doc["_id"])
        if key in self.docs:
            raise _duplicate("_id_", {"_id": 1}, {"_id": doc["_id"]})
        new = self._entries(doc, key, self.indexes.items())
        covered = self._check_unique(key, doc, new)
        self._seq += 1
        self.docs[key] = (raw, self._seq)
        self.created = True
        fast = self.fast_paths
        for name, index in self.indexes.items():
            entries = new[name]
            if fast and len(entries) == 1 and index.owners is None and not index.encoded:
                # One key tuple into a plain index (most of them): `_add`'s steps for it.
                index.by_doc[key] = entries
                _add_entry(index.entries, entries[0])
                continue
            self._add(index, key, entries, name in covered)
        self._record(wal.INSERT, raw)

    def replace(
        self,
        key: IdKey,
        doc: dict[str, Any],
        raw: bytes,
        changed: frozenset[str] | None = None,
        whole: bool = True,
    ) -> None:
        """Store a new version of a document (keeping its rank); DuplicateKeyError on a clash.

        `changed` (top-level fields that differ from the stored version), when known, spares
        the indexes that watch none of them, and the entries of those that do are derived
        from their old ones (`_moved_entries`). Not `whole`: `doc` holds only `_id`, the
        changed fields and the fields of the unique indexes watching them (`raw` is decoded
        for any other entry needed).
        """
        seq = self.docs[key][1]
        affected = self._affected(changed)
        fast = self.fast_paths
        movers = self._movers(changed) if changed is not None and fast else None
        if not affected:
            new = {}  # no index watches what changed (an outbox clear without its index)
        elif movers is not None and movers[1]:
            new = self._moved_entries(doc, key, raw, movers[0], whole)
        elif not whole:
            new = self._entries(codec.to_canonical(raw), key, affected)
        else:
            new = self._entries(doc, key, affected)
        covered = self._check_unique(key, doc, new)
        for name, index in affected:
            entries = new[name]
            by_doc = index.by_doc
            old = by_doc.get(key)
            if old == entries:
                owners = index.owners
                if owners is None or (name in covered) == any(
                    owners.get(entry[:-1]) == key for entry in entries
                ):
                    continue  # the update left this index's keys (and membership) alone
            if (
                fast
                and index.owners is None
                and not index.encoded
                and old is not None
                and len(old) == 1
                and len(entries) == 1
            ):
                # One entry moves (a sequencer's `seq`): `_remove` and `_add`'s steps for it.
                _remove_entry(index.entries, old[0])
                _add_entry(index.entries, entries[0])
                by_doc[key] = entries
                continue
            self._remove(index, key)
            self._add(index, key, entries, name in covered)
        self.docs[key] = (raw, seq)
        self._record(wal.REPLACE, raw)

    def _moved_entries(
        self,
        doc: Mapping[str, Any],
        key: IdKey,
        raw: bytes,
        movers: list[tuple[str, Index, tuple[tuple[int, str], ...] | None]],
        whole: bool,
    ) -> dict[str, Entries]:
        """The new entries of a document whose changed fields are `changed` (at most), in
        the indexes watching them: where the index's old entry is one unencoded key tuple of
        top-level fields, that tuple with the changed fields' keys put in (the others'
        keys, unchanged, are not derived again); the rest by `_entries`, from `doc` when it
        is `whole`, else from `raw` (the new version) decoded."""
        out: dict[str, Entries] = {}
        rest: list[tuple[str, Index]] = []
        scalars = Scalars(doc, key)
        for name, index, positions in movers:
            old = index.by_doc.get(key) if positions is not None else None
            if old is None or len(old) != 1 or index.encoded:
                rest.append((name, index))
                continue
            parts = list(old[0])
            try:
                for position, field in positions:  # type: ignore[union-attr]
                    parts[position] = scalars[field]
            except KeyError:  # a changed field now holds an array: several entries
                rest.append((name, index))
                continue
            out[name] = (tuple(parts),)
        if rest:
            out.update(self._entries(doc if whole else codec.to_canonical(raw), key, rest))
        return out

    def _movers(
        self, changed: frozenset[str]
    ) -> tuple[list[tuple[str, Index, tuple[tuple[int, str], ...] | None]], bool]:
        # `_affected`'s indexes, each with the positions of the changed fields in its entry
        # tuples (None for an index whose entries are not picked from top-level scalars),
        # and whether any has them.
        shape = ("movers", self.index_version, changed)
        found = self.derived.get(shape)
        if found is None:
            movers = [
                (
                    name,
                    index,
                    None
                    if index.pick is None
                    else tuple((n, f) for n, f in enumerate(index.fields) if f in changed),
                )
                for name, index in self._affected(changed)
            ]
            found = (movers, any(positions is not None for _, _, positions in movers))
            if len(self.derived) >= 256:
                self.derived.clear()
            self.derived[shape] = found
        return found  # type: ignore[no-any-return]

    def _affected(self, changed: frozenset[str] | None) -> list[tuple[str, Index]]:
        # The indexes watching a changed field (all when unknown), by name: worked out once
        # per set of changed fields and index set.
        shape = ("affected", self.index_version, changed)
        found: list[tuple[str, Index]] | None = self.derived.get(shape)
        if found is None:
            found = [
                (name, index)
                for name, index in self.indexes.items()
                if changed is None or index.watched & changed
            ]
            if len(self.derived) >= 256:
                self.derived.clear()
            self.derived[shape] = found
        return found

    def __setitem__(self, raw_id: Any, doc: dict[str, Any]) -> None:
        # mongomock's update code restores a document's snapshot this way after a failure;
        # a failed update stored nothing, so the restore is then no change (and no log record).
        key, raw = sort_key(raw_id), codec.updated(doc)
        stored = self.docs.get(key)
        if stored is not None and stored[0] == raw:
            return
        self.replace(key, doc, raw)

    def delete(self, key: IdKey) -> None:
        """Remove a document and its index entries."""
        raw, _ = self.docs.pop(key)
        for index in self.indexes.values():
            self._remove(index, key)
        if self.recorder is not None and self.recorder.log is not None:
            self._record(wal.DELETE, _id_record(raw))

    def drop(self) -> None:
        """Remove every document and index."""
        self.docs.clear()
        self.indexes = {"_id_": Index("_id_", [("_id", 1)])}
        self.index_version += 1
        self.created = False
        self.options = {}
        self._record(wal.DROP)

    def mark_created(self) -> None:
        """The collection exists, even empty (`create_collection`)."""
        self.created = True
        self._record(wal.CREATE)

    def set_option(self, name: str, value: Any) -> None:
        """Set a collection option (`collMod`: validator, validation level and action)."""
        self.options[name] = value
        self._record(wal.OPTIONS, codec.encode(self.options))

    def load(self, raws: list[bytes], indexes: list[Index]) -> None:
        """Fill an empty store from a snapshot: each document decoded once, each index
        sorted once (the snapshot's checksum vouches for its unique indexes)."""
        for index in indexes:
            self.indexes[index.name] = index
        self.index_version += 1
        all_indexes = list(self.indexes.values())
        docs = self.docs
        seq = self._seq
        for raw in raws:
            doc = codec.to_canonical(raw)
            key = sort_key(doc["_id"])
            seq += 1
            docs[key] = (raw, seq)
            memo = _memo(doc, key)
            for index in all_indexes:
                keys = index.keys_of(doc, memo)
                if len(keys) > 1:
                    index.multikey = True
                index.by_doc[key] = tuple((*k, key) for k in keys)
                if index.owners is not None and index.constrains(doc):
                    for k in keys:
                        index.owners[k] = key
        self._seq = seq
        for index in all_indexes:
            index.sort_entries()
        self.created = True

    # -- indexes --------------------------------------------------------------------------

    def create_index(self, index: Index) -> None:
        """Build an index over the existing documents; a unique one refuses existing duplicates."""
        existing = self.indexes.get(index.name)
        if existing is not None:
            if existing.keys == index.keys and existing.options == index.options:
                return
            raise OperationFailure(
                f"An existing index has the same name as the requested index: {index.name}",
                code=86,
                details={"codeName": "IndexKeySpecsConflict"},
            )
        for other in self.indexes.values():
            if other.keys == index.keys and other.options == index.options:
                return  # MongoDB: the same index under another name is already there
        for key, (raw, _) in self.docs.items():
            doc = codec.to_canonical(raw)
            keys = index.keys_of(doc)
            if index.owners is not None and index.constrains(doc):
                for k in keys:
                    owner = index.owners.get(k)
                    if owner is not None and owner != key:
                        raise _duplicate(index.name, dict(index.keys), _key_value(index, k))
                    index.owners[k] = key
            index.by_doc[key] = tuple((*k, key) for k in keys)
            index.multikey = index.multikey or len(keys) > 1
        index.sort_entries()
        self.indexes[index.name] = index
        self.index_version += 1
        self.created = True
        self._record(wal.CREATE_INDEX, codec.encode(index_spec(index)))

    def drop_index(self, name: str) -> None:
        """Remove an index by name (OperationFailure when there is none)."""
        if name == "_id_":
            raise OperationFailure("cannot drop _id index", code=72)
        if name not in self.indexes:
            raise OperationFailure(f"index not found with name [{name}]", code=27)
        del self.indexes[name]
        self.index_version += 1
        self._record(wal.DROP_INDEX, bson.encode({"name": name}))

    def _check_unique(
        self, key: IdKey, doc: Mapping[str, Any], new: Mapping[str, Entries]
    ) -> set[str]:
        """DuplicateKeyError on a clash; else the unique indexes whose constraint covers the
        document (sparse and partial rules, decided once for the check and the entries)."""
        covered = set()
        for name in new:
            index = self.indexes[name]
            if index.owners is None or not index.constrains(doc):
                continue
            covered.add(name)
            for entry in new[name]:
                k = entry[:-1]
                owner = index.owners.get(k)
                if owner is not None and owner != key:
                    raise _duplicate(name, dict(index.keys), _key_value(index, k))
        return covered

    def _add(self, index: Index, key: IdKey, entries: Entries, covered: bool) -> None:
        # `entries`: in the index's form when `_entries` made them; it may become multikey
        # here (or have become so since: entries made before are encoded now).
        if index.encoded:
            if entries and type(entries[0]) is not bytes:
                entries = index.encode(entries)
        elif len(entries) > 1 and index.encodable:
            index.become_encoded()
            entries = index.encode(entries)
        if index.encoded and entries:
            index.ids[entry_id_bytes(entries[0])] = key
        index.by_doc[key] = entries
        if len(entries) == 1:
            if self.fast_paths:
                _add_entry(index.entries, entries[0])
            else:
                index.entries.add(entries[0])  # `update` sorts and checks its input first
        else:
            if entries:
                index.multikey = True
            if self.fast_paths:
                _add_entries(index.entries, entries)  # (one entry: no faster than `add`)
            else:
                index.entries.update(entries)
        if index.owners is not None and covered:
            for entry in entries:
                index.owners[entry[:-1]] = key

    def _remove(self, index: Index, key: IdKey) -> None:
        owners = index.owners
        entries = index.entries
        fast = self.fast_paths
        old = index.by_doc.pop(key, ())
        if index.encoded and old:
            del index.ids[entry_id_bytes(old[0])]
        for entry in old:
            if fast:
                _remove_entry(entries, entry)
            else:
                entries.remove(entry)
            if owners is not None and owners.get(entry[:-1]) == key:
                del owners[entry[:-1]]

    # -- TTL ------------------------------------------------------------------------------

    def sweep(self, now: datetime) -> int:
        """Delete the documents past a TTL index's expiry (at most once a minute); how many."""
        if not any(index.ttl is not None for index in self.indexes.values()):
            return 0
        gone = 0
        for key in self.expire(now):
            if key in self.docs:
                self.delete(key)
                gone += 1
        return gone

    def expire(self, now: datetime) -> list[IdKey]:
        """Keys of documents past a TTL index's expiry, found once a minute at most.

        MongoDB's TTL monitor also runs once a minute: expired documents linger until then,
        and code must not rely on them being gone (ours compares the dates itself).
        """
        if self._next_expiry is not None and now < self._next_expiry:
            return []
        self._next_expiry = now + timedelta(seconds=TTL_MONITOR_SECONDS)
        expired: list[IdKey] = []
        for index in self.indexes.values():
            if index.ttl is None or len(index.fields) != 1:
                continue
            limit = sort_key(now - timedelta(seconds=int(index.ttl)))
            low = sort_key(datetime.min)
            for entry in index.entries.irange((low,), (limit, (99,))):
                expired.append(index.id_of(entry))
        return list(dict.fromkeys(expired))


def _add_entry(entries: SortedList, value: tuple[Any, ...]) -> None:
    """`entries.add(value)`, the method's steps inlined (no call to `_expand` unless the
    sublist must split): the same list after. Left to the method while the list is empty or
    keeps its positional index."""
    maxes = entries._maxes
    if not maxes or entries._index:
        entries.add(value)
        return
    pos = bisect_right(maxes, value)
    if pos == len(maxes):
        pos -= 1
        sub = entries._lists[pos]
        sub.append(value)
        maxes[pos] = value
    else:
        sub = entries._lists[pos]
        insort(sub, value)
    entries._len += 1
    if len(sub) > entries._load << 1:
        entries._expand(pos)  # splits the sublist (no positional index to update)


def _add_entries(entries: SortedList, values: Iterable[tuple[Any, ...]]) -> None:
    """`entries.add` of each value, the method's steps inlined (no per-value calls): the
    same values end in the list. Left to the methods while the list is empty or keeps its
    positional index (built by indexing the list, which every add must then update)."""
    if not entries._maxes or entries._index:
        entries.update(values)
        return
    lists, maxes = entries._lists, entries._maxes
    limit = entries._load << 1
    added = 0
    for value in values:
        pos = bisect_right(maxes, value)
        if pos == len(maxes):
            pos -= 1
            lists[pos].append(value)
            maxes[pos] = value
        else:
            insort(lists[pos], value)
        added += 1
        if len(lists[pos]) > limit:
            entries._len += added
            added = 0
            entries._expand(pos)  # splits the sublist (and drops the positional index)
    entries._len += added


def _remove_entry(entries: SortedList, value: tuple[Any, ...]) -> None:
    """`entries.remove(value)`, the method's steps inlined where the sublist stays over half
    full and the list keeps no positional index (the method's own route otherwise): the
    same list after, ValueError for a value it does not hold."""
    maxes = entries._maxes
    pos = bisect_left(maxes, value)
    if pos == len(maxes) or entries._index:
        entries.remove(value)
        return
    sub = entries._lists[pos]
    # A queue-like index (`seq_pending`'s unsequenced entries, taken in `_id` order) loses
    # its lowest entry: found by one comparison instead of a bisection.
    idx = 0 if sub[0] == value else bisect_left(sub, value)
    if sub[idx] != value:
        raise ValueError(f"{value!r} not in list")
    if len(sub) - 1 > (entries._load >> 1):
        del sub[idx]
        entries._len -= 1
        maxes[pos] = sub[-1]
    else:
        entries._delete(pos, idx)  # merges the sublist with its neighbour


_ID_FIELD = codec.wanted(frozenset({"_id"}))


def _id_record(raw: bytes) -> bytes:
    """A delete's log payload, `{"_id": ...}`: the stored document's `_id` element cut from
    its BSON (what encoding its decoded `_id` writes, without decoding the whole document:
    12-18 µs for a lead or an event, against about 1.5)."""
    cut = codec.subset(raw, _ID_FIELD)
    if cut is None or len(cut) == 5:  # an element `spans` does not walk came first
        return bson.encode({"_id": codec.to_canonical(raw)["_id"]})
    return cut


def _memo(doc: Mapping[str, Any], key: IdKey) -> FieldKeys:
    # A document's per-path keys for its indexes, `_id`'s already known (its `sort_key`, the
    # one key of any value but an array, which `check_id` refuses anyway).
    return {} if isinstance(doc.get("_id"), list) else {"_id": [key]}


def _key_value(index: Index, key: tuple[Any, ...]) -> dict[str, Any]:
    # Only for the error message: the stored value the clashing key stands for.
    value = {name: key_value(part) for name, part in zip(index.fields, key, strict=True)}
    return codec.reply(value)


def _duplicate(name: str, pattern: dict[str, Any], value: dict[str, Any]) -> DuplicateKeyError:
    message = f"E11000 duplicate key error collection index: {name} dup key: {value}"
    return DuplicateKeyError(
        message,
        11000,
        {"index": 0, "code": 11000, "keyPattern": pattern, "keyValue": value, "errmsg": message},
    )
