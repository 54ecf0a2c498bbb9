"""The floor of the read path: a stripped-down app making the service's reads with nothing else.

`bench_http.py --floor` serves it with uvicorn next to the service and drives both with wrk
in the same rounds. Same framework (FastAPI, one worker), same embedded backend with the
service's indexes and documents (seeded by the service's own create and bulk import), but no
middleware, no authentication, no dependencies, no schema: each route is one database call and
one `pydantic_core.to_json` of what the driver returned.

- `GET /health`: a pydantic model through FastAPI's response model (as the service's /health);
- `GET /one/{id}`: the single campaign read (`find_one` by `_id`, tenant, not deleted);
- `GET /page`: the lead list's first page (the tenant's live, unarchived leads, newest first,
  51 fetched, 50 answered).
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from uuid import UUID

from bson import Binary
from fastapi import FastAPI, Response
from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_json
from uuid6 import uuid7

from documents.campaign import CampaignBase
from documents.lead import LeadBase
from schemas.campaigns import CampaignCreate
from service import campaigns
from service.core.context import RequestContext, Role
from service.database import embedded_database, init_models
from service.leads import commands as leads


class Health(BaseModel):
    status: str = "ok"
    database: str = "embedded"


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await init_models(embedded_database("floor"))
    ctx = RequestContext(tenant_id=uuid7(), actor_id=uuid7(), role=Role.owner)
    data = TypeAdapter(CampaignCreate).validate_python({"type": "call", "name": "Floor"})
    campaign = await campaigns.create_campaign(ctx=ctx, data=data)
    count = int(os.environ.get("FLOOR_LEADS", "1000"))
    rows = [
        {"type": "generic", "email": f"lead{i}@example.com", "first_name": f"Lead{i}"}
        for i in range(count)
    ]
    for start in range(0, count, 10_000):
        await leads.bulk_import(ctx=ctx, rows=rows[start : start + 10_000])
    app.state.tenant = Binary.from_uuid(ctx.tenant_id)
    app.state.campaign = str(campaign.id)
    gc.freeze()  # as the service's lifespan does: full collections skip the start-up objects
    yield


app = FastAPI(lifespan=lifespan)


@app.get("/health", response_model=Health)
async def health() -> Any:
    return Health()


@app.get("/campaign")
async def campaign_id() -> Response:
    return Response(to_json(app.state.campaign), media_type="application/json")


@app.get("/one/{id}")
async def one(id: UUID) -> Response:
    query = {"_id": Binary.from_uuid(id), "tenant_id": app.state.tenant, "is_deleted": False}
    doc = await CampaignBase.get_pymongo_collection().find_one(query)
    return Response(to_json(doc), media_type="application/json")


@app.get("/page")
async def page() -> Response:
    query = {"tenant_id": app.state.tenant, "is_deleted": False, "is_archived": False}
    cursor = LeadBase.get_pymongo_collection().find(query, sort=[("_id", -1)], limit=51)
    docs = await cursor.to_list()
    return Response(to_json({"items": docs[:50]}), media_type="application/json")
