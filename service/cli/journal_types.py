"""`retype-journal`: journal values stored as JSON strings rewritten with their BSON types."""

from __future__ import annotations

from typing import Annotated

import typer

from service.cli.base import app, out, run_with_database
from service.core.journal import retype_journal


@app.command("retype-journal")
def retype_journal_command(
    batch_size: Annotated[
        int, typer.Option(min=1, max=10_000, help="Journal entries read per round trip.")
    ] = 500,
) -> None:
    """Store journal values with their BSON types (dates as dates, ids as UUIDs).

    Entries written before the journal stored typed values hold JSON strings; this rewrites
    their `changes` in place (nothing else), idempotent and resumable, safe next to running
    servers. Prints how many entries were read and how many were rewritten.
    """

    async def work() -> tuple[int, int]:
        return await retype_journal(batch_size=batch_size)

    seen, changed = run_with_database(work)
    out().out(f"journal: {seen} entries read, {changed} rewritten with BSON types")


__all__ = ["retype_journal_command"]
