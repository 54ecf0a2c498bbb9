"""`deliver`: a process that only delivers webhooks (next to, or instead of, the API servers)."""

from __future__ import annotations

import asyncio
import os
from typing import Annotated

import typer

from service.cli.base import app, err, fail, load_settings, run_with_database
from service.webhooks.delivery import run_deliveries


@app.command()
def deliver(
    seconds: Annotated[
        float | None,
        typer.Option(help="Stop after this many seconds (default: until Ctrl-C).", min=0.1),
    ] = None,
) -> None:
    """Deliver webhooks from the journal until stopped (leases keep servers from sending twice)."""
    if not os.environ.get("FERNET_KEY"):
        # Webhook secrets are stored encrypted: a generated key could not sign with them.
        fail("FERNET_KEY is not set: the webhook secrets cannot be read without the server's key.")
    settings = load_settings()

    async def work() -> None:
        stop = asyncio.Event()
        if seconds is not None:
            asyncio.get_running_loop().call_later(seconds, stop.set)
        err().print("delivering webhooks… (Ctrl-C to stop)")
        await run_deliveries(settings, stop=stop)

    try:
        run_with_database(work)
    except KeyboardInterrupt:
        err().print("stopped")


__all__ = ["deliver"]
