"""`shards`: the mongosh statements that shard the service's database as planned."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from service.cli.base import app, fail, load_settings, out
from service.sharding import shard_commands


@app.command()
def shards(
    database: Annotated[
        str | None, typer.Option(help="Database name (default: MONGODB_DB).", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
) -> None:
    """Print the statements that shard the database (run them in mongosh on a mongos).

    The plan is service/sharding.py (docs/deployment.md explains it); run as a user with the
    clusterManager role. Nothing is sent to a server by this command.
    """
    try:
        commands = shard_commands(database or load_settings().mongodb_db)
    except ValueError as exc:
        fail(str(exc))
    out().out(json.dumps(commands, indent=2) if as_json else "\n".join(commands))


__all__ = ["shards"]
