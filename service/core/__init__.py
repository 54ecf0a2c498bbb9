"""What every request passes through: who calls (`context`), what they may do (`policy`,
`visibility`), the tenant-scoped `repository` and its `journal`, lists (`pagination`), errors,
settings, secrets (`security`), time budgets (`deadlines`), guess throttles, logs and metrics.

Import rule: modules here import only `core`, `documents`, `schemas.common` and the embedded
backend's observers; never a domain module (tests/test_layers.py).
"""
