"""Kanban: one board per user, ordered states and tasks, dense positions, journaled changes."""

from __future__ import annotations

from typing import Any
from unittest.mock import patch

from bson import Binary

from documents.journal import DomainEvent
from documents.kanban import GlobalKanban
from tests.support.helpers import Account, ServiceClient, assert_problem


async def add_state(account: Account, name: str, **extra: Any) -> dict[str, Any]:
    response = await account.client.post("/v1/kanban/states", json={"name": name, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def add_task(account: Account, title: str, state_id: str, **extra: Any) -> dict[str, Any]:
    response = await account.client.post(
        "/v1/kanban/tasks", json={"title": title, "state_id": state_id, **extra}
    )
    assert response.status_code == 201, response.text
    return response.json()


def column(board: dict[str, Any], state_id: str) -> list[str]:
    tasks = [t for t in board["tasks"] if t["state_id"] == state_id]
    assert [t["position"] for t in tasks] == list(range(len(tasks)))  # dense and ordered
    return [t["title"] for t in tasks]


async def board_of(account: Account) -> dict[str, Any]:
    response = await account.client.get("/v1/kanban")
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == f'"{response.json()["version"]}"'
    return response.json()


async def test_new_user_gets_an_empty_board_once(owner: Account) -> None:
    board = await board_of(owner)
    assert board["states"] == [] and board["tasks"] == [] and board["user_id"] == str(owner.id)
    again = await board_of(owner)
    assert again["id"] == board["id"]
    assert await GlobalKanban.find_all().count() == 1


async def test_states_and_tasks_in_order(owner: Account) -> None:
    todo = await add_state(owner, "To do")
    done = await add_state(owner, "Done", color="#00ff00")
    doing = await add_state(owner, "Doing", position=1)
    board = await board_of(owner)
    assert [s["name"] for s in board["states"]] == ["To do", "Doing", "Done"]
    assert [s["position"] for s in board["states"]] == [0, 1, 2]

    for title in ("a", "b", "c"):
        await add_task(owner, title, todo["id"])
    first = await add_task(owner, "first", todo["id"], position=0)
    assert first["position"] == 0
    await add_task(owner, "x", done["id"])
    board = await board_of(owner)
    assert column(board, todo["id"]) == ["first", "a", "b", "c"]
    assert column(board, done["id"]) == ["x"]
    assert column(board, doing["id"]) == []
    # Tasks come by state order, then position.
    assert [t["title"] for t in board["tasks"]] == ["first", "a", "b", "c", "x"]


async def test_move_keeps_both_states_dense(owner: Account) -> None:
    todo = await add_state(owner, "To do")
    done = await add_state(owner, "Done")
    tasks = {t: await add_task(owner, t, todo["id"]) for t in ("a", "b", "c", "d")}
    await add_task(owner, "x", done["id"])
    await add_task(owner, "y", done["id"])

    # Across states: b goes between x and y.
    response = await owner.client.post(
        f"/v1/kanban/tasks/{tasks['b']['id']}/move", json={"state_id": done["id"], "position": 1}
    )
    assert response.status_code == 200, response.text
    board = response.json()
    assert column(board, todo["id"]) == ["a", "c", "d"]
    assert column(board, done["id"]) == ["x", "b", "y"]
    assert response.headers["ETag"] == f'"{board["version"]}"'

    # Within a state: a goes last; a position past the end means last.
    board = (
        await owner.client.post(
            f"/v1/kanban/tasks/{tasks['a']['id']}/move",
            json={"state_id": todo["id"], "position": 99},
        )
    ).json()
    assert column(board, todo["id"]) == ["c", "d", "a"]
    # Within a state, towards the front.
    board = (
        await owner.client.post(
            f"/v1/kanban/tasks/{tasks['a']['id']}/move",
            json={"state_id": todo["id"], "position": 0},
        )
    ).json()
    assert column(board, todo["id"]) == ["a", "c", "d"]
    assert (await board_of(owner))["tasks"] == board["tasks"]  # persisted


async def test_move_errors(owner: Account) -> None:
    todo = await add_state(owner, "To do")
    task = await add_task(owner, "a", todo["id"])
    url = f"/v1/kanban/tasks/{task['id']}/move"
    unknown = "01940000-0000-7000-8000-000000000000"
    assert_problem(await owner.client.post(url, json={"state_id": unknown, "position": 0}), 422)
    assert_problem(await owner.client.post(url, json={"state_id": todo["id"], "position": -1}), 422)
    assert_problem(await owner.client.post(url, json={"state_id": todo["id"]}), 422)
    assert_problem(await owner.client.post(url, json={"state_id": "nope", "position": 0}), 422)
    assert_problem(
        await owner.client.post(
            f"/v1/kanban/tasks/{unknown}/move", json={"state_id": todo["id"], "position": 0}
        ),
        404,
    )
    assert_problem(
        await owner.client.post("/v1/kanban/tasks", json={"title": "t", "state_id": unknown}), 422
    )


async def test_deleting_a_state_with_tasks_is_409(owner: Account) -> None:
    todo = await add_state(owner, "To do")
    done = await add_state(owner, "Done")
    last = await add_state(owner, "Later")
    task = await add_task(owner, "a", done["id"])
    body = assert_problem(await owner.client.delete(f"/v1/kanban/states/{done['id']}"), 409)
    assert body["task_count"] == 1
    assert len((await board_of(owner))["states"]) == 3

    assert (await owner.client.delete(f"/v1/kanban/tasks/{task['id']}")).status_code == 204
    assert (await owner.client.delete(f"/v1/kanban/states/{done['id']}")).status_code == 204
    board = await board_of(owner)
    assert [(s["id"], s["position"]) for s in board["states"]] == [
        (todo["id"], 0),
        (last["id"], 1),
    ]
    assert_problem(await owner.client.delete(f"/v1/kanban/states/{done['id']}"), 404)


async def test_delete_task_closes_the_gap_and_update_task(owner: Account) -> None:
    todo = await add_state(owner, "To do")
    a = await add_task(owner, "a", todo["id"])
    b = await add_task(owner, "b", todo["id"])
    await add_task(owner, "c", todo["id"])
    assert (await owner.client.delete(f"/v1/kanban/tasks/{a['id']}")).status_code == 204
    assert column(await board_of(owner), todo["id"]) == ["b", "c"]

    url = f"/v1/kanban/tasks/{b['id']}"
    response = await owner.client.patch(
        url, json={"title": "B", "description": "more", "tags": ["Urgent"]}
    )
    assert response.status_code == 200, response.text
    assert response.json()["title"] == "B" and response.json()["tags"] == ["urgent"]
    assert_problem(await owner.client.patch(url, json={"title": None}), 422)
    assert_problem(await owner.client.patch(url, json={"state_id": todo["id"]}), 422)
    cleared = await owner.client.patch(url, json={"description": None})
    assert cleared.json()["description"] is None


async def test_update_state_renames_and_reorders(owner: Account) -> None:
    a = await add_state(owner, "A")
    await add_state(owner, "B")
    response = await owner.client.patch(
        f"/v1/kanban/states/{a['id']}", json={"name": "Alpha", "position": 5}
    )
    assert response.status_code == 200, response.text
    assert response.json()["name"] == "Alpha" and response.json()["position"] == 1
    assert [s["name"] for s in (await board_of(owner))["states"]] == ["B", "Alpha"]
    assert_problem(
        await owner.client.patch(f"/v1/kanban/states/{a['id']}", json={"color": "red"}), 422
    )


async def test_every_change_is_a_versioned_journaled_board_update(owner: Account) -> None:
    todo = await add_state(owner, "To do")
    task = await add_task(owner, "a", todo["id"])
    done = await add_state(owner, "Done")
    await owner.client.post(
        f"/v1/kanban/tasks/{task['id']}/move", json={"state_id": done["id"], "position": 0}
    )
    board = await board_of(owner)
    assert board["version"] == 5
    events = (
        await DomainEvent.find({"aggregate_id": Binary.from_uuid(_uuid(board["id"]))})
        .sort("version")
        .to_list()
    )
    assert [e.event_type for e in events] == [
        "kanban_board.created",
        "kanban_board.state_added",
        "kanban_board.task_added",
        "kanban_board.state_added",
        "kanban_board.task_moved",
    ]
    # Field-level changes: the move records only the moved task's state.
    assert [c.field for c in events[-1].changes] == [f"tasks.{task['id']}.state_id"]


async def test_stale_if_match_is_412(owner: Account) -> None:
    await board_of(owner)
    response = await owner.client.post(
        "/v1/kanban/states", json={"name": "A"}, headers={"If-Match": '"9"'}
    )
    assert_problem(response, 412)
    assert (await board_of(owner))["states"] == []
    ok = await owner.client.post(
        "/v1/kanban/states", json={"name": "A"}, headers={"If-Match": '"1"'}
    )
    assert ok.status_code == 201 and ok.headers["ETag"] == '"2"'


async def test_board_caps_are_409(owner: Account) -> None:
    todo = await add_state(owner, "To do")
    with patch("service.kanban.MAX_KANBAN_TASKS", 2), patch("service.kanban.MAX_KANBAN_STATES", 1):
        await add_task(owner, "a", todo["id"])
        await add_task(owner, "b", todo["id"])
        response = await owner.client.post(
            "/v1/kanban/tasks", json={"title": "c", "state_id": todo["id"]}
        )
        assert_problem(response, 409)
        assert_problem(await owner.client.post("/v1/kanban/states", json={"name": "B"}), 409)


async def test_boards_are_per_user_and_per_tenant(
    owner: Account, member: Account, stranger: Account
) -> None:
    todo = await add_state(owner, "To do")
    task = await add_task(owner, "secret", todo["id"])
    for other in (member, stranger):
        assert (await board_of(other))["tasks"] == []
        assert_problem(
            await other.client.post(
                f"/v1/kanban/tasks/{task['id']}/move", json={"state_id": todo["id"], "position": 0}
            ),
            404,
        )
        assert_problem(await other.client.delete(f"/v1/kanban/tasks/{task['id']}"), 404)
        assert_problem(
            await other.client.post(
                "/v1/kanban/tasks", json={"title": "t", "state_id": todo["id"]}
            ),
            422,
        )
    assert column(await board_of(owner), todo["id"]) == ["secret"]


async def test_viewer_may_keep_a_personal_board(viewer: Account) -> None:
    await add_state(viewer, "Mine")
    assert len((await board_of(viewer))["states"]) == 1


async def test_api_keys_have_no_board(
    owner: Account,
    service_client: ServiceClient,
) -> None:
    service = await service_client(owner)
    assert_problem(await service.get("/v1/kanban"), 403)
    assert_problem(await service.post("/v1/kanban/states", json={"name": "A"}), 403)


async def test_validation(owner: Account) -> None:
    for body in ({}, {"name": ""}, {"name": "x" * 201}, {"name": "A", "extra": 1}):
        assert_problem(await owner.client.post("/v1/kanban/states", json=body), 422)
    ok = await owner.client.post(
        "/v1/kanban/states", json={"name": "A", "tenant_id": "01940000-0000-7000-8000-000000000000"}
    )
    assert ok.status_code == 201


def _uuid(value: str) -> Any:
    from uuid import UUID

    return UUID(value)
