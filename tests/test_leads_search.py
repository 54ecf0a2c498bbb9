"""`q` finds what an agent types: the beginnings of words of names, email, company, MLS id and
address, phone digits as typed, ignoring case and accents, within the tenant's live leads.

Every word of the term must start one of the lead's `search_tokens` (an anchored prefix, so
the multikey index bounds the search; see service/leads/queries.py)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest

from documents.lead import (
    SEARCH_SEPARATOR,
    LeadBase,
    fold,
    lead_search_text,
    lead_search_tokens,
    with_search_tokens,
)
from service.leads.queries import search_filter
from tests.factories import make_lead
from tests.support.helpers import Account, assert_problem


async def make(account: Account, **body: Any) -> str:
    return str((await make_lead(account, **body))["id"])


async def found(account: Account, q: str, **params: Any) -> set[str]:
    response = await account.client.get("/v1/leads", params={"q": q, "limit": 200, **params})
    assert response.status_code == 200, response.text
    return {x["id"] for x in response.json()["items"]}


@pytest.fixture
async def people(owner: Account) -> dict[str, str]:
    ids = {
        "jose": await make(
            owner,
            first_name="José",
            last_name="Álvarez-Núñez",
            email="Jose.Alvarez@Casas-Bonitas.com",
            phone="+1 (415) 555-0100",
            company="Casas Bonitas Realty",
            address={"line1": "1200 Mission St", "city": "San Francisco", "postal_code": "94103"},
        ),
        "ana": await make(
            owner,
            first_name="Ana",
            last_name="Silva",
            email="ana.silva@example.org",
            phone="(312) 555-0142",
            company="Acme Homes",
            address={"line1": "42 Lake Shore Dr", "city": "Chicago", "state": "IL"},
        ),
        "uk": await make(owner, email="hello@london.example", phone="+44 20 7183 8750"),
    }
    mls = await make_lead(
        owner,
        type="mls",
        mls_id="SF-2024-0042",
        address={"line1": "77 Ocean Ave", "city": "San Francisco"},
    )
    ids["mls"] = mls["id"]
    return ids


@pytest.mark.parametrize(
    ("q", "who"),
    [
        ("jose", {"jose"}),  # accents ignored
        ("JOSÉ", {"jose"}),
        ("alvarez-nunez", {"jose"}),
        ("josé álvarez", {"jose"}),  # first and last name together
        ("ana silva", {"ana"}),
        ("silva", {"ana"}),
        ("silv", {"ana"}),  # the beginning of a name
        ("ilv", set()),  # not the middle of a word: no index range holds it
        ("sil ana", {"ana"}),  # words in any order
        ("casas-bonitas.com", {"jose"}),  # any part of an email
        ("@example.org", {"ana"}),
        ("ana.silva@", {"ana"}),
        ("Casas Bonitas", {"jose"}),  # company
        ("acme", {"ana"}),
        ("(415) 555-01", {"jose"}),  # a phone as typed
        ("415.555.0100", {"jose"}),
        ("+1 415 555 0100", {"jose"}),
        ("5550100", {"jose"}),
        ("020 7183", {"uk"}),  # a national trunk 0: E.164 drops it
        ("7183 8750", {"uk"}),
        ("mission st", {"jose"}),  # address parts
        ("san francisco", {"jose", "mls"}),
        ("94103", {"jose"}),
        ("lake shore", {"ana"}),
        ("sf-2024", {"mls"}),  # MLS id
        ("0042", {"mls"}),
        ("nobody", set()),
        (".*", set()),  # regex characters are literal
        ("(", set()),
        ("a+)+$", set()),
        ("[a-z]", set()),
    ],
)
async def test_search_cases(owner: Account, people: dict[str, str], q: str, who: set[str]) -> None:
    assert await found(owner, q) == {people[name] for name in who}, q


async def test_search_follows_changes_deletes_and_tenants(
    owner: Account, stranger: Account, people: dict[str, str]
) -> None:
    await owner.client.patch(f"/v1/leads/{people['ana']}", json={"last_name": "Costa"})
    assert await found(owner, "silva costa") == {people["ana"]}  # the email says ana.silva
    assert await found(owner, "ana costa") == {people["ana"]}
    assert await found(owner, "costa silva acme") == {people["ana"]}
    assert await found(owner, "costa chicago boston") == set()
    await owner.client.patch(f"/v1/leads/{people['ana']}", json={"address": {"city": "Boston"}})
    assert await found(owner, "boston") == {people["ana"]}
    assert await found(owner, "lake shore") == {people["ana"]}  # the rest of the address stays
    assert await found(owner, "chicago") == set()
    await owner.client.delete(f"/v1/leads/{people['jose']}")
    assert await found(owner, "jose") == set()
    assert await found(owner, "jose", include_deleted="true") == {people["jose"]}
    await make(stranger, first_name="José", email="other@example.com")
    assert await found(owner, "jose", include_deleted="true") == {people["jose"]}


async def test_imported_leads_are_searchable_and_search_combines(owner: Account) -> None:
    rows = [
        {"type": "generic", "email": f"agent{i}@brokerage.example", "last_name": f"N{i:02d}"}
        for i in range(12)
    ]
    rows.append({"type": "mls", "mls_id": "BK-1", "address": {"city": "Brokerage Falls"}})
    assert (await owner.client.post("/v1/leads/bulk", json={"leads": rows})).json()["created"] == 13
    page = (
        await owner.client.get(
            "/v1/leads",
            params={"q": "brokerage", "sort": "-last_name", "limit": 5, "count": "true"},
        )
    ).json()
    assert page["total"] == 13
    assert [x.get("last_name") for x in page["items"]] == ["N11", "N10", "N09", "N08", "N07"]
    mls = (await owner.client.get("/v1/leads", params={"q": "brokerage", "type": "mls"})).json()
    assert [x["mls_id"] for x in mls["items"]] == ["BK-1"]


def test_search_text_is_folded_and_separated() -> None:
    text = lead_search_text(
        {
            "first_name": "José",
            "last_name": "Ünal",
            "email": "j@x.io",
            "phone": "+14155550100",
            "address": {"city": "Zürich", "line1": None},
        }
    )
    assert text.split(SEARCH_SEPARATOR) == [
        "jose",
        "unal",
        "jose unal",
        "j@x.io",
        "14155550100",
        "zurich",
    ]
    assert fold("  Straße  ÉCOLE ") == "strasse ecole"


def test_search_is_anchored_prefixes_of_the_terms_words() -> None:
    assert search_filter("Ana") == {"search_tokens": {"$regex": "^ana"}}
    assert search_filter("ana.silva@") == {
        "search_tokens": {"$regex": "^silva"},
        "$and": [{"search_tokens": {"$elemMatch": {"$regex": "^ana"}}}],
    }
    assert search_filter("(020) 71") == {
        "$or": [
            {
                "search_tokens": {"$regex": "^020"},
                "$and": [{"search_tokens": {"$elemMatch": {"$regex": "^71"}}}],
            },
            {"search_tokens": {"$regex": "^02071"}},
            {"search_tokens": {"$regex": "^2071"}},
        ]
    }
    assert search_filter("(.)") == {"search_tokens": {"$in": []}}


def test_search_tokens_of_a_lead() -> None:
    tokens = lead_search_tokens(
        {
            "first_name": "José",
            "last_name": "Ünal-Smith",
            "email": "J.Unal@Mail.Example.com",
            "phone": "+14155550100",
            "address": {"city": "Zürich", "line1": None},
        }
    )
    assert tokens == [
        "jose",
        "unal",
        "smith",
        "zurich",
        "j.unal@mail.example.com",
        "j.unal",
        "mail.example.com",
        "j",
        "mail",
        "example",
        "com",
        *("14155550100", "4155550100", "155550100", "55550100", "5550100", "550100"),
        *("50100", "0100"),
    ]


@pytest.mark.parametrize("q", ["a\x1fb", "x" * 101, "", "\x00"])
async def test_bad_terms_are_422(owner: Account, q: str) -> None:
    assert_problem(await owner.client.get("/v1/leads", params={"q": q}), 422)


async def test_leads_stored_before_search_tokens_get_them_from_the_upcaster(
    owner: Account, people: dict[str, str]
) -> None:
    # A lead stored in shape 1 (no `search_tokens`, no `is_archived`) is read upcast at once
    # and found by `q` once `migrate` stored it; the upcaster derives exactly what the
    # document itself would.
    collection = LeadBase.get_pymongo_collection()
    stored = await collection.find_one({"_id": UUID(people["jose"])})
    assert stored["schema_version"] == 3 and stored["is_archived"] is False
    old = {k: v for k, v in stored.items() if k not in ("search_tokens", "is_archived")}
    upcast = with_search_tokens({**old, "schema_version": 1})
    assert upcast["search_tokens"] == stored["search_tokens"] and upcast["is_archived"] is False
    await collection.update_one(
        {"_id": stored["_id"]},
        {"$unset": {"search_tokens": "", "is_archived": ""}, "$set": {"schema_version": 1}},
    )
    assert await found(owner, "casas") == set()
    assert (await owner.client.get(f"/v1/leads/{people['jose']}")).status_code == 200
    from service.storage.migrations import migrate

    await migrate(models=[LeadBase])
    assert await found(owner, "casas") == {people["jose"]}
    assert (await collection.find_one({"_id": stored["_id"]}))["is_archived"] is False
