"""`GET /v1/leads/export`: every matching lead as CSV or NDJSON, streamed in constant memory."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import tracemalloc
from typing import Any

import pytest
from fastapi import FastAPI

from documents.lead import LeadBase
from schemas.leads import LEAD_CSV
from service.core import journal
from service.leads import commands as lead_service
from tests.factories import make_campaign, make_lead
from tests.support.helpers import Account, assert_problem


async def export(account: Account, **params: Any) -> Any:
    response = await account.client.get("/v1/leads/export", params=params)
    assert response.status_code == 200, response.text
    return response


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


@pytest.fixture
async def some(owner: Account) -> list[dict[str, Any]]:
    bodies: list[dict[str, Any]] = [
        {
            "type": "generic",
            "email": "ana@example.com",
            "first_name": "Ana",
            "last_name": "Silva",
            "phone": "415 555 0100",
            "tags": ["vip", "buyer"],
            "segments": {"tier": "gold"},
            "address": {"city": "Porto", "line1": "Rua 1"},
        },
        {
            "type": "mls",
            "mls_id": "M-1",
            "list_price": 450000.5,
            "beds": 3,
            "last_name": "Mota",
            "listing_agent": {"name": "Al", "phone": "415 555 0199"},
            "location": {"type": "Point", "coordinates": [-122.4, 37.7]},
        },
        {"type": "generic", "email": "evil@example.com", "first_name": '=HYPERLINK("x")'},
    ]
    made = []
    for body in bodies:
        made.append(await make_lead(owner, **body))
    return made


async def test_csv_has_a_fixed_header_and_one_row_per_lead(
    owner: Account, some: list[dict[str, Any]]
) -> None:
    response = await export(owner, format="csv")
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="leads.csv"' in response.headers["content-disposition"]
    header = next(csv.reader(io.StringIO(response.text)))
    assert header == LEAD_CSV.columns
    for column in ("id", "address.city", "listing_agent.phone", "list_price", "location.type"):
        assert column in header
    assert "search_text" not in header and "list_price_cents" not in header
    rows = {r["id"]: r for r in rows_of(response.text)}
    assert list(rows) == [x["id"] for x in reversed(some)]  # the list's default order
    ana, mls, evil = (rows[x["id"]] for x in some)
    assert ana["address.city"] == "Porto" and ana["phone"] == "+14155550100"
    assert json.loads(ana["tags"]) == ["vip", "buyer"] and json.loads(ana["segments"]) == {
        "tier": "gold"
    }
    assert ana["mls_id"] == "" and ana["is_deleted"] == "false"
    assert mls["list_price"] == "450000.5" and mls["beds"] == "3"
    assert mls["listing_agent.phone"] == "+14155550199"
    assert json.loads(mls["location.coordinates"]) == [-122.4, 37.7]
    assert evil["first_name"] == '\'=HYPERLINK("x")'  # never a formula in a spreadsheet
    # The same header when nothing matches.
    empty = await export(owner, format="csv", q="nobody")
    assert empty.text.splitlines() == [",".join(LEAD_CSV.columns)]


async def test_ndjson_lines_are_the_leads_as_read(
    owner: Account, some: list[dict[str, Any]]
) -> None:
    response = await export(owner, format="ndjson", sort="last_name")
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    expected = [(await owner.client.get(f"/v1/leads/{x['id']}")).json() for x in some]
    by_name = sorted(
        expected, key=lambda x: (x.get("last_name") is not None, x.get("last_name") or "", x["id"])
    )
    assert lines == by_name


async def test_filters_sort_and_scope(
    owner: Account, stranger: Account, some: list[dict[str, Any]]
) -> None:
    await make_lead(stranger, email="x@example.com")
    ids = lambda r: [row["id"] for row in rows_of(r.text)]  # noqa: E731
    assert ids(await export(owner, type="mls")) == [some[1]["id"]]
    assert ids(await export(owner, q="porto")) == [some[0]["id"]]
    assert ids(await export(owner, sort="-last_name")) == [
        some[0]["id"],
        some[1]["id"],
        some[2]["id"],
    ]
    await owner.client.delete(f"/v1/leads/{some[2]['id']}")
    assert len(ids(await export(owner))) == 2
    assert len(ids(await export(owner, include_deleted="true"))) == 3
    campaign = await make_campaign(owner)
    await owner.client.post(
        f"/v1/campaigns/{campaign['id']}/leads", json={"lead_ids": [some[1]["id"]]}
    )
    assert ids(await export(owner, campaign_id=campaign["id"])) == [some[1]["id"]]
    assert ids(await export(owner, near="-122.4,37.7", within_km=1)) == [some[1]["id"]]
    for bad in ({"format": "xml"}, {"limit": 5}, {"cursor": "x"}, {"sort": "email"}):
        assert_problem(await owner.client.get("/v1/leads/export", params=bad), 422)
    missing = {"campaign_id": "01900000-0000-7000-8000-000000000000"}
    assert_problem(await owner.client.get("/v1/leads/export", params=missing), 404)


async def test_export_streams_20000_leads_in_constant_memory(app: FastAPI, owner: Account) -> None:
    # Stored as the bulk import stores them (without its journal, which an export never reads).
    collection = LeadBase.get_pymongo_collection()
    for start in range(0, 20_000, 5_000):
        docs = [
            journal.encode_document(
                lead_service._bulk_document(
                    owner.ctx,
                    {
                        "type": "generic",
                        "email": f"lead{i}@example.com",
                        "first_name": f"First{i}",
                        "last_name": f"Last{i}",
                        "address": {"line1": f"{i} Main St", "city": "Springfield"},
                        "tags": ["imported"],
                    },
                )
            )
            for i in range(start, start + 5_000)
        ]
        await collection.insert_many(docs)
    del docs

    for fmt in ("csv", "ndjson"):
        received = {"bytes": 0, "lines": 0, "chunks": 0}
        request_done = asyncio.Event()

        async def receive(request_done: asyncio.Event = request_done) -> dict[str, Any]:
            if not request_done.is_set():
                request_done.set()
                return {"type": "http.request", "body": b"", "more_body": False}
            await asyncio.Event().wait()  # the client never disconnects
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any], received: dict[str, int] = received) -> None:
            if message["type"] == "http.response.start":
                assert message["status"] == 200
            elif message["type"] == "http.response.body":
                chunk = message.get("body", b"")
                received["bytes"] += len(chunk)
                received["lines"] += chunk.count(b"\n")
                received["chunks"] += 1

        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/v1/leads/export",
            "raw_path": b"/v1/leads/export",
            "root_path": "",
            "query_string": f"format={fmt}".encode(),
            "headers": [(b"host", b"test"), (b"authorization", f"Bearer {owner.token}".encode())],
            "client": ("127.0.0.1", 1234),
            "server": ("test", 80),
            "state": {},
        }
        tracemalloc.start()
        baseline = tracemalloc.get_traced_memory()[0]
        await app(scope, receive, send)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        growth_mb = (peak - baseline) / 2**20
        expected_lines = 20_001 if fmt == "csv" else 20_000  # CSV has its header
        assert received["lines"] == expected_lines, received
        assert received["chunks"] > 50  # streamed, not one body
        assert received["bytes"] > 5 * 2**20  # the export itself is several MB...
        assert growth_mb < 50, f"{fmt}: peak memory grew {growth_mb:.1f} MB"  # ...memory is not
