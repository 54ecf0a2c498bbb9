"""Journal entries in API terms: the one mapping from stored fields to the API's, per resource.

The journal records changes as they are stored (`list_price_cents: 85000000`); every reader
that shows them outside — history (service/lifecycle.py), the change feed and webhook payloads
(service/changes.py) — passes them through `api_changes`, so callers see the names and units
of the resource's API (`list_price: 850000.0`), and derived internal fields not at all.
Versions need nothing here: they are rebuilt as documents and shaped by the read model.

A stored name is matched wherever it appears: as a segment of a change's dotted `field`
(`ai_config.monthly_cost_limit_cents`) and as a key inside changed values (a whole embedded
object or a list of them), since a change may carry a field on its own or its container.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from documents import AGGREGATE_ROOTS


def _money(value: Any) -> Any:
    # Integer cents → a JSON number in major units, as the API's `Money` fields answer.
    if isinstance(value, int) and not isinstance(value, bool):
        return float(Decimal(value) / 100)
    return value


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class ApiField:
    """How a stored field appears in the API: its `name` (None: internal, not shown), `unit`."""

    name: str | None
    unit: Callable[[Any], Any] = _same


INTERNAL = ApiField(None)
MONEY = _money


def _derived_hidden(fields: dict[str, dict[str, ApiField]]) -> dict[str, dict[str, ApiField]]:
    """`fields` with every root's derived internal fields (`RootDocument.derived_fields`)
    hidden: never journaled now, but held by the entries journaled before."""
    for root in AGGREGATE_ROOTS:
        if root.derived_fields:
            fields.setdefault(root.aggregate_type, {}).update(
                dict.fromkeys(root.derived_fields, INTERNAL)
            )
    return fields


API_FIELDS: dict[str, dict[str, ApiField]] = _derived_hidden(
    {
        "lead": {"list_price_cents": ApiField("list_price", MONEY)},
        "user": {
            "amount_cents": ApiField("amount", MONEY),
            "monthly_cost_limit_cents": ApiField("monthly_cost_limit", MONEY),
        },
        "ai_usage": {"cost_cents": ApiField("cost", MONEY)},
    }
)
"""Per aggregate type: stored field name → its API name and unit (only where they differ)."""
FREE_FORM = frozenset({"segments"})
"""Maps whose keys are data (a segment may be called anything): never renamed inside."""


def api_changes(aggregate_type: str, changes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Journal changes (`{field, old, new}` dicts) as the resource's API names and shows them."""
    fields = API_FIELDS.get(aggregate_type)
    if not fields:
        return [dict(c) for c in changes]
    shown: list[dict[str, Any]] = []
    for change in changes:
        path = str(change.get("field", "")).split(".")
        if path[0] in FREE_FORM:
            shown.append(dict(change))
            continue
        views = [fields.get(part) for part in path]
        if any(view is not None and view.name is None for view in views):
            continue
        last = views[-1]
        unit = last.unit if last is not None else _same
        shown.append(
            {
                **change,
                "field": ".".join(
                    view.name if view is not None and view.name else part
                    for part, view in zip(path, views, strict=True)
                ),
                "old": unit(_values(change.get("old"), fields)),
                "new": unit(_values(change.get("new"), fields)),
            }
        )
    return shown


def _values(value: Any, fields: Mapping[str, ApiField]) -> Any:
    """A changed value with the stored names inside it (embedded objects, lists) mapped too."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            view = fields.get(key)
            if key in FREE_FORM:
                out[key] = item
            elif view is None:
                out[key] = _values(item, fields)
            elif view.name is not None:
                out[view.name] = view.unit(_values(item, fields))
        return out
    if isinstance(value, list):
        return [_values(item, fields) for item in value]
    return value


__all__ = ["API_FIELDS", "ApiField", "api_changes"]
