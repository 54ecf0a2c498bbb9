"""The service's behaviour: domain modules at the top, mechanisms in three packages.

A newcomer's map (each module's docstring says the rest):

* **Domain modules**: `service/X.py` mirrors `routes/X.py`, `schemas/X.py` and
  `documents/x.py` (`campaigns`, `events`, `teams`, `invitations`, `users`, ...); `leads/` and
  `webhooks/` are domains large enough to be packages. Beside them: `projections/` (the read
  models' definitions and their runner), `pipelines` (every analytics pipeline),
  `lifecycle` (what every aggregate root shares: delete, restore, archive, history).
* **`core/`**: what every request passes through: the caller's context, errors, policies,
  visibility, the tenant-scoped repository and its journal, pagination, settings, security,
  deadlines, throttles, observability.
* **`feeds/`**: the sequencer's total order over each feed, leases, the leased worker loops.
* **`storage/`**: the database's shape: indexes, validators, migrations, the shard plan.
* **`embedded/`**: the in-process MongoDB stand-in. `database.py` builds the client (on it or
  on a real server) and is the only module that chooses between them.
* **`background.py`** starts the background work (the app's lifespan calls it); **`cli/`** is
  `python -m service.cli ...`; **`main.py`** / **`serve.py`** are the ASGI entry points.

Import rules, kept by tests: the mechanism packages (`core`, `feeds`, `storage`, `embedded`)
never import a domain module and nothing under `service/` imports the web layer
(tests/test_layers.py); raw collection calls outside the mechanisms are tenant-scoped
(tests/test_tenant_scope.py).
"""
