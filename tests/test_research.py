"""Research topics: create/list/get/patch, results (bounded), stats read model, tenancy."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch
from uuid import UUID

from bson import Binary

from documents.workspace_read_models import GlobalResearchStats
from tests.support.helpers import Account, assert_problem

RESULT = {
    "keywords": ["Condos Miami", "miami condos for sale"],
    "search_volume": 1200,
    "sources": ["https://example.com/a"],
    "summary": "Strong demand.",
}


async def make_topic(account: Account, **body: Any) -> dict[str, Any]:
    response = await account.client.post("/v1/research/topics", json={"topic": "Condos", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_and_list_topics(owner: Account, stranger: Account) -> None:
    response = await owner.client.post(
        "/v1/research/topics",
        json={
            "topic": "Miami condos",
            "market": "Miami",
            "tags": ["Condo"],
            "results": [RESULT],
            "tenant_id": str(stranger.tenant_id),
        },
    )
    assert response.status_code == 201, response.text
    topic = response.json()
    assert topic["tenant_id"] == str(owner.tenant_id) and topic["user_id"] == str(owner.id)
    assert topic["results"][0]["keywords"] == ["condos miami", "miami condos for sale"]
    assert topic["results"][0]["search_volume"] == 1200 and topic["results"][0]["id"]
    assert response.headers["ETag"] == '"1"'
    second = await make_topic(owner, topic="Lofts")

    listed = (await owner.client.get("/v1/research/topics")).json()
    assert [t["id"] for t in listed["items"]] == [second["id"], topic["id"]]
    assert listed["next_cursor"] is None
    by_tag = (await owner.client.get("/v1/research/topics", params={"tag": "condo"})).json()
    assert [t["id"] for t in by_tag["items"]] == [topic["id"]]
    page = (await owner.client.get("/v1/research/topics", params={"limit": 1})).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    assert (await stranger.client.get("/v1/research/topics")).json()["items"] == []


async def test_validation_failures(owner: Account) -> None:
    bad = [
        {},
        {"topic": ""},
        {"topic": "t", "results": [{"search_volume": -1}]},
        {"topic": "t", "results": [{"sources": ["javascript:alert(1)"]}]},
        {"topic": "t", "results": [{"keywords": ["k"] * 101}]},
        {"topic": "t", "results": [{"competition": 2}]},
        {"topic": "t", "stars": 5},
    ]
    for body in bad:
        assert_problem(await owner.client.post("/v1/research/topics", json=body), 422)
    assert_problem(await owner.client.get("/v1/research/topics/not-a-uuid"), 422)


async def test_add_results_patch_and_cap(owner: Account) -> None:
    topic = await make_topic(owner)
    url = f"/v1/research/topics/{topic['id']}"
    response = await owner.client.post(f"{url}/results", json=RESULT)
    assert response.status_code == 201, response.text
    assert len(response.json()["results"]) == 1 and response.headers["ETag"] == '"2"'
    patched = await owner.client.patch(url, json={"description": "Why", "market": None})
    assert patched.status_code == 200 and patched.json()["description"] == "Why"
    assert_problem(await owner.client.patch(url, json={"topic": None}), 422)
    assert_problem(await owner.client.patch(url, json={"results": []}), 422)
    assert_problem(
        await owner.client.patch(url, json={"topic": "x"}, headers={"If-Match": '"1"'}), 412
    )
    with patch("service.research.MAX_RESULTS_PER_TOPIC", 1):
        assert_problem(await owner.client.post(f"{url}/results", json=RESULT), 409)
    history = (await owner.client.get(f"{url}/history")).json()["items"]
    assert [h["event_type"] for h in history] == [
        "research_topic.created",
        "research_topic.result_added",
        "research_topic.updated",
    ]


async def test_cross_tenant_404_and_roles(
    owner: Account, stranger: Account, viewer: Account
) -> None:
    topic = await make_topic(owner)
    url = f"/v1/research/topics/{topic['id']}"
    assert_problem(await stranger.client.get(url), 404)
    assert_problem(await stranger.client.patch(url, json={"topic": "x"}), 404)
    assert_problem(await stranger.client.post(f"{url}/results", json=RESULT), 404)
    assert_problem(await stranger.client.delete(url), 404)
    assert_problem(await stranger.client.post(f"{url}/restore"), 404)
    assert (await viewer.client.get(url)).status_code == 200
    assert_problem(await viewer.client.post("/v1/research/topics", json={"topic": "t"}), 403)
    assert_problem(await viewer.client.post(f"{url}/results", json=RESULT), 403)


async def test_soft_delete_and_restore(owner: Account) -> None:
    topic = await make_topic(owner)
    url = f"/v1/research/topics/{topic['id']}"
    assert (await owner.client.delete(url)).status_code == 204
    assert_problem(await owner.client.get(url), 404)
    assert (await owner.client.get("/v1/research/topics")).json()["items"] == []
    assert (await owner.client.post(f"{url}/restore")).json()["is_deleted"] is False
    assert (await owner.client.get(url)).status_code == 200


async def test_stats_read_model(owner: Account, member: Account, stranger: Account) -> None:
    await make_topic(owner, results=[RESULT, {**RESULT, "keywords": ["new"], "search_volume": 5}])
    await make_topic(owner, results=[{**RESULT, "search_volume": 10}])
    await make_topic(owner)
    gone = await make_topic(owner, results=[{"keywords": ["gone"], "search_volume": 999}])
    await owner.client.delete(f"/v1/research/topics/{gone['id']}")
    await make_topic(member, results=[{"keywords": ["other"], "search_volume": 7}])

    response = await owner.client.get("/v1/research/stats")
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["user_id"] == str(owner.id)
    assert stats["topics_total"] == 3 and stats["results_total"] == 3
    assert stats["keywords_total"] == 3  # distinct: two from RESULT and "new"
    assert stats["search_volume_total"] == 1200 + 5 + 10
    assert stats["last_researched_at"] is not None

    # The read model is stored, one document per user, and refreshed on the next read.
    await make_topic(owner)
    again = (await owner.client.get("/v1/research/stats")).json()
    assert again["topics_total"] == 4
    stored = await GlobalResearchStats.find(
        {"user_id": Binary.from_uuid(owner.id), "tenant_id": Binary.from_uuid(owner.tenant_id)}
    ).to_list()
    assert len(stored) == 1 and stored[0].topics_total == 4

    other = await owner.client.get("/v1/research/stats", params={"user_id": str(member.id)})
    assert other.json()["search_volume_total"] == 7
    assert_problem(
        await stranger.client.get("/v1/research/stats", params={"user_id": str(owner.id)}), 404
    )
    empty = (await stranger.client.get("/v1/research/stats")).json()
    assert empty["topics_total"] == 0 and empty["last_researched_at"] is None
    assert UUID(empty["user_id"]) == stranger.id
