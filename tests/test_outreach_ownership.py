"""Lead ownership: `assignee_id` (creator by default), validation, bulk reassign, "my leads"."""

from __future__ import annotations

from uuid import uuid4

from documents.user import User
from service.core.repository import Repository
from tests.factories import make_lead
from tests.support.helpers import Account, assert_problem


async def test_patch_assignee_validated(owner: Account, member: Account, stranger: Account) -> None:
    lead = await make_lead(owner, email="a@example.com")
    assert lead["assignee_id"] == str(owner.id)
    url = f"/v1/leads/{lead['id']}"
    moved = await owner.client.patch(url, json={"assignee_id": str(member.id)})
    assert moved.status_code == 200 and moved.json()["assignee_id"] == str(member.id)
    for bad in (str(stranger.id), str(uuid4())):  # another tenant's user, nobody
        assert_problem(await owner.client.patch(url, json={"assignee_id": bad}), 422)
    assert_problem(await owner.client.patch(url, json={"assignee_id": None}), 422)
    await owner.client.patch(url, json={"assignee_id": str(owner.id)})
    await Repository(User, owner.ctx).update(member.user, {"is_active": False})
    assert_problem(await owner.client.patch(url, json={"assignee_id": str(member.id)}), 422)


async def test_bulk_assign_and_my_leads(owner: Account, member: Account, stranger: Account) -> None:
    leads = [await make_lead(owner, email=f"l{i}@example.com") for i in range(3)]
    foreign = await make_lead(stranger, email="f@example.com")
    body = {
        "lead_ids": [leads[0]["id"], leads[1]["id"], foreign["id"], leads[0]["id"]],
        "assignee_id": str(member.id),
    }
    response = await owner.client.post("/v1/leads/assign", json=body)
    assert response.status_code == 200, response.text
    assert response.json() == {"updated": 2}
    again = await owner.client.post("/v1/leads/assign", json=body)
    assert again.json() == {"updated": 0}
    mine = await member.client.get("/v1/leads", params={"assignee_id": "me"})
    assert [lead["id"] for lead in mine.json()["items"]] == [leads[1]["id"], leads[0]["id"]]
    by_id = await owner.client.get(
        "/v1/leads", params={"assignee_id": str(owner.id), "sort": "-updated_at", "count": "true"}
    )
    assert [lead["id"] for lead in by_id.json()["items"]] == [leads[2]["id"]]
    assert by_id.json()["total"] == 1
    assert (await stranger.client.get(f"/v1/leads/{foreign['id']}")).json()["assignee_id"] == str(
        stranger.id
    )
    bad = {"lead_ids": [leads[0]["id"]], "assignee_id": str(stranger.id)}
    assert_problem(await owner.client.post("/v1/leads/assign", json=bad), 422)
    assert_problem(
        await owner.client.post(
            "/v1/leads/assign", json={"lead_ids": [], "assignee_id": str(owner.id)}
        ),
        422,
    )
    assert_problem(await owner.client.get("/v1/leads", params={"assignee_id": "you"}), 422)


async def test_viewer_cannot_assign(owner: Account, viewer: Account) -> None:
    lead = await make_lead(owner, email="v@example.com")
    body = {"lead_ids": [lead["id"]], "assignee_id": str(viewer.id)}
    assert_problem(await viewer.client.post("/v1/leads/assign", json=body), 403)
