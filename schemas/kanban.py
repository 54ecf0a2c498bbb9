"""API shapes of the caller's kanban board: states, tasks, moves and the whole board."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

from pydantic import BaseModel, Field

from documents.base import Name, Tag, UTCDateTime
from documents.kanban import (
    MAX_KANBAN_STATES,
    MAX_KANBAN_TASKS,
    Color,
    Description,
    GlobalKanban,
)
from schemas.common import IgnoreTenantId, PatchBody, ReadView, ResourceRead

StatePosition = Annotated[int, Field(ge=0, le=MAX_KANBAN_STATES)]
TaskPosition = Annotated[int, Field(ge=0, le=MAX_KANBAN_TASKS)]
Tags = Annotated[list[Tag], Field(max_length=20)]


class KanbanStateCreate(IgnoreTenantId):
    """`POST /v1/kanban/states`: a new column, at `position` (default: last)."""

    name: Name
    color: Color | None = None
    position: StatePosition | None = Field(
        default=None, description="0-based; beyond the end means last."
    )


class KanbanStateUpdate(PatchBody):
    """`PATCH /v1/kanban/states/{id}`: rename, recolour or reorder a column."""

    nullable = frozenset({"color"})

    name: Name | None = None
    color: Color | None = None
    position: StatePosition | None = None


class KanbanTaskCreate(IgnoreTenantId):
    """`POST /v1/kanban/tasks`: a new card in `state_id`, at `position` (default: last)."""

    title: Name
    state_id: UUID
    description: Description | None = None
    due_at: UTCDateTime | None = None
    tags: Tags = Field(default_factory=list)
    position: TaskPosition | None = Field(
        default=None, description="0-based; beyond the end means last."
    )


class KanbanTaskUpdate(PatchBody):
    """`PATCH /v1/kanban/tasks/{id}`: change a card's content (moving is `/move`)."""

    nullable = frozenset({"description", "due_at"})

    title: Name | None = None
    description: Description | None = None
    due_at: UTCDateTime | None = None
    tags: Tags | None = None


class KanbanMove(IgnoreTenantId):
    """`POST /v1/kanban/tasks/{id}/move`: the target state and 0-based position in it.

    A position beyond the end of the target state puts the task last.
    """

    state_id: UUID
    position: TaskPosition


class KanbanStateRead(BaseModel):
    """A column."""

    id: UUID
    name: str
    position: int
    color: str | None
    created_at: datetime


class KanbanTaskRead(BaseModel):
    """A card."""

    id: UUID
    title: str
    description: str | None
    state_id: UUID
    position: int
    due_at: datetime | None
    tags: list[str]
    created_at: datetime


KANBAN_STATE_VIEW: ReadView[KanbanStateRead] = ReadView(KanbanStateRead)
"""A stored column → `KanbanStateRead`."""
KANBAN_TASK_VIEW: ReadView[KanbanTaskRead] = ReadView(KanbanTaskRead)
"""A stored card → `KanbanTaskRead`."""


class KanbanBoardRead(ResourceRead):
    """The caller's board: states in order, tasks by state order then position."""

    user_id: UUID
    states: list[KanbanStateRead]
    tasks: list[KanbanTaskRead]


def to_kanban_board_read(doc: GlobalKanban) -> KanbanBoardRead:
    """The response shape of a stored board."""
    return KanbanBoardRead(
        **doc.model_dump(include=set(ResourceRead.model_fields)),
        user_id=doc.user_id,
        states=[KANBAN_STATE_VIEW.document(s) for s in doc.ordered_states()],
        tasks=[KANBAN_TASK_VIEW.document(t) for t in doc.ordered_tasks()],
    )
