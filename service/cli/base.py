"""What every command shares: the Typer app, the consoles, settings, the database and progress.

Output rules: results go to stdout (plain text, tables, or JSON that `json.loads` reads when a
command offers `--json`); progress bars, warnings and errors go to stderr, so a command's
stdout can be piped. Exit status: 0 done, 1 done but some items failed (say which), 2 the
command could not run (bad arguments, the database busy or unreachable).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar
from uuid import UUID

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

from documents.tenant import Tenant
from service.auth import find_login_user
from service.core.context import RequestContext, Role
from service.core.repository import Repository, uuid_filter
from service.core.settings import Settings
from service.database import connect, init_models
from service.embedded import EmbeddedDataError

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
    with _quiet("service.core.settings"):
        # A throwaway JWT secret: none is needed, and none is created beside the data file.
        return Settings(jwt_secret=secrets.token_urlsafe(48))


async def tenant_of(ref: str) -> UUID:
    """`--tenant`: a tenant id as it is, or the e-mail of the tenant's owner looked up.

    An id is what API answers show; the owner's e-mail is what an operator usually knows.
    Exits 2 when no live user has that e-mail or the user owns no tenant.
    """
    try:
        return UUID(ref)
    except ValueError:
        pass
    if "@" not in ref:
        fail(f"--tenant takes a tenant id or its owner's e-mail; got {ref!r}.")
    user = await find_login_user(ref)
    if user is None:
        fail(f"no user with the e-mail {ref}.")
    system = RequestContext(tenant_id=user.tenant_id, actor_id=UUID(int=0), role=Role.owner)
    tenant = await Repository(Tenant, system).find_one({"_id": uuid_filter(user.tenant_id)})
    if tenant is None or tenant.owner_id != user.id:
        fail(f"{ref} is not the owner of a tenant (it belongs to tenant {user.tenant_id}).")
    return tenant.id


def run_with_database(work: Callable[[], Awaitable[T]]) -> T:
    """Connect (MONGODB_URL, else the embedded file), bind the documents, run `work`, close.

    Binding does what start-up does (service.database.init_models): conflicting index
    definitions are rebuilt and missing indexes built. The embedded file has one owner at a
    time: while a server runs on it this exits 2 with the owner's pid instead of working on
    other data.
    """
    return _session(lambda _db: work(), bind=True)


def run_on_database(work: Callable[[Any], Awaitable[T]]) -> T:
    """Connect, run `work(db)` on the database as it is (documents not bound), close.

    For commands that inspect or change the database itself (indexes, validators): binding
    would first rebuild and build indexes, which a compare-only run must not do.
    """
    return _session(work, bind=False)


def _session(work: Callable[[Any], Awaitable[T]], *, bind: bool) -> T:
    async def session() -> T:
        try:
            database = connect(load_settings())
        except EmbeddedDataError as exc:  # another process owns the file, or it is unusable
            fail(str(exc))
        try:
            if bind:
                await init_models(database.db)
            return await work(database.db)
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

    def done(self, completed: int, total: int | None = None) -> None:
        """Set the units done so far (and the total, when it is only known now)."""
        if total is not None:
            self._progress.update(self._task, total=total)
        self._progress.update(self._task, completed=completed)

    def another(self, description: str, total: int | None, unit: str = "") -> Steps:
        """A further bar below this one, for a phase with its own total (e.g. per collection)."""
        task = self._progress.add_task(description, total=total, unit=unit)
        return Steps(self._progress, task)


@contextmanager
def progress(description: str, total: int | None, unit: str = "") -> Iterator[Steps]:
    """A Rich progress bar (stderr) for `total` units; on a non-terminal only the final line."""
    columns: list[Any] = [
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),  # each bar counts its own units
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err()) as bar:
        yield Steps(bar, bar.add_task(description, total=total, unit=unit))


__all__ = [
    "Steps",
    "app",
    "err",
    "fail",
    "load_settings",
    "out",
    "progress",
    "run_on_database",
    "run_with_database",
]
