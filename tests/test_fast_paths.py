"""Fast paths of per-row validation give exactly what the general path gives (issue 18)."""

from __future__ import annotations

import random
import string
import unicodedata
from typing import Annotated, Any

import pytest
from pydantic import AfterValidator, EmailStr, TypeAdapter, ValidationError

from documents.base import Email, _plain_email
from documents.lead import fold

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
    local_chars = string.ascii_letters[:6] + "Z09._+-"
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
    fast = [a for a in addresses if _plain_email(a, lambda _: None) is not None]
    assert len(fast) > 250  # the fast path is really exercised
    for value in addresses:
        assert _outcome(_email, value) == _outcome(_general, value), value


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
