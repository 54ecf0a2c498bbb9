"""Start-up reconciles changed index definitions instead of crash-looping on them."""

from __future__ import annotations

from typing import Any

from pymongo import IndexModel

from documents import ALL_DOCUMENTS
from service.database import init_models
from service.indexes import reconcile


async def test_a_changed_index_is_rebuilt_and_an_undeclared_one_kept(database: Any) -> None:
    leads = database["leads"]
    # An older release's definitions: the same name without the partial filter, the same keys
    # under another name, and an operator's own index.
    await leads.create_indexes(
        [
            IndexModel([("tenant_id", 1), ("email", 1)], name="tenant_email_unique"),
            IndexModel([("tenant_id", 1), ("phone", 1)], name="old_phone_name", unique=True),
            IndexModel([("source", 1)], name="operators_own"),
        ]
    )
    report = await reconcile(database, ALL_DOCUMENTS, apply=False)
    assert sorted(report.rebuilt["leads"]) == ["old_phone_name", "tenant_email_unique"]
    assert report.undeclared["leads"] == ["operators_own"]
    assert "tenant_phone_unique" in report.missing["leads"]

    await init_models(database)  # what the lifespan does: no crash, the declared ones built
    info = await leads.index_information()
    assert info["tenant_email_unique"]["partialFilterExpression"]["is_deleted"] is False
    assert "old_phone_name" not in info and "tenant_phone_unique" in info
    assert "operators_own" in info
    assert (await reconcile(database, ALL_DOCUMENTS, apply=False)).clean
