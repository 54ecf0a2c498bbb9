"""Factories for the resources tests set up over and over, created through the public API.

Each one posts as the given `Account`, asserts the create succeeded (a setup that fails is
reported at the setup, not as a puzzling failure later) and returns the created body. Tests
whose subject IS the create (validation, status codes, headers) keep their raw calls.
"""

from __future__ import annotations

from typing import Any

from tests.helpers import Account


async def _created(account: Account, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await account.client.post(path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def make_lead(account: Account, **fields: Any) -> dict[str, Any]:
    """A lead created by `account` (generic unless `type` is given); returns its body."""
    return await _created(account, "/v1/leads", {"type": "generic", **fields})


async def make_campaign(account: Account, **fields: Any) -> dict[str, Any]:
    """A campaign created by `account` (a call campaign named "C" by default); returns its body."""
    return await _created(account, "/v1/campaigns", {"type": "call", "name": "C", **fields})


async def make_team(account: Account, **fields: Any) -> dict[str, Any]:
    """A team created by `account` (named "T" by default); returns its body."""
    return await _created(account, "/v1/teams", {"name": "T", **fields})


async def make_api_key(account: Account, **fields: Any) -> dict[str, Any]:
    """An API key created by `account` (named "k" by default); returns its body with the secret."""
    return await _created(account, "/v1/api-keys", {"name": "k", **fields})


async def attach_leads(account: Account, campaign_id: str, *lead_ids: str) -> None:
    """Attach `lead_ids` to the campaign as `account`, asserting the request succeeded."""
    response = await account.client.post(
        f"/v1/campaigns/{campaign_id}/leads", json={"lead_ids": list(lead_ids)}
    )
    assert response.status_code == 200, response.text
