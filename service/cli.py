"""Operator commands: `python -m service.cli <command>`.

* `pipelines [name]` prints the analytics pipelines as mongosh-ready Extended JSON (relaxed):
  paste a printed statement into `mongosh` connected to the service's database. The endpoint
  pipelines start with the exact tenant-scope `$match` the service runs (`--tenant`,
  `--campaign`, `--since`, `--until`, `--interval` fill in the parameters); `--json` prints only
  the stage array.
* `rebuild <read-model|all>` drops a read model and recomputes it from its sources.
* `project [read-model ...]` catches projectors up from their checkpoints.
* `repair` flushes journal outboxes left by a crash, then rewinds the projectors' journal
  checkpoints to the oldest repaired event, so read models pick the late events up.

Database commands connect with `service.database.connect(Settings())`: MONGODB_URL, or, when
it is unset, the embedded database in EMBEDDED_DB_PATH — the same data `make run` serves. The
embedded file has one owner at a time: while a server runs on it, commands refuse (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

from bson import json_util
from bson.json_util import RELAXED_JSON_OPTIONS

from documents.event import TouchpointEvent
from service import pipelines
from service.analytics import resolve_range
from service.context import RequestContext, Role
from service.repository import Repository, uuid_filter

PLACEHOLDER = UUID(int=0)


def _scope(tenant_id: UUID, match: dict[str, Any]) -> dict[str, Any]:
    # The same first stage `Repository.aggregate` puts in front of an endpoint pipeline.
    ctx = RequestContext(tenant_id=tenant_id, actor_id=PLACEHOLDER, role=Role.viewer)
    return {"$match": Repository(TouchpointEvent, ctx).scope(match)}


def _campaign_analytics(args: argparse.Namespace) -> tuple[str, pipelines.Pipeline]:
    stages = pipelines.campaign_analytics(tenant_id=args.tenant, campaign_id=args.campaign)
    scope = _scope(args.tenant, {"campaign_id": uuid_filter(args.campaign)})
    return pipelines.EVENTS, [scope, *stages]


def _overview(args: argparse.Namespace) -> tuple[str, pipelines.Pipeline]:
    since, until, _ = resolve_range(args.since, args.until, args.interval)
    scope = _scope(args.tenant, {"occurred_at": {"$gte": since, "$lt": until}})
    return pipelines.EVENTS, [scope, *pipelines.overview(interval=args.interval)]


# name → (builder, one-line description). Projector pipelines are shown in their rebuild form.
PIPELINES: dict[str, tuple[Callable[[argparse.Namespace], tuple[str, Any]], str]] = {
    "campaign_analytics": (_campaign_analytics, "GET /v1/analytics/campaigns/{id}"),
    "overview": (_overview, "GET /v1/analytics/overview"),
    "campaign_stats_events": (
        lambda a: pipelines.campaign_stats_events(None),
        "CampaignStats: touchpoints and contacted leads per campaign",
    ),
    "campaign_stats_links": (
        lambda a: pipelines.campaign_stats_links(None),
        "CampaignStats: leads per campaign",
    ),
    "campaign_stats_campaigns": (
        lambda a: pipelines.campaign_stats_campaigns(None),
        "CampaignStats: the live campaigns",
    ),
    "global_campaign_campaigns": (
        lambda a: pipelines.global_campaign_campaigns(None),
        "GlobalCampaign: campaigns per user by type and status",
    ),
    "global_campaign_events": (
        lambda a: pipelines.global_campaign_events(None),
        "GlobalCampaign: touchpoints per user",
    ),
    "analytics_daily": (
        lambda a: pipelines.analytics_daily(None),
        "GlobalAnalytics: touchpoints per tenant, day and channel",
    ),
    "global_team": (
        lambda a: pipelines.global_team(None),
        "GlobalTeam: teams with member names",
    ),
}


def render(collection: str, stages: pipelines.Pipeline, *, raw: bool = False) -> str:
    """A pipeline as relaxed Extended JSON, wrapped in a mongosh `aggregate` call unless `raw`."""
    text = json_util.dumps(stages, json_options=RELAXED_JSON_OPTIONS, indent=2)
    if raw:
        return text
    # EJSON.parse turns {"$binary": …} and {"$date": …} back into BSON values in mongosh.
    return f'db.getCollection("{collection}").aggregate(EJSON.parse(`{text}`))'


def print_pipelines(args: argparse.Namespace) -> int:
    """Print one pipeline, or all of them."""
    names = [args.name] if args.name else list(PIPELINES)
    for name in names:
        if name not in PIPELINES:
            print(f"unknown pipeline {name!r}; one of: {', '.join(PIPELINES)}", file=sys.stderr)
            return 2
        build, description = PIPELINES[name]
        collection, stages = build(args)
        print(f"// {name}: {description}")
        print(render(collection, stages, raw=args.json))
        print()
    return 0


async def _with_database(work: Callable[[], Any]) -> Any:
    from service.database import connect, init_models
    from service.embedded import EmbeddedDataError
    from service.settings import Settings

    try:
        database = connect(Settings())
    except EmbeddedDataError as exc:  # another process owns the file, or it is unusable
        print(exc, file=sys.stderr)
        return 2
    try:
        await init_models(database.db)
        return await work()
    finally:
        await database.close()  # the embedded database saves what the command changed


async def _rebuild(name: str) -> int:
    from service import projections

    names = list(projections.PROJECTORS) if name == "all" else [name]
    if any(n not in projections.PROJECTORS for n in names):
        print(f"unknown read model {name!r}; one of: all, {', '.join(projections.PROJECTORS)}")
        return 2
    for n in names:
        print(f"{n}: {await projections.rebuild(n)} rows")
    return 0


async def _project(names: Sequence[str]) -> int:
    from service import projections

    for name, seen in (await projections.catch_up(names or None)).items():
        print(f"{name}: {seen} feed rows applied")
    return 0


async def _repair() -> int:
    from documents import AGGREGATE_ROOTS
    from service import projections

    repaired = await projections.repair(AGGREGATE_ROOTS)
    print(f"journal repair: {repaired} pending event(s) flushed")
    return 0


def _uuid(value: str) -> UUID:
    return UUID(value)


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    p = argparse.ArgumentParser(prog="python -m service.cli", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)
    pl = sub.add_parser("pipelines", help="print analytics pipelines as mongosh-ready JSON")
    pl.add_argument("name", nargs="?", help=f"one of: {', '.join(PIPELINES)}")
    pl.add_argument("--tenant", type=_uuid, default=PLACEHOLDER, help="tenant id")
    pl.add_argument("--campaign", type=_uuid, default=PLACEHOLDER, help="campaign id")
    pl.add_argument("--since", type=_time, default=None, help="ISO date/time (inclusive)")
    pl.add_argument("--until", type=_time, default=None, help="ISO date/time (exclusive)")
    pl.add_argument("--interval", choices=["day", "week", "month"], default="day")
    pl.add_argument("--json", action="store_true", help="print only the stage array")
    rb = sub.add_parser("rebuild", help="drop and recompute a read model (or all)")
    rb.add_argument("name")
    pr = sub.add_parser("project", help="catch projectors up from their checkpoints")
    pr.add_argument("names", nargs="*")
    sub.add_parser("repair", help="flush journal outboxes left by a crash")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the process exit status."""
    args = parser().parse_args(argv)
    if args.command == "pipelines":
        return print_pipelines(args)
    if args.command == "rebuild":
        return int(asyncio.run(_with_database(lambda: _rebuild(args.name))))
    if args.command == "project":
        return int(asyncio.run(_with_database(lambda: _project(args.names))))
    return int(asyncio.run(_with_database(_repair)))


if __name__ == "__main__":
    raise SystemExit(main())
