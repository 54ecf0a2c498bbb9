"""`indexes`: the database's indexes compared with the declared ones, reconciled on request."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from documents import ALL_DOCUMENTS
from service.cli.base import app, err, out, run_on_database
from service.indexes import IndexReport, reconcile


def _differs(report: IndexReport) -> bool:
    """Whether start-up would change something (undeclared indexes are never changed)."""
    return any(report.rebuilt.values()) or any(report.missing.values())


async def compare(db: Any) -> IndexReport:
    """The comparison alone: nothing is dropped or built."""
    return await reconcile(db, ALL_DOCUMENTS, apply=False)


async def apply_as_startup(db: Any) -> tuple[IndexReport, IndexReport]:
    """What start-up does (rebuild conflicting, build missing); the reports before and after."""
    from service.database import init_models

    before = await compare(db)
    await init_models(db)
    return before, await compare(db)


def _lines(report: IndexReport, applied: bool) -> list[str]:
    labels = (
        ("rebuilt", "dropped and rebuilt as declared" if applied else "would rebuild (changed)"),
        ("missing", "built" if applied else "missing (declared, not built)"),
        ("undeclared", "undeclared (kept, never dropped)"),
    )
    lines = []
    for collection in sorted({*report.rebuilt, *report.missing, *report.undeclared}):
        for kind, label in labels:
            names = getattr(report, kind).get(collection)
            if names:
                lines.append(f"{collection}: {label}: {', '.join(names)}")
    return lines


def _count(found: dict[str, list[str]]) -> int:
    return sum(len(names) for names in found.values())


@app.command("indexes")
def indexes_command(
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Do what start-up does: drop and rebuild conflicting indexes, build missing ones.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compare the database's indexes with the ones the documents declare.

    Reports indexes declared but missing, indexes whose definition differs from the
    declaration (start-up drops and rebuilds them) and undeclared ones, e.g. an operator's
    own (never dropped). Without `--apply` nothing changes. Exit status: 0 when the indexes
    are as declared, 1 when start-up would change something (without `--apply`; for deploy
    checks) or something is still different after `--apply`; undeclared indexes alone do not
    count.
    """
    if apply:
        report, after = run_on_database(apply_as_startup)
        remaining = _differs(after)
    else:
        report = after = run_on_database(compare)
        remaining = _differs(report)
    if as_json:
        body = {
            "applied": apply,
            "clean": not remaining,
            **{
                kind: {c: n for c, n in getattr(report, kind).items() if n}
                for kind in ("rebuilt", "missing", "undeclared")
            },
        }
        out().out(json.dumps(body, indent=2))
    else:
        lines = _lines(report, applied=apply)
        rebuilt, missing = _count(report.rebuilt), _count(report.missing)
        undeclared = _count(report.undeclared)
        if apply:
            summary = f"indexes: {rebuilt} rebuilt, {missing} built, {undeclared} undeclared kept"
        elif remaining:
            summary = (
                f"indexes: {rebuilt} to rebuild, {missing} missing, {undeclared} undeclared "
                "(kept); `indexes --apply` or a start of the service reconciles them"
            )
        else:
            summary = f"indexes: as declared ({undeclared} undeclared, kept)"
        out().out("\n".join([*lines, summary]))
    if apply and remaining:
        err().print("[bold red]error:[/] still different after reconciling:")
        for line in _lines(after, applied=False):
            err().print(f"  {line}")
    if remaining:
        raise typer.Exit(1)


__all__ = ["apply_as_startup", "compare", "indexes_command"]
