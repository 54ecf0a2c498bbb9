"""What only a real MongoDB server can show (TEST_MONGODB_URL; skipped on the embedded backend).

- Query plans: for each listed access path, the query the service really sends (recorded from
  the driver's command events during the HTTP request) is given to `explain`, and the winning
  plan must be an index scan on the declared index: no COLLSCAN, no blocking SORT stage, no
  `$lookup` that scans the joined collection.
- Majority: the service's database object writes with `w: "majority"` and reads with read
  concern majority; the commands on the wire carry them; an acknowledged write is visible to a
  majority read.
- The 16 MiB limit: a document over 16 MiB is refused (insert by the driver, with the server's
  limit; update and aggregation rows by the server), nothing is half-stored, and the API answers
  problem+json. The embedded backend's own tests (tests/test_embedded.py) mirror these.
- Each test's database is fresh, and dropped after it (tests/support/real_server.py).

Not run on our machines (no MongoDB there): see README, "Tests on a real MongoDB".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import httpx
import pytest
from pymongo import monitoring
from pymongo.errors import DocumentTooLarge, OperationFailure
from pymongo.read_concern import ReadConcern

from documents.journal import DomainEvent
from documents.lead import GenericLead, LeadBase
from service.core.repository import Repository
from service.core.settings import Settings
from tests.support import real_server
from tests.support.helpers import Account, assert_problem
from tests.support.query_plans import plan_problems, winning_stages

pytestmark = pytest.mark.real_mongodb

MAX_BSON = 16 * 1024 * 1024
MIB = 1024 * 1024


# -- recording the commands the service sends --------------------------------------------------


class _Recorder(monitoring.CommandListener):
    """Keeps the commands sent to one database while a test records (driver command events)."""

    def __init__(self) -> None:
        self.database: str | None = None
        self.commands: list[monitoring.CommandStartedEvent] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.database_name == self.database:
            self.commands.append(event)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


RECORDER = _Recorder()
if real_server.url() is not None:
    # Global listeners join every client built afterwards: the fixtures build theirs per test.
    monitoring.register(RECORDER)


@contextmanager
def recording(database: Any) -> Iterator[list[monitoring.CommandStartedEvent]]:
    """The commands sent to `database` (by the request and by background work) meanwhile."""
    RECORDER.database, RECORDER.commands = database.name, []
    try:
        yield RECORDER.commands
    finally:
        RECORDER.database = None


def query_of(event: monitoring.CommandStartedEvent) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(collection, filter, sort) of a find, or of an aggregate's leading $match and $sort."""
    command = event.command
    if event.command_name == "find":
        return command["find"], dict(command.get("filter") or {}), dict(command.get("sort") or {})
    stages = list(command.get("pipeline") or [])
    match = dict(stages[0].get("$match", {})) if stages else {}
    sort = dict(stages[1].get("$sort", {})) if len(stages) > 1 and match else {}
    return command["aggregate"], match, sort


def fields_of(flt: Any) -> set[str]:
    """Every field a filter names, inside `$and`/`$or` too."""
    out: set[str] = set()
    if isinstance(flt, Mapping):
        for key, value in flt.items():
            if key in ("$and", "$or", "$nor"):
                for branch in value:
                    out |= fields_of(branch)
            elif not key.startswith("$"):
                out.add(key)
    return out


# -- explain ----------------------------------------------------------------------------------

# Session, cluster and concern fields the driver adds; `explain` takes the bare command.
_DRIVER_FIELDS = {"lsid", "txnNumber", "readConcern", "writeConcern", "maxTimeMS", "apiVersion"}


async def explain(database: Any, event: monitoring.CommandStartedEvent) -> dict[str, Any]:
    """The server's `explain` (queryPlanner) of a recorded find or aggregate."""
    inner = {
        k: v for k, v in event.command.items() if not k.startswith("$") and k not in _DRIVER_FIELDS
    }
    result: dict[str, Any] = await database.command({"explain": inner, "verbosity": "queryPlanner"})
    return result


# -- the access paths -------------------------------------------------------------------------


@dataclass
class World:
    """A tenant with enough data that a wrong index would scan visibly more than the right one.

    Each path's own rows are the ones a wrong index reaches last: the other tenant's journal
    comes first in `seq` order, the lead's and the campaign's events are the oldest (lists run
    newest first), and the campaign's members have the lowest lead ids (members run by lead id,
    descending) while another campaign holds the newest leads.
    """

    campaign: str  # three events, the lead and ten old leads as members
    lead: str  # three events, one update


async def build_world(owner: Account, stranger: Account) -> World:
    """Seed `owner`'s tenant (and some of `stranger`'s) through the API."""

    async def ok(account: Account, method: str, path: str, **kwargs: Any) -> Any:
        r = await account.client.request(method, path, **kwargs)
        assert r.status_code < 300, (path, r.text)
        return r.json()

    def rows(n: int) -> list[dict[str, Any]]:
        return [
            {"type": "generic", "email": f"l{i}@example.com", "last_name": f"N{i}"}
            for i in range(n)
        ]

    await ok(stranger, "POST", "/v1/leads/bulk", json={"leads": rows(50)})
    await ok(owner, "POST", "/v1/leads/bulk", json={"leads": rows(200)})
    campaigns = []
    for i in range(3):
        for account in (owner, stranger):
            body = {"type": "call", "name": f"C{i}"}
            made = await ok(account, "POST", "/v1/campaigns", json=body)
            if account is owner:
                campaigns.append(made["id"])
    newest = [
        x["id"] for x in (await ok(owner, "GET", "/v1/leads", params={"limit": 100}))["items"]
    ]
    campaign, busy, lead = campaigns[0], campaigns[1], newest[-1]
    await ok(owner, "POST", f"/v1/campaigns/{campaign}/leads", json={"lead_ids": newest[-11:]})
    await ok(owner, "POST", f"/v1/campaigns/{busy}/leads", json={"lead_ids": newest[:60]})
    call = {"type": "call", "outcome": "answered"}
    for _ in range(3):
        event = {**call, "campaign_id": campaign, "lead_id": lead}
        await ok(owner, "POST", "/v1/events", json=event)
    for i in range(24):
        event = {**call, "campaign_id": busy, "lead_id": newest[i % 7]}
        await ok(owner, "POST", "/v1/events", json=event)
    await ok(owner, "PATCH", f"/v1/leads/{lead}", json={"first_name": "Ada"})
    return World(campaign=campaign, lead=lead)


@dataclass
class AccessPath:
    """A request, which of the commands it sends is the path's query, and the index to serve it."""

    name: str
    request: Callable[[World], tuple[str, str, dict[str, Any]]]  # method, path, httpx kwargs
    collection: str
    pick: Callable[[dict[str, Any], dict[str, Any]], bool]  # (filter, sort) -> is this query
    indexes: frozenset[str]  # the winning plan uses one of these...
    all_of: bool = False  # ...or, for an `$or`, all of them (one per branch)


def _live(flt: dict[str, Any]) -> bool:
    return flt.get("is_deleted") is False


PATHS = [
    AccessPath(
        "lead list (tenant, live, newest first)",
        lambda w: ("GET", "/v1/leads", {"params": {"limit": 20}}),
        "leads",
        lambda f, s: _live(f) and list(s.items()) == [("_id", -1)],
        frozenset({"tenant_list"}),
    ),
    AccessPath(
        "lead list with include_deleted",
        lambda w: ("GET", "/v1/leads", {"params": {"limit": 20, "include_deleted": "true"}}),
        "leads",
        lambda f, s: isinstance(f.get("is_deleted"), Mapping) and list(s) == ["_id"],
        frozenset({"tenant_list"}),
    ),
    AccessPath(
        "lead list sorted by last_name",
        lambda w: ("GET", "/v1/leads", {"params": {"limit": 20, "sort": "last_name"}}),
        "leads",
        lambda f, s: list(s) == ["last_name", "_id"],
        frozenset({"tenant_by_last_name"}),
    ),
    # (A create no longer reads leads to dedupe: it inserts its claims, service/leads/claims.py.)
    AccessPath(
        "campaign list",
        lambda w: ("GET", "/v1/campaigns", {"params": {"limit": 20}}),
        "campaigns",
        lambda f, s: _live(f) and list(s.items()) == [("_id", -1)],
        frozenset({"tenant_list"}),
    ),
    AccessPath(
        "events of a campaign",
        lambda w: ("GET", "/v1/events", {"params": {"campaign_id": w.campaign}}),
        "events",
        lambda f, s: "campaign_id" in f and "occurred_at" in s,
        frozenset({"tenant_campaign_time"}),
    ),
    AccessPath(
        "events of a lead (timeline)",
        lambda w: ("GET", f"/v1/leads/{w.lead}/events", {}),
        "events",
        lambda f, s: "lead_id" in f and "occurred_at" in s,
        frozenset({"tenant_lead_timeline"}),
    ),
    AccessPath(
        "events in a time range",
        lambda w: (
            "GET",
            "/v1/events",
            {"params": {"since": "2024-01-01", "until": "2099-01-01", "limit": 5}},
        ),
        "events",
        lambda f, s: "occurred_at" in f and "campaign_id" not in f and "lead_id" not in f,
        frozenset({"tenant_by_occurred_at"}),
    ),
    AccessPath(
        "journal history of one resource",
        lambda w: ("GET", f"/v1/leads/{w.lead}/history", {}),
        "domain_events",
        lambda f, s: "aggregate_id" in f and "version" in s,
        frozenset({"aggregate_version"}),
    ),
    AccessPath(
        "change feed (tenant, seq)",
        lambda w: ("GET", "/v1/changes", {"params": {"limit": 5}}),
        "domain_events",
        lambda f, s: "tenant_id" in f and "seq" in s,
        frozenset({"tenant_seq"}),
    ),
    AccessPath(
        "audit log",
        lambda w: ("GET", "/v1/audit", {"params": {"limit": 5}}),
        "domain_events",
        lambda f, s: "tenant_id" in f and "occurred_at" in s,
        frozenset({"tenant_time"}),
    ),
    AccessPath(
        "campaign_leads of a campaign",
        lambda w: ("GET", f"/v1/campaigns/{w.campaign}/leads", {"params": {"limit": 5}}),
        "campaign_leads",
        lambda f, s: "campaign_id" in f and list(s) == ["lead_id"],
        frozenset({"campaign_lead_unique"}),
    ),
]


@pytest.mark.parametrize("path", PATHS, ids=[p.name for p in PATHS])
async def test_explain_shows_an_index_scan_on_the_declared_index(
    owner: Account, stranger: Account, database: Any, path: AccessPath
) -> None:
    world = await build_world(owner, stranger)
    method, url, kwargs = path.request(world)
    with recording(database) as commands:
        response = await owner.client.request(method, url, **kwargs)
    assert response.status_code < 300, response.text
    ours = []
    for event in commands:
        if event.command_name not in ("find", "aggregate"):
            continue
        collection, flt, sort = query_of(event)
        if collection == path.collection and path.pick(flt, sort):
            ours.append(event)
    assert ours, f"the request sent no {path.collection} query of this path"
    for event in ours:
        stages = winning_stages(await explain(database, event))
        assert stages, "explain returned no winning plan"
        problems = plan_problems(stages)
        used = {s["indexName"] for s in stages if "indexName" in s}
        if path.all_of:
            if not path.indexes <= used:
                problems.append(f"uses {sorted(used)}, not all of {sorted(path.indexes)}")
        elif not used & path.indexes:
            problems.append(f"uses {sorted(used)}, not {sorted(path.indexes)}")
        plan = [(s["stage"], s.get("indexName")) for s in stages]
        assert not problems, f"{query_of(event)}: {problems}; winning plan {plan}"


# -- majority writes and reads ----------------------------------------------------------------


async def test_writes_are_majority_acknowledged_and_visible_to_majority_reads(
    app: Any, owner: Account, database: Any
) -> None:
    hello = await database.command("hello")
    assert hello.get("setName"), "majority needs a replica set: run the server with --replSet"
    configured = app.state.database.db  # what the service uses (connect() built it)
    assert configured is database and app.state.database.kind == "mongodb"
    assert configured.write_concern.document == {"w": "majority"}
    assert configured.read_concern.level == "majority"
    # Every collection the service writes inherits them.
    for model in (LeadBase, DomainEvent):
        collection = model.get_pymongo_collection()
        assert collection.write_concern.document == {"w": "majority"}
        assert collection.read_concern.level == "majority"

    with recording(database) as commands:
        r = await owner.client.post("/v1/leads", json={"type": "generic", "email": "m@example.com"})
        assert r.status_code == 201, r.text
        got = await owner.client.get("/v1/leads", params={"limit": 5})
        assert got.status_code == 200
    inserts = [e for e in commands if e.command_name == "insert" and e.command["insert"] == "leads"]
    assert inserts and all(e.command["writeConcern"]["w"] == "majority" for e in inserts)
    finds = [e for e in commands if e.command_name == "find" and e.command["find"] == "leads"]
    assert finds and all(e.command["readConcern"]["level"] == "majority" for e in finds)

    majority = database["leads"].with_options(read_concern=ReadConcern("majority"))
    stored = await majority.find_one({"_id": UUID(r.json()["id"])})
    assert stored is not None and stored["email"] == "m@example.com"


async def test_health_reports_mongodb(client: httpx.AsyncClient) -> None:
    r = await client.get("/health")
    assert r.status_code == 200 and r.json()["database"] == "mongodb"


# -- the 16 MiB document limit ----------------------------------------------------------------


async def test_the_server_announces_16_mib(database: Any) -> None:
    hello = await database.command("hello")
    assert hello["maxBsonObjectSize"] == MAX_BSON


@pytest.mark.usefixtures("app")
async def test_a_document_over_16_mib_is_refused_and_nothing_is_stored(owner: Account) -> None:
    lead = GenericLead(tenant_id=owner.tenant_id, email="big@example.com")
    lead.__dict__["last_name"] = "x" * (MAX_BSON + MIB)  # past every validator, as a bug would
    with pytest.raises(DocumentTooLarge) as caught:
        await Repository(LeadBase, owner.ctx).create(lead)
    assert str(MAX_BSON) in str(caught.value)  # the limit the connected server announced
    assert await LeadBase.get_pymongo_collection().count_documents({"_id": lead.id}) == 0
    journal = DomainEvent.get_pymongo_collection()
    assert await journal.count_documents({"aggregate_id": lead.id}) == 0


async def test_an_update_past_16_mib_is_refused_by_the_server(database: Any) -> None:
    limits = database["limits"]  # on the client connect() built (no validator on this one)
    await limits.insert_one({"_id": 1, "a": "x" * (9 * MIB)})
    with pytest.raises(OperationFailure) as caught:
        await limits.update_one({"_id": 1}, {"$set": {"b": "y" * (9 * MIB)}})
    assert caught.value.code in (17419, 10334), caught.value.details  # "... larger than 16 MiB"
    assert "b" not in (await limits.find_one({"_id": 1}))


async def test_aggregation_rows_over_16_mib_fail_and_unwound_lookups_do_not(database: Any) -> None:
    # As tests/test_embedded.py claims for the embedded backend: MongoDB checks each row.
    await database["big"].insert_many([{"k": 1, "blob": "x" * MIB} for _ in range(17)])
    await database["small"].insert_one({"k": 1})
    lookup = {"$lookup": {"from": "big", "localField": "k", "foreignField": "k", "as": "all"}}
    with pytest.raises(OperationFailure):
        await (await database["small"].aggregate([lookup])).to_list()
    unwound = [lookup, {"$unwind": "$all"}, {"$count": "n"}]
    assert await (await database["small"].aggregate(unwound)).to_list() == [{"n": 17}]
    pushed = [{"$group": {"_id": None, "all": {"$push": "$blob"}}}]
    with pytest.raises(OperationFailure):
        await (await database["big"].aggregate(pushed)).to_list()


async def test_the_api_answers_problem_json_when_a_document_is_too_large(
    owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The API's edge bounds every field, so no request builds such a document; a bug that did
    # must still get problem+json and store nothing.
    stamp = Repository._stamp_new

    def bloated(self: Repository[Any], doc: Any) -> Any:
        event = stamp(self, doc)
        doc.__dict__["last_name"] = "x" * (MAX_BSON + MIB)
        return event

    monkeypatch.setattr(Repository, "_stamp_new", bloated)
    r = await owner.client.post("/v1/leads", json={"type": "generic", "email": "big@example.com"})
    body = assert_problem(r, 500)
    assert "x" * 100 not in body["detail"]
    monkeypatch.undo()
    assert (await owner.client.get("/v1/leads")).json()["items"] == []


# -- the fixture ------------------------------------------------------------------------------


async def test_each_test_gets_a_fresh_database_that_is_dropped_after(
    database: Any, settings: Settings, worker_id: str
) -> None:
    assert re.fullmatch(rf"test_[0-9a-f]{{6}}_{re.escape(worker_id)}_\d+", database.name)
    assert await database.list_collection_names() == []
    client = database.client
    # The fixture's own mechanism: a leftover of the same name is emptied, and dropped after.
    name = f"{database.name}_probe"
    await client[name]["leftover"].insert_one({"stale": True})
    async with real_server.fresh_database(settings, name) as fresh:
        assert fresh.name == name and fresh.name != database.name
        assert await fresh.list_collection_names() == []
        await fresh["probe"].insert_one({"n": 1})
        assert name in await client.list_database_names()
    assert name not in await client.list_database_names()
