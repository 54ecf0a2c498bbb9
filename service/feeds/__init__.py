"""The total order over each feed (`sequencer`) and the leased loops that follow the feeds
(`leases`, `workers`); what they run (projectors, webhook deliveries, retention) is the domain's.

Import rule: `core` and `documents` only; never a domain module (tests/test_layers.py).
"""
