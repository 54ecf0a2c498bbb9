"""Teams, their members and their invitations."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Query, Request, Response, status

from documents.team import Team
from routes.deps import (
    CurrentContext,
    IfMatch,
    SettingsDep,
    page_response,
    read_response,
    set_etag,
    set_location,
)
from routes.lifecycle import add_lifecycle_routes
from schemas.common import Page
from schemas.teams import (
    TEAM_VIEW,
    InvitationCreate,
    InvitationCreated,
    InvitationFilters,
    InvitationRead,
    MemberAdd,
    MemberUpdate,
    TeamCreate,
    TeamFilters,
    TeamRead,
    TeamUpdate,
    to_invitation_created,
    to_team_read,
)
from service import invitations, teams

router = APIRouter(prefix="/teams", tags=["teams"])

_MANAGERS = "team owner/admin or tenant admin"


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TeamRead,
    summary="Create a team; the calling user becomes its owner member",
)
async def create_team(
    body: TeamCreate, ctx: CurrentContext, request: Request, response: Response
) -> Any:
    team = await teams.create_team(
        ctx=ctx, name=body.name, description=body.description, tags=body.tags
    )
    set_etag(response, team.version)
    set_location(request, response, "get_team", id=team.id)
    return to_team_read(team)


@router.get("", response_model=Page[TeamRead], summary="The tenant's teams, newest first")
async def list_teams(ctx: CurrentContext, filters: Annotated[TeamFilters, Query()]) -> Any:
    page = await teams.list_teams(ctx=ctx, filters=filters)
    return page_response(page, Page[TeamRead])


@router.get("/{id}", response_model=TeamRead, summary="A team with its members")
async def get_team(id: UUID, ctx: CurrentContext) -> Response:
    team = await teams.get_team(ctx=ctx, id=id)
    return read_response(TEAM_VIEW, team)


@router.patch("/{id}", response_model=TeamRead, summary=f"Change a team ({_MANAGERS})")
async def update_team(
    id: UUID, body: TeamUpdate, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    team = await teams.update_team(
        ctx=ctx, id=id, changes=body.model_dump(exclude_unset=True), expected_version=if_match
    )
    set_etag(response, team.version)
    return to_team_read(team)


# -- members ----------------------------------------------------------------------------------


@router.post(
    "/{id}/members",
    status_code=status.HTTP_201_CREATED,
    response_model=TeamRead,
    summary=f"Add a user of the tenant to the team ({_MANAGERS})",
)
async def add_member(
    id: UUID,
    body: MemberAdd,
    ctx: CurrentContext,
    if_match: IfMatch,
    request: Request,
    response: Response,
) -> Any:
    team = await teams.add_member(
        ctx=ctx, team_id=id, user_id=body.user_id, role=body.role, expected_version=if_match
    )
    set_etag(response, team.version)
    set_location(request, response, "update_member", id=id, user_id=body.user_id)
    return to_team_read(team)


@router.patch(
    "/{id}/members/{user_id}",
    response_model=TeamRead,
    summary=f"Change a member's team role or status ({_MANAGERS}); a team keeps an owner",
)
async def update_member(
    id: UUID,
    user_id: UUID,
    body: MemberUpdate,
    ctx: CurrentContext,
    if_match: IfMatch,
    response: Response,
) -> Any:
    team = await teams.update_member(
        ctx=ctx,
        team_id=id,
        user_id=user_id,
        role=body.role,
        status=body.status,
        expected_version=if_match,
    )
    set_etag(response, team.version)
    return to_team_read(team)


@router.delete(
    "/{id}/members/{user_id}",
    response_model=TeamRead,
    summary=f"Remove a member ({_MANAGERS}), or leave the team yourself",
)
async def remove_member(
    id: UUID, user_id: UUID, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    team = await teams.remove_member(
        ctx=ctx, team_id=id, user_id=user_id, expected_version=if_match
    )
    set_etag(response, team.version)
    return to_team_read(team)


# -- invitations ------------------------------------------------------------------------------


@router.post(
    "/{id}/invitations",
    status_code=status.HTTP_201_CREATED,
    response_model=InvitationCreated,
    summary=f"Invite an email to the team ({_MANAGERS}); the token is shown only here",
    responses={409: {"description": "Already a member, or a pending invitation exists"}},
)
async def invite(
    id: UUID,
    body: InvitationCreate,
    ctx: CurrentContext,
    settings: SettingsDep,
    request: Request,
    response: Response,
) -> Any:
    invitation, token = await invitations.invite(
        ctx=ctx,
        settings=settings,
        team_id=id,
        email=body.email,
        role=body.role,
        team_role=body.team_role,
    )
    set_etag(response, invitation.version)
    set_location(request, response, "revoke_invitation", id=invitation.id)
    return to_invitation_created(invitation, token)


@router.get(
    "/{id}/invitations",
    response_model=Page[InvitationRead],
    summary=f"The team's invitations, newest first ({_MANAGERS})",
)
async def list_invitations(
    id: UUID, ctx: CurrentContext, filters: Annotated[InvitationFilters, Query()]
) -> Any:
    page = await invitations.list_invitations(ctx=ctx, team_id=id, filters=filters)
    return page_response(page, Page[InvitationRead])


# DELETE /{id} (team owner or tenant admin; its invitations stop working), restore, history
# and versions, under the teams' policy (service/teams.py POLICY).
add_lifecycle_routes(
    router,
    model=Team,
    read_model=TeamRead,
    to_read=to_team_read,
    policy=teams.POLICY,
    archive=False,
    notes={
        "delete": "A team owner or a tenant admin; the team's invitations stop working.",
        "restore": "A team owner or a tenant admin.",
    },
)
