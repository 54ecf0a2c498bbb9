"""Read-only views for analysts, and the least-privilege `analyst` role that reads only them.

An analyst with mongosh should see the business (who did what to which campaign, when, how
often) without the people behind it or anything that unlocks the service: no password,
token or key hashes, no encrypted credentials, no TOTP secrets, no search text, no lead's
name, e-mail, phone, street address or free text, no touchpoint bodies. Each view is a
`$project` over one collection: an INCLUSION list where a collection holds secrets (users,
the journal), so a field added later stays out until someone adds it here.

MongoDB checks a view's privileges on the view alone: a role with `find` on the `analyst_*`
views (and nothing else) reads them without any right on the collections behind them.
The embedded backend has no views: `apply_views` refuses there, and the pipelines are
tested by running them as aggregations (tests/test_privacy_views.py); creating the views and
the role runs only on a real server.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from service.leads.privacy import PERSONAL_FIELDS, TOUCHPOINT_TEXT

ROLE = "analyst"


@dataclass(frozen=True)
class View:
    """An analyst view: its name, the collection it reads and its pipeline."""

    name: str
    source: str
    pipeline: list[dict[str, Any]]


def _exclude(*fields: str) -> dict[str, Any]:
    return {"$project": dict.fromkeys(fields, 0)}


def _include(*fields: str) -> dict[str, Any]:
    return {"$project": dict.fromkeys(fields, 1)}


# Journal values an analyst may read: status-like, numeric and reference fields. Every other
# field's change shows its name with null values (names, e-mails, free text, secrets).
JOURNAL_VALUE_FIELDS = (
    "type",
    "status",
    "source",
    "tags",
    "user_id",
    "campaign_id",
    "lead_id",
    "role",
    "is_active",
    "is_deleted",
    "deleted_at",
    "archived_at",
    "created_at",
    "created_by",
    "merged_into",
    "erased_at",
    "last_contacted_at",
    "lead_count",
    "starts_at",
    "ends_at",
    "list_price_cents",
    "listing_status",
    "property_type",
    "beds",
    "baths",
    "square_feet",
    "lot_size_sqft",
    "year_built",
    "days_on_market",
    "listed_at",
    "mls_board",
    "retention",
)

_LEAD_HIDDEN = (
    *(f for f in PERSONAL_FIELDS if f != "address"),
    "address.line1",
    "address.line2",
    "pending_event",
    "_class_id",
)


def _visible_value(side: str) -> dict[str, Any]:
    top = {"$arrayElemAt": [{"$split": ["$$c.field", "."]}, 0]}
    return {"$cond": [{"$in": [top, list(JOURNAL_VALUE_FIELDS)]}, f"$$c.{side}", None]}


VIEWS: tuple[View, ...] = (
    View("analyst_leads", "leads", [_exclude(*_LEAD_HIDDEN)]),
    View(
        "analyst_events",
        "events",
        [_exclude(*TOUCHPOINT_TEXT, "pending_event", "_class_id")],
    ),
    View(
        "analyst_campaigns",
        "campaigns",
        [
            _exclude(
                "pending_event",
                "_class_id",
                "caller_ids",
                "sender_numbers",
                "from_email",
                "reply_to",
                "from_name",
            )
        ],
    ),
    View("analyst_campaign_members", "campaign_leads", [_exclude("added_by")]),
    View(
        "analyst_users",
        "users",
        [
            _include(
                "tenant_id",
                "role",
                "is_active",
                "is_deleted",
                "deleted_at",
                "created_at",
                "updated_at",
                "last_login_at",
                "profile.display_name",
                "profile.title",
                "subscription.plan",
            )
        ],
    ),
    View(
        "analyst_journal",
        "domain_events",
        [
            {
                "$project": {
                    "tenant_id": 1,
                    "aggregate_type": 1,
                    "aggregate_id": 1,
                    "version": 1,
                    "event_type": 1,
                    "actor_id": 1,
                    "actor_type": 1,
                    "occurred_at": 1,
                    "seq": 1,
                    "changes": {
                        "$map": {
                            "input": "$changes",
                            "as": "c",
                            "in": {
                                "field": "$$c.field",
                                "old": _visible_value("old"),
                                "new": _visible_value("new"),
                            },
                        }
                    },
                }
            }
        ],
    ),
)


def _js(value: Any) -> str:
    return json.dumps(value, indent=2)


def mongosh_commands(database: str) -> str:
    """The mongosh statements creating the views and the `analyst` role (and a user for it)."""
    lines = [f"use {database}", "", "// Views (re-run safe: an existing view is dropped first)"]
    for view in VIEWS:
        lines.append(f'db.getCollection("{view.name}").drop()')
        lines.append(
            f"db.createView({view.name!r}, {view.source!r}, {_js(view.pipeline)})".replace("'", '"')
        )
    privileges = [
        {"resource": {"db": database, "collection": view.name}, "actions": ["find"]}
        for view in VIEWS
    ]
    lines += [
        "",
        f"// The least-privilege role: find on the {len(VIEWS)} views, nothing else",
        f'db.createRole({{role: "{ROLE}", privileges: {_js(privileges)}, roles: []}})',
        "",
        "// One analyst (the password is asked for, never typed into the history)",
        f'db.createUser({{user: "analyst", pwd: passwordPrompt(), '
        f'roles: [{{role: "{ROLE}", db: "{database}"}}]}})',
    ]
    return "\n".join(lines)


class ViewsUnsupported(RuntimeError):
    """The database cannot hold views (the embedded backend)."""


async def apply_views(db: Any, *, kind: str) -> list[str]:
    """Create (or re-create) every analyst view on a real server; the names created."""
    if kind != "mongodb":
        raise ViewsUnsupported(
            "the embedded backend has no views; print the commands and run them on MongoDB"
        )
    existing = set(await db.list_collection_names())
    created = []
    for view in VIEWS:
        if view.name in existing:
            await db.drop_collection(view.name)
        await db.command({"create": view.name, "viewOn": view.source, "pipeline": view.pipeline})
        created.append(view.name)
    return created


__all__ = [
    "JOURNAL_VALUE_FIELDS",
    "ROLE",
    "VIEWS",
    "View",
    "ViewsUnsupported",
    "apply_views",
    "mongosh_commands",
]
