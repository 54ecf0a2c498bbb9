"""The operator CLI: `python -m service.cli --help` (Typer, Rich).

Commands, one module each (docs/architecture.md, "Adding a CLI command"):

* `pipelines [NAME]` — the analytics pipelines as mongosh statements (pipelines.py);
* `rebuild NAME…|all`, `project [NAME…]`, `repair` — read models and the journal
  (read_models.py);
* `import FILE --tenant ID` — leads from a CSV file through the bulk import (lead_import.py);
* `shards` — the statements that shard the database as planned (shards.py);
* `deliver` — a process that only delivers webhooks (deliver.py);
* `migrate` — documents stored in older shapes rewritten in the current one (migrate.py);
* `validators` — the `$jsonSchema` validators, printed or installed (validators.py);
* `indexes` — the database's indexes compared with the declared ones (indexes.py);
* `retype-journal` — journal values stored as strings rewritten with BSON types (journal_types.py);
* `views` — the analysts' read-only views and `analyst` role, printed or created (views.py).

Database commands connect with `service.database.connect(Settings())`: MONGODB_URL, or, when
it is unset, the embedded database in EMBEDDED_DB_PATH — the same data `make run` serves. The
embedded file has one owner at a time: while a server runs on it, commands refuse (exit 2).
"""

from __future__ import annotations

import logging

from rich.logging import RichHandler

# Importing a command module registers its commands on `app`.
from service.cli import (  # noqa: F401
    counters,
    deliver,
    indexes,
    journal_types,
    lead_import,
    migrate,
    pipelines,
    read_models,
    shards,
    validators,
    views,
)
from service.cli.base import app, err
from service.cli.pipelines import PIPELINES, render

PROG = "python -m service.cli"


def main() -> None:
    """Run the CLI as a program: warnings (e.g. which database) on stderr, then the command."""
    handler = RichHandler(console=err(), show_time=False, show_path=False)
    logging.basicConfig(level=logging.WARNING, format="%(message)s", handlers=[handler])
    app(prog_name=PROG)


__all__ = ["PIPELINES", "PROG", "app", "main", "render"]
