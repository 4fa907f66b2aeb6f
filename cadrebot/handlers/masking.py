"""Masking of personal identifiers (居民身份证号, 手机号) for views and logs.

Numbers are recognised by their digits, whatever sits between them: ``3607 0219 9001 0112 32``,
``3607-0219-9001-011232``, full-width ``３６０７…``, a zero-width space in the middle, an
``ID``/``身份证：`` prefix, ``+86 138 1234 5678``. Digits joined by such separators form a
*group* of *chunks*; an identifier is a run of whole chunks whose digits make one.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

_KEEP_HEAD = 4
_KEEP_TAIL = 4

# What may sit between the digits of one number: spaces, dashes, invisible format characters.
_DASHES = frozenset("-‐‑‒–—―−－﹣﹘")
_MAX_GAP = 4  # separator characters between two chunks of one number
_CHECK_CHARS = frozenset("Xx")
_ID_LAST = frozenset("0123456789Xx")
_MOBILE = re.compile(r"1[3-9]\d{9}")
_COUNTRY_PREFIXES = ("0086", "86")


def mask_id_number(value: str) -> str:
    """``"360121199001011234" -> "3601**********1234"``: keep 4 leading and 4 trailing chars.

    The region prefix is kept so a cadre can tell the county at a glance; the birth date
    and sequence number are hidden. Anything too short to keep both ends is fully masked.
    """
    if len(value) <= _KEEP_HEAD + _KEEP_TAIL:
        return "*" * len(value)
    hidden = len(value) - _KEEP_HEAD - _KEEP_TAIL
    return value[:_KEEP_HEAD] + "*" * hidden + value[-_KEEP_TAIL:]


def mask_mobile(value: str) -> str:
    """``"13812345678" -> "138****5678"``."""
    if len(value) != 11:
        return "*" * len(value)
    return value[:3] + "****" + value[-4:]


def mask_sensitive(text: str, *, mask_phones: bool = True) -> str:
    """Mask every ID number (and, by default, every mobile number) in free text.

    Meant for logs and for free-text fields shown to people who must not see IDs. Case
    views for cadres pass ``mask_phones=False``: they need the number to call the farmer.
    Other numbers (amounts, dates, case numbers, a 19-digit bank card) are left alone.
    """
    if not any(ch.isdecimal() for ch in text):
        return text
    pieces: list[str] = []
    done = 0
    for start, end, replacement in _identifiers(text, mask_phones=mask_phones):
        pieces.append(text[done:start])
        pieces.append(replacement)
        done = end
    pieces.append(text[done:])
    return "".join(pieces)


# ---------------------------------------------------------------------- recognition


@dataclass(frozen=True)
class _Chunk:
    start: int  # index of its first character in the text
    end: int  # index after its last character
    digits: str  # ASCII digits, possibly ending in X or x (an ID's check character)


def _is_separator(ch: str) -> bool:
    return ch.isspace() or ch in _DASHES or unicodedata.category(ch) == "Cf"


def _groups(text: str) -> list[list[_Chunk]]:
    """Runs of digits (chunks) joined by separators, each list one group."""
    groups: list[list[_Chunk]] = []
    current: list[_Chunk] = []
    i, n = 0, len(text)
    while i < n:
        if not text[i].isdecimal():
            if current and _is_check_char(text, i) and _joins(text, current[-1].end, i):
                # "3607 0219 9001 0112 3 X": a check character written apart
                current.append(_Chunk(i, i + 1, unicodedata.normalize("NFKC", text[i])))
                groups.append(current)
                current = []
            i += 1
            continue
        start = i
        digits: list[str] = []
        while i < n and text[i].isdecimal():
            digits.append(str(unicodedata.decimal(text[i])))
            i += 1
        ends_group = False
        if _is_check_char(text, i):
            digits.append(unicodedata.normalize("NFKC", text[i]))
            i += 1
            ends_group = True  # nothing follows an ID's check character
        chunk = _Chunk(start, i, "".join(digits))
        joined = bool(current) and _joins(text, current[-1].end, start)
        if current and not joined:
            groups.append(current)
            current = []
        current.append(chunk)
        if ends_group:
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def _is_check_char(text: str, i: int) -> bool:
    """An X (or x) at ``i`` that may end an ID number: not followed by a digit."""
    if i >= len(text) or unicodedata.normalize("NFKC", text[i]) not in _CHECK_CHARS:
        return False
    return not (i + 1 < len(text) and text[i + 1].isdecimal())


def _joins(text: str, previous_end: int, start: int) -> bool:
    gap = text[previous_end:start]
    visible = [ch for ch in gap if unicodedata.category(ch) != "Cf"]
    return bool(gap) and len(visible) <= _MAX_GAP and all(_is_separator(ch) for ch in gap)


def _identifiers(text: str, *, mask_phones: bool) -> list[tuple[int, int, str]]:
    """(start, end, masked) of every identifier, in text order, not overlapping."""
    found: list[tuple[int, int, str]] = []
    for group in _groups(text):
        i = 0
        while i < len(group):
            hit = _id_at(group, i) or (_phone_at(group, i) if mask_phones else None)
            if hit is None:
                i += 1
                continue
            last, replacement = hit
            found.append((group[i].start, group[last].end, replacement))
            i = last + 1
    return found


def _id_at(group: list[_Chunk], first: int) -> tuple[int, str] | None:
    digits = ""
    for last in range(first, len(group)):
        digits += group[last].digits
        if len(digits) > 18:
            return None
        spaced = last > first
        if _looks_like_id(digits, check_birth=spaced):
            return last, mask_id_number(digits)
    return None


def _looks_like_id(digits: str, *, check_birth: bool) -> bool:
    if len(digits) == 18 and digits[:17].isdigit() and digits[17] in _ID_LAST:
        birth = digits[6:14]
    elif len(digits) == 15 and digits.isdigit():
        birth = "19" + digits[6:12]
    else:
        return False
    # Digits written apart are only an ID if their birth date is one: "1500 2000 3000 200"
    # (amounts) has 15 digits too.
    return not check_birth or _is_date(birth)


def _is_date(yyyymmdd: str) -> bool:
    try:
        date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]), int(yyyymmdd[6:8]))
    except ValueError:
        return False
    return True


def _phone_at(group: list[_Chunk], first: int) -> tuple[int, str] | None:
    digits = ""
    for last in range(first, len(group)):
        digits += group[last].digits
        if len(digits) > 15:
            return None
        if _MOBILE.fullmatch(digits):
            return last, mask_mobile(digits)
        for prefix in _COUNTRY_PREFIXES:
            rest = digits.removeprefix(prefix)
            if rest != digits and _MOBILE.fullmatch(rest):
                return last, prefix + mask_mobile(rest)
    return None


QUOTE_MAX_CHARS = 20


def quotable(value: str) -> bool:
    """Whether ``value`` (user input) may be quoted back in a reply.

    Only short input without digits: anything with digits may be (part of) an ID number or
    a phone number, and its pieces quoted one by one would show it whole.
    """
    return 0 < len(value) <= QUOTE_MAX_CHARS and not any(ch.isdigit() for ch in value)
