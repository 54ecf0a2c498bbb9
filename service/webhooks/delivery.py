"""Webhook delivery (being written)."""

from __future__ import annotations

from typing import Any


def add_delivery_worker(runtime: Any, settings: Any) -> None:
    """Register the delivery worker."""
