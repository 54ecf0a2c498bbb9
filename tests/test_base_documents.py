"""Shared field types of documents/base.py and the journal document."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from bson import Binary
from pydantic import BaseModel, ValidationError

from documents.base import Email, Phone, UTCDateTime, normalize_phone
from documents.journal import DomainEvent, FieldChange
from tests.support.helpers import Account, stored_form


class Sample(BaseModel):
    email: Email | None = None
    phone: Phone | None = None
    at: UTCDateTime | None = None


def test_email_is_trimmed_and_lower_cased() -> None:
    assert Sample(email="  Ana.Lopez@Example.COM ").email == "ana.lopez@example.com"


@pytest.mark.parametrize("bad", ["not-an-email", "a@", "@b.com", "a b@c.com"])
def test_bad_email_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        Sample(email=bad)


def test_phone_without_country_code_is_read_as_us_and_stored_e164() -> None:
    assert Sample(phone="(415) 555-0123").phone == "+14155550123"
    assert normalize_phone("020 7946 0018", "GB") == "+442079460018"


@pytest.mark.parametrize("bad", ["12", "not a phone", "+1 555"])
def test_impossible_phone_is_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        Sample(phone=bad)


def test_naive_datetimes_are_read_as_utc_and_offsets_converted() -> None:
    assert Sample(at=datetime(2026, 1, 1, 12)).at == datetime(2026, 1, 1, 12, tzinfo=UTC)
    plus2 = datetime(2026, 1, 1, 14, tzinfo=timezone(timedelta(hours=2)))
    assert Sample(at=plus2).at == datetime(2026, 1, 1, 12, tzinfo=UTC)
    assert Sample(at=plus2).at.tzinfo == UTC  # type: ignore[union-attr]


async def test_domain_event_round_trips_through_bson(owner: Account, database: Any) -> None:
    event = DomainEvent(
        tenant_id=owner.tenant_id,
        aggregate_type="campaign",
        aggregate_id=owner.id,
        version=3,
        event_type="campaign.updated",
        actor_id=owner.id,
        changes=[FieldChange(field="name", old="a", new="b")],
    )
    await event.insert()
    raw = await stored_form(database["domain_events"]).find_one({"_id": Binary.from_uuid(event.id)})
    assert raw["aggregate_id"] == Binary.from_uuid(owner.id)  # a BSON UUID, not a string
    assert isinstance(raw["occurred_at"], datetime)
    loaded = await DomainEvent.get(event.id)
    assert loaded == event


async def test_journal_rejects_a_second_event_for_the_same_version(owner: Account) -> None:
    from pymongo.errors import DuplicateKeyError

    common: dict[str, Any] = {
        "tenant_id": owner.tenant_id,
        "aggregate_type": "campaign",
        "aggregate_id": owner.id,
        "version": 2,
        "event_type": "campaign.updated",
    }
    await DomainEvent(**common).insert()
    with pytest.raises(DuplicateKeyError):
        await DomainEvent(**common).insert()
