"""Teams and their members (invitations to a team: service/invitations.py).

Two roles meet here and stay separate: the tenant-wide role (`ctx.role`: viewer < member <
admin < owner) and a member's role inside one team (`TeamRole`: member < admin < owner). A team
is managed by its active owners/admins or by a tenant admin/owner; viewers never write. Giving or
taking the team `owner` role needs a team owner or a tenant admin, and a team always keeps at
least one active owner. Every change is one journaled event with its own `event_type`
(`team.member_added`, `team.member_removed`, `team.member_role_changed`, …) so read models
(GlobalTeam) can follow the journal.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from documents.team import (
    MAX_TEAM_MEMBERS,
    MemberStatus,
    Team,
    TeamMember,
    TeamRole,
)
from documents.user import User
from schemas.teams import (
    TEAM_VIEW,
    TeamFilters,
    TeamRead,
)
from service.core.context import RequestContext, Role
from service.core.errors import Conflict, Forbidden, NotFound, Unprocessable
from service.core.pagination import PageResult
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository, equal_to, uuid_filter

# -- permissions ------------------------------------------------------------------------------


def require_manager(ctx: RequestContext, team: Team, *, owner_level: bool = False) -> None:
    """403 unless the caller may manage `team` (owner-level: may grant/revoke team ownership)."""
    POLICY.require(ctx, Action.update)  # viewers read only, whatever their team role
    if ctx.role >= Role.admin:
        return
    mine = team.member(ctx.user_id)
    allowed = {TeamRole.owner} if owner_level else {TeamRole.owner, TeamRole.admin}
    if mine is None or mine.status != MemberStatus.active or mine.role not in allowed:
        needed = "owner" if owner_level else "owner or admin"
        raise Forbidden(f"This needs a team {needed} or a tenant admin.")


async def _guard(ctx: RequestContext, action: Action, team: Team) -> None:
    # Deleting or restoring a team takes a team owner (or a tenant admin); changing it, a
    # team owner or admin.
    require_manager(ctx, team, owner_level=action in (Action.delete, Action.restore))


# Tenant members and above write teams; which team they may change depends on their part in
# it (`_guard`). Teams are not archived.
POLICY: ResourcePolicy[Team] = register_policy(ResourcePolicy(model=Team, guard=_guard))


def _require_an_owner(members: list[TeamMember]) -> None:
    if not any(m.role == TeamRole.owner and m.status == MemberStatus.active for m in members):
        raise Conflict("A team must keep at least one active owner.")


# -- teams ------------------------------------------------------------------------------------


async def create_team(
    *,
    ctx: RequestContext,
    name: str,
    description: str | None = None,
    tags: list[str] | None = None,
) -> Team:
    """Create a team whose first member (its owner) is the calling user."""
    POLICY.require(ctx, Action.create)
    user_id = ctx.require_user()
    team = Team(
        tenant_id=ctx.tenant_id,
        name=name,
        description=description,
        tags=tags or [],
        members=[TeamMember(user_id=user_id, role=TeamRole.owner)],
    )
    return await Repository(Team, ctx).create(team)


async def get_team(*, ctx: RequestContext, id: UUID) -> TeamRead:
    """One live team of the tenant (404 otherwise)."""
    return await Repository(Team, ctx).read(id, TEAM_VIEW)


async def list_teams(*, ctx: RequestContext, filters: TeamFilters) -> PageResult[TeamRead]:
    """A page of the tenant's teams, newest first, optionally those `member_id` belongs to."""
    query = equal_to(filters, {"member_id": "members.user_id"})
    return await Repository(Team, ctx).page_for(query, filters, view=TEAM_VIEW)


async def update_team(
    *,
    ctx: RequestContext,
    id: UUID,
    changes: Mapping[str, Any],
    expected_version: int | None = None,
) -> Team:
    """Change a team's name, description or tags (team owner/admin or tenant admin)."""
    repo = Repository(Team, ctx)
    team = await repo.get(id)
    require_manager(ctx, team)
    allowed = {"name", "description", "tags", "segments"}
    return await repo.update(
        team, {k: v for k, v in changes.items() if k in allowed}, expected_version=expected_version
    )


# -- members ----------------------------------------------------------------------------------


async def add_member(
    *,
    ctx: RequestContext,
    team_id: UUID,
    user_id: UUID,
    role: TeamRole = TeamRole.member,
    expected_version: int | None = None,
) -> Team:
    """Add a user of the tenant to a team directly (no invitation needed inside the tenant)."""
    repo = Repository(Team, ctx)
    team = await repo.get(team_id)
    require_manager(ctx, team, owner_level=role == TeamRole.owner)
    if await Repository(User, ctx).find_one({"_id": uuid_filter(user_id)}) is None:
        raise Unprocessable(f"No user {user_id} in this tenant.", loc=["body", "user_id"])
    return await add_to_team(repo, team, TeamMember(user_id=user_id, role=role), expected_version)


async def add_to_team(
    repo: Repository[Team], team: Team, member: TeamMember, expected_version: int | None = None
) -> Team:
    if team.member(member.user_id) is not None:
        raise Conflict("That user is already a member of the team.", user_id=str(member.user_id))
    if len(team.members) >= MAX_TEAM_MEMBERS:
        raise Conflict(f"A team has at most {MAX_TEAM_MEMBERS} members.")
    return await repo.update(
        team,
        {"members": [*team.members, member]},
        expected_version=expected_version,
        event_type="member_added",
    )


async def _team_and_member(
    repo: Repository[Team], team_id: UUID, user_id: UUID
) -> tuple[Team, TeamMember]:
    """The team (404 if not the tenant's) and one of its members (404 if not a member)."""
    team = await repo.get(team_id)
    member = team.member(user_id)
    if member is None:
        raise NotFound(f"User {user_id} is not a member of team {team_id}.")
    return team, member


async def update_member(
    *,
    ctx: RequestContext,
    team_id: UUID,
    user_id: UUID,
    role: TeamRole | None = None,
    status: MemberStatus | None = None,
    expected_version: int | None = None,
) -> Team:
    """Change a member's team role and/or status; journaled as a role or a status change."""
    repo = Repository(Team, ctx)
    team, current = await _team_and_member(repo, team_id, user_id)
    touches_owner = TeamRole.owner in (role, current.role)
    require_manager(ctx, team, owner_level=touches_owner)
    changed = current.model_copy(
        update={k: v for k, v in {"role": role, "status": status}.items() if v is not None}
    )
    members = [changed if m.user_id == user_id else m for m in team.members]
    _require_an_owner(members)
    event = "member_role_changed" if changed.role != current.role else "member_status_changed"
    return await repo.update(
        team, {"members": members}, expected_version=expected_version, event_type=event
    )


async def remove_member(
    *,
    ctx: RequestContext,
    team_id: UUID,
    user_id: UUID,
    expected_version: int | None = None,
) -> Team:
    """Remove a member (managers may remove anyone; any member may leave)."""
    repo = Repository(Team, ctx)
    team, current = await _team_and_member(repo, team_id, user_id)
    if user_id != ctx.user_id:
        require_manager(ctx, team, owner_level=current.role == TeamRole.owner)
    members = [m for m in team.members if m.user_id != user_id]
    _require_an_owner(members)
    return await repo.update(
        team, {"members": members}, expected_version=expected_version, event_type="member_removed"
    )
