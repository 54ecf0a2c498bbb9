"""The shared repository: tenant scoping, versioned writes, the journal and its crash repair."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

import pytest
from bson import Binary

from documents import AGGREGATE_ROOTS
from documents.journal import DomainEvent
from documents.tenant import Tenant
from service import journal
from service.errors import Conflict, NotFound, PreconditionFailed
from service.repository import Repository
from tests.conftest import Account


async def events_of(aggregate_id: Any) -> list[DomainEvent]:
    return (
        await DomainEvent.find({"aggregate_id": Binary.from_uuid(aggregate_id)})
        .sort("version")
        .to_list()
    )


async def test_create_update_journal_one_event_per_version(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="Acme"))
    assert tenant.version == 1
    tenant = await repo.update(tenant, {"name": "Acme Realty"})
    assert tenant.version == 2
    events = await events_of(tenant.id)
    assert [(e.version, e.event_type) for e in events] == [
        (1, "tenant.created"),
        (2, "tenant.updated"),
    ]
    assert events[1].actor_id == owner.id
    assert [(c.field, c.old, c.new) for c in events[1].changes] == [("name", "Acme", "Acme Realty")]
    stored = await Tenant.get(tenant.id)
    assert stored is not None and stored.version == 2 and stored.pending_event is None


async def test_no_change_means_no_new_version(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="Acme"))
    same = await repo.update(tenant, {"name": "Acme"})
    assert same.version == 1
    assert len(await events_of(tenant.id)) == 1


async def test_stale_expected_version_is_412_and_changes_nothing(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="Acme"))
    with pytest.raises(PreconditionFailed):
        await repo.update(tenant, {"name": "B"}, expected_version=7)
    assert (await Tenant.get(tenant.id)).name == "Acme"  # type: ignore[union-attr]


async def test_concurrent_writer_of_same_version_loses(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="Acme"))
    await repo.update(tenant, {"name": "first"})
    with pytest.raises(Conflict):
        await repo.update(tenant, {"name": "second"})  # still holds version 1
    events = await events_of(tenant.id)
    assert [e.version for e in events] == [1, 2]
    assert (await Tenant.get(tenant.id)).name == "first"  # type: ignore[union-attr]


async def test_other_tenant_cannot_see_or_change(owner: Account, stranger: Account) -> None:
    tenant = await Repository(Tenant, owner.ctx).create(Tenant(tenant_id=owner.tenant_id, name="A"))
    with pytest.raises(NotFound):
        await Repository(Tenant, stranger.ctx).get(tenant.id)


async def test_soft_delete_hides_and_restore_brings_back(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="A"))
    await repo.soft_delete(tenant)
    with pytest.raises(NotFound):
        await repo.get(tenant.id)
    deleted = await repo.get(tenant.id, include_deleted=True)
    restored = await repo.restore(deleted)
    assert not restored.is_deleted and restored.version == 3
    assert (await repo.restore(restored)).version == 3  # restoring a live one changes nothing


async def test_crash_between_state_and_journal_is_repaired(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="A"))

    async def crash(*_: Any, **__: Any) -> None:
        raise RuntimeError("process died")

    with patch.object(journal, "flush_pending", crash), pytest.raises(RuntimeError):
        await repo.update(tenant, {"name": "B"})
    stored = await Tenant.get(tenant.id)
    assert stored is not None and stored.version == 2 and stored.pending_event is not None
    assert [e.version for e in await events_of(tenant.id)] == [1]  # the journal lags

    assert await journal.repair_journal(AGGREGATE_ROOTS) == 1
    events = await events_of(tenant.id)
    assert [e.version for e in events] == [1, 2]
    assert events[1].changes[0].new == "B"
    assert (await Tenant.get(tenant.id)).pending_event is None  # type: ignore[union-attr]
    assert await journal.repair_journal(AGGREGATE_ROOTS) == 0


async def test_next_write_flushes_a_crashed_outbox_first(owner: Account) -> None:
    repo = Repository(Tenant, owner.ctx)
    tenant = await repo.create(Tenant(tenant_id=owner.tenant_id, name="A"))
    real_flush = journal.flush_pending
    calls = 0

    async def crash_once(*args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("process died")
        await real_flush(*args, **kwargs)

    with patch.object(journal, "flush_pending", crash_once), pytest.raises(RuntimeError):
        await repo.update(tenant, {"name": "B"})
    current = await repo.get(tenant.id)
    await repo.update(current, {"name": "C"})
    assert [e.version for e in await events_of(tenant.id)] == [1, 2, 3]


async def test_secrets_are_redacted_in_the_journal(owner: Account) -> None:
    events = await events_of(owner.id)
    created = events[0]
    pw = [c for c in created.changes if c.field == "password_hash"]
    assert pw and pw[0].new == journal.REDACTED
