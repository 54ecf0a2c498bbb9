"""Kanban: one board per user in `kanban_boards`, holding its ordered states and tasks.

Why embedded: a board is read whole (`GET /v1/kanban`) and every change (add, move, reorder)
touches several tasks' positions at once; keeping them in one document makes each change one
atomic, versioned, journaled update, with no cross-document consistency to repair. The board is
bounded (`MAX_KANBAN_STATES`, `MAX_KANBAN_TASKS`; adding beyond them is a 409).

States and tasks are stored as maps keyed by their id, not as arrays: the journal diffs nested
mappings field by field, so moving a task records only the `position`/`state_id` fields that
changed instead of two copies of the whole task list. Order is the explicit `position` (dense,
0..n-1 per state), which the validator below enforces.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, ClassVar
from uuid import UUID

from pydantic import Field, StringConstraints, model_validator
from pymongo import IndexModel
from uuid6 import uuid7

from documents.base import Name, RootDocument, SubDocument, Tag, UTCDateTime, utcnow

MAX_KANBAN_STATES = 30
MAX_KANBAN_TASKS = 500

Color = Annotated[str, StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$")]
Description = Annotated[str, StringConstraints(max_length=5000)]


class KanbanState(SubDocument):
    """A column of the board."""

    id: UUID = Field(default_factory=uuid7)
    name: Name
    position: int = Field(ge=0)
    color: Color | None = None
    created_at: UTCDateTime = Field(default_factory=utcnow)


class KanbanTask(SubDocument):
    """A card in one state; `position` is its 0-based rank within that state."""

    id: UUID = Field(default_factory=uuid7)
    title: Name
    description: Description | None = None
    state_id: UUID
    position: int = Field(ge=0)
    due_at: UTCDateTime | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=20)
    created_at: UTCDateTime = Field(default_factory=utcnow)


def _dense(positions: list[int]) -> bool:
    return sorted(positions) == list(range(len(positions)))


class GlobalKanban(RootDocument):
    """A user's board: states and tasks keyed by id, ordered by `position`."""

    aggregate_type: ClassVar[str] = "kanban_board"

    user_id: UUID
    states: dict[str, KanbanState] = Field(default_factory=dict, max_length=MAX_KANBAN_STATES)
    tasks: dict[str, KanbanTask] = Field(default_factory=dict, max_length=MAX_KANBAN_TASKS)

    @model_validator(mode="after")
    def _ordered(self) -> GlobalKanban:
        # The invariants every change must keep; a service bug cannot store a broken board.
        if any(key != str(state.id) for key, state in self.states.items()):
            raise ValueError("states must be keyed by their id")
        if any(key != str(task.id) for key, task in self.tasks.items()):
            raise ValueError("tasks must be keyed by their id")
        if not _dense([s.position for s in self.states.values()]):
            raise ValueError("state positions must be 0..n-1")
        by_state: dict[str, list[int]] = defaultdict(list)
        for task in self.tasks.values():
            if str(task.state_id) not in self.states:
                raise ValueError(f"task {task.id} is in an unknown state")
            by_state[str(task.state_id)].append(task.position)
        if not all(_dense(p) for p in by_state.values()):
            raise ValueError("task positions must be 0..n-1 within each state")
        return self

    def ordered_states(self) -> list[KanbanState]:
        """States in board order."""
        return sorted(self.states.values(), key=lambda s: s.position)

    def ordered_tasks(self) -> list[KanbanTask]:
        """Tasks in board order: by their state's position, then their own."""
        rank = {str(s.id): s.position for s in self.states.values()}
        return sorted(self.tasks.values(), key=lambda t: (rank[str(t.state_id)], t.position))

    def tasks_in(self, state_id: UUID) -> list[KanbanTask]:
        """The tasks of one state, in order."""
        return sorted(
            (t for t in self.tasks.values() if t.state_id == state_id), key=lambda t: t.position
        )

    class Settings:
        name = "kanban_boards"
        indexes = [
            # One board per user; also the path `GET /v1/kanban` reads by.
            IndexModel([("tenant_id", 1), ("user_id", 1)], unique=True, name="tenant_user_unique"),
        ]
