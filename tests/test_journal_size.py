"""A journaled document's size limit is stated and enforced with a clear 422, not a 500."""

from __future__ import annotations

from typing import Any

import pytest

from service.core import journal
from service.core.errors import Unprocessable
from service.core.journal import outbox
from tests.factories import make_lead
from tests.support.helpers import Account, assert_problem


def test_the_limit_leaves_room_under_mongodbs_16_mib() -> None:
    assert journal.JOURNALED_DOCUMENT_MAX_BYTES == 15 * 1024 * 1024
    journal.ensure_fits({"x": "a" * 1024})
    with pytest.raises(Unprocessable, match="limit is 15 MiB"):
        journal.ensure_fits({"x": "a" * journal.JOURNALED_DOCUMENT_MAX_BYTES})


async def test_a_change_that_would_not_fit_with_its_outbox_is_422_and_changes_nothing(
    owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await make_lead(owner, email="big@example.com", notes="a" * 4000)
    url = f"/v1/leads/{created['id']}"
    # The document holds its notes; the outbox of a change holds the old and the new notes:
    # with a small limit the same proportions as a 5 MiB field against the real one.
    monkeypatch.setattr(outbox, "JOURNALED_DOCUMENT_MAX_BYTES", 12_000)
    r = await owner.client.patch(url, json={"notes": "b" * 4000})
    body: dict[str, Any] = assert_problem(r, 422)
    assert "journal entry" in body["detail"] and "limit" in body["detail"]
    monkeypatch.undo()
    after = (await owner.client.get(url)).json()
    assert after["notes"] == "a" * 4000 and after["version"] == 1
    small = await owner.client.patch(url, json={"notes": "c"})
    assert small.status_code == 200, small.text
