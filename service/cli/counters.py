"""`rebuild-counters`: the analytics counters recomputed from the events (offline, per tenant).

Campaign analytics and the overview read counters kept by `$inc` as events are recorded
(service/campaign_tallies.py, service/event_slots.py). Data written before they existed, or
loaded around the event service, gets them here once; the command is safe to repeat.
"""

from __future__ import annotations

from uuid import UUID

from documents.campaign import CampaignBase
from documents.tenant import Tenant
from service import campaign_tallies, event_slots
from service.cli.base import app, out, run_with_database
from service.core.context import RequestContext, Role
from service.core.repository import Repository

COUNTERS_ACTOR = UUID(int=0)  # no journaled change is made: the counters are derived data


async def rebuild_counters() -> dict[str, int]:
    """Every tenant's slot rows and every campaign's tally, from its events."""
    done = {"tenants": 0, "campaigns": 0, "slots": 0}
    async for tenant in Tenant.get_pymongo_collection().find({}, {"_id": 1}).sort("_id", 1):
        ctx = RequestContext(tenant_id=tenant["_id"], actor_id=COUNTERS_ACTOR, role=Role.owner)
        done["slots"] += await event_slots.rebuild(ctx)
        campaigns = Repository(CampaignBase, ctx).stream(include_deleted=True, sort=None)
        async for campaign in campaigns:
            await campaign_tallies.rebuild(ctx, campaign["_id"])
            done["campaigns"] += 1
        done["tenants"] += 1
    return done


@app.command("rebuild-counters", help="Recompute the analytics counters from the events.")
def rebuild_counters_command() -> None:
    """Recompute campaign tallies and overview slots of every tenant (offline)."""
    done = run_with_database(rebuild_counters)
    out().out(", ".join(f"{name}: {n}" for name, n in done.items()))


__all__ = ["rebuild_counters", "rebuild_counters_command"]
