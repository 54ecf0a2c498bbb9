"""Queries that no index serves, on purpose: each entry says why that is right.

An entry matches a recorded shape when the collection and method match and every `contains`
fragment occurs in the shape's text (tests/query_plans.py `Shape.__str__`). Keep this short.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.query_plans import Shape


@dataclass(frozen=True)
class Allowed:
    """One justified exception."""

    collection: str
    method: str
    contains: tuple[str, ...]
    why: str


ALLOWED: tuple[Allowed, ...] = ()


def allowed(shape: Shape) -> Allowed | None:
    """The entry that covers a shape, if any."""
    text = str(shape)
    for entry in ALLOWED:
        if entry.collection != shape.collection or entry.method not in (shape.method, "*"):
            continue
        if all(fragment in text for fragment in entry.contains):
            return entry
    return None
