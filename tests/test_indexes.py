"""Start-up only reports a changed index; `indexes --apply` changes it without a gap."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pymongo import IndexModel
from pymongo.errors import NetworkTimeout

from documents import ALL_DOCUMENTS
from service.database import init_models
from service.storage.indexes import apply_changes, compare
from tests.support import real_server
from tests.support.helpers import install_older_claim_indexes
from tests.support.query_plans import IndexSpec, check, make_shape


async def _older_release(database: Any) -> None:
    """A database as start-up leaves it, then the lead claims' indexes of an older release."""
    await init_models(database)
    await install_older_claim_indexes(database)


async def test_start_up_reports_a_changed_index_and_drops_nothing(
    database: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await _older_release(database)
    before = await database["lead_claims"].index_information()
    report = await compare(database, ALL_DOCUMENTS)
    assert report.changed["lead_claims"] == ["old_value_name", "tenant_lead"]
    assert report.undeclared["lead_claims"] == ["operators_own"]
    assert report.missing["lead_claims"] == ["tenant_field_value_unique"]

    with caplog.at_level(logging.WARNING, logger="service.database"):
        again = await init_models(database)  # what every process does at start-up
    assert not again.clean
    assert "lead_claims.tenant_lead" in again.summary()
    assert any("indexes --apply" in r.getMessage() for r in caplog.records)
    after = await database["lead_claims"].index_information()
    # Nothing dropped or rebuilt: the old definitions still serve; the renamed one's new
    # declaration was built beside it (MongoDB holds both: their partial filters differ).
    for name in ("tenant_lead", "old_value_name", "operators_own"):
        assert after[name] == before[name]
    assert after["tenant_lead"]["unique"] is True


async def test_ready_says_which_indexes_differ(database: Any, settings: Any) -> None:
    import httpx

    from service.main import create_app

    await _older_release(database)
    app = create_app(settings=settings, database=database)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            body = (await client.get("/ready")).json()
    assert body["status"] == "ready"
    assert "lead_claims.tenant_lead" in body["indexes"]
    assert "indexes --apply" in body["indexes"]


# The queries the changed indexes serve: a claim by field and value, a lead's claims.
SHAPES = [
    make_shape("lead_claims", "find", {"tenant_id": b"t", "field": "email", "value": "a@b.c"}, []),
    make_shape("lead_claims", "find", {"tenant_id": b"t", "lead_id": b"l"}, []),
]


async def _serving(database: Any) -> list[str | None]:
    """Why each query is not served by a visible index (None: served)."""
    info = await database["lead_claims"].index_information()
    visible = [IndexSpec.from_info(n, i) for n, i in info.items() if not i.get("hidden")]
    return [check(shape, visible) for shape in SHAPES]


async def test_apply_never_leaves_a_query_without_a_serving_index(database: Any) -> None:
    await _older_release(database)
    assert await _serving(database) == [None, None]
    seen: list[str] = []

    async def step(collection: str, what: str) -> None:  # noqa: ARG001  (the step callback's signature)
        seen.append(what)
        assert await _serving(database) == [None, None], f"after {what}"

    await apply_changes(database, ALL_DOCUMENTS, step=step)
    # Built beside, then hidden, then dropped, for each changed index.
    for old, beside in (
        ("old_value_name", "built tenant_field_value_unique"),
        ("tenant_lead", "built tenant_lead__next"),
    ):
        hid = seen.index(f"hid {old}")
        assert any(s.startswith(beside) for s in seen[:hid]) and f"dropped {old}" in seen[hid:]
    info = await database["lead_claims"].index_information()
    assert "unique" not in info["tenant_lead"]
    assert "old_value_name" not in info and "tenant_lead__next" not in info
    assert info["tenant_field_value_unique"]["unique"] is True
    assert "operators_own" in info  # undeclared: never dropped
    assert (await compare(database, ALL_DOCUMENTS)).clean
    # On the embedded backend, exactly (a server may refuse to hold the renamed index beside
    # the old one: then it is bridged too).
    if real_server.url() is None:
        # The renamed index: its declaration built beside it, then the old one hidden and dropped.
        # The one changed under its name: a bridge first, then the declaration, then no bridge.
        assert seen == [
            "built tenant_field_value_unique",
            "hid old_value_name",
            "dropped old_value_name",
            "built tenant_lead__next",
            "hid tenant_lead",
            "dropped tenant_lead",
            "built tenant_lead",
            "dropped tenant_lead__next",
        ]


async def test_a_hidden_index_is_not_used_but_still_guards_uniqueness(database: Any) -> None:
    await init_models(database)
    leads = database["leads"]
    await leads.create_indexes([IndexModel([("probe", 1)], name="probe_unique", unique=True)])
    await leads.insert_one({"_id": 1, "probe": "x"})
    await database.command({"collMod": "leads", "index": {"name": "probe_unique", "hidden": True}})
    assert (await leads.index_information())["probe_unique"]["hidden"] is True
    with pytest.raises(Exception, match="duplicate key"):
        await leads.insert_one({"_id": 2, "probe": "x"})


async def test_a_build_outlasting_its_budget_does_not_fail_start_up(
    database: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # A large collection's new index: the server keeps building it after the client's round
    # trip times out. Start-up must go on (no crash loop) and say so.
    await init_models(database)
    await database["leads"].drop_index("tenant_location")
    collection_type = type(database["leads"])
    real = collection_type.create_indexes

    async def slow(self: Any, indexes: Any, *args: Any, **kwargs: Any) -> Any:
        if self.name == "leads":
            raise NetworkTimeout("timed out")
        return await real(self, indexes, *args, **kwargs)

    monkeypatch.setattr(collection_type, "create_indexes", slow)
    with caplog.at_level(logging.WARNING, logger="service.storage.indexes"):
        await init_models(database)
    assert any("outlasted its budget" in r.getMessage() for r in caplog.records)
