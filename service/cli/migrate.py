"""`migrate`: rewrite stored documents in their current shape (service/storage/migrations.py)."""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Annotated, Any

import typer
from beanie import Document

from documents.migrations import current_schema_version
from service import campaigns  # noqa: F401 - registers its backfill step
from service.cli.base import Steps, app, out, progress, run_with_database
from service.leads.claims import ClaimsReport  # importing it registers the claims backfill
from service.storage.migrations import (
    DEFAULT_BATCH_SIZE,
    MigrationReport,
    migrate,
    versioned_models,
)

# By collection name (`Settings.name`: known before the documents are bound).
MODELS: dict[str, type[Document]] = {str(m.Settings.name): m for m in versioned_models()}
Collection = StrEnum("Collection", {n: n for n in MODELS})  # type: ignore[misc]


async def run_migration(
    models: list[type[Document]], batch_size: int, dry_run: bool
) -> MigrationReport:
    """`migrate` with a progress bar per collection that has older shapes (stderr)."""
    upgradable = [m for m in models if current_schema_version(m) > 1]
    bars: dict[str, Steps] = {}
    verb = "check" if dry_run else "migrate"
    with progress(verb, len(upgradable), "collections") as steps:

        def report(collection: str, done: int, total: int) -> None:
            bar = bars.get(collection)
            if bar is None:
                steps.done(len(bars))  # the previous collections are finished
                bar = bars[collection] = steps.another(f"  {collection}", total, "documents")
            bar.done(done, total)

        result = await migrate(
            models=models, batch_size=batch_size, progress=report, dry_run=dry_run
        )
        steps.done(len(upgradable))
    return result


def _as_json(report: MigrationReport, dry_run: bool) -> dict[str, Any]:
    claims = report.backfills.get("lead_claims")
    return {
        "dry_run": dry_run,
        "lead_claims": None if claims is None else vars(claims),
        "migrated": report.migrated,
        "failed": report.failed,
        "collections": [
            {
                "collection": c.collection,
                "schema_version": c.schema_version,
                "pending": c.pending,
                "migrated": c.migrated,
                "skipped": c.skipped,
                "failed": [{"id": i, "error": e} for i, e in c.failed],
            }
            for c in report.collections
        ],
    }


def _summary(report: MigrationReport, dry_run: bool) -> list[str]:
    lines: list[str] = []
    current: list[str] = []
    for c in report.collections:
        if c.schema_version == 1:  # no older shape exists: nothing to look at
            current.append(c.collection)
            continue
        head = f"{c.collection} (schema_version {c.schema_version}): {c.pending} pending"
        if dry_run:
            would = c.pending - len(c.failed)
            lines.append(f"{head}, {would} would migrate, {len(c.failed)} would fail")
        else:
            lines.append(
                f"{head}, {c.migrated} migrated, {c.skipped} skipped, {len(c.failed)} failed"
            )
        lines.extend(f"  failed {doc_id}: {error}" for doc_id, error in c.failed)
    if current:
        lines.append(f"single-shape collections, nothing to migrate: {', '.join(current)}")
    if isinstance(claims := report.backfills.get("lead_claims"), ClaimsReport):
        lines.append(
            f"lead claims: {claims.examined} live lead(s) with keys, {claims.changed} claim(s) "
            f"created, {claims.clashes} lead(s) clashing with another's claim"
        )
    if dry_run:
        lines.append(f"dry run: nothing written; {report.failed} document(s) would fail")
    else:
        skipped = sum(c.skipped for c in report.collections)
        lines.append(
            f"migrated {report.migrated}, skipped {skipped}, failed {report.failed}"
            + (" (skipped ones changed meanwhile: run migrate again)" if skipped else "")
        )
    return lines


@app.command("migrate")
def migrate_command(
    collections: Annotated[
        list[Collection] | None,
        typer.Option(
            "--collection",
            help="Only this collection (repeatable; default: every versioned collection).",
            show_default=False,
        ),
    ] = None,
    batch_size: Annotated[
        int, typer.Option(min=1, help="Documents read and rewritten per round trip.")
    ] = DEFAULT_BATCH_SIZE,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Count and validate the pending documents, write nothing."),
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Rewrite documents stored in an older shape in their current one.

    Safe next to live writers and resumable (run it again after a crash); nothing is
    journaled and no `version` changes (docs/architecture.md, "Migrations").

    Prints per collection the documents pending, migrated, skipped (changed meanwhile by a
    live writer: the next run takes them) and failed (id and first error; left as they are).
    Exit status 1 when any document failed (or, with `--dry-run`, would fail).
    """
    names = list(dict.fromkeys(c.value for c in collections)) if collections else list(MODELS)
    models = [MODELS[name] for name in names]
    report = run_with_database(lambda: run_migration(models, batch_size, dry_run))
    if as_json:
        out().out(json.dumps(_as_json(report, dry_run), indent=2))
    else:
        out().out("\n".join(_summary(report, dry_run)))
    if report.failed:
        raise typer.Exit(1)


__all__ = ["MODELS", "migrate_command", "run_migration"]
