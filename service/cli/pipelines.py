"""`pipelines`: the analytics pipelines as mongosh statements (or Extended JSON), for analysts.

Printed as mongosh reads and types values: ids `UUID("…")`, times `ISODate("…")` (`--json`
prints relaxed Extended JSON instead, for scripts).

Endpoint pipelines start with the exact tenant-scope `$match` the service runs, so they need
a tenant (`--tenant`, and `--campaign` for one campaign's analytics); projector pipelines are
shown in their rebuild form (every tenant) and need none.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import typer
from bson import Binary, json_util
from bson.json_util import RELAXED_JSON_OPTIONS

from documents.event import TouchpointEvent
from documents.tenant import check_time_zone
from service import pipelines
from service.analytics import resolve_local_range
from service.cli.base import app, err, fail, out, run_with_database, tenant_of
from service.core.context import RequestContext, Role
from service.core.errors import Unprocessable
from service.core.repository import Repository, uuid_filter

PLACEHOLDER = UUID(int=0)


@dataclass(frozen=True)
class Params:
    """The values an endpoint pipeline is built with (what the endpoint's query carries)."""

    tenant: UUID = PLACEHOLDER
    campaign: UUID = PLACEHOLDER
    since: datetime | None = None
    until: datetime | None = None
    interval: pipelines.Interval = "day"
    tz: str = "UTC"


@dataclass(frozen=True)
class PipelineSpec:
    """How to build one pipeline, what it serves, and the parameters it cannot do without."""

    build: Callable[[Params], tuple[str, pipelines.Pipeline]]
    description: str
    needs: tuple[str, ...] = ()


def _scope(tenant_id: UUID, match: dict[str, Any]) -> dict[str, Any]:
    # The same first stage `Repository.aggregate` puts in front of an endpoint pipeline.
    ctx = RequestContext(tenant_id=tenant_id, actor_id=PLACEHOLDER, role=Role.viewer)
    return {"$match": Repository(TouchpointEvent, ctx).scope(match)}


def _campaign_analytics(p: Params) -> tuple[str, pipelines.Pipeline]:
    stages = pipelines.campaign_analytics(tenant_id=p.tenant, campaign_id=p.campaign)
    scope = _scope(p.tenant, {"campaign_id": uuid_filter(p.campaign)})
    return pipelines.EVENTS, [scope, *stages]


def _campaign_analytics_leads(p: Params) -> tuple[str, pipelines.Pipeline]:
    # Links are not an aggregate root: the tenant and campaign alone scope them.
    scope = {"$match": {"tenant_id": uuid_filter(p.tenant), "campaign_id": uuid_filter(p.campaign)}}
    return pipelines.CAMPAIGN_LEADS, [
        scope,
        *pipelines.campaign_analytics_leads(tenant_id=p.tenant),
    ]


def _overview(p: Params) -> tuple[str, pipelines.Pipeline]:
    try:
        since, until, _ = resolve_local_range(p.since, p.until, p.interval, p.tz)
    except Unprocessable as exc:
        fail(exc.detail)
    scope = _scope(p.tenant, {"occurred_at": {"$gte": since, "$lt": until}})
    return pipelines.EVENTS, [scope, *pipelines.overview(interval=p.interval, tz=p.tz)]


PIPELINES: dict[str, PipelineSpec] = {
    "campaign_analytics": PipelineSpec(
        _campaign_analytics, "GET /v1/analytics/campaigns/{id}", ("tenant", "campaign")
    ),
    "campaign_analytics_leads": PipelineSpec(
        _campaign_analytics_leads,
        "GET /v1/analytics/campaigns/{id}: its live leads (membership side)",
        ("tenant", "campaign"),
    ),
    "overview": PipelineSpec(_overview, "GET /v1/analytics/overview", ("tenant",)),
    "campaign_stats_events": PipelineSpec(
        lambda p: pipelines.campaign_stats_events(None),
        "CampaignStats: touchpoints and contacted leads per campaign",
    ),
    "campaign_stats_links": PipelineSpec(
        lambda p: pipelines.campaign_stats_links(None), "CampaignStats: leads per campaign"
    ),
    "campaign_stats_campaigns": PipelineSpec(
        lambda p: pipelines.campaign_stats_campaigns(None), "CampaignStats: the live campaigns"
    ),
    "global_campaign_campaigns": PipelineSpec(
        lambda p: pipelines.global_campaign_campaigns(None),
        "GlobalCampaign: campaigns per user by type and status",
    ),
    "global_campaign_events": PipelineSpec(
        lambda p: pipelines.global_campaign_events(None), "GlobalCampaign: touchpoints per user"
    ),
    "analytics_daily": PipelineSpec(
        lambda p: pipelines.analytics_daily(None),
        "GlobalAnalytics: touchpoints per tenant, day and channel",
    ),
    "blog_stats": PipelineSpec(
        lambda p: pipelines.blog_stats(None), "GlobalBlog: blogs per user by status"
    ),
    "research_stats_totals": PipelineSpec(
        lambda p: pipelines.research_stats_totals(None),
        "GlobalResearchStats: topics, results and search volume per user",
    ),
    "research_stats_keywords": PipelineSpec(
        lambda p: pipelines.research_stats_keywords(None),
        "GlobalResearchStats: distinct keywords per user",
    ),
    "global_team": PipelineSpec(
        lambda p: pipelines.global_team(None), "GlobalTeam: teams with member names"
    ),
}
"""Every pipeline the CLI prints, by name (the names `pipelines --help` lists)."""

PipelineName = StrEnum("PipelineName", {name: name for name in PIPELINES})  # type: ignore[misc]


class IntervalName(StrEnum):
    """Bucket sizes of the overview (weeks start on Monday)."""

    day = "day"
    week = "week"
    month = "month"


def _stages_json(stages: pipelines.Pipeline) -> Any:
    # Relaxed Extended JSON as plain JSON values: UUIDs as {"$binary": …}, dates as {"$date": …}.
    return json.loads(json_util.dumps(stages, json_options=RELAXED_JSON_OPTIONS))


def render(collection: str, stages: pipelines.Pipeline) -> str:
    """A pipeline as a mongosh `aggregate` call, values in mongosh's own syntax."""
    return f'db.getCollection("{collection}").aggregate({shell(stages)})'


def shell(value: Any, indent: int = 0) -> str:
    """A value as mongosh source: JSON, with `UUID("…")`, `ISODate("…")`, `BinData(…)`."""
    pad, inner = "  " * indent, "  " * (indent + 1)
    if isinstance(value, Binary):
        if value.subtype == 4:
            return f'UUID("{value.as_uuid()}")'
        return f'BinData({value.subtype}, "{base64.b64encode(bytes(value)).decode()}")'
    if isinstance(value, UUID):
        return f'UUID("{value}")'
    if isinstance(value, datetime):
        utc = value.astimezone(UTC) if value.tzinfo else value
        return f'ISODate("{utc.strftime("%Y-%m-%dT%H:%M:%S")}.{utc.microsecond // 1000:03d}Z")'
    if isinstance(value, Mapping):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(str(k))}: {shell(v, indent + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list | tuple):
        if not value:
            return "[]"
        items = [f"{inner}{shell(v, indent + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value)


def _names(name: str | None) -> list[str]:
    return [name] if name else list(PIPELINES)


_HELP = (
    "Print the analytics pipelines as mongosh statements (ids as UUID(…), times as "
    "ISODate(…)); `--json` prints relaxed Extended JSON.\n\n"
    "Paste a printed statement into mongosh connected to the service's database. Without "
    "`--tenant` the endpoint pipelines (campaign_analytics, overview) can only be shown with a "
    "placeholder tenant that matches nothing: asking for one by name then fails, and the full "
    "listing says so on stderr.\n\n"
    + "\n".join(f"* **{name}**: {spec.description}" for name, spec in PIPELINES.items())
)


def _tenant_id(ref: str | None) -> UUID | None:
    # An id needs no database; an owner's e-mail is looked up (the only database use here).
    if ref is None:
        return None
    try:
        return UUID(ref)
    except ValueError:
        return run_with_database(lambda: tenant_of(ref))


def _zone(name: str) -> str:
    try:
        return check_time_zone(name)
    except ValueError as exc:
        fail(str(exc))


@app.command("pipelines", help=_HELP)
def print_pipelines(
    name: Annotated[
        PipelineName | None,
        typer.Argument(help="One pipeline (default: all of them).", show_default=False),
    ] = None,
    tenant_ref: Annotated[
        str | None,
        typer.Option(
            "--tenant",
            metavar="ID|EMAIL",
            help="Tenant id, or its owner's e-mail (required by the endpoint pipelines).",
        ),
    ] = None,
    campaign: Annotated[UUID | None, typer.Option(help="Campaign id (campaign_analytics).")] = None,
    since: Annotated[
        datetime | None, typer.Option(help="overview: start, ISO date/time (inclusive).")
    ] = None,
    until: Annotated[
        datetime | None, typer.Option(help="overview: end, ISO date/time (exclusive).")
    ] = None,
    interval: Annotated[
        IntervalName, typer.Option(help="overview: bucket size.")
    ] = IntervalName.day,
    tz: Annotated[
        str, typer.Option(help="overview: IANA zone whose local days are the buckets.")
    ] = "UTC",
    as_json: Annotated[
        bool,
        typer.Option(
            "--json",
            help="Print JSON only: with NAME the stage array; without, an object "
            "{name: {collection, description, pipeline}}.",
        ),
    ] = False,
) -> None:
    """Print the analytics pipelines (the help text is `_HELP`)."""
    chosen = _names(name.value if name else None)
    tenant = _tenant_id(tenant_ref)
    given = {"tenant": tenant, "campaign": campaign}
    missing = {n: [p for p in PIPELINES[n].needs if given[p] is None] for n in chosen}
    if name is not None and missing[name.value]:
        flags = " and ".join(f"--{p}" for p in missing[name.value])
        fail(f"{name.value} runs for one tenant's data: pass {flags}.")
    placeholders = sorted(n for n in chosen if missing[n])
    if placeholders:
        err().print(
            f"[bold yellow]PLACEHOLDER:[/] {', '.join(placeholders)} shown for tenant/campaign "
            f"{PLACEHOLDER}, which matches nothing; pass --tenant (and --campaign) for real ones."
        )
    params = Params(
        tenant=tenant or PLACEHOLDER,
        campaign=campaign or PLACEHOLDER,
        since=since,
        until=until,
        interval=interval.value,
        tz=_zone(tz),
    )
    built = {n: PIPELINES[n].build(params) for n in chosen}
    console = out()
    if as_json:
        if name is not None:
            document: Any = _stages_json(built[name.value][1])
        else:
            document = {
                n: {
                    "collection": collection,
                    "description": PIPELINES[n].description,
                    "placeholder": n in placeholders,
                    "pipeline": _stages_json(stages),
                }
                for n, (collection, stages) in built.items()
            }
        console.out(json.dumps(document, indent=2))
        return
    for n, (collection, stages) in built.items():
        marker = "  (PLACEHOLDER tenant: pass --tenant)" if n in placeholders else ""
        console.out(f"// {n}: {PIPELINES[n].description}{marker}")
        console.out(render(collection, stages))
        console.out("")


__all__ = [
    "PIPELINES",
    "PLACEHOLDER",
    "Params",
    "PipelineSpec",
    "print_pipelines",
    "render",
    "shell",
]
