"""Fast paths of per-row validation give exactly what the general path gives (issue 18)."""

from __future__ import annotations

import random
import re
import string
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any

import phonenumbers
import pytest
from pydantic import AfterValidator, BeforeValidator, EmailStr, Field, TypeAdapter, ValidationError

from documents.base import Email, _plain_email, normalize_phone
from documents.lead import (
    MAX_SEARCH_TOKENS,
    PHONE_SUFFIX_MIN,
    SEARCH_SEPARATOR,
    fold,
    lead_search_fields,
    search_words,
)
from documents.phones import nanp_e164
from schemas.common import Money

_general: TypeAdapter[str] = TypeAdapter(
    Annotated[EmailStr, AfterValidator(lambda v: v.strip().lower())]
)
_email: TypeAdapter[str] = TypeAdapter(Email)


def _outcome(adapter: TypeAdapter[str], value: Any) -> str | None:
    try:
        return adapter.validate_python(value)
    except ValidationError:
        return None


def _addresses(n: int) -> list[str]:
    rng = random.Random(18)
    local_chars = string.ascii_letters[:6] + "Z09._+-'"
    domain_chars = "aZ9.-"
    tlds = ["com", "COM", "io", "test", "localhost", "onion", "c0m", "x", "7", "arpa", "Local"]
    out = []
    for _ in range(n):
        local = "".join(rng.choice(local_chars) for _ in range(rng.randint(0, 8)))
        domain = "".join(rng.choice(domain_chars) for _ in range(rng.randint(0, 8)))
        out.append(f"{local}@{domain}.{rng.choice(tlds)}")
    return out


EDGE_CASES = [
    "plain@example.com",
    "Mixed.Case+tag@Sub.Example.ORG",
    "a@b.co",
    "x" * 64 + "@example.com",  # longest local part
    "x" * 65 + "@example.com",  # one too long
    "a@" + "b" * 63 + ".com",  # longest label
    "a@" + "b" * 64 + ".com",  # one too long
    "a@" + ".".join(["b" * 60] * 4) + ".com",  # domain over 253
    "a@ab--cd.com",
    "a@xn--bcher-kva.com",
    "a@-b.com",
    "a@b-.com",
    "a@b.test",
    "a@b.localhost",
    "a@localhost",
    "a@b.c0m",
    "a..b@example.com",
    "o'brien@example.com",  # an apostrophe: kept as it is (issue 27)
    "'@example.com",
    "a.'.b@example.com",
    "a'b@exa'mple.com",  # not in a domain
    ".a@example.com",
    "a.@example.com",
    " padded@example.com ",
    "line@example.com\n",
    "Name <name@example.com>",
    "ünï@example.com",
    "a@exämple.com",
    "a@example",
    "",
]


@pytest.mark.parametrize("value", EDGE_CASES)
def test_email_fast_path_agrees_on_edge_cases(value: str) -> None:
    assert _outcome(_email, value) == _outcome(_general, value)


def test_email_fast_path_agrees_on_generated_addresses() -> None:
    addresses = _addresses(8000)
    fast = [a for a in addresses if _plain_email(a, lambda _: "")]  # "": EmailStr's turn
    assert len(fast) > 250  # the fast path is really exercised
    for value in addresses:
        assert _outcome(_email, value) == _outcome(_general, value), value


def test_email_with_an_apostrophe_takes_the_fast_path() -> None:
    # Issue 27: names like O'Brien give addresses email_validator keeps as they are.
    def general(_: Any) -> str:
        raise AssertionError("EmailStr was called")

    assert _plain_email("D'Arcy.O'Brien@Example.com", general) == "d'arcy.o'brien@example.com"
    assert _outcome(_general, "D'Arcy.O'Brien@Example.com") == "d'arcy.o'brien@example.com"


def _fold_general(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    plain = "".join(c for c in decomposed if not unicodedata.combining(c))
    return " ".join(plain.split())


@pytest.mark.parametrize(
    "text",
    [
        "  Mixed   CASE\tText ",
        "".join(chr(c) for c in range(128)),  # every ASCII character, controls included
        "Zoë Ångström",  # not ASCII: the general path
        "ﬁ ligature",
    ],
)
def test_fold_ascii_fast_path_agrees(text: str) -> None:
    assert fold(text) == _fold_general(text)


def test_fold_remembers_other_text_as_it_folds_it(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 27: non-ASCII text is folded once per distinct value while remembered; each
    # answer, first or remembered (across the bound that empties the memory), is the fold.
    from documents import lead

    monkeypatch.setattr(lead, "_FOLDED", {})
    monkeypatch.setattr(lead, "_FOLDED_MAX", 50)
    rng = random.Random(2727)
    texts = [
        "".join(rng.choice(_SEARCH_ALPHABET) for _ in range(rng.randint(1, 6))) for _ in range(300)
    ]
    texts += [_Text(t) for t in texts[:20]]
    for text in texts + texts[::-1]:
        assert fold(text) == _fold_general(text), text
        assert type(fold(text)) is str
    assert 0 < len(lead._FOLDED) <= 50 and all(type(k) is str for k in lead._FOLDED)


# -- search text and tokens in one pass (issue 27) --------------------------------------------


def _text_oracle(fields: dict[str, Any]) -> str:
    # documents/lead.py before issue 27: every part folded on its own, the names joined first.
    first, last = fields.get("first_name"), fields.get("last_name")
    address = fields.get("address") or {}
    phone = fields.get("phone")
    parts = [
        first,
        last,
        f"{first} {last}" if first and last else None,
        fields.get("email"),
        phone.lstrip("+") if isinstance(phone, str) else None,
        fields.get("company"),
        fields.get("mls_id"),
        *(address.get(p) for p in ("line1", "line2", "city", "state", "postal_code", "country")),
    ]
    return SEARCH_SEPARATOR.join(fold(p) for p in parts if isinstance(p, str) and p.strip())


def _tokens_oracle(fields: dict[str, Any]) -> list[str]:
    address = fields.get("address") or {}
    tokens: list[str] = []
    for part in (
        fields.get("first_name"),
        fields.get("last_name"),
        fields.get("company"),
        fields.get("mls_id"),
        *(address.get(p) for p in ("line1", "line2", "city", "state", "postal_code", "country")),
    ):
        if isinstance(part, str):
            tokens += search_words(part)
    email = fields.get("email")
    if isinstance(email, str) and email:
        folded = fold(email)
        local, _, domain = folded.partition("@")
        tokens += [folded, local, domain, *search_words(folded)]
    phone = fields.get("phone")
    if isinstance(phone, str):
        digits = re.sub(r"\D", "", phone)
        tokens += [digits[i:] for i in range(len(digits) - PHONE_SUFFIX_MIN + 1)] or [digits]
    return list(dict.fromkeys(t for t in tokens if t))[:MAX_SEARCH_TOKENS]


# Letters, upper case, accents (precomposed and combining alone), compatibility forms that
# fold to upper case (U+210C), every kind of space, the word separators and the text separator.
_SEARCH_ALPHABET = "aZé\u0301Åß \u210c\ufb01\t\u00a0\u3000\x1f\x1c.@-_'()+0917Σς"


class _Text(str):
    """A str subclass (the one-pass derivation folds exact strs inline, others generally)."""


def _search_values(rng: random.Random) -> Any:
    draw = rng.random()
    if draw < 0.2:
        return None
    if draw < 0.23:
        return 5  # not text: skipped, but a name still makes "first last" (as before)
    text = "".join(rng.choice(_SEARCH_ALPHABET) for _ in range(rng.randint(0, 9)))
    return _Text(text) if draw < 0.27 else text


def _drawn_lead(
    rng: random.Random, draw: Callable[[random.Random], Any], address_parts: tuple[str, ...]
) -> dict[str, Any]:
    # A lead's searched fields drawn by `draw`; half the phones a well-formed E.164 number.
    names = ["first_name", "last_name", "email", "phone", "company", "mls_id"]
    fields: dict[str, Any] = {name: draw(rng) for name in names}
    if rng.random() < 0.5:
        fields["phone"] = "+" + "".join(rng.choice("0123456789") for _ in range(11))
    fields["address"] = {p: draw(rng) for p in address_parts}
    return fields


def test_search_text_and_tokens_in_one_pass_agree_with_each_derivation() -> None:
    rng = random.Random(27)
    parts = ("line1", "city", "state", "postal_code", "country")
    for _ in range(6000):
        fields = _drawn_lead(rng, _search_values, parts)
        text, tokens = lead_search_fields(fields)
        assert text == _text_oracle(fields), fields
        assert tokens == _tokens_oracle(fields), fields
    ascii_lead = {"first_name": " Ana ", "last_name": "de la Cruz", "email": "A.B@X.io"}
    assert lead_search_fields(ascii_lead) == (_text_oracle(ascii_lead), _tokens_oracle(ascii_lead))


_ASCII_SEARCH_ALPHABET = "aZq 09\t\n\x1f\x1c\x0b.@-_'()+&#!?,;:/\""


def _ascii_search_values(rng: random.Random) -> Any:
    draw = rng.random()
    if draw < 0.15:
        return None
    if draw < 0.18:
        return rng.choice([5, 0, False, ""])  # not text (truthy or not), or empty text
    text = "".join(rng.choice(_ASCII_SEARCH_ALPHABET) for _ in range(rng.randint(0, 9)))
    return _Text(text) if draw < 0.22 else text


def test_ascii_search_fields_agree_with_each_derivation(monkeypatch: pytest.MonkeyPatch) -> None:
    # Issue 27: leads whose text parts are all ASCII take `_ascii_search_fields` (no call per
    # part, the words split at once); every ASCII space, control and punctuation drawn.
    from documents import lead

    taken = []
    fast = lead._ascii_search_fields
    monkeypatch.setattr(lead, "_ascii_search_fields", lambda *a: taken.append(1) or fast(*a))
    rng = random.Random(2727)
    parts = ("line1", "line2", "city", "state", "postal_code", "country")
    for _ in range(6000):
        fields = _drawn_lead(rng, _ascii_search_values, parts)
        assert lead_search_fields(fields) == (_text_oracle(fields), _tokens_oracle(fields)), fields
    assert len(taken) > 4000  # the ASCII path is really exercised
    before = len(taken)
    mixed = {"first_name": "Zoë", "last_name": "Smith", "email": "z@x.io", "address": {}}
    assert lead_search_fields(mixed) == (_text_oracle(mixed), _tokens_oracle(mixed))
    assert len(taken) == before  # not all ASCII: the general path


def test_ascii_words_split_as_the_pattern_splits() -> None:
    # Issue 27: ASCII text is split by a bytes table and `str.split`, not the pattern; every
    # ASCII character (controls and the text separator included) in random strings.
    from documents.lead import _WORD_SPLIT, _split_words

    rng = random.Random(27)
    ascii_chars = "".join(map(chr, range(128)))
    for _ in range(5000):
        text = "".join(rng.choice(ascii_chars) for _ in range(rng.randint(0, 12)))
        assert _split_words(text) == [w for w in _WORD_SPLIT.split(text) if w], text


# -- phones: the NANP shortcut gives exactly what phonenumbers gives (issue 27) ---------------


def _phone_oracle(value: str, region: str) -> str:
    # `normalize_phone` before issue 27: the library's parse, validity and E.164 format.
    try:
        parsed = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return "Not a phone number: expected digits such as +1 415 555 0100."
    if not phonenumbers.is_valid_number(parsed):
        return (
            "Not a valid phone number: no such area code, or the wrong number of digits "
            f"(without a +country code it is read in region {region})."
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def _phone_outcome(value: str, region: str) -> str:
    try:
        return normalize_phone.__wrapped__(value, region)
    except ValueError as exc:
        return str(exc)


def _phone_inputs(rng: random.Random) -> list[str]:
    def digits(n: int, first: str = "0123456789") -> str:
        return rng.choice(first) + "".join(rng.choice("0123456789") for _ in range(n - 1))

    out = []
    for area in range(200, 1000):  # every area code: valid and unassigned ones
        ten = f"{area}{digits(7)}"
        a, e, s = ten[:3], ten[3:6], ten[6:]
        out += [
            f"+1{ten}",
            f"+1 ({a}) {e}-{s}",
            f"+ 1 {a}.{e}.{s}",
            f"({a}) {e}-{s}",
            f"{a}.{e}.{s})",
            f"{ten}",
            f"1{ten}",  # no plus: the library's default-country rules
            f"+1 {a} {e} {s}-",
        ]
    for _ in range(2000):  # near misses: other lengths, leading 0/1, other characters
        n = rng.choice([7, 9, 10, 10, 11, 12])
        body = digits(n, rng.choice(["01", "23456789", "0123456789"]))
        sep = rng.choice(["", " ", "-", ".", "/", "x", "#", "~", ",", "a", "\u00a0", "\uff11"])
        cut = rng.randint(0, len(body))
        out.append(
            rng.choice(["", "+", "+1", "+ 1", "++1", "(", "011 1 "]) + body[:cut] + sep + body[cut:]
        )
    out += ["+44 20 7946 0958", "+1 800 555 0100", "+1 900 555 0100", "+1 (264) 497-1234"]
    out += [
        "+1" + "0" * 10,
        "+1 " + " " * 80 + "4155550100",
        "+1(((415)))5550100",
        "+14155550100 ext 5",
    ]
    return out


def test_nanp_phone_shortcut_agrees_with_phonenumbers() -> None:
    from phonenumbers import COUNTRY_CODE_TO_REGION_CODE

    rng = random.Random(2727)
    inputs = _phone_inputs(rng)
    fast_taken = 0
    regions = [*COUNTRY_CODE_TO_REGION_CODE[1], "GB", "DE", "ZZ", "us"]
    for i, value in enumerate(inputs):
        for region in ["US"] if i % 4 else regions[i // 4 % len(regions) :][:3]:
            assert _phone_outcome(value, region) == _phone_oracle(value, region), (value, region)
            fast_taken += nanp_e164(value, region) is not None
    assert fast_taken > 4000  # the shortcut is really exercised, valid and invalid numbers
    assert {nanp_e164("+1 415 555 0100", "US"), nanp_e164("+1 415 155 0100", "US")} == {
        "+14155550100",
        False,
    }


# -- a creation's journal changes in one pass (issue 27) ----------------------------------------


@pytest.mark.usefixtures("app")  # Beanie initialised
async def test_one_walk_agrees_with_the_generic_walks_on_values_of_every_kind() -> None:
    # `NewDocuments.encode` stores, flattens, types and sorts in one walk; the references are
    # `to_bson` per field and the generic creation changes typed afterwards
    # (tests/support/oracles.py). Values of every kind,
    # top-level and nested: str enums, empty and non-str-keyed mappings, UUIDs at UUID paths
    # and elsewhere, UTC and offset dates, floats (NaN too), models, tuples; secrets.
    from datetime import UTC, datetime, timedelta, timezone
    from uuid import uuid4

    import bson

    from documents.consent import ConsentStatus
    from documents.lead import GeoPoint, LeadStatus, LeadType, MLSRealEstateLead
    from service.core import journal
    from tests.support import oracles

    new = journal.NewDocuments(MLSRealEstateLead)
    rng = random.Random(2727)
    at = datetime(2026, 1, 2, 3, 4, 5, 6000, tzinfo=UTC)
    odd: list[Any] = [
        None,
        "text",
        "",
        7,
        True,
        2.5,
        float("nan"),
        LeadStatus.contacted,
        ConsentStatus.opted_in,
        uuid4(),
        at,
        at.astimezone(timezone(timedelta(hours=2))),
        {},
        {"inner": {}},
        {1: "non-str key"},
        ["a", "b"],
        [],
        [uuid4(), at],
        (1.5, 2.5),
        GeoPoint(coordinates=(-122.42, 37.77)),
    ]
    names = ["segments", "notes", "source", "mls_board", "listed_at", "user_id", "baths", "tags"]
    for _ in range(300):
        values: dict[str, Any] = {"tenant_id": uuid4(), "mls_id": "X-1", "id": uuid4()}
        values |= {"created_at": at, "updated_at": at}  # else a clock's default per walk
        for name in rng.sample(names, 4):  # sub-documents come as dicts at the top (its rule)
            values[name] = rng.choice(odd[:-1])
        values["segments"] = {f"k{i}": rng.choice(odd) for i in range(rng.randint(0, 4))}
        values["address"] = {"city": rng.choice(odd), "line1": rng.choice(["1 Main", None])}
        values["consent"] = {"call": {"status": rng.choice(odd), "at": rng.choice(odd)}}
        full = oracles.new_full(new, values)
        secrets = rng.choice([(), ("notes",), ("address",), ("segments.k1", "user_id")])
        reference = oracles.new_created_changes(new, full, "lead", secrets)
        stored, changes = new.encode(values, "lead", secrets)
        assert _same(changes, reference), (values, secrets)
        assert bson.encode(stored) == bson.encode(oracles.new_stored(new, full)), values
    assert LeadType.mls  # the enum module is loaded (str enums at top level: `type`)


def _same(a: Any, b: Any) -> bool:
    # Equality, with NaN equal to itself and types compared (1 == True, 1.0 == 1 otherwise).
    if type(a) is not type(b):
        return False
    if isinstance(a, float) and a != a:
        return b != b
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def test_uuid7_of_builds_what_uuid6_builds() -> None:
    import pickle
    from uuid import SafeUUID

    import uuid6
    from bson import Binary

    from service.core import journal
    from service.core.journal.events import binary7_of, uuid7_of

    rng = random.Random(7)
    values = [0, (1 << 128) - 1, *(rng.getrandbits(128) for _ in range(2000))]
    for value in values:
        fast, slow = uuid7_of(value), uuid6.UUID(int=value, version=7)
        assert type(fast) is type(slow) and fast == slow and fast.int == slow.int
        assert (fast.version, fast.variant, fast.is_safe) == (7, slow.variant, SafeUUID.unknown)
        assert str(fast) == str(slow) and hash(fast) == hash(slow)
        assert pickle.loads(pickle.dumps(fast)) == slow
        assert binary7_of(value) == Binary.from_uuid(slow)
        assert type(binary7_of(value)) is Binary and binary7_of(value).subtype == 4
    for bad in (-1, 1 << 128):
        with pytest.raises(ValueError, match="out of range"):
            uuid7_of(bad)
        with pytest.raises(ValueError, match="out of range"):
            binary7_of(bad)
    ids = [journal.pooled_uuid7(), journal.pooled_uuid7.binary().as_uuid(), uuid6.uuid7()]
    ids += [journal.pooled_uuid7.binary().as_uuid() for _ in range(600)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids) and {i.version for i in ids} == {7}


def test_uuid_binary_is_what_binary_makes() -> None:
    # Issue 27: `uuid_binary` skips `Binary.__new__`'s checks and copy; the object must be
    # the same in every way the driver, the journal and the tests use it.
    import copy
    import pickle
    from uuid import UUID

    import bson
    from bson import Binary
    from bson.codec_options import CodecOptions

    from service.core.journal.typed import uuid_binary

    rng = random.Random(11)
    options = CodecOptions(uuid_representation=bson.binary.UuidRepresentation.STANDARD)
    for raw in [bytes(16), b"\xff" * 16, *(rng.randbytes(16) for _ in range(500))]:
        fast, slow = uuid_binary(raw), Binary(raw, 4)
        assert type(fast) is Binary and fast == slow and fast.subtype == slow.subtype == 4
        assert repr(fast) == repr(slow) and hash(fast) == hash(slow) and bytes(fast) == raw
        assert vars(fast) == vars(slow) and fast.as_uuid() == UUID(bytes=raw)
        assert bson.encode({"x": fast}) == bson.encode({"x": slow})
        assert bson.decode(bson.encode({"x": fast}), options)["x"] == UUID(bytes=raw)
        for copied in (pickle.loads(pickle.dumps(fast)), copy.deepcopy(fast), copy.copy(fast)):
            assert type(copied) is Binary and copied == slow and copied.subtype == 4


def test_created_leaves_sort_each_shape_once_and_agree_with_sorting() -> None:
    # Issue 27: the sorted paths are remembered by the paths' given order; shapes of every
    # order and subset (more than the memo keeps) give the changes a plain sort gives.
    from service.core.journal.diff import (
        _SORTED_PATHS,
        _SORTED_PATHS_MAX,
        REDACTED,
        created_leaves,
    )

    rng = random.Random(27)
    paths = ["a", "b.c", "b", "ab", "z", "b.a", "A", "_x", "a.b.c"]
    for _ in range(3000):
        chosen = rng.sample(paths, rng.randint(0, len(paths)))
        flat = {p: rng.choice([None, 1, "v", [p]]) for p in chosen}
        expected = [
            {"field": f, "old": None, "new": flat[f]} for f in sorted(flat) if flat[f] is not None
        ]
        assert created_leaves(flat, ()) == expected
        hidden = {f for f in flat if f == "b" or f.startswith("b.")}
        secret = [
            {"field": f, "old": None, "new": REDACTED if f in hidden else flat[f]}
            for f in sorted(flat)
            if flat[f] is not None
        ]
        assert created_leaves(flat, ("b",)) == secret
        assert len(_SORTED_PATHS) <= _SORTED_PATHS_MAX


def test_created_leaves_take_a_shared_change_only_for_the_very_object() -> None:
    # Issue 27: a batch's constant leaves' change dicts are made once (`shared_changes`) and
    # taken where the leaf is the very object they hold; an equal value that is another
    # object (or another path's) gets its own dict; the changes equal the unshared ones.
    from service.core.journal.diff import created_leaves, shared_changes

    tags, stamp = ["a"], datetime(2026, 1, 1, tzinfo=UTC)
    shared = shared_changes({"tags": tags, "at": stamp, "gone": None, "n": 1})
    assert "gone" not in shared  # null leaves are no change
    for flat in (
        {"tags": tags, "at": stamp, "n": 1, "x": "v"},
        {"tags": ["a"], "at": datetime(2026, 1, 1, tzinfo=UTC), "n": 2, "x": None},
        {"at": tags, "tags": stamp},  # the objects at other paths
    ):
        changes = created_leaves(flat, (), shared)
        assert changes == created_leaves(flat, ())
        for change in changes:
            made = shared.get(change["field"])
            assert (change is made) == (made is not None and made["new"] is change["new"])
    assert created_leaves({"tags": tags}, (), shared)[0] is shared["tags"]


def _money_oracle_number(value: Any) -> Any:
    # `_money_number` as it was before the bounds moved into the decimal schema (the noise
    # snapping only; `ge` ran after it as a Python validator, then the digit bounds).
    if isinstance(value, bool | str):
        raise ValueError("money must be a JSON number")
    if isinstance(value, float):
        exact = Decimal(repr(value))
        if not exact.is_finite() or exact.adjusted() > 15:
            return exact
        cents = exact.quantize(Decimal("0.01"))
        return cents if abs(exact - cents) < Decimal("1e-9") else exact
    return value


# The general path: pydantic's own Python validator per bound, in declaration order.
_money_general: TypeAdapter[Decimal | None] = TypeAdapter(
    Annotated[
        Decimal,
        BeforeValidator(_money_oracle_number),
        Field(ge=0, max_digits=14, decimal_places=2),
    ]
    | None
)
_money: TypeAdapter[Decimal | None] = TypeAdapter(Money | None)


def _money_outcome(adapter: TypeAdapter[Decimal | None], value: Any) -> Any:
    try:
        money = adapter.validate_python(value)
    except ValidationError as exc:
        return [(e["type"], e["msg"], e["loc"]) for e in exc.errors()]
    return money if money is None else (money, money.as_tuple())


def _money_inputs(rng: random.Random) -> list[Any]:
    edges: list[Any] = [
        *(0, 1, -1, 0.0, -0.0, -0.001, 0.001, 1.005, 350000.25, 0.5700000000000001, -1e-12),
        *(-0.5700000000000001, -1.5e-9, 1e15, -1e15, 999999999999.99, 999999999999.995, -1e17),
        *(12345678901234, 123456789012345, -123456789012345, 10**20, -(10**20), 5e-324),
        *(float("inf"), float("-inf"), float("nan"), True, False, None, "1", [], {}),
        *(Decimal("-0"), Decimal("1E+20"), Decimal("-0E-10"), Decimal("NaN"), Decimal("-NaN")),
        *(Decimal("-Infinity"), Decimal("1.2300"), Decimal("-1.001"), Decimal("-1E+15")),
        *(-1.7976931348623157e308, Decimal("100000000000.001"), 1234567890123.4),
    ]
    for _ in range(3000):
        edges += [
            rng.uniform(-1e16, 1e16),
            round(rng.uniform(-1e13, 1e13), rng.randrange(5)),
            rng.randrange(-(10**16), 10**16),
            Decimal(rng.randrange(-(10**17), 10**17)).scaleb(-rng.randrange(8)),
            rng.uniform(-1, 1) * 10 ** rng.randrange(-12, 20),
            rng.choice([1, -1]) * rng.randrange(10**14) / 100 + rng.choice([0, 1e-10, -1e-10]),
        ]
    return edges


def test_money_bounds_checked_natively_answer_as_the_python_validators_did() -> None:
    # `Money` checks its digit bounds in the decimal schema and refuses negatives in its
    # before validator: the same values, errors and error order as a Python validator per
    # bound (`ge` first), without their cost (≈2 us a price).
    for value in _money_inputs(random.Random(27)):
        assert _money_outcome(_money, value) == _money_outcome(_money_general, value), value
