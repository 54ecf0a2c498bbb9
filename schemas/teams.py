"""API shapes of teams, members and invitations."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field, StringConstraints, model_validator

from documents.base import Email, Name, Tag, utcnow
from documents.team import (
    Invitation,
    InvitationStatus,
    InvitedRole,
    MemberStatus,
    TeamRole,
)
from schemas.common import IgnoreTenantId, ListParams, PatchBody, ReadView, ResourceRead

Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class TeamCreate(IgnoreTenantId):
    """`POST /v1/teams`: the creator becomes the team's owner member."""

    name: Name
    description: Description | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=50)


class TeamUpdate(PatchBody):
    """`PATCH /v1/teams/{id}`: fields to change (team owner/admin or tenant admin)."""

    nullable = frozenset({"description"})

    name: Name | None = None
    description: Description | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)


class TeamMemberRead(BaseModel):
    """One membership: the user, their team role, status and when they joined."""

    user_id: UUID
    role: TeamRole
    status: MemberStatus
    joined_at: datetime


class TeamRead(ResourceRead):
    """A team with its members."""

    name: str
    description: str | None = None
    tags: list[str]
    members: list[TeamMemberRead]


class TeamFilters(ListParams):
    """`GET /v1/teams` filters."""

    member_id: UUID | None = Field(default=None, description="Only teams this user belongs to.")


class MemberAdd(IgnoreTenantId):
    """`POST /v1/teams/{id}/members`: add a user of the tenant directly."""

    user_id: UUID
    role: TeamRole = TeamRole.member


class MemberUpdate(IgnoreTenantId):
    """`PATCH /v1/teams/{id}/members/{user_id}`: a member's team role and/or status."""

    role: TeamRole | None = None
    status: MemberStatus | None = None


class InvitationCreate(IgnoreTenantId):
    """`POST /v1/teams/{id}/invitations`.

    `role` is the tenant-wide role the invitee gets when registering with the token (at most
    the inviter's; never `owner`); an existing user's tenant role is not changed by accepting.
    `team_role` is the role inside the team (default `member`).
    """

    email: Email
    role: InvitedRole = "member"
    team_role: TeamRole = TeamRole.member


class InvitationRead(ResourceRead):
    """An invitation, without its token. `status` reads `expired` once `expires_at` passed."""

    team_id: UUID
    email: str
    role: InvitedRole
    team_role: TeamRole
    status: InvitationStatus
    invited_by: UUID | None = None
    expires_at: datetime
    accepted_at: datetime | None = None
    accepted_by: UUID | None = None
    revoked_at: datetime | None = None

    @model_validator(mode="after")
    def _expired(self) -> InvitationRead:
        # As `Invitation.effective_status`: the stored status stays `pending` past the expiry.
        if self.status == InvitationStatus.pending and self.expires_at <= utcnow():
            self.status = InvitationStatus.expired
        return self


class InvitationCreated(InvitationRead):
    """The creation response: `token` is shown only here (send it to the invitee)."""

    token: str = Field(
        description="Redeem with POST /v1/auth/register (`invitation_token`) or "
        "POST /v1/invitations/{token}/accept."
    )


class InvitationFilters(ListParams):
    """`GET /v1/teams/{id}/invitations` filters (`include_deleted=true` adds revoked ones)."""

    status: InvitationStatus | None = None


TEAM_VIEW: ReadView[TeamRead] = ReadView(TeamRead)
"""Stored teams → `TeamRead`, one validation each."""
to_team_read = TEAM_VIEW.document
"""The API view of a team document in hand."""
INVITATION_VIEW: ReadView[InvitationRead] = ReadView(InvitationRead)
"""Stored invitations → `InvitationRead` (never the token hash), one validation each."""
to_invitation_read = INVITATION_VIEW.document
"""The API view of an invitation document in hand."""


def to_invitation_created(invitation: Invitation, token: str) -> InvitationCreated:
    """The creation view, with the token."""
    return InvitationCreated.model_validate(
        {**to_invitation_read(invitation).model_dump(), "token": token}
    )
