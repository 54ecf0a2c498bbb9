"""The team read model over the odd shapes stored data can take (issue 30's hunt).

Shapes the API itself does not write but older releases, imports or hand repairs leave behind:
a member whose user is gone, a team with no members (or no `members` field), a member without
`joined_at`, a user without `profile`, names holding `$`, `.` or NUL. Each answers 200 with
the member list the team has (members in their stored order), never a 500.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from bson import Binary
from uuid6 import uuid7

from documents.team import Team
from documents.user import User
from tests.factories import make_team
from tests.support.helpers import Account


def _teams() -> Any:
    return Team.get_pymongo_collection()


def _users() -> Any:
    return User.get_pymongo_collection()


async def _read(owner: Account, team_id: str) -> dict[str, Any]:
    r = await owner.client.get(f"/v1/read-models/teams/{team_id}")
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


async def _touch(owner: Account, team_id: str, name: str) -> None:
    """A journaled change of the team, so the projector recomputes it."""
    r = await owner.client.patch(f"/v1/teams/{team_id}", json={"name": name})
    assert r.status_code == 200, r.text


async def test_a_member_whose_user_is_gone_keeps_its_place_without_names(
    owner: Account, member: Account
) -> None:
    team = await make_team(owner)
    r = await owner.client.post(f"/v1/teams/{team['id']}/members", json={"user_id": str(member.id)})
    assert r.status_code in (200, 201), r.text
    await _users().delete_one({"_id": Binary.from_uuid(member.id)})  # a hard delete
    await _touch(owner, team["id"], "N1")
    body = await _read(owner, team["id"])
    assert [m["user_id"] for m in body["members"]] == [str(owner.id), str(member.id)]
    gone = body["members"][1]
    assert gone["username"] is None and gone["first_name"] is None and body["member_count"] == 2


@pytest.mark.parametrize("members", [[], None], ids=["empty", "missing"])
async def test_a_team_without_members_reads_as_an_empty_list(
    owner: Account, members: list[Any] | None
) -> None:
    team = await make_team(owner)
    _id = Binary.from_uuid(UUID(team["id"]))
    change = {"$set": {"members": members}} if members is not None else {"$unset": {"members": ""}}
    await _teams().update_one({"_id": _id}, change)
    await _touch(owner, team["id"], "N2")
    body = await _read(owner, team["id"])
    assert body["members"] == [] and body["member_count"] == 0


async def test_odd_member_and_user_shapes_read_as_nulls(owner: Account, member: Account) -> None:
    team = await make_team(owner)
    await owner.client.post(f"/v1/teams/{team['id']}/members", json={"user_id": str(member.id)})
    _id = Binary.from_uuid(UUID(team["id"]))
    stranger = {"user_id": Binary.from_uuid(uuid7()), "role": "member", "status": "active"}
    await _teams().update_one({"_id": _id}, {"$unset": {"members.1.joined_at": ""}})
    await _teams().update_one({"_id": _id}, {"$push": {"members": stranger}})
    await _users().update_one(
        {"_id": Binary.from_uuid(owner.id)},
        {"$set": {"profile.first_name": "$a.b\x00c", "profile.display_name": "ü" * 200}},
    )
    await _users().update_one({"_id": Binary.from_uuid(member.id)}, {"$unset": {"profile": ""}})
    await _touch(owner, team["id"], "N3")
    body = await _read(owner, team["id"])
    first, second, third = body["members"]
    assert first["first_name"] == "$a.b\x00c" and first["display_name"] == "ü" * 200
    assert second["joined_at"] is None and second["username"] == member.user.username
    assert second["first_name"] is None and second["display_name"] is None
    assert third["user_id"] == str(stranger["user_id"].as_uuid()) and third["username"] is None
