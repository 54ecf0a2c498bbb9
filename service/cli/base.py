"""What every command shares: the Typer app, the consoles, settings, the database and progress.

Output rules: results go to stdout (plain text, tables, or JSON that `json.loads` reads when a
command offers `--json`); progress bars, warnings and errors go to stderr, so a command's
stdout can be piped. Exit status: 0 done, 1 done but some items failed (say which), 2 the
command could not run (bad arguments, the database busy or unreachable).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from service.settings import Settings

T = TypeVar("T")

app = typer.Typer(
    name="python -m service.cli",
    help="Operator commands of the Lead Ignite data service.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",  # docstrings and help are Markdown: wrapped lines join
    pretty_exceptions_show_locals=False,  # locals may hold secrets and personal data
)


def out() -> Console:
    """The console for results (stdout), bound to the stream current at the call."""
    return Console(highlight=False, soft_wrap=True)


def err() -> Console:
    """The console for progress, warnings and errors (stderr)."""
    return Console(stderr=True, highlight=False)


def fail(message: str, code: int = 2) -> NoReturn:
    """Print `message` as an error on stderr and exit with `code`."""
    err().print(f"[bold red]error:[/] {message}")
    raise typer.Exit(code)


@contextmanager
def _quiet(logger: str) -> Iterator[None]:
    target = logging.getLogger(logger)
    saved = target.level
    target.setLevel(logging.ERROR)
    try:
        yield
    finally:
        target.setLevel(saved)


def load_settings() -> Settings:
    """The service's settings, without the server's warnings about generated secrets.

    JWT_SECRET and FERNET_KEY only matter to a server (tokens, stored credentials); the
    commands here issue no token and decrypt nothing. A command that does must check that
    FERNET_KEY is set rather than run with a generated key.
    """
    with _quiet("service.settings"):
        return Settings()


def run_with_database(work: Callable[[], Awaitable[T]]) -> T:
    """Connect (MONGODB_URL, else the embedded file), bind the documents, run `work`, close.

    The embedded file has one owner at a time: while a server runs on it this exits 2 with
    the owner's pid instead of working on other data.
    """
    from service.database import connect, init_models
    from service.embedded import EmbeddedDataError

    async def session() -> T:
        try:
            database = connect(load_settings())
        except EmbeddedDataError as exc:  # another process owns the file, or it is unusable
            fail(str(exc))
        try:
            await init_models(database.db)
            return await work()
        finally:
            await database.close()  # the embedded database saves what the command changed

    return asyncio.run(session())


class Steps:
    """A progress bar on stderr: `advance(n)` as work is done, `describe(text)` per phase."""

    def __init__(self, progress: Progress, task: TaskID) -> None:
        self._progress, self._task = progress, task

    def advance(self, n: int = 1) -> None:
        """Count `n` more units done."""
        self._progress.advance(self._task, n)

    def describe(self, text: str) -> None:
        """Say what is being worked on now."""
        self._progress.update(self._task, description=text)


@contextmanager
def progress(description: str, total: int | None, unit: str = "") -> Iterator[Steps]:
    """A Rich progress bar (stderr) for `total` units; on a non-terminal only the final line."""
    columns: list[Any] = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err()) as bar:
        yield Steps(bar, bar.add_task(description, total=total))


__all__ = ["Steps", "app", "err", "fail", "load_settings", "out", "progress", "run_with_database"]
