"""The leads domain (`routes/leads.py`): `commands` (create, patch, bulk import, dedupe),
`queries` (lists, search, geography, campaign members, export), `claims` (the dedupe guard
that lets `leads` shard on `{tenant_id, _id}`), `merge`, `privacy` (erasure and subject export)
and `retention` (erasing soft-deleted leads after the tenant's period).
"""
