"""Invitations to a team: invite by e-mail, list, revoke, and redeem a token (accept or register).

A team's managers invite (the team's policy, then the caller's team role: `teams.require_manager`);
tokens are stored only hashed and are guesses to throttle when unknown.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any
from uuid import UUID

from documents.base import utcnow
from documents.team import (
    Invitation,
    InvitationStatus,
    Team,
    TeamMember,
    TeamRole,
)
from documents.user import User
from schemas.teams import (
    INVITATION_VIEW,
    InvitationFilters,
    InvitationRead,
)
from service.core import security
from service.core.context import RequestContext, Role
from service.core.errors import Conflict, Forbidden, Gone, NotFound
from service.core.pagination import PageResult
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository, uuid_filter
from service.core.settings import Settings
from service.core.throttle import Throttle, guess_throttle
from service.teams import add_to_team, require_manager

# Invitations are the team's business: their commands check `require_manager` (the team's
# policy, then the caller's team role). They name outside email addresses, so in tenant-wide
# reads (the change feed, the audit log) only admins see them; team managers list their own
# team's through /v1/teams/{id}/invitations.
INVITATION_POLICY: ResourcePolicy[Invitation] = register_policy(
    ResourcePolicy(model=Invitation, roles={Action.read: Role.admin})
)


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
    require_manager(ctx, team, owner_level=team_role == TeamRole.owner)
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
    require_manager(ctx, team)
    query = {"team_id": uuid_filter(team_id), **_status_filter(filters.status)}
    return await Repository(Invitation, ctx).page_for(query, filters, view=INVITATION_VIEW)


async def revoke_invitation(
    *, ctx: RequestContext, id: UUID, expected_version: int | None = None
) -> Invitation:
    """Revoke a pending invitation: its token stops working and it leaves the lists."""
    repo = Repository(Invitation, ctx)
    invitation = await repo.get(id)
    team = await Repository(Team, ctx).get(invitation.team_id, include_deleted=True)
    require_manager(ctx, team)
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
        return await add_to_team(repo, team, member)
    except Conflict:
        # The team changed since it was read (another member joined): re-read once and retry.
        return await add_to_team(repo, await repo.get(team.id), member)


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
