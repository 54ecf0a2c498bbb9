"""`views`: the analysts' read-only views and the least-privilege `analyst` role."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from pymongo.errors import OperationFailure

from service.analyst_views import ViewsUnsupported, apply_views, mongosh_commands
from service.cli.base import app, err, fail, load_settings, out, run_on_database
from service.database import kind_of


@app.command("views")
def views_command(
    apply: Annotated[
        bool,
        typer.Option(
            "--apply",
            help="Create the views on the configured MongoDB (needs dbAdmin) instead of "
            "printing the commands; the role and user are always created by hand.",
        ),
    ] = False,
) -> None:
    """Print the mongosh commands creating the analyst views and role, or create the views.

    The views (`analyst_leads`, `analyst_events`, `analyst_campaigns`,
    `analyst_campaign_members`, `analyst_users`, `analyst_journal`) leave out secrets,
    hashes, encrypted fields, search text and people's personal data
    (service/analyst_views.py). The embedded backend has no views: `--apply` refuses there.
    """
    settings = load_settings()
    if not apply:
        out().out(mongosh_commands(settings.mongodb_db))
        err().print(
            f"paste into mongosh on database {settings.mongodb_db!r} as a user with dbAdmin "
            "and userAdmin, or run with --apply to create the views only"
        )
        return

    async def work(db: Any) -> list[str]:
        try:
            return await apply_views(db, kind=kind_of(db))
        except ViewsUnsupported as exc:
            fail(str(exc))
        except OperationFailure as exc:
            fail(f"MongoDB refused to create a view ({exc.code}): {exc}. It needs dbAdmin.")

    for name in run_on_database(work):
        out().out(f"{name}: view created")


__all__ = ["views_command"]
