"""The database's shape: declared `indexes` compared and changed safely, `$jsonSchema`
`validators`, document `migrations` and the `sharding` plan.

Import rule: `core` and `documents` only; never a domain module (tests/test_layers.py).
"""
