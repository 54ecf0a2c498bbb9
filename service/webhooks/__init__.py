"""Webhooks: subscriptions (`endpoints.py`) and their delivery from the journal (`delivery.py`)."""
