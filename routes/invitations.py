"""Redeeming and revoking invitations (created under `/v1/teams/{id}/invitations`)."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Path, Response, status

from routes.deps import CurrentContext, IfMatch, SettingsDep, set_etag
from schemas.teams import TeamRead, to_team_read
from service import invitations

router = APIRouter(prefix="/invitations", tags=["teams"])

Token = Annotated[str, Path(min_length=16, max_length=128, pattern=r"^[A-Za-z0-9_-]+$")]


@router.post(
    "/{token}/accept",
    response_model=TeamRead,
    summary="Accept an invitation as a user of its tenant: join the team (200 with the team)",
    responses={
        403: {"description": "The invitation was sent to another email address"},
        404: {"description": "No such invitation in the caller's tenant"},
        409: {"description": "The invitation was already used, or already a member"},
        410: {"description": "The invitation expired or was revoked, or its team is gone"},
        429: {"description": "Too many unknown tokens from this user; see Retry-After"},
    },
)
async def accept_invitation(
    token: Token, ctx: CurrentContext, settings: SettingsDep, response: Response
) -> Any:
    team = await invitations.accept_invitation(ctx=ctx, settings=settings, token=token)
    set_etag(response, team.version)
    return to_team_read(team)


@router.delete(
    "/{id}",
    status_code=status.HTTP_204_NO_CONTENT,
    summary="Revoke an invitation (team owner/admin or tenant admin); its token stops working",
    responses={409: {"description": "The invitation was already accepted"}},
)
async def revoke_invitation(id: UUID, ctx: CurrentContext, if_match: IfMatch) -> Response:
    await invitations.revoke_invitation(ctx=ctx, id=id, expected_version=if_match)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
