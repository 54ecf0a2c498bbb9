"""North American numbers (+1) normalised without `phonenumbers.parse` (issue 27).

`normalize_phone` (documents/base.py) is the one way a phone is read; this is its exact fast
path for the common shape of a NANP number: `+1` and ten digits, or ten digits read in a
region that dials `1` as its national prefix and `011` abroad (US, CA and most of NANP),
separated by nothing but spaces, `(`, `)`, `-` and `.`. For such input `parse` gives country
code 1 and the ten digits as the national number (no extension, nothing to strip, the area
code cannot start with 0 or 1 here), so what remains is `is_valid_number`, done below with
the library's own metadata and the same steps (region by leading digits or by number type,
then the region's number types), its patterns compiled once. Anything else returns None
and goes through the library. tests/test_fast_paths.py compares both on generated numbers,
valid and invalid, in every NANP region.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, Literal

from phonenumbers import COUNTRY_CODE_TO_REGION_CODE, SUPPORTED_REGIONS, PhoneMetadata

_INTERNATIONAL = re.compile(r"\+[ ().-]*1[ ().-]*([2-9][0-9 ().-]*)")
_NATIONAL = re.compile(r"[ ().]*([2-9][0-9 ().-]*)")
_SEPARATORS = b" ().-"  # deleted from the ASCII the patterns matched (bytes: 3x faster)

# A NANP region: its leading digits (matched at the start), and its number type test for a
# ten-digit national number (None: no number of that length has a type there).
_Region = tuple[Callable[[str], Any] | None, Callable[[str], bool] | None]
_LENGTH = 10  # the shortcut's national numbers: an area code and seven digits


def _pattern(desc: Any) -> str | None:
    # `_is_number_matching_desc` for a ten-digit number: its pattern when the possible
    # lengths admit ten (or name none), else it never matches.
    if desc is None or not desc.national_number_pattern:
        return None
    if desc.possible_length and _LENGTH not in desc.possible_length:
        return None
    return str(desc.national_number_pattern)


def _type_test(meta: Any) -> Callable[[str], bool] | None:
    # `_number_type_helper(nsn, meta) != UNKNOWN`: the general description and any one of
    # the types (mobile only when it differs from fixed line), the types' patterns in one
    # alternation (a full match of it is a full match of one of them).
    general = _pattern(meta.general_desc)
    kinds = [
        meta.premium_rate,
        meta.toll_free,
        meta.shared_cost,
        meta.voip,
        meta.personal_number,
        meta.pager,
        meta.uan,
        meta.voicemail,
        meta.fixed_line,
    ]
    if not meta.same_mobile_and_fixed_line_pattern:
        kinds.append(meta.mobile)
    patterns = [p for p in map(_pattern, kinds) if p is not None]
    if general is None or not patterns:
        return None
    general_match = re.compile(general).fullmatch
    type_match = re.compile("|".join(f"(?:{p})" for p in patterns)).fullmatch
    return lambda nsn: general_match(nsn) is not None and type_match(nsn) is not None


@functools.cache
def _regions() -> list[_Region]:
    # `_region_code_for_number_from_list`'s candidates, in its order, with what it tests.
    out: list[_Region] = []
    for region in COUNTRY_CODE_TO_REGION_CODE[1]:
        meta = PhoneMetadata.metadata_for_region(region.upper(), None)
        if meta is None:
            continue
        leading = re.compile(meta.leading_digits).match if meta.leading_digits else None
        out.append((leading, _type_test(meta)))
    return out


def _valid(nsn: str) -> bool:
    # `is_valid_number` of +1 `nsn` (ten digits): the first region whose leading digits
    # match decides; a region without them is the number's when the number has one of its
    # types (and is then valid: `is_valid_number_for_region` repeats that very test).
    for leading, has_type in _regions():
        if leading is not None:
            if leading(nsn):
                return has_type is not None and has_type(nsn)
        elif has_type is not None and has_type(nsn):
            return True
    return False


@functools.cache
def _dials_1_and_011(region: str) -> bool:
    # Regions where ten digits with no prefix parse as +1 and those digits. `parse` reads
    # no number without a + in a region it does not know by that exact (upper-case) code.
    if not (region.isalpha() and region in SUPPORTED_REGIONS):
        return False
    meta = PhoneMetadata.metadata_for_region(region, None)
    return (
        meta is not None
        and meta.country_code == 1
        and meta.national_prefix_for_parsing == "1"
        and meta.international_prefix == "011"
    )


def nanp_e164(value: str, region: str) -> str | Literal[False] | None:
    """`+1…` for a valid NANP number of the fast shape, False for an invalid one, else None."""
    if len(value) > 64:  # `parse` refuses input over 250 characters: never near it here
        return None
    shape = _INTERNATIONAL.fullmatch(value)
    if shape is None and _dials_1_and_011(region):
        shape = _NATIONAL.fullmatch(value)
    if shape is None:
        return None
    nsn = shape[1].encode().translate(None, _SEPARATORS).decode()
    if len(nsn) != _LENGTH:
        return None
    return f"+1{nsn}" if _valid(nsn) else False


__all__ = ["nanp_e164"]
