"""`rebuild`, `project` and `repair`: the read models and the journal, from the command line."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from documents import AGGREGATE_ROOTS
from service import projections
from service.cli.base import app, out, progress, run_with_database
from service.leads import claims as lead_claims

_NAMES = list(projections.PROJECTORS)
ReadModel = StrEnum("ReadModel", {n: n for n in ["all", *_NAMES]})  # type: ignore[misc]
ProjectorName = StrEnum("ProjectorName", {n: n for n in _NAMES})  # type: ignore[misc]
_LISTED = ", ".join(_NAMES)


async def rebuild_read_models(names: list[str]) -> dict[str, int]:
    """Drop and recompute each read model in `names`; returns the rows each now has."""
    rows: dict[str, int] = {}
    with progress("rebuild", len(names), "read models") as steps:
        for name in names:
            steps.describe(f"rebuild {name}")
            rows[name] = await projections.rebuild(name)
            steps.advance()
        steps.describe("rebuild")
    return rows


async def repair_journal() -> int:
    """Flush crashed journal outboxes of every aggregate root; returns the events flushed.

    One root at a time (for progress). The flushed events get the journal's next positions
    (service/feeds/sequencer.py), so projectors and feed consumers pick them up without a rewind.
    """
    repaired = 0
    with progress("repair", len(AGGREGATE_ROOTS), "collections") as steps:
        for model in AGGREGATE_ROOTS:
            steps.describe(f"repair {model.get_collection_name()}")
            repaired += await projections.repair([model])
            steps.advance()
        steps.describe("repair")
    return repaired


@app.command(help=f"Drop read models and recompute them from their sources. NAMES: all, {_LISTED}.")
def rebuild(
    names: Annotated[list[ReadModel], typer.Argument(help="Read models, or `all`.")],
) -> None:
    """Drop read models and recompute them from their sources."""
    given = list(dict.fromkeys(n.value for n in names))
    chosen = _NAMES if "all" in given else given
    rows = run_with_database(lambda: rebuild_read_models(chosen))
    for name, count in rows.items():
        out().out(f"{name}: {count} rows")


@app.command(help=f"Catch projectors up from their checkpoints (default: all). NAMES: {_LISTED}.")
def project(
    names: Annotated[
        list[ProjectorName] | None, typer.Argument(help="Projectors (default: all).")
    ] = None,
) -> None:
    """Catch projectors up from their checkpoints."""
    chosen = [n.value for n in names] if names else None
    applied = run_with_database(lambda: projections.catch_up(chosen))
    for name, seen in applied.items():
        out().out(f"{name}: {seen} feed rows applied")


@app.command()
def repair() -> None:
    """Flush journal outboxes left by a crash (the background worker also does, periodically).

    Then delete stale lead claims (service/leads/claims.py): claims a crash left naming a lead
    that does not hold their value live, older than the grace period.
    """

    async def both() -> tuple[int, lead_claims.ClaimsReport]:
        return await repair_journal(), await lead_claims.sweep_stale()

    repaired, swept = run_with_database(both)
    out().out(f"journal repair: {repaired} pending event(s) flushed")
    out().out(f"lead claims: {swept.changed} stale claim(s) of {swept.examined} removed")


__all__ = ["project", "rebuild", "rebuild_read_models", "repair", "repair_journal"]
