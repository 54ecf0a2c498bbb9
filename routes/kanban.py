"""The caller's kanban board: `/v1/kanban` (board, states, tasks, moves).

Every answer carries the board's `ETag`; every change accepts `If-Match` with the board version.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, Request, Response, status

from routes.deps import CurrentContext, IfMatch, set_etag, set_location
from schemas.kanban import (
    KANBAN_STATE_VIEW,
    KANBAN_TASK_VIEW,
    KanbanBoardRead,
    KanbanMove,
    KanbanStateCreate,
    KanbanStateRead,
    KanbanStateUpdate,
    KanbanTaskCreate,
    KanbanTaskRead,
    KanbanTaskUpdate,
    to_kanban_board_read,
)
from service import kanban

router = APIRouter(prefix="/kanban", tags=["kanban"])


def _no_content(version: int) -> Response:
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    set_etag(response, version)
    return response


@router.get("", response_model=KanbanBoardRead)
async def get_board(ctx: CurrentContext, response: Response) -> Any:
    """The caller's board `{"states", "tasks"}` (created empty on first access)."""
    board = await kanban.get_board(ctx=ctx)
    set_etag(response, board.version)
    return to_kanban_board_read(board)


@router.post("/states", response_model=KanbanStateRead, status_code=status.HTTP_201_CREATED)
async def add_state(
    body: KanbanStateCreate,
    ctx: CurrentContext,
    if_match: IfMatch,
    request: Request,
    response: Response,
) -> Any:
    """Add a state (column); 409 when the board already has the most states it may hold."""
    board, state = await kanban.add_state(ctx=ctx, data=body, expected_version=if_match)
    set_etag(response, board.version)
    set_location(request, response, "update_state", state_id=state.id)
    return KANBAN_STATE_VIEW.document(state)


@router.patch("/states/{state_id}", response_model=KanbanStateRead)
async def update_state(
    state_id: UUID,
    body: KanbanStateUpdate,
    ctx: CurrentContext,
    if_match: IfMatch,
    response: Response,
) -> Any:
    """Rename, recolour or reorder a state."""
    board, state = await kanban.update_state(
        ctx=ctx, state_id=state_id, patch=body, expected_version=if_match
    )
    set_etag(response, board.version)
    return KANBAN_STATE_VIEW.document(state)


@router.delete("/states/{state_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_state(state_id: UUID, ctx: CurrentContext, if_match: IfMatch) -> Response:
    """Remove a state; 409 while it still has tasks (they are never moved implicitly)."""
    board = await kanban.delete_state(ctx=ctx, state_id=state_id, expected_version=if_match)
    return _no_content(board.version)


@router.post("/tasks", response_model=KanbanTaskRead, status_code=status.HTTP_201_CREATED)
async def add_task(
    body: KanbanTaskCreate,
    ctx: CurrentContext,
    if_match: IfMatch,
    request: Request,
    response: Response,
) -> Any:
    """Add a task to a state (422 for a state not on the board; 409 when the board is full)."""
    board, task = await kanban.add_task(ctx=ctx, data=body, expected_version=if_match)
    set_etag(response, board.version)
    set_location(request, response, "update_task", task_id=task.id)
    return KANBAN_TASK_VIEW.document(task)


@router.patch("/tasks/{task_id}", response_model=KanbanTaskRead)
async def update_task(
    task_id: UUID,
    body: KanbanTaskUpdate,
    ctx: CurrentContext,
    if_match: IfMatch,
    response: Response,
) -> Any:
    """Change a task's title, description, due date or tags."""
    board, task = await kanban.update_task(
        ctx=ctx, task_id=task_id, patch=body, expected_version=if_match
    )
    set_etag(response, board.version)
    return KANBAN_TASK_VIEW.document(task)


@router.post("/tasks/{task_id}/move", response_model=KanbanBoardRead)
async def move_task(
    task_id: UUID, body: KanbanMove, ctx: CurrentContext, if_match: IfMatch, response: Response
) -> Any:
    """Move a task to `position` in `state_id`; answers the whole board with its new order."""
    board = await kanban.move_task(ctx=ctx, task_id=task_id, move=body, expected_version=if_match)
    set_etag(response, board.version)
    return to_kanban_board_read(board)


@router.delete("/tasks/{task_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_task(task_id: UUID, ctx: CurrentContext, if_match: IfMatch) -> Response:
    """Remove a task; the rest of its state closes up."""
    board = await kanban.delete_task(ctx=ctx, task_id=task_id, expected_version=if_match)
    return _no_content(board.version)
