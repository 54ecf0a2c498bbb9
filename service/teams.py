"""Teams, their members and invitations.

Two roles meet here and stay separate: the tenant-wide role (`ctx.role`: viewer < member <
admin < owner) and a member's role inside one team (`TeamRole`: member < admin < owner). A team
is managed by its active owners/admins or by a tenant admin/owner; viewers never write. Giving or
taking the team `owner` role needs a team owner or a tenant admin, and a team always keeps at
least one active owner. Every change is one journaled event with its own `event_type`
(`team.member_added`, `team.member_removed`, `team.member_role_changed`, …) so read models
(GlobalTeam) can follow the journal.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from datetime import timedelta
from typing import Any
from uuid import UUID

from documents.base import utcnow
from documents.team import (
    MAX_TEAM_MEMBERS,
    Invitation,
    InvitationStatus,
    MemberStatus,
    Team,
    TeamMember,
    TeamRole,
)
from documents.user import User
from schemas.teams import (
    INVITATION_VIEW,
    TEAM_VIEW,
    InvitationFilters,
    InvitationRead,
    TeamFilters,
    TeamRead,
)
from service import security
from service.context import RequestContext, Role
from service.errors import Conflict, Forbidden, Gone, NotFound, Unprocessable
from service.pagination import PageResult
from service.policy import Action, ResourcePolicy, register_policy
from service.repository import Repository, equal_to, uuid_filter
from service.settings import Settings
from service.throttle import Throttle, guess_throttle

# -- permissions ------------------------------------------------------------------------------


def _require_manager(ctx: RequestContext, team: Team, *, owner_level: bool = False) -> None:
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
    _require_manager(ctx, team, owner_level=action in (Action.delete, Action.restore))


# Tenant members and above write teams; which team they may change depends on their part in
# it (`_guard`). Teams are not archived.
POLICY: ResourcePolicy[Team] = register_policy(ResourcePolicy(model=Team, guard=_guard))
# Invitations are the team's business: their commands check `_require_manager` (the team's
# policy, then the caller's team role); the roles here are the same defaults.
INVITATION_POLICY: ResourcePolicy[Invitation] = register_policy(ResourcePolicy(model=Invitation))


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
    _require_manager(ctx, team)
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
    _require_manager(ctx, team, owner_level=role == TeamRole.owner)
    if await Repository(User, ctx).find_one({"_id": uuid_filter(user_id)}) is None:
        raise Unprocessable(f"No user {user_id} in this tenant.", loc=["body", "user_id"])
    return await _add(repo, team, TeamMember(user_id=user_id, role=role), expected_version)


async def _add(
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
    team = await repo.get(team_id)
    current = team.member(user_id)
    if current is None:
        raise NotFound(f"User {user_id} is not a member of team {team_id}.")
    touches_owner = TeamRole.owner in (role, current.role)
    _require_manager(ctx, team, owner_level=touches_owner)
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
    team = await repo.get(team_id)
    current = team.member(user_id)
    if current is None:
        raise NotFound(f"User {user_id} is not a member of team {team_id}.")
    if user_id != ctx.user_id:
        _require_manager(ctx, team, owner_level=current.role == TeamRole.owner)
    members = [m for m in team.members if m.user_id != user_id]
    _require_an_owner(members)
    return await repo.update(
        team, {"members": members}, expected_version=expected_version, event_type="member_removed"
    )


# -- invitations ------------------------------------------------------------------------------


async def invite(
    *,
    ctx: RequestContext,
    settings: Settings,
    team_id: UUID,
    email: str,
    role: str = "member",
    team_role: TeamRole = TeamRole.member,
) -> tuple[Invitation, str]:
    """Invite an email to a team; returns the invitation and its token (shown only now).

    The invited tenant role cannot exceed the inviter's own; one pending invitation per email
    and team (409 with the existing one's id).
    """
    team = await Repository(Team, ctx).get(team_id)
    _require_manager(ctx, team, owner_level=team_role == TeamRole.owner)
    if not ctx.role >= Role(role):
        raise Forbidden("You cannot invite someone with a higher role than your own.")
    existing_user = await Repository(User, ctx).find_one({"email": email})
    if existing_user is not None and team.member(existing_user.id) is not None:
        raise Conflict("That person is already a member of the team.")
    repo = Repository(Invitation, ctx)
    pending = await repo.find_one(
        {
            "team_id": uuid_filter(team_id),
            "email": email,
            "status": InvitationStatus.pending.value,
            "expires_at": {"$gt": utcnow()},
        }
    )
    if pending is not None:
        raise Conflict("A pending invitation for that email exists.", invitation_id=str(pending.id))
    token = security.generate_token()
    invitation = Invitation(
        tenant_id=ctx.tenant_id,
        team_id=team_id,
        email=email,
        role=role,  # type: ignore[arg-type]
        team_role=team_role,
        token_hash=security.hash_token(token),
        invited_by=ctx.actor_id,
        expires_at=utcnow() + timedelta(hours=settings.invitation_ttl_hours),
    )
    return await repo.create(invitation), token


def _status_filter(status: InvitationStatus | None) -> dict[str, Any]:
    now = utcnow()
    if status is None:
        return {}
    if status == InvitationStatus.pending:
        return {"status": status.value, "expires_at": {"$gt": now}}
    if status == InvitationStatus.expired:
        return {"status": InvitationStatus.pending.value, "expires_at": {"$lte": now}}
    return {"status": status.value}


async def list_invitations(
    *, ctx: RequestContext, team_id: UUID, filters: InvitationFilters
) -> PageResult[InvitationRead]:
    """A page of a team's invitations, newest first (revoked ones only with include_deleted)."""
    team = await Repository(Team, ctx).get(team_id)
    _require_manager(ctx, team)
    query = {"team_id": uuid_filter(team_id), **_status_filter(filters.status)}
    return await Repository(Invitation, ctx).page_for(query, filters, view=INVITATION_VIEW)


async def revoke_invitation(
    *, ctx: RequestContext, id: UUID, expected_version: int | None = None
) -> Invitation:
    """Revoke a pending invitation: its token stops working and it leaves the lists."""
    repo = Repository(Invitation, ctx)
    invitation = await repo.get(id)
    team = await Repository(Team, ctx).get(invitation.team_id, include_deleted=True)
    _require_manager(ctx, team)
    if invitation.status == InvitationStatus.accepted:
        raise Conflict("The invitation was already accepted.")
    now = utcnow()
    return await repo.update(
        invitation,
        {
            "status": InvitationStatus.revoked,
            "revoked_at": now,
            "is_deleted": True,
            "deleted_at": now,
        },
        expected_version=expected_version,
        event_type="revoked",
    )


async def _guarded_lookup(
    find: Callable[[], Awaitable[Invitation | None]], *, throttle: Throttle, key: str
) -> Invitation:
    """Run an invitation lookup as one throttled guess: unknown tokens count, real ones don't."""
    await throttle.attempt(key)
    found = await find()
    if found is None:
        raise NotFound("No such invitation.")
    await throttle.refund(key)  # a real token is no guess (and proves nothing to reset on)
    return found


async def invitation_by_token(token: str, *, throttle: Throttle, key: str) -> Invitation:
    """The invitation a token names, in whatever tenant (404 if none; 429 after many guesses).

    The token is the credential here (the registering invitee has no tenant yet), so this is
    the one lookup that is not scoped by a caller's tenant; only a hash is compared. Unknown
    tokens are guesses counted by `throttle` under `key` (the client's address).
    """
    query = {"token_hash": security.hash_token(token)}
    return await _guarded_lookup(lambda: Invitation.find_one(query), throttle=throttle, key=key)


async def redeem_invitation(
    *, ctx: RequestContext, invitation: Invitation, email: str, user_id: UUID
) -> tuple[Team, Invitation]:
    """Mark an invitation accepted by `user_id` after checking it may be used by `email`.

    Another email → 403; already used → 409; revoked, expired or its team gone → 410. The
    version guard makes a concurrent second redemption lose with 409.
    """
    if email.strip().lower() != invitation.email:
        raise Forbidden("This invitation was sent to another email address.")
    status = invitation.effective_status()
    if status == InvitationStatus.accepted:
        raise Conflict("This invitation has already been used.")
    if status == InvitationStatus.revoked:
        raise Gone("This invitation was revoked.")
    if status == InvitationStatus.expired:
        raise Gone("This invitation has expired.")
    team = await Repository(Team, ctx).find_one({"_id": uuid_filter(invitation.team_id)})
    if team is None:
        raise Gone("The team of this invitation no longer exists.")
    if team.member(user_id) is not None:
        raise Conflict("You are already a member of this team.")
    try:
        invitation = await Repository(Invitation, ctx).update(
            invitation,
            {
                "status": InvitationStatus.accepted,
                "accepted_at": utcnow(),
                "accepted_by": user_id,
            },
            event_type="accepted",
        )
    except Conflict:
        raise Conflict("This invitation has already been used.") from None
    return team, invitation


async def add_invited_member(*, ctx: RequestContext, team: Team, invitation: Invitation) -> Team:
    """Add the user who redeemed `invitation` to its team with the invited team role."""
    member = TeamMember(user_id=ctx.actor_id, role=invitation.team_role)
    repo = Repository(Team, ctx)
    try:
        return await _add(repo, team, member)
    except Conflict:
        # The team changed since it was read (another member joined): re-read once and retry.
        return await _add(repo, await repo.get(team.id), member)


async def accept_invitation(*, ctx: RequestContext, settings: Settings, token: str) -> Team:
    """The calling user, already in the invitation's tenant, joins its team (200 with the team).

    A token of another tenant answers 404, as any other tenant's resource does; unknown tokens
    are guesses, throttled per calling user (429).
    """
    user_id = ctx.require_user()
    user = await Repository(User, ctx).get(user_id)
    query = {"token_hash": security.hash_token(token)}
    invitation = await _guarded_lookup(
        lambda: Repository(Invitation, ctx).find_one(query, include_deleted=True),
        throttle=guess_throttle(settings, "invitation"),
        key=f"user:{user_id}",
    )
    team, invitation = await redeem_invitation(
        ctx=ctx, invitation=invitation, email=user.email, user_id=user_id
    )
    return await add_invited_member(ctx=ctx, team=team, invitation=invitation)
