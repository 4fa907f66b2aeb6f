"""Masking of personal identifiers (居民身份证号, 手机号) for views and logs."""

from __future__ import annotations

import re

# 18-digit ID (17 digits + digit/X) or a legacy 15-digit ID, not part of a longer run of
# digits/letters (so bank-card numbers and order ids of other lengths are left alone).
_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])(?:\d{17}[\dXx]|\d{15})(?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")

_KEEP_HEAD = 4
_KEEP_TAIL = 4


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
    """Mask every ID-number-looking substring (and, by default, mobile numbers) in free text.

    Meant for logs and for free-text fields shown to people who must not see IDs. Case
    views for cadres pass ``mask_phones=False``: they need the number to call the farmer.
    """
    masked = _ID_NUMBER.sub(lambda m: mask_id_number(m.group(0)), text)
    if mask_phones:
        masked = _MOBILE.sub(lambda m: mask_mobile(m.group(0)), masked)
    return masked
