"""`shards`: the mongosh statements that shard the service's database as planned."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from service.cli.base import app, fail, load_settings, out
from service.storage.sharding import SHARD_PLAN, shard_commands


@app.command()
def shards(
    database: Annotated[
        str | None, typer.Option(help="Database name (default: MONGODB_DB).", show_default=False)
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON array.")] = False,
    plan: Annotated[
        bool, typer.Option("--plan", help="Print each collection's shard key and reason.")
    ] = False,
) -> None:
    """Print the statements that shard the database (run them in mongosh on a mongos).

    The plan is service/storage/sharding.py (docs/deployment.md explains it); run as a user with the
    clusterManager role. Nothing is sent to a server by this command. With `--plan`, every
    collection with its key (or `unsharded`) and the reason, instead.
    """
    if plan:
        rows = [
            {
                "collection": p.collection,
                "key": p.key_document() if p.key else None,
                "why": p.reason,
            }
            for p in SHARD_PLAN
        ]
        if as_json:
            out().out(json.dumps(rows, indent=2))
        else:
            for row in rows:
                key = json.dumps(row["key"]) if row["key"] else "unsharded"
                out().out(f"{row['collection']}: {key}\n    {row['why']}")
        return
    try:
        commands = shard_commands(database or load_settings().mongodb_db)
    except ValueError as exc:
        fail(str(exc))
    out().out(json.dumps(commands, indent=2) if as_json else "\n".join(commands))


__all__ = ["shards"]
