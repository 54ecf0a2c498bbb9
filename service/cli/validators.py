"""`validators`: the collections' `$jsonSchema` validators, printed or installed."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pymongo.errors import OperationFailure

from service.cli.base import app, err, fail, load_settings, out, run_on_database
from service.storage.validators import ValidationAction, apply_validators, mongosh_commands


@app.command("validators")
def validators_command(
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Install them on the configured database (needs the dbAdmin role) "
            "instead of printing them.",
        ),
    ] = False,
    action: Annotated[
        ValidationAction | None,
        typer.Option(
            help="What MongoDB does with a write that fails the validator: `error` refuses it, "
            "`warn` logs it (default: VALIDATION_ACTION).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Print the `collMod` commands installing the `$jsonSchema` validators, or install them.

    The validators are generated from the documents (service/storage/validators.py) with
    `validationLevel: "moderate"`. Without `--apply` nothing is sent to a server: paste the
    output into mongosh on the service's database as a user with dbAdmin.
    """
    settings = load_settings()
    chosen: ValidationAction = action or settings.validation_action
    if not apply:
        out().out(mongosh_commands(action=chosen))
        err().print(
            f"paste into mongosh on database {settings.mongodb_db!r} "
            f"(`use {settings.mongodb_db}`) as a user with dbAdmin, or run with --apply"
        )
        return

    async def work(db: Any) -> list[str]:
        try:
            return await apply_validators(db, action=chosen)
        except OperationFailure as exc:  # typically Unauthorized: the service's user lacks it
            fail(
                f"MongoDB refused collMod ({exc.code}): {exc}. Installing validators needs the "
                "dbAdmin role on the database (the service's own user has readWrite only); "
                "validators installed before the refusal stay installed."
            )

    applied = run_on_database(work)
    for name in applied:
        out().out(
            f"{name}: validator applied (validationLevel moderate, validationAction {chosen})"
        )
    out().out(f"{len(applied)} collection(s): validators applied with validationAction {chosen}")


__all__ = ["validators_command"]
