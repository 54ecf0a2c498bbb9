"""`indexes`: the database's indexes compared with the declared ones, changed on request."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from documents import ALL_DOCUMENTS
from service.cli.base import app, err, load_settings, out, run_on_database
from service.database import init_models
from service.storage.indexes import IndexReport, apply_changes
from service.storage.indexes import compare as compare_indexes


def _differs(report: IndexReport) -> bool:
    """Whether `--apply` would change something (undeclared indexes are never changed)."""
    return any(report.changed.values()) or any(report.missing.values())


async def compare(db: Any) -> IndexReport:
    """The comparison alone: nothing is dropped or built."""
    return await compare_indexes(db, ALL_DOCUMENTS)


async def apply(db: Any) -> tuple[IndexReport, IndexReport, list[str]]:
    """Change every changed index without a gap, build missing ones; before, after, steps."""
    steps: list[str] = []

    async def step(collection: str, what: str) -> None:
        steps.append(f"{collection}: {what}")

    seconds = load_settings().index_build_timeout_ms / 1000
    before = await apply_changes(db, ALL_DOCUMENTS, step=step, build_seconds=seconds)
    await init_models(db)  # the shared mechanisms' indexes (outbox, feeds)
    return before, await compare(db), steps


def _lines(report: IndexReport) -> list[str]:
    labels = (
        ("changed", "changed (differs from its declaration)"),
        ("missing", "missing (declared, not built)"),
        ("undeclared", "undeclared (kept, never dropped)"),
    )
    lines = []
    for collection in sorted({*report.changed, *report.missing, *report.undeclared}):
        for kind, label in labels:
            names = getattr(report, kind).get(collection)
            if names:
                lines.append(f"{collection}: {label}: {', '.join(names)}")
    return lines


def _count(found: dict[str, list[str]]) -> int:
    return sum(len(names) for names in found.values())


@app.command("indexes")
def indexes_command(
    apply_: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Change changed indexes without a gap (build, hide, drop) and build missing ones.",
        ),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Compare the database's indexes with the ones the documents declare.

    Reports indexes declared but missing, indexes whose definition differs from the
    declaration (start-up only reports them) and undeclared ones, e.g. an operator's own
    (never dropped). With `--apply`, each changed index is replaced without leaving its
    queries unserved: a serving index is built beside it first, the old one hidden, then
    dropped (service/storage/indexes.py). Exit status: 0 when the indexes are as declared, 1 when
    something differs (without `--apply`; for deploy checks) or still differs after
    `--apply`; undeclared indexes alone do not count.
    """
    steps: list[str] = []
    if apply_:
        report, after, steps = run_on_database(apply)
        remaining = _differs(after)
    else:
        report = after = run_on_database(compare)
        remaining = _differs(report)
    if as_json:
        body = {
            "applied": apply_,
            "clean": not remaining,
            **{
                kind: {c: n for c, n in getattr(report, kind).items() if n}
                for kind in ("changed", "missing", "undeclared")
            },
        }
        if apply_:
            body["steps"] = steps
        out().out(json.dumps(body, indent=2))
    else:
        changed, missing = _count(report.changed), _count(report.missing)
        undeclared = _count(report.undeclared)
        if apply_:
            summary = f"indexes: {changed} changed, {missing} built, {undeclared} undeclared kept"
            lines = [*_lines(report), *steps]
        elif remaining:
            lines = _lines(report)
            summary = (
                f"indexes: {changed} changed, {missing} missing, {undeclared} undeclared "
                "(kept); `indexes --apply` changes and builds them"
            )
        else:
            lines = _lines(report)
            summary = f"indexes: as declared ({undeclared} undeclared, kept)"
        out().out("\n".join([*lines, summary]))
    if apply_ and remaining:
        err().print("[bold red]error:[/] still different after applying:")
        for line in _lines(after):
            err().print(f"  {line}")
    if remaining:
        raise typer.Exit(1)


__all__ = ["apply", "compare", "indexes_command"]
