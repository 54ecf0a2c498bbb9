"""The caller's kanban board: one board per user, every change one versioned board update.

Rules: positions stay dense (0..n-1) and ordered among states and within each state after every
change; a position beyond the end means "last". Deleting a state that still has tasks is
refused with 409 (move or delete its tasks first) rather than moving them somewhere the user
did not choose. Boards are personal: any role may change its own board; API keys, having no
user, get 403. The board is provisioned empty on first access.
"""

from __future__ import annotations

from typing import TypeVar
from uuid import UUID

from pydantic import BaseModel
from pymongo.errors import DuplicateKeyError

from documents.kanban import (
    MAX_KANBAN_STATES,
    MAX_KANBAN_TASKS,
    GlobalKanban,
    KanbanState,
    KanbanTask,
)
from schemas.kanban import (
    KanbanMove,
    KanbanStateCreate,
    KanbanStateUpdate,
    KanbanTaskCreate,
    KanbanTaskUpdate,
)
from service.core.context import RequestContext, Role
from service.core.errors import Conflict, NotFound, Unprocessable
from service.core.policy import Action, ResourcePolicy, register_policy
from service.core.repository import Repository, uuid_filter

M = TypeVar("M", bound=BaseModel)

# A personal board: every role keeps their own (the board is looked up by the caller's id).
POLICY: ResourcePolicy[GlobalKanban] = register_policy(
    ResourcePolicy(model=GlobalKanban, roles=dict.fromkeys(Action, Role.viewer))
)


async def get_board(*, ctx: RequestContext) -> GlobalKanban:
    """The caller's board, created empty on first access."""
    user_id = ctx.require_user()
    repo = Repository(GlobalKanban, ctx)
    board = await repo.find_one({"user_id": uuid_filter(user_id)})
    if board is not None:
        return board
    try:
        return await repo.create(GlobalKanban(tenant_id=ctx.tenant_id, user_id=user_id))
    except DuplicateKeyError:  # a concurrent first access created it
        board = await repo.find_one({"user_id": uuid_filter(user_id)})
        assert board is not None
        return board


async def _save(
    ctx: RequestContext,
    board: GlobalKanban,
    *,
    states: list[KanbanState] | None = None,
    tasks: list[KanbanTask] | None = None,
    expected_version: int | None,
    event_type: str,
) -> GlobalKanban:
    POLICY.require(ctx, Action.update)
    changes = {}
    if states is not None:
        changes["states"] = {str(s.id): s.model_dump() for s in states}
    if tasks is not None:
        changes["tasks"] = {str(t.id): t.model_dump() for t in tasks}
    return await Repository(GlobalKanban, ctx).update(
        board, changes, expected_version=expected_version, event_type=event_type
    )


def _ranked(items: list[M]) -> list[M]:
    # Positions are the list order: dense from 0.
    return [item.model_copy(update={"position": i}) for i, item in enumerate(items)]


def _state(board: GlobalKanban, state_id: UUID, *, loc: str | None = None) -> KanbanState:
    state = board.states.get(str(state_id))
    if state is None:
        if loc:  # a reference in a body: the body is what is wrong
            raise Unprocessable("No such state on your board.", loc=["body", loc])
        raise NotFound(f"kanban state {state_id} not found")
    return state


def _task(board: GlobalKanban, task_id: UUID) -> KanbanTask:
    task = board.tasks.get(str(task_id))
    if task is None:
        raise NotFound(f"kanban task {task_id} not found")
    return task


def _insert(items: list[M], item: M, position: int | None) -> list[M]:
    at = len(items) if position is None else min(position, len(items))
    return [*items[:at], item, *items[at:]]


async def add_state(
    *, ctx: RequestContext, data: KanbanStateCreate, expected_version: int | None = None
) -> tuple[GlobalKanban, KanbanState]:
    """Add a column at `position` (last by default); 409 when the board has the most it may."""
    board = await get_board(ctx=ctx)
    if len(board.states) >= MAX_KANBAN_STATES:
        raise Conflict(f"A board holds at most {MAX_KANBAN_STATES} states.")
    state = KanbanState(name=data.name, color=data.color, position=0)
    states = _ranked(_insert(board.ordered_states(), state, data.position))
    board = await _save(
        ctx, board, states=states, expected_version=expected_version, event_type="state_added"
    )
    return board, board.states[str(state.id)]


async def update_state(
    *,
    ctx: RequestContext,
    state_id: UUID,
    patch: KanbanStateUpdate,
    expected_version: int | None = None,
) -> tuple[GlobalKanban, KanbanState]:
    """Rename, recolour or reorder a column."""
    board = await get_board(ctx=ctx)
    sent = patch.changes()
    state = _state(board, state_id).model_copy(
        update={k: v for k, v in sent.items() if k in ("name", "color")}
    )
    others = [s for s in board.ordered_states() if s.id != state_id]
    position = sent.get("position", state.position)
    states = _ranked(_insert(others, state, position))
    board = await _save(
        ctx, board, states=states, expected_version=expected_version, event_type="state_updated"
    )
    return board, board.states[str(state_id)]


async def delete_state(
    *, ctx: RequestContext, state_id: UUID, expected_version: int | None = None
) -> GlobalKanban:
    """Remove an empty column (409 while it holds tasks); the others close up."""
    board = await get_board(ctx=ctx)
    _state(board, state_id)
    holding = len(board.tasks_in(state_id))
    if holding:
        raise Conflict("The state still has tasks; move or delete them first.", task_count=holding)
    states = _ranked([s for s in board.ordered_states() if s.id != state_id])
    return await _save(
        ctx, board, states=states, expected_version=expected_version, event_type="state_removed"
    )


async def add_task(
    *, ctx: RequestContext, data: KanbanTaskCreate, expected_version: int | None = None
) -> tuple[GlobalKanban, KanbanTask]:
    """Add a card to a state at `position` (last by default); 422 for an unknown state."""
    board = await get_board(ctx=ctx)
    _state(board, data.state_id, loc="state_id")
    if len(board.tasks) >= MAX_KANBAN_TASKS:
        raise Conflict(f"A board holds at most {MAX_KANBAN_TASKS} tasks.")
    task = KanbanTask(
        title=data.title,
        state_id=data.state_id,
        description=data.description,
        due_at=data.due_at,
        tags=data.tags,
        position=0,
    )
    column = _ranked(_insert(board.tasks_in(data.state_id), task, data.position))
    others = [t for t in board.tasks.values() if t.state_id != data.state_id]
    board = await _save(
        ctx,
        board,
        tasks=[*others, *column],
        expected_version=expected_version,
        event_type="task_added",
    )
    return board, board.tasks[str(task.id)]


async def update_task(
    *,
    ctx: RequestContext,
    task_id: UUID,
    patch: KanbanTaskUpdate,
    expected_version: int | None = None,
) -> tuple[GlobalKanban, KanbanTask]:
    """Change a card's title, description, due date or tags."""
    board = await get_board(ctx=ctx)
    task = _task(board, task_id).model_copy(update=patch.changes())
    tasks = [task if t.id == task_id else t for t in board.tasks.values()]
    board = await _save(
        ctx, board, tasks=tasks, expected_version=expected_version, event_type="task_updated"
    )
    return board, board.tasks[str(task_id)]


async def move_task(
    *, ctx: RequestContext, task_id: UUID, move: KanbanMove, expected_version: int | None = None
) -> GlobalKanban:
    """Move a card to `position` in `state_id`; both states' positions stay dense and ordered."""
    board = await get_board(ctx=ctx)
    task = _task(board, task_id)
    _state(board, move.state_id, loc="state_id")
    source = [t for t in board.tasks_in(task.state_id) if t.id != task_id]
    moved = task.model_copy(update={"state_id": move.state_id})
    if move.state_id == task.state_id:
        touched = _ranked(_insert(source, moved, move.position))
    else:
        target = _ranked(_insert(board.tasks_in(move.state_id), moved, move.position))
        touched = [*_ranked(source), *target]
    ids = {t.id for t in touched}
    tasks = [*(t for t in board.tasks.values() if t.id not in ids), *touched]
    return await _save(
        ctx, board, tasks=tasks, expected_version=expected_version, event_type="task_moved"
    )


async def delete_task(
    *, ctx: RequestContext, task_id: UUID, expected_version: int | None = None
) -> GlobalKanban:
    """Remove a card (its data stays in the board's journal); its state closes up."""
    board = await get_board(ctx=ctx)
    task = _task(board, task_id)
    column = _ranked([t for t in board.tasks_in(task.state_id) if t.id != task_id])
    others = [t for t in board.tasks.values() if t.state_id != task.state_id]
    return await _save(
        ctx,
        board,
        tasks=[*others, *column],
        expected_version=expected_version,
        event_type="task_removed",
    )
