"""The sharding plan (service/storage/sharding.py) held against the declared documents.

Every collection in documents/ has a plan; every unique index of a sharded collection is
prefixed by its shard key (MongoDB refuses anything else); the supporting index a plan names
exists and supports the key; the mongosh commands are well-formed and match the plan, and
docs/deployment.md shows them as they are. Also here, because they guard the same deployment:
deploy/requirements.in mirrors pyproject's runtime dependencies and the hashed lock satisfies it.
"""

from __future__ import annotations

import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from documents import ALL_DOCUMENTS
from service.embedded.aio import Operation
from service.feeds import sequencer
from service.storage.sharding import (
    PLAN_BY_COLLECTION,
    SHARD_KEY_INDEX,
    SHARD_PLAN,
    ShardPlan,
    shard_commands,
)
from tests.support import shard_plan
from tests.support.query_plan_plugin import declared_indexes

ROOT = Path(__file__).resolve().parent.parent


def _owners() -> dict[str, Any]:
    """Collection name -> the document class owning it (the root of a polymorphic family)."""
    owners: dict[str, Any] = {}
    model: Any
    for model in ALL_DOCUMENTS:
        name = model.Settings.name
        owner = owners.get(name)
        # Subclasses (CallCampaign, MLSRealEstateLead...) share their root's collection and
        # Settings: keep the most general class.
        if owner is None or issubclass(owner, model):
            owners[name] = model
    return owners


OWNERS = _owners()


def _indexes(model: Any) -> list[dict[str, Any]]:
    """The declared indexes of a document as MongoDB index specs (key, name, options)."""
    return [index.document for index in getattr(model.Settings, "indexes", None) or []]


def _key(index: dict[str, Any]) -> list[tuple[str, Any]]:
    return list(index["key"].items())


def _sharded_existing() -> list[ShardPlan]:
    return [p for p in SHARD_PLAN if p.sharded and p.collection in OWNERS]


def _ids(plans: list[ShardPlan]) -> list[str]:
    return [p.collection for p in plans]


# --- The plan covers the documents ---------------------------------------------------------


def test_every_collection_in_documents_has_a_plan() -> None:
    missing = sorted(set(OWNERS) - set(PLAN_BY_COLLECTION))
    assert not missing, f"add a ShardPlan to service/storage/sharding.py for: {missing}"


def test_the_plan_names_no_stale_collection() -> None:
    # A plan for a collection that no longer exists must go; a planned one that now has a
    # document class must drop its `future` flag (so the checks below cover it).
    stale = [p.collection for p in SHARD_PLAN if not p.future and p.collection not in OWNERS]
    arrived = [p.collection for p in SHARD_PLAN if p.future and p.collection in OWNERS]
    assert not stale, f"plans without a collection in documents/: {stale}"
    assert not arrived, f"now declared in documents/, drop future=True: {arrived}"


def test_each_collection_is_planned_once_with_a_reason() -> None:
    names = [p.collection for p in SHARD_PLAN]
    assert len(names) == len(set(names))
    assert all(len(p.reason) > 20 for p in SHARD_PLAN)


def test_collections_read_before_the_tenant_is_known_stay_unsharded() -> None:
    for name in ("users", "api_keys", "invitations", "tenants"):
        assert not PLAN_BY_COLLECTION[name].sharded, name


def test_leads_split_by_id_and_their_dedupe_guard_is_keyed_by_its_unique_index() -> None:
    # A large tenant's leads are many ranges; the per-tenant unique email, phone and MLS id
    # live in lead_claims, whose one unique index is exactly its shard key.
    assert PLAN_BY_COLLECTION["leads"].key == (("tenant_id", 1), ("_id", 1))
    assert [i["name"] for i in _indexes(OWNERS["leads"]) if i.get("unique")] == []
    claims = PLAN_BY_COLLECTION["lead_claims"]
    unique = [i for i in _indexes(OWNERS["lead_claims"]) if i.get("unique")]
    assert [_key(i) for i in unique] == [list(claims.key or ())]
    assert claims.supporting_index == unique[0]["name"]


def test_feeds_stay_unsharded() -> None:
    # The sequencer's positions are service-wide (unique `seq`), read across tenants.
    for feed in sequencer.FEEDS:
        assert not PLAN_BY_COLLECTION[feed].sharded, feed


async def test_unique_indexes_created_by_code_are_prefixed_by_the_shard_key() -> None:
    # Not only the declared ones: the sequencer and the journal create indexes too, and
    # MongoDB refuses to shard a collection with any unique index the key does not prefix.
    indexes = await declared_indexes()
    for plan in SHARD_PLAN:
        if plan.key is None or plan.collection not in indexes:
            continue
        key_fields = [field for field, _ in plan.key]
        for index in indexes[plan.collection]:
            if not index.unique or index.name == "_id_":
                continue
            assert list(index.fields[: len(key_fields)]) == key_fields, (
                f"{plan.collection}: unique index {index.name} {index.fields} is not prefixed "
                f"by the shard key {key_fields}"
            )


def test_the_shard_check_finds_an_untargeted_write_and_passes_a_targeted_one() -> None:
    op = Operation("leads", "update_one", {"_id": b"x"})
    scoped = Operation("leads", "update_one", {"tenant_id": b"t", "_id": b"x"})
    bulk = Operation("teams", "bulk_write", pipeline=({"UpdateOne": {"_id": b"x"}},))
    either = Operation("blogs", "find", {"$or": [{"tenant_id": b"t"}, {"tenant_id": b"u"}]})
    saved = set(shard_plan.recorded)
    try:
        shard_plan.recorded.clear()
        for one in (op, scoped, bulk, either):
            shard_plan.record(one)
        found = [str(routed) for routed, _ in shard_plan.findings(shard_plan.recorded)]
    finally:
        shard_plan.recorded.clear()
        shard_plan.recorded.update(saved)
    assert found == [
        'leads.update_one {"_id": {"=": "binData"}}',
        'teams.bulk:UpdateOne {"_id": {"=": "binData"}}',
    ]


# --- The keys are valid for MongoDB --------------------------------------------------------


@pytest.mark.parametrize("plan", [p for p in SHARD_PLAN if p.sharded], ids=lambda p: p.collection)
def test_keys_are_ranged_and_ascending(plan: ShardPlan) -> None:
    assert plan.key
    fields = [field for field, _ in plan.key]
    assert len(fields) == len(set(fields))
    # Ranged keys only: a hashed key would scatter every tenant list query (see the module
    # docstring); MongoDB shard keys are ascending.
    assert all(direction == 1 for _, direction in plan.key), plan.key
    assert plan.key != (("_id", 1),), "a bare _id key (UUIDv7) sends every insert to one shard"


@pytest.mark.parametrize("plan", _sharded_existing(), ids=_ids(_sharded_existing()))
def test_shard_key_fields_are_stored_fields(plan: ShardPlan) -> None:
    model = OWNERS[plan.collection]
    assert plan.key
    for field, _ in plan.key:
        assert field == "_id" or field in model.model_fields, (plan.collection, field)


@pytest.mark.parametrize("plan", _sharded_existing(), ids=_ids(_sharded_existing()))
def test_unique_indexes_are_prefixed_by_the_shard_key(plan: ShardPlan) -> None:
    # MongoDB compares field names only (ShardKeyPattern::isUniqueIndexCompatible), and the
    # default _id index is exempt.
    assert plan.key
    key_fields = [field for field, _ in plan.key]
    for index in _indexes(OWNERS[plan.collection]):
        if not index.get("unique"):
            continue
        index_fields = [field for field, _ in _key(index)]
        assert index_fields[: len(key_fields)] == key_fields, (
            f"{plan.collection}: unique index {index['name']} {index_fields} is not prefixed "
            f"by the shard key {key_fields}; MongoDB would refuse to shard the collection"
        )


def _supports(index: dict[str, Any], plan: ShardPlan) -> bool:
    # An index supports a shard key when its key starts with the shard key, same directions,
    # and it is neither partial nor sparse (nor hashed, nor multikey: no shard key field here
    # is an array).
    assert plan.key
    return (
        _key(index)[: len(plan.key)] == list(plan.key)
        and "partialFilterExpression" not in index
        and not index.get("sparse")
    )


@pytest.mark.parametrize("plan", _sharded_existing(), ids=_ids(_sharded_existing()))
def test_supporting_index_is_declared_or_created(plan: ShardPlan) -> None:
    indexes = {index["name"]: index for index in _indexes(OWNERS[plan.collection])}
    supporting = sorted(name for name, index in indexes.items() if _supports(index, plan))
    if plan.supporting_index is None:
        # shard_commands creates one; a declared one would make it redundant (or clash with
        # an index of the same key under another name).
        assert not supporting, (
            f"{plan.collection}: declared index(es) {supporting} support the shard key; "
            f"name one as supporting_index instead of creating {SHARD_KEY_INDEX!r}"
        )
    else:
        assert plan.supporting_index in indexes, (plan.collection, plan.supporting_index)
        assert plan.supporting_index in supporting, (plan.collection, plan.supporting_index)


# --- The commands ----------------------------------------------------------------------------

_ENABLE = re.compile(r'^sh\.enableSharding\(("[^"]+")\)$')
_CREATE = re.compile(
    r'^db\.getSiblingDB\(("[^"]+")\)\.getCollection\(("[^"]+")\)'
    r"\.createIndex\((\{.*\}), (\{.*\})\)$"
)
_SHARD = re.compile(r'^sh\.shardCollection\(("[^"]+"), (\{.*\})\)$')


def test_commands_are_well_formed_and_follow_the_plan() -> None:
    commands = shard_commands("lead_ignite")
    match = _ENABLE.match(commands[0])
    assert match and json.loads(match[1]) == "lead_ignite"
    created: dict[str, dict[str, int]] = {}
    sharded: dict[str, dict[str, int]] = {}
    for command in commands[1:]:
        if match := _CREATE.match(command):
            assert json.loads(match[1]) == "lead_ignite"
            collection = json.loads(match[2])
            assert collection not in sharded, "the index must exist before shardCollection"
            created[collection] = json.loads(match[3])
            assert json.loads(match[4]) == {"name": SHARD_KEY_INDEX}
        elif match := _SHARD.match(command):
            database, _, collection = json.loads(match[1]).partition(".")
            assert database == "lead_ignite"
            assert collection not in sharded
            sharded[collection] = json.loads(match[2])
        else:
            pytest.fail(f"unexpected statement: {command}")
    planned = {p.collection: p.key_document() for p in SHARD_PLAN if p.sharded}
    assert sharded == planned
    # Keys come out in plan order (JSON objects keep insertion order; the order is the key).
    for collection, key in sharded.items():
        assert list(key.items()) == list(PLAN_BY_COLLECTION[collection].key or ())
    needs_index = {p.collection for p in SHARD_PLAN if p.sharded and p.supporting_index is None}
    assert set(created) == needs_index
    assert all(created[c] == sharded[c] for c in created)


def test_commands_quote_the_database_name() -> None:
    assert shard_commands("tenant-db_2")[0] == 'sh.enableSharding("tenant-db_2")'
    for bad in ("", "lead.ignite", 'x"); db.dropDatabase("', "a b", "a/b", "x" * 64):
        with pytest.raises(ValueError, match="not a valid MongoDB database name"):
            shard_commands(bad)


def test_deployment_doc_shows_the_current_commands() -> None:
    doc = (ROOT / "docs" / "deployment.md").read_text(encoding="utf-8")
    missing = [c for c in shard_commands("lead_ignite") if c not in doc]
    assert not missing, (
        "docs/deployment.md is out of date; paste the output of "
        "service.storage.sharding.shard_commands('lead_ignite'). Missing: " + "\n".join(missing)
    )


# --- The image's dependency lock -------------------------------------------------------------


def _requirements(lines: list[str]) -> dict[str, Requirement]:
    reqs = [Requirement(line) for line in lines]
    return {str(canonicalize_name(r.name)): r for r in reqs}


def _requirements_in() -> list[str]:
    text = (ROOT / "deploy" / "requirements.in").read_text(encoding="utf-8")
    return [s for s in (line.split("#", 1)[0].strip() for line in text.splitlines()) if s]


def test_deploy_requirements_in_mirrors_pyproject() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    declared = _requirements(pyproject["project"]["dependencies"])
    mirrored = _requirements(_requirements_in())
    assert {n: str(r) for n, r in mirrored.items()} == {n: str(r) for n, r in declared.items()}, (
        "deploy/requirements.in must list exactly pyproject's [project].dependencies; "
        "then regenerate deploy/requirements.lock with deploy/lock.sh"
    )


def test_deploy_lock_is_hashed_and_satisfies_requirements_in() -> None:
    text = (ROOT / "deploy" / "requirements.lock").read_text(encoding="utf-8")
    # One entry per package: "name==version \" followed by its "--hash=sha256:..." lines.
    entries = re.findall(
        r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+) \\\n((?:    --hash=\S+.*\n)+)", text, re.M
    )
    pins = {str(canonicalize_name(name)): version for name, version, _ in entries}
    assert len(pins) == len(re.findall(r"^[A-Za-z0-9]", text, re.M)), "every pin needs hashes"
    for name, requirement in _requirements(_requirements_in()).items():
        assert name in pins, f"{name} is not in deploy/requirements.lock: regenerate it"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"deploy/requirements.lock pins {name}=={pins[name]}, outside {requirement}"
        )


def test_shards_plan_prints_every_collection_with_its_key() -> None:
    from typer.testing import CliRunner

    from service.cli import app

    result = CliRunner().invoke(app, ["shards", "--plan", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["collection"]: row for row in json.loads(result.stdout)}
    assert set(rows) == set(PLAN_BY_COLLECTION)
    assert rows["events"]["key"] is None and rows["teams"]["key"] == {"tenant_id": 1, "_id": 1}
    assert all(row["why"] for row in rows.values())
