"""Cursors: a decoded value is a scalar of the sort field's type, never an operator object."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import pytest
from bson import Binary

from documents.event import TouchpointEvent
from documents.journal import DomainEvent
from documents.lead import LeadBase
from service.core.errors import Unprocessable
from service.core.pagination import (
    NEWEST_FIRST,
    FieldKind,
    Sort,
    after,
    encode_cursor,
    field_kind,
    parse_sort,
    read_cursor,
)
from tests.factories import attach_leads, make_campaign, make_lead
from tests.support.helpers import Account, assert_problem

ID = "018f8a4e-0000-7000-8000-000000000001"  # fixed: xdist workers must collect the same ids


def forge(payload: Any) -> str:
    raw = json.dumps(payload).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def test_field_kinds_come_from_the_documents() -> None:
    assert field_kind(TouchpointEvent, "occurred_at") == FieldKind(datetime)
    assert field_kind(LeadBase, "last_name") == FieldKind(str, nullable=True)
    assert field_kind(LeadBase, "list_price_cents") == FieldKind(int, nullable=True)  # a subtype's
    assert field_kind(LeadBase, "status") == FieldKind(str)  # a str enum
    assert field_kind(DomainEvent, "version") == FieldKind(int)
    assert field_kind(LeadBase, "_id") == FieldKind(UUID)
    with pytest.raises(ValueError, match="has no field 'no_such_field'"):
        field_kind(LeadBase, "no_such_field")


def test_a_cursor_round_trips_each_kind() -> None:
    when = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    for sort, kind, value in (
        (Sort("occurred_at", -1), FieldKind(datetime), when),
        (Sort("last_name", 1), FieldKind(str, True), "Silva"),
        (Sort("last_name", 1), FieldKind(str, True), None),
        (Sort("version", 1), FieldKind(int), 7),
        (Sort("score", -1), FieldKind(float), 2.5),
    ):
        last = uuid4()
        position = read_cursor(encode_cursor(sort, value, last), sort, kind)
        assert position.value == value and position.last_id == Binary.from_uuid(last)


@pytest.mark.parametrize(
    ("sort", "kind", "value"),
    [
        (Sort("occurred_at", -1), FieldKind(datetime), {"$where": "sleep(1000)"}),
        (Sort("occurred_at", -1), FieldKind(datetime), {"$gt": 0}),
        (Sort("occurred_at", -1), FieldKind(datetime), {"t": "2024-01-01", "$gt": 0}),
        (Sort("occurred_at", -1), FieldKind(datetime), {"t": {"$gt": ""}}),
        (Sort("occurred_at", -1), FieldKind(datetime), "2024-01-01T00:00:00Z"),  # not tagged
        (Sort("occurred_at", -1), FieldKind(datetime), {"t": "0001-01-01T00:00:00+01:00"}),
        (Sort("occurred_at", -1), FieldKind(datetime), {"t": "9999-12-31T23:59:59-01:00"}),
        (Sort("occurred_at", -1), FieldKind(datetime), {"t": "not a date"}),
        (Sort("occurred_at", -1), FieldKind(datetime), None),  # never null
        (Sort("last_name", 1), FieldKind(str, True), {"$ne": None}),
        (Sort("last_name", 1), FieldKind(str, True), 5),
        (Sort("last_name", 1), FieldKind(str, True), ["a"]),
        (Sort("version", 1), FieldKind(int), True),
        (Sort("version", 1), FieldKind(int), 1.5),
        (Sort("version", 1), FieldKind(int), 2**63),
        (Sort("version", 1), FieldKind(int), "7"),
        (Sort("score", 1), FieldKind(float), float("nan")),
        (Sort("flag", 1), FieldKind(bool), 1),
    ],
)
def test_forged_values_are_refused(sort: Sort, kind: FieldKind, value: Any) -> None:
    with pytest.raises(Unprocessable):
        read_cursor(forge({"s": sort.key, "v": value, "i": ID}), sort, kind)


@pytest.mark.parametrize(
    "cursor",
    [
        forge({"s": "-occurred_at", "v": None, "i": ID}),  # a cursor of another sort
        forge({"s": "_id", "v": None, "i": ID}),  # the other direction
        forge({"f": "_id", "v": None, "i": ID}),  # the old shape
        forge({"s": "-_id", "i": {"$gt": ""}}),
        forge({"s": "-_id", "i": "not-a-uuid"}),
        forge(["-_id", ID]),
        forge("-_id"),
        "%%%",
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    ],
)
def test_broken_and_foreign_cursors_are_refused(cursor: str) -> None:
    with pytest.raises(Unprocessable):
        read_cursor(cursor, NEWEST_FIRST)


def test_the_seek_after_a_position_handles_nulls() -> None:
    last = Binary.from_uuid(uuid4())
    up, down = Sort("last_name", 1), Sort("last_name", -1)
    position = read_cursor(encode_cursor(up, None, last.as_uuid()), up, FieldKind(str, True))
    assert after(up, position) == {
        "$or": [{"last_name": None, "_id": {"$gt": last}}, {"last_name": {"$ne": None}}]
    }
    position = read_cursor(encode_cursor(down, "M", last.as_uuid()), down, FieldKind(str, True))
    assert after(down, position, nullable=True) == {
        "$or": [
            {"last_name": {"$lt": "M"}},
            {"last_name": "M", "_id": {"$lt": last}},
            {"last_name": None},
        ]
    }


def test_sort_parameters() -> None:
    fields = {"list_price": "list_price_cents", "created_at": "created_at"}
    assert parse_sort("-list_price", fields=fields, default=NEWEST_FIRST) == Sort(
        "list_price_cents", -1
    )
    assert parse_sort(None, fields=fields, default=NEWEST_FIRST) == NEWEST_FIRST
    with pytest.raises(Unprocessable):
        parse_sort("password_hash", fields=fields, default=NEWEST_FIRST)


# -- over HTTP: lists not sorted by _id (the probe's defect 7) --------------------------------


@pytest.fixture
async def touched_lead(owner: Account) -> str:
    c = owner.client
    campaign = await make_campaign(owner)
    lead = await make_lead(owner, email="a@example.com")
    await attach_leads(owner, campaign["id"], lead["id"])
    for day in (1, 2, 3):
        event = {
            "type": "call",
            "outcome": "answered",
            "campaign_id": campaign["id"],
            "lead_id": lead["id"],
            "occurred_at": f"2024-01-0{day}T00:00:00Z",
        }
        assert (await c.post("/v1/events", json=event)).status_code == 201
    await c.patch(f"/v1/leads/{lead['id']}", json={"first_name": "Ana"})
    return str(lead["id"])


@pytest.mark.parametrize(
    "value",
    [
        {"$where": "function() { return true; }"},
        {"$gt": 0},
        {"t": "0001-01-01T00:00:00+01:00"},
        {"t": "9999-12-31T23:59:59-14:00"},
        "anything",
        12,
    ],
)
async def test_forged_cursors_are_422_on_every_list_sorted_by_a_field(
    owner: Account, touched_lead: str, value: Any
) -> None:
    for path, key in (
        (f"/v1/leads/{touched_lead}/events", "-occurred_at"),
        ("/v1/events", "-occurred_at"),
        ("/v1/events?sort=created_at", "created_at"),
        ("/v1/leads?sort=-last_contacted_at", "-last_contacted_at"),
        (f"/v1/leads/{touched_lead}/history", "version"),
        ("/v1/audit", "-occurred_at"),
        ("/v1/ai/usage", "-occurred_at"),
    ):
        cursor = forge({"s": key, "v": value, "i": ID})
        sep = "&" if "?" in path else "?"
        response = await owner.client.get(f"{path}{sep}cursor={cursor}")
        if value == 12 and key == "version":
            assert response.status_code == 200, (path, response.text)  # a valid version
            continue
        body = assert_problem(response, 422)
        assert body["errors"][0]["loc"] == ["query", "cursor"], path


@pytest.mark.usefixtures("touched_lead")
async def test_a_cursor_of_another_sort_is_refused(owner: Account) -> None:
    first = (await owner.client.get("/v1/events?limit=1&sort=-created_at")).json()
    assert first["next_cursor"]
    again = await owner.client.get(
        f"/v1/events?limit=1&sort=-created_at&cursor={first['next_cursor']}"
    )
    assert again.status_code == 200
    for other in ("created_at", "-occurred_at", "-updated_at"):
        response = await owner.client.get(
            f"/v1/events?limit=1&sort={other}&cursor={first['next_cursor']}"
        )
        assert_problem(response, 422)


async def test_read_bodies_are_what_the_declared_schemas_write(owner: Account) -> None:
    """Single GETs and pages are serialised once, by each item's own model (issue 27): the
    bytes must be exactly what FastAPI writes through the route's declared response model."""
    from pydantic import TypeAdapter

    from schemas.campaigns import CAMPAIGN_VIEW, CampaignRead
    from schemas.leads import LEAD_VIEW, LeadPage, LeadRead

    await make_lead(owner, type="generic", email="a@example.com", tags=["x"])
    await make_lead(owner, type="mls", mls_id="M-1", list_price=250000.5, beds=3)
    mls = await make_lead(owner, type="mls", mls_id="M-2", address={"city": "Springfield"})
    campaign = await make_campaign(owner, type="email", name="E")
    response = await owner.client.get("/v1/leads?limit=2")
    raws = await LeadBase.get_pymongo_collection().find({}, sort=[("_id", -1)]).to_list()
    page = {"items": LEAD_VIEW.stored_many(raws[:2]), "next_cursor": response.json()["next_cursor"]}
    declared = TypeAdapter(LeadPage)
    assert response.content == declared.dump_json(declared.validate_python(page), by_alias=True)
    union = TypeAdapter(list[LeadRead])  # type: ignore[valid-type]
    assert response.content.startswith(b'{"items":' + union.dump_json(page["items"]) + b",")
    assert [i["type"] for i in response.json()["items"]] == ["mls", "mls"]

    one = await owner.client.get(f"/v1/leads/{mls['id']}")
    assert one.content == LEAD_VIEW.adapter.dump_json(LEAD_VIEW.stored(raws[0]), by_alias=True)
    assert one.headers["etag"] == '"1"' and one.headers["content-type"] == "application/json"
    got = await owner.client.get(f"/v1/campaigns/{campaign['id']}")
    stored = await owner.client.get(
        f"/v1/campaigns/{campaign['id']}", headers={"If-None-Match": '"1"'}
    )
    assert stored.status_code == 304 and stored.content == b""
    item = CAMPAIGN_VIEW.stored(got.json())
    assert got.content == TypeAdapter(CampaignRead).dump_json(item, by_alias=True)  # type: ignore[arg-type]


# -- pages written straight from the stored documents (issue 27) ------------------------------


async def _declared_body(response: Any, view: Any, page_model: Any, model: Any) -> bytes:
    """What FastAPI wrote before for this page: its stored documents validated into the read
    models, the page validated and serialised through the route's declared response model."""
    from pydantic import TypeAdapter

    body = response.json()
    ids = [UUID(item["id"]) for item in body["items"]]
    found = (
        await model.get_pymongo_collection()
        .find({"_id": {"$in": [Binary.from_uuid(i) for i in ids]}})
        .to_list()
    )
    by_id = {raw["_id"]: raw for raw in found}
    page: dict[str, Any] = {
        "items": view.stored_many([by_id[i] for i in ids]),
        "next_cursor": body["next_cursor"],
    }
    if "total" in body:
        page["total"] = body["total"]
    declared = TypeAdapter(page_model)
    dumped: bytes = declared.dump_json(declared.validate_python(page), by_alias=True)
    return dumped


async def test_lead_and_campaign_pages_are_byte_identical_to_the_declared_models(
    owner: Account,
) -> None:
    from documents.campaign import CampaignBase
    from schemas.campaigns import CAMPAIGN_VIEW, CampaignPage
    from schemas.leads import LEAD_VIEW, LeadPage

    full = await make_lead(
        owner,
        first_name="Ada",
        last_name="Lovelace",
        email="ada@example.com",
        phone="+14155550100",
        address={"line1": "1 Main St", "city": "Springfield", "country": "US"},
        source="web",
        notes="prefers mornings",
        tags=["vip", "q3"],
        segments={"tier": "gold"},
        consent={"text": {"status": "opted_in", "source": "web form"}},
        company="Analytical Engines",
        job_title="Countess",
        time_zone="Europe/London",
    )
    listing = await make_lead(
        owner,
        type="mls",
        mls_id="M-1",
        list_price=250000.5,
        beds=3,
        baths=2.5,
        listing_status="active",
        property_type="condo",
        listed_at="2026-01-02T03:04:05Z",
        location={"type": "Point", "coordinates": [-122.41, 37.77]},
        listing_agent={"name": "Agent", "email": "agent@example.com", "phone": "+14155550111"},
    )
    await make_lead(owner, type="mls", mls_id="M-2", list_price=99.99)
    gone = await make_lead(owner, email="gone@example.com")
    shelved = await make_lead(owner, email="shelved@example.com")
    legacy = await make_lead(owner, email="legacy@example.com")
    assert (await owner.client.delete(f"/v1/leads/{gone['id']}")).status_code == 204
    assert (await owner.client.post(f"/v1/leads/{shelved['id']}/archive")).status_code == 200
    # A lead stored before consent and the later optional fields existed: upcast on read.
    await LeadBase.get_pymongo_collection().update_one(
        {"_id": Binary.from_uuid(UUID(legacy["id"]))},
        {"$unset": {"consent": "", "time_zone": "", "assignee_id": "", "erased_at": ""}},
    )
    campaign = await make_campaign(owner, type="email", name="E", subject="Hi")
    await make_campaign(owner, type="social", name="S", platforms=["facebook"], hashtags=["a"])
    await make_campaign(owner, type="text", name="T", message_template="Hello")
    await make_campaign(owner, type="call", name="C", script="Say hi")
    await attach_leads(owner, campaign["id"], full["id"], listing["id"], legacy["id"])

    lead_pages = [
        "/v1/leads?limit=2",
        "/v1/leads?limit=200&include_deleted=true&include_archived=true&count=true",
        "/v1/leads?sort=-list_price&limit=2",
        "/v1/leads?near=-122.4,37.7&within_km=50",
        "/v1/leads?near=-122.4,37.7&count=true&limit=1",
        "/v1/leads?q=ada",
        "/v1/leads?type=mls&count=true",
        f"/v1/leads?campaign_id={campaign['id']}&limit=2",
        f"/v1/campaigns/{campaign['id']}/leads?count=true",
        f"/v1/campaigns/{campaign['id']}/leads?sort=last_name&limit=1",
        "/v1/leads?status=lost",  # an empty page
    ]
    for path in lead_pages:
        response = await owner.client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.headers["content-type"] == "application/json"
        expected = await _declared_body(response, LEAD_VIEW, LeadPage, LeadBase)
        assert response.content == expected, path
    everything = (await owner.client.get(lead_pages[1])).json()
    assert everything["total"] == 6
    assert {i["type"] for i in everything["items"]} == {"generic", "mls"}
    assert any(i["consent"]["text"]["status"] == "opted_in" for i in everything["items"])

    for path in ("/v1/campaigns?limit=2", "/v1/campaigns?count=true", "/v1/campaigns?type=social"):
        response = await owner.client.get(path)
        assert response.status_code == 200, (path, response.text)
        expected = await _declared_body(response, CAMPAIGN_VIEW, CampaignPage, CampaignBase)
        assert response.content == expected, path


def test_a_page_read_as_items_writes_the_same_bytes() -> None:
    """A `StoredPage` whose items were read (validated) writes them, not the raw documents:
    the same body either way."""
    from schemas.leads import LEAD_VIEW
    from service.core.pagination import StoredPage

    now = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    raw = {
        "_id": uuid4(),
        "tenant_id": uuid4(),
        "type": "mls",
        "mls_id": "M-9",
        "list_price_cents": 12345,
        "status": "new",
        "address": {"city": "X"},
        "tags": [],
        "segments": {},
        "created_at": now,
        "updated_at": now,
        "is_deleted": False,
        "version": 2,
        "search_tokens": ["m-9"],  # internal: never answered
    }
    fresh = StoredPage([raw], LEAD_VIEW, "abc", 7).json()
    read = StoredPage([raw], LEAD_VIEW, "abc", 7)
    assert read.items[0].version == 2
    assert read.json() == fresh
    body = json.loads(fresh)
    assert body["total"] == 7 and body["next_cursor"] == "abc"
    assert body["items"][0]["list_price"] == 123.45 and "search_tokens" not in body["items"][0]
    assert body["items"][0]["consent"]["call"] == {"status": "unknown", "source": None, "at": None}


@pytest.mark.usefixtures("member")  # a second user in the tenant's list
async def test_every_list_written_from_stored_documents_is_byte_identical(
    owner: Account, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`page_response` writes a page straight from the stored documents for every list whose
    declared model is a page of its view's schema: the bytes FastAPI wrote before."""
    from documents.api_key import ApiKey
    from documents.event import TouchpointEvent
    from documents.research import ResearchTopic
    from documents.saved_search import SavedSearch
    from documents.suppression import Suppression
    from documents.team import Team
    from documents.user import User
    from schemas.api_keys import API_KEY_VIEW, ApiKeyRead
    from schemas.common import Page
    from schemas.events import EVENT_VIEW, EventPage, TimelinePage
    from schemas.research import RESEARCH_TOPIC_VIEW, ResearchTopicRead
    from schemas.saved_searches import SAVED_SEARCH_VIEW, SavedSearchRead
    from schemas.suppressions import SUPPRESSION_VIEW, SuppressionPage
    from schemas.teams import TEAM_VIEW, TeamRead
    from schemas.users import USER_VIEW, UserRead
    from service.core.pagination import StoredPage
    from tests.factories import make_api_key, make_team

    written: list[bytes] = []
    json_of = StoredPage.json

    def spy(page: StoredPage[Any]) -> bytes:
        written.append(json_of(page))
        return written[-1]

    monkeypatch.setattr(StoredPage, "json", spy)
    campaign = await make_campaign(owner)
    lead = await make_lead(owner, email="e@example.com")
    await attach_leads(owner, campaign["id"], lead["id"])
    refs = {"campaign_id": campaign["id"], "lead_id": lead["id"]}
    for body in (
        {
            "type": "call",
            "outcome": "voicemail",
            "duration_seconds": 30,
            "recording_url": "https://r/1",
        },
        {"type": "text", "direction": "inbound", "body": "Yes!", "delivery_status": "received"},
        {"type": "social", "platform": "instagram", "action": "comment", "url": "https://ig/p/1"},
        {"type": "email", "subject": "Hello", "status": "opened"},
    ):
        assert (await owner.client.post("/v1/events", json={**body, **refs})).status_code == 201
    await make_team(owner, name="Blue")
    await make_api_key(owner, name="ci")
    for body in (
        {"name": "Hot", "resource": "leads", "filters": {"status": "new"}},
        {"name": "All", "resource": "campaigns"},
    ):
        assert (await owner.client.post("/v1/saved-searches", json=body)).status_code == 201
    assert (
        await owner.client.post("/v1/research/topics", json={"topic": "roofs"})
    ).status_code == 201
    suppression = {"channel": "email", "value": "no@example.com", "reason": "asked"}
    assert (await owner.client.post("/v1/suppressions", json=suppression)).status_code == 201

    lists: list[tuple[str, Any, Any, Any]] = [
        ("/v1/events?limit=3", EVENT_VIEW, EventPage, TouchpointEvent),
        ("/v1/events?count=true", EVENT_VIEW, EventPage, TouchpointEvent),
        (f"/v1/leads/{lead['id']}/events", EVENT_VIEW, TimelinePage, TouchpointEvent),
        ("/v1/users", USER_VIEW, Page[UserRead], User),
        ("/v1/teams", TEAM_VIEW, Page[TeamRead], Team),
        ("/v1/api-keys", API_KEY_VIEW, Page[ApiKeyRead], ApiKey),
        ("/v1/saved-searches?limit=1", SAVED_SEARCH_VIEW, Page[SavedSearchRead], SavedSearch),
        ("/v1/research/topics", RESEARCH_TOPIC_VIEW, Page[ResearchTopicRead], ResearchTopic),
        ("/v1/suppressions", SUPPRESSION_VIEW, SuppressionPage, Suppression),
    ]
    for path, view, page_model, model in lists:
        written.clear()
        response = await owner.client.get(path)
        assert response.status_code == 200, (path, response.text)
        assert response.json()["items"], path
        assert written == [response.content], f"{path}: not written from the stored documents"
        expected = await _declared_body(response, view, page_model, model)
        assert response.content == expected, path


def test_only_a_page_of_the_views_own_schema_is_written_from_the_documents() -> None:
    """A declared model with other items (or more fields, or no `total` for a counted page)
    leaves the page to FastAPI, which validates it into that model."""
    from routes.deps import _writes_as
    from schemas.campaigns import CAMPAIGN_VIEW, CampaignPage
    from schemas.common import Page
    from schemas.events import EVENT_VIEW, TimelinePage
    from schemas.leads import LEAD_VIEW, LeadPage
    from schemas.teams import TEAM_VIEW
    from schemas.users import USER_VIEW, UserRead
    from service.core.pagination import StoredPage

    def page(view: Any, total: int | None = None) -> StoredPage[Any]:
        return StoredPage([], view, None, total)

    assert _writes_as(LeadPage, page(LEAD_VIEW, total=3))
    assert _writes_as(CampaignPage, page(CAMPAIGN_VIEW))
    assert _writes_as(Page[UserRead], page(USER_VIEW))
    assert _writes_as(TimelinePage, page(EVENT_VIEW))
    assert not _writes_as(TimelinePage, page(EVENT_VIEW, total=3))  # `total` not declared
    assert not _writes_as(Page[UserRead], page(TEAM_VIEW))  # another schema
    assert not _writes_as(LeadPage, page(CAMPAIGN_VIEW))


def test_a_view_cannot_leave_unread_a_field_its_schema_reads() -> None:
    """`unread` fields are never fetched: one the response shows (by name or by validation
    alias) would come back empty, so the view refuses it when built."""
    from schemas.common import ReadView
    from schemas.leads import LeadRead

    with pytest.raises(ValueError, match="email"):
        ReadView(LeadRead, unread=("search_tokens", "email"))
    with pytest.raises(ValueError, match="list_price_cents"):
        ReadView(LeadRead, unread=("list_price_cents",))  # the stored name of `list_price`
    assert ReadView(LeadRead).projection is None


async def test_lead_reads_leave_the_derived_search_fields_on_the_server(owner: Account) -> None:
    """A lead page and a lead read fetch no `search_text` / `search_tokens` / outbox (stored
    for queries only), and answer exactly as with them."""
    from schemas.leads import LEAD_VIEW
    from service.core.pagination import StoredPage
    from service.core.repository import Repository

    lead = await make_lead(owner, first_name="Ada", email="ada@example.com", phone="+14155550100")
    lead_id = UUID(lead["id"])
    stored = await LeadBase.get_pymongo_collection().find_one({"_id": Binary.from_uuid(lead_id)})
    assert stored is not None and stored["search_tokens"] and stored["search_text"]
    repo = Repository(LeadBase, owner.ctx)
    page = await repo.page(limit=10, view=LEAD_VIEW)
    assert isinstance(page, StoredPage) and len(page.raws) == 1
    assert not {"search_text", "search_tokens", "pending_event"} & page.raws[0].keys()
    assert json.loads(page.json())["items"] == [
        json.loads(LEAD_VIEW.json(LEAD_VIEW.stored(stored)))
    ]
    assert await repo.read(lead_id, LEAD_VIEW) == LEAD_VIEW.stored(stored)
