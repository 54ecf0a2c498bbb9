"""Teams (write model) with their embedded members, and invitations to join a team.

A team's members are embedded because a team is small and always read whole; the list is
bounded by `MAX_TEAM_MEMBERS`. Invitations grow with use (pending, accepted, revoked…), so they
live in their own collection and point at their team by id. Only a hash of an invitation token
is stored: the token itself is shown once, to the inviter.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, ClassVar, Literal
from uuid import UUID

from pydantic import Field, StringConstraints, field_validator
from pymongo import IndexModel

from documents.base import Email, Name, RootDocument, Segmented, SubDocument, UTCDateTime, utcnow

MAX_TEAM_MEMBERS = 500

Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
# The tenant-wide role an invitee gets when registering with the token (never `owner`).
InvitedRole = Literal["viewer", "member", "admin"]


class TeamRole(StrEnum):
    """A member's role inside one team (independent of the tenant-wide role)."""

    owner = "owner"
    admin = "admin"
    member = "member"


class MemberStatus(StrEnum):
    """Whether a membership is in force; suspended members keep their place but no powers."""

    active = "active"
    suspended = "suspended"


class TeamMember(SubDocument):
    """One user's membership of a team."""

    user_id: UUID
    role: TeamRole = TeamRole.member
    status: MemberStatus = MemberStatus.active
    joined_at: UTCDateTime = Field(default_factory=utcnow)


class Team(RootDocument, Segmented):
    """A group of users inside a tenant; the creator is its first owner member."""

    aggregate_type: ClassVar[str] = "team"

    name: Name
    description: Description | None = None
    members: list[TeamMember] = Field(default_factory=list, max_length=MAX_TEAM_MEMBERS)

    @field_validator("members")
    @classmethod
    def _unique_members(cls, value: list[TeamMember]) -> list[TeamMember]:
        # A user is a member at most once; services check too, this guards the stored invariant.
        ids = [m.user_id for m in value]
        if len(ids) != len(set(ids)):
            raise ValueError("a user can be a member of a team only once")
        return value

    def member(self, user_id: UUID | None) -> TeamMember | None:
        """The membership of `user_id`, if any."""
        return next((m for m in self.members if m.user_id == user_id), None)

    class Settings:
        name = "teams"
        indexes = [
            IndexModel([("tenant_id", 1), ("is_deleted", 1), ("_id", -1)], name="tenant_list"),
            # "Teams of user X" (`GET /v1/teams?member_id=`).
            IndexModel(
                [("tenant_id", 1), ("members.user_id", 1), ("_id", -1)], name="tenant_member"
            ),
        ]


class InvitationStatus(StrEnum):
    """Stored states of an invitation; `expired` is derived from `expires_at` when read."""

    pending = "pending"
    accepted = "accepted"
    revoked = "revoked"
    expired = "expired"


class Invitation(RootDocument):
    """An invitation of an email address to a team, redeemable once with its token.

    The lifetime (`expires_at`) comes from `INVITATION_TTL_HOURS`. Expired invitations are
    refused when redeemed but are not removed by a TTL index: they are journaled aggregates
    whose history must stay (nothing is removed from the database).
    """

    aggregate_type: ClassVar[str] = "invitation"
    secret_fields: ClassVar[frozenset[str]] = frozenset({"token_hash"})

    team_id: UUID
    email: Email
    role: InvitedRole = "member"
    team_role: TeamRole = TeamRole.member
    token_hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    status: InvitationStatus = InvitationStatus.pending
    invited_by: UUID | None = None
    expires_at: UTCDateTime
    accepted_at: UTCDateTime | None = None
    accepted_by: UUID | None = None
    revoked_at: UTCDateTime | None = None

    def effective_status(self) -> InvitationStatus:
        """The status as the API reports it: a pending invitation past its expiry is expired."""
        if self.status == InvitationStatus.pending and self.expires_at <= utcnow():
            return InvitationStatus.expired
        return self.status

    class Settings:
        name = "invitations"
        indexes = [
            # Redeeming looks the token up by its hash; unique so a token names one invitation.
            IndexModel([("token_hash", 1)], unique=True, name="token_hash_unique"),
            # `GET /v1/teams/{id}/invitations` and the duplicate-pending check by email.
            IndexModel(
                [("tenant_id", 1), ("team_id", 1), ("is_deleted", 1), ("_id", -1)],
                name="tenant_team_list",
            ),
            IndexModel(
                [("tenant_id", 1), ("team_id", 1), ("email", 1), ("status", 1)],
                name="tenant_team_email",
            ),
        ]


__all__ = [
    "MAX_TEAM_MEMBERS",
    "Invitation",
    "InvitationStatus",
    "InvitedRole",
    "MemberStatus",
    "Team",
    "TeamMember",
    "TeamRole",
]
