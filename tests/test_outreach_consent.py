"""Consent, stop words, suppression normalisation and the contactability rule (quiet hours)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import pytest
from bson import Binary

from documents.journal import DomainEvent
from service.consent import is_stop_word
from tests.factories import make_lead
from tests.support.helpers import Account, assert_problem


async def campaign_with(account: Account, lead_id: str, kind: str = "text") -> str:
    campaign = await account.client.post("/v1/campaigns", json={"type": kind, "name": "C"})
    campaign_id: str = campaign.json()["id"]
    attached = await account.client.post(
        f"/v1/campaigns/{campaign_id}/leads", json={"lead_ids": [lead_id]}
    )
    assert attached.status_code == 200, attached.text
    return campaign_id


async def contactability(account: Account, lead_id: str, channel: str, at: str) -> Any:
    response = await account.client.get(
        f"/v1/leads/{lead_id}/contactability", params={"channel": channel, "at": at}
    )
    assert response.status_code == 200, response.text
    return response.json()


# -- consent ------------------------------------------------------------------------------------


async def test_new_leads_have_unknown_consent_and_their_creator_as_assignee(
    owner: Account,
) -> None:
    lead = await make_lead(owner, email="a@example.com")
    assert {c: v["status"] for c, v in lead["consent"].items()} == dict.fromkeys(
        ("call", "text", "email"), "unknown"
    )
    assert lead["assignee_id"] == str(owner.id)
    given = await make_lead(
        owner, email="b@example.com", consent={"email": {"status": "opted_in", "source": "form"}}
    )
    assert given["consent"]["email"]["status"] == "opted_in"
    assert given["consent"]["email"]["source"] == "form" and given["consent"]["email"]["at"]
    assert given["consent"]["text"]["status"] == "unknown"


async def test_put_consent_is_journaled(owner: Account, member: Account, viewer: Account) -> None:
    lead = await make_lead(owner, phone="+14155550100")
    url = f"/v1/leads/{lead['id']}/consent/text"
    response = await member.client.put(url, json={"status": "opted_in", "source": "web"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["consent"]["text"]["status"] == "opted_in" and body["version"] == 2
    journal = await DomainEvent.find({"aggregate_id": Binary.from_uuid(UUID(body["id"]))}).to_list()
    assert [e.event_type for e in journal] == ["lead.created", "lead.consent_changed"]
    assert_problem(await viewer.client.put(url, json={"status": "opted_out"}), 403)
    assert_problem(await member.client.put(url, json={"status": "maybe"}), 422)
    bad_channel = f"/v1/leads/{lead['id']}/consent/fax"
    assert_problem(await member.client.put(bad_channel, json={"status": "opted_out"}), 422)


async def test_foreign_lead_is_404(owner: Account, stranger: Account) -> None:
    lead = await make_lead(owner, phone="+14155550100")
    url = f"/v1/leads/{lead['id']}/consent/text"
    assert_problem(await stranger.client.put(url, json={"status": "opted_out"}), 404)
    response = await stranger.client.get(
        f"/v1/leads/{lead['id']}/contactability", params={"channel": "text"}
    )
    assert_problem(response, 404)


@pytest.mark.parametrize(
    ("body", "stop"),
    [
        ("STOP", True),
        ("  stop\n", True),
        ("StopAll", True),
        ("unsubscribe", True),
        ("Cancel", True),
        ("end", True),
        ("QUIT", True),
        ("stop please", False),
        ("don't stop", False),
        ("", False),
    ],
)
def test_stop_words(body: str, stop: bool) -> None:
    assert is_stop_word(body) is stop


async def test_inbound_stop_word_opts_out_of_texts(owner: Account) -> None:
    lead = await make_lead(owner, phone="+14155550100")
    campaign_id = await campaign_with(owner, lead["id"])
    event = await owner.client.post(
        "/v1/events",
        json={
            "type": "text",
            "direction": "inbound",
            "body": " Stop ",
            "delivery_status": "received",
            "campaign_id": campaign_id,
            "lead_id": lead["id"],
        },
    )
    assert event.status_code == 201, event.text
    got = (await owner.client.get(f"/v1/leads/{lead['id']}")).json()
    assert got["consent"]["text"]["status"] == "opted_out"
    assert got["consent"]["text"]["source"] == event.json()["id"]
    assert got["consent"]["call"]["status"] == "unknown"


async def test_outbound_stop_text_changes_nothing(owner: Account) -> None:
    lead = await make_lead(owner, phone="+14155550100")
    campaign_id = await campaign_with(owner, lead["id"])
    await owner.client.post(
        "/v1/events",
        json={"type": "text", "body": "STOP", "campaign_id": campaign_id, "lead_id": lead["id"]},
    )
    got = (await owner.client.get(f"/v1/leads/{lead['id']}")).json()
    assert got["consent"]["text"]["status"] == "unknown"


@pytest.mark.parametrize("status", ["unsubscribed", "spam"])
async def test_email_unsubscribe_and_spam_opt_out(owner: Account, status: str) -> None:
    lead = await make_lead(owner, email="x@example.com")
    campaign_id = await campaign_with(owner, lead["id"], "email")
    event = await owner.client.post(
        "/v1/events",
        json={"type": "email", "status": status, "campaign_id": campaign_id, "lead_id": lead["id"]},
    )
    assert event.status_code == 201, event.text
    got = (await owner.client.get(f"/v1/leads/{lead['id']}")).json()
    assert got["consent"]["email"] == {
        **got["consent"]["email"],
        "status": "opted_out",
        "source": event.json()["id"],
    }


async def test_bulk_import_accepts_consent(owner: Account) -> None:
    response = await owner.client.post(
        "/v1/leads/bulk",
        json={
            "leads": [
                {
                    "type": "generic",
                    "email": "c1@example.com",
                    "consent": {"email": {"status": "opted_out", "source": "import"}},
                },
                {"type": "generic", "email": "c2@example.com", "consent": {"fax": {}}},
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert response.json()["created"] == 1 and response.json()["failed"][0]["index"] == 1
    page = (await owner.client.get("/v1/leads", params={"q": "c1@example.com"})).json()
    assert page["items"][0]["consent"]["email"]["status"] == "opted_out"
    assert page["items"][0]["assignee_id"] == str(owner.id)


# -- suppression --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("channel", "value", "stored"),
    [
        ("text", "(415) 555-0100", "+14155550100"),
        ("call", "+1 415-555-0100", "+14155550100"),
        ("call", "415.555.0100", "+14155550100"),  # read in the tenant's region (US)
        ("call", "+44 20 7183 8750", "+442071838750"),
        ("email", "  Someone@Example.COM ", "someone@example.com"),
    ],
)
async def test_suppression_values_are_normalised(
    owner: Account, channel: str, value: str, stored: str
) -> None:
    response = await owner.client.post(
        "/v1/suppressions", json={"channel": channel, "value": value, "reason": "asked"}
    )
    assert response.status_code == 201, response.text
    assert response.json()["value"] == stored and response.json()["channel"] == channel
    listed = await owner.client.get("/v1/suppressions", params={"channel": channel, "value": value})
    assert [s["id"] for s in listed.json()["items"]] == [response.json()["id"]]
    anywhere = await owner.client.get("/v1/suppressions", params={"value": value})
    assert [s["id"] for s in anywhere.json()["items"]] == [response.json()["id"]]


async def test_suppression_duplicates_roles_tenancy_and_delete(
    owner: Account, member: Account, stranger: Account
) -> None:
    body = {"channel": "text", "value": "+14155550100"}
    created = await owner.client.post("/v1/suppressions", json=body)
    again = await owner.client.post(
        "/v1/suppressions", json={"channel": "text", "value": "415-555-0100"}
    )
    assert assert_problem(again, 409)["existing_id"] == created.json()["id"]
    other_channel = await owner.client.post(
        "/v1/suppressions", json={"channel": "call", "value": "415-555-0100"}
    )
    assert other_channel.status_code == 201
    assert_problem(await member.client.post("/v1/suppressions", json=body), 403)
    assert_problem(await member.client.get("/v1/suppressions"), 403)
    assert_problem(await stranger.client.delete(f"/v1/suppressions/{created.json()['id']}"), 404)
    assert (await stranger.client.get("/v1/suppressions")).json()["items"] == []
    assert_problem(
        await owner.client.post("/v1/suppressions", json={"channel": "email", "value": "nope"}),
        422,
    )
    assert_problem(
        await owner.client.post("/v1/suppressions", json={"channel": "text", "value": "abc"}),
        422,
    )
    deleted = await owner.client.delete(f"/v1/suppressions/{created.json()['id']}")
    assert deleted.status_code == 204
    assert_problem(await owner.client.delete(f"/v1/suppressions/{created.json()['id']}"), 404)
    readded = await owner.client.post("/v1/suppressions", json=body)
    assert readded.status_code == 201
    listed = await owner.client.get("/v1/suppressions", params={"count": "true"})
    assert listed.json()["total"] == 2


# -- contactability -----------------------------------------------------------------------------

NOON_LA = "2026-07-01T19:00:00Z"  # 12:00 in Los Angeles (PDT), 15:00 in New York


async def test_reasons(owner: Account) -> None:
    lead = await make_lead(owner, phone="+14155550100", email="r@example.com")
    assert await contactability(owner, lead["id"], "call", NOON_LA) == {
        "channel": "call",
        "allowed": True,
        "reasons": [],
    }
    await owner.client.put(f"/v1/leads/{lead['id']}/consent/call", json={"status": "opted_out"})
    await owner.client.post("/v1/suppressions", json={"channel": "call", "value": "4155550100"})
    got = await contactability(owner, lead["id"], "call", "2026-07-01T05:00:00Z")
    assert got["allowed"] is False
    assert set(got["reasons"]) == {"opted_out", "suppressed", "quiet_hours"}
    # Suppression and consent are per channel; e-mail has no quiet hours.
    assert (await contactability(owner, lead["id"], "email", "2026-07-01T05:00:00Z"))[
        "allowed"
    ] is True
    only_email = await make_lead(owner, email="only@example.com")
    got = await contactability(owner, only_email["id"], "text", NOON_LA)
    assert got["reasons"] == ["no_address"]
    await owner.client.delete(f"/v1/leads/{only_email['id']}")
    got = await contactability(owner, only_email["id"], "email", NOON_LA)
    assert got["reasons"] == ["deleted"]
    assert_problem(
        await owner.client.get(f"/v1/leads/{lead['id']}/contactability", params={"channel": "fax"}),
        422,
    )


@pytest.mark.parametrize(
    ("at", "allowed"),
    [
        ("2026-07-01T14:59:59Z", False),  # 07:59:59 PDT
        ("2026-07-01T15:00:00Z", True),  # 08:00 PDT: the window starts
        ("2026-07-02T03:59:59Z", True),  # 20:59:59 PDT
        ("2026-07-02T04:00:00Z", False),  # 21:00 PDT: the window has ended
        ("2026-01-15T15:59:00Z", False),  # 07:59 PST (winter: UTC-8)
        ("2026-01-15T16:00:00Z", True),  # 08:00 PST
        ("2026-03-08T15:30:00Z", True),  # 08:30 PDT on the day DST starts (UTC-7 from 02:00)
        ("2026-11-01T15:30:00Z", False),  # 07:30 PST on the day DST ends
    ],
)
async def test_quiet_hour_edges_and_dst(owner: Account, at: str, allowed: bool) -> None:
    lead = await make_lead(owner, phone="+14155550100")  # a San Francisco number
    got = await contactability(owner, lead["id"], "call", at)
    assert got["allowed"] is allowed, got
    assert got["reasons"] == ([] if allowed else ["quiet_hours"])


async def test_lead_time_zone_wins_and_tenant_window_applies(owner: Account) -> None:
    lead = await make_lead(owner, phone="+14155550100", time_zone="America/New_York")
    # 06:00 in Los Angeles but 09:00 in New York: the lead's own zone decides.
    assert (await contactability(owner, lead["id"], "text", "2026-07-01T13:00:00Z"))["allowed"]
    await owner.client.patch("/v1/tenant", json={"quiet_hours": {"start": "10:00", "end": "18:00"}})
    assert not (await contactability(owner, lead["id"], "text", "2026-07-01T13:00:00Z"))["allowed"]
    assert (await contactability(owner, lead["id"], "text", "2026-07-01T14:00:00Z"))["allowed"]


async def test_several_zones_must_all_allow(owner: Account) -> None:
    lead = await make_lead(owner, phone="+18005550100")  # toll-free: every North American zone
    # 13:00 in New York is 07:00 in Honolulu: not allowed everywhere.
    got = await contactability(owner, lead["id"], "call", "2026-07-01T17:00:00Z")
    assert got["reasons"] == ["quiet_hours"]
    # 21:00 UTC: 17:00 New York, 11:00 Honolulu, 13:00 Anchorage, 10:00 Pago Pago, but 07:00
    # in Guam (ChST, UTC+10) the next day: still quiet somewhere.
    got = await contactability(owner, lead["id"], "call", "2026-07-01T21:00:00Z")
    assert got["reasons"] == ["quiet_hours"]


async def test_outbound_event_to_an_uncontactable_lead_is_flagged(owner: Account) -> None:
    lead = await make_lead(owner, phone="+14155550100")
    campaign_id = await campaign_with(owner, lead["id"], "call")
    night = await owner.client.post(
        "/v1/events",
        json={
            "type": "call",
            "outcome": "no_answer",
            "occurred_at": "2026-07-01T10:00:00Z",  # 03:00 in Los Angeles
            "campaign_id": campaign_id,
            "lead_id": lead["id"],
        },
    )
    assert night.status_code == 201, night.text
    assert night.json()["compliance"] == {"allowed": False, "reasons": ["quiet_hours"]}
    day = await owner.client.post(
        "/v1/events",
        json={
            "type": "call",
            "outcome": "no_answer",
            "occurred_at": NOON_LA,
            "campaign_id": campaign_id,
            "lead_id": lead["id"],
        },
    )
    assert day.json()["compliance"] is None
    assert datetime.fromisoformat(NOON_LA) < datetime.now(UTC)
    stats = await owner.client.get(f"/v1/analytics/campaigns/{campaign_id}")
    assert stats.json()["violations"] == 1 and stats.json()["events_total"] == 2


def test_csv_consent_columns_become_consent() -> None:
    from service.cli.lead_import import build_row, column_mapping

    headers = ["Email", "SMS consent", "consent.email.status", "consent.email.source"]
    mapping = column_mapping(headers, [], auto=True)
    assert mapping["consent.text.status"] == 1 and mapping["consent.email.source"] == 3
    row = build_row(["a@example.com", "opted_in", "opted_out", "fair"], mapping, "generic")
    assert row == {
        "type": "generic",
        "email": "a@example.com",
        "consent": {
            "text": {"status": "opted_in"},
            "email": {"status": "opted_out", "source": "fair"},
        },
    }
