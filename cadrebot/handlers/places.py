"""The place register: the townships (乡镇/街道) of a deployment and, where known, their
villages (村/社区), as plain data, and how what people type is matched against it.

Forms, invites and the case desk identify a place by its register id, never by the text
typed: ``潭东``, ``潭东镇``, ``潭东镇\\u200b`` and ``蓉江新区潭东镇`` are all the township
``rjxq.tandong``. The register is loaded at start (``cadrebot/indexer/places_file.py`` reads
``knowledge/places.toml``) and given to the conversation core at construction.

A register without townships is *open* (no place file configured): any township is accepted
as typed (cleaned) and identified by its cleaned name (``~潭东镇``).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from cadrebot.handlers.masking import quotable
from cadrebot.handlers.ports import JSONValue, NewCase

if TYPE_CHECKING:
    from cadrebot.handlers.forms.engine import FormRegistry, FormSpec

OPEN_ID_PREFIX = "~"
"""Ids of places in an open register: the prefix and the cleaned name."""

TOWNSHIP_SUFFIXES = ("街道办事处", "街道办", "街道", "镇", "乡")
VILLAGE_SUFFIXES = ("村民委员会", "居民委员会", "村委会", "居委会", "社区", "村")
MAX_OPTIONS = 6  # re-ask with buttons when at most this many choices are close

# Zero-width and other invisible characters, and every kind of whitespace.
_INVISIBLE = re.compile(r"[\s\u00ad\u180e\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]+")
# Punctuation people put around a place: 潭东镇。 “潭东镇” (潭东镇)
_EDGE_PUNCTUATION = "。，,.、;；:：!！?？\"'“”‘’()（）[]【】<>《》"


def clean_place(text: str) -> str:
    """What was typed, without invisible characters, spaces, surrounding punctuation and
    full-width forms (NFKC)."""
    value = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    return value.strip(_EDGE_PUNCTUATION)


def _stem(name: str, suffixes: tuple[str, ...]) -> str:
    for suffix in suffixes:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def township_stem(name: str) -> str:
    """``潭东镇`` → ``潭东``; ``蓉江街道`` → ``蓉江``."""
    return _stem(clean_place(name), TOWNSHIP_SUFFIXES)


def village_stem(name: str) -> str:
    """``长岭村`` → ``长岭``; ``城南社区`` → ``城南``."""
    return _stem(clean_place(name), VILLAGE_SUFFIXES)


@dataclass(frozen=True)
class Village:
    id: str
    name: str
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class Township:
    id: str
    name: str  # the official name, with its suffix: 潭东镇, 蓉江街道
    county: str = ""  # 县/区 it belongs to: 信丰县, 蓉江新区
    aliases: tuple[str, ...] = ()  # former names, common short forms
    villages: tuple[Village, ...] = ()

    @property
    def label(self) -> str:
        """The name with its county, to tell apart townships of the same name."""
        return f"{self.county}{self.name}"

    def village(self, text: str) -> Village | None:
        """The registered village ``text`` names (suffix optional), else None."""
        wanted = clean_place(text)
        if not wanted:
            return None
        for village in self.villages:
            names = (village.name, *village.aliases)
            if wanted in {clean_place(n) for n in names}:
                return village
        stem = village_stem(wanted)
        hits = [v for v in self.villages if stem in {village_stem(n) for n in (v.name, *v.aliases)}]
        return hits[0] if len(hits) == 1 else None


@dataclass(frozen=True)
class TownshipMatch:
    """The township a text names (``township``), or the close choices (``candidates``)."""

    township: Township | None
    candidates: tuple[Township, ...] = ()


@dataclass(frozen=True)
class Place:
    """A resolved jurisdiction: ids from the register, names as the register spells them.
    ``village_id`` is None when the village is not registered (``village`` then is the
    cleaned text)."""

    township_id: str
    township: str
    village_id: str | None = None
    village: str | None = None


class PlaceRegister:
    """The townships of a deployment (immutable)."""

    def __init__(self, townships: Iterable[Township] = ()) -> None:
        self._townships = tuple(townships)
        self._by_id: dict[str, Township] = {}
        self._by_key: dict[str, list[Township]] = {}
        village_ids: set[str] = set()
        for township in self._townships:
            if not township.id or township.id.startswith(OPEN_ID_PREFIX):
                raise ValueError(f"township {township.name!r}: invalid id {township.id!r}")
            if township.id in self._by_id:
                raise ValueError(f"duplicate township id {township.id!r}")
            self._by_id[township.id] = township
            for village in township.villages:
                if village.id in village_ids or village.id in self._by_id:
                    raise ValueError(f"duplicate village id {village.id!r}")
                village_ids.add(village.id)
            for key in _township_keys(township):
                bucket = self._by_key.setdefault(key, [])
                if township not in bucket:
                    bucket.append(township)

    @property
    def is_open(self) -> bool:
        """No townships registered: every township is accepted as typed."""
        return not self._townships

    def townships(self) -> tuple[Township, ...]:
        return self._townships

    def township(self, township_id: str | None) -> Township | None:
        if township_id is None:
            return None
        if self.is_open and township_id.startswith(OPEN_ID_PREFIX):
            name = township_id.removeprefix(OPEN_ID_PREFIX)
            return Township(township_id, name) if name else None
        return self._by_id.get(township_id)

    def match_township(self, text: str) -> TownshipMatch:
        """The township ``text`` names: exact, suffix omitted, county prefixed, or an alias."""
        wanted = clean_place(text)
        if not wanted:
            return TownshipMatch(None)
        if self.is_open:
            return TownshipMatch(Township(f"{OPEN_ID_PREFIX}{wanted}", wanted))
        for key in (wanted, township_stem(wanted)):
            hits = self._by_key.get(key, [])
            if len(hits) == 1:
                return TownshipMatch(hits[0])
            if hits:
                return TownshipMatch(None, tuple(hits))
        return TownshipMatch(None, self.close_to(wanted))

    def close_to(self, text: str, limit: int = MAX_OPTIONS) -> tuple[Township, ...]:
        """Townships whose names resemble ``text`` (or of the county it names), best first."""
        wanted = clean_place(text)
        stem = township_stem(wanted)
        if not stem:
            return ()
        in_county = [t for t in self._townships if t.county and _county_stem(t.county) in wanted]
        if in_county and len(in_county) <= limit:
            return tuple(in_county)
        scored: list[tuple[float, int, Township]] = []
        for index, township in enumerate(self._townships):
            best = max(
                difflib.SequenceMatcher(None, stem, township_stem(name)).ratio()
                for name in (township.name, *township.aliases)
            )
            if best >= 0.5:
                scored.append((-best, index, township))
        scored.sort()
        return tuple(t for _, _, t in scored[:limit])

    def resolve(self, township: str, village: str | None = None) -> Place | None:
        """The place of a typed township (and village); None if the township is unknown
        or ambiguous. An unregistered village stays as cleaned text without an id."""
        match = self.match_township(township)
        if match.township is None:
            return None
        found = match.township
        if village is None or not clean_place(village):
            return Place(found.id, found.name)
        registered = found.village(village)
        if registered is not None:
            return Place(found.id, found.name, registered.id, registered.name)
        return Place(found.id, found.name, None, clean_place(village))

    def canonical_village(self, text: str) -> str:
        """A village name as the register spells it, if exactly one registered village has
        that name (suffix optional); else the cleaned text."""
        wanted = clean_place(text)
        hits = {found.name for t in self._townships if (found := t.village(wanted)) is not None}
        return hits.pop() if len(hits) == 1 else wanted

    def listing(self) -> str:
        """The register as text, by county (for the admins' /places)."""
        if self.is_open:
            return (
                "未配置地名册：乡镇按填写内容（去除空格等）登记。"
                "请在知识库目录的 places.toml 中登记本地乡镇后重启。"
            )
        by_county: dict[str, list[Township]] = {}
        for township in self._townships:
            by_county.setdefault(township.county or "（未注明县区）", []).append(township)
        lines = [f"地名册：共 {len(self._townships)} 个乡镇（街道）。"]
        for county, townships in by_county.items():
            names = "、".join(
                f"{t.name}（{len(t.villages)}个村）" if t.villages else t.name for t in townships
            )
            lines.append(f"{county}：{names}")
        lines.append(
            "未登记村的乡镇，村按填写内容登记。增补地名请编辑知识库目录的 places.toml 后重启。"
        )
        return "\n".join(lines)


def _county_stem(county: str) -> str:
    value = clean_place(county)
    for suffix in ("新区", "县", "区", "市"):
        if value.endswith(suffix) and len(value) > len(suffix) + 1:
            return value[: -len(suffix)]
    return value


def _township_keys(township: Township) -> set[str]:
    keys: set[str] = set()
    for name in (township.name, *township.aliases):
        full = clean_place(name)
        stem = township_stem(full)
        keys |= {full, stem}
        if township.county:
            for county in {clean_place(township.county), _county_stem(township.county)}:
                keys |= {county + full, county + stem}
    return {k for k in keys if k}


# ---------------------------------------------------------------------- forms


def township_refusal(register: PlaceRegister, text: str) -> tuple[str, tuple[Township, ...]]:
    """The polite re-ask for a township the register does not know, and the choices."""
    wanted = clean_place(text)
    match = register.match_township(wanted)
    choices = match.candidates
    # What was typed is quoted back only when it cannot be (part of) an ID or phone number.
    named = f"“{wanted}”" if quotable(wanted) else "您填写的"
    if not choices:
        return (
            f"没有找到{named}这个乡镇，请填写您所在乡镇（街道）的全称，例如：大塘埠镇。",
            (),
        )
    if len({t.name for t in choices}) < len(choices):  # same names in different counties
        listed = "、".join(t.label for t in choices)
    else:
        listed = "、".join(t.name for t in choices)
    if len(choices) > 1 and match.township is None and _all_same_key(choices, wanted):
        subject = named if quotable(wanted) else "您填写的乡镇"
        return (f"{subject}有多个同名乡镇：{listed}。请连同县（区）名一起填写。", choices)
    return (f"没有找到{named}这个乡镇。您是不是要填：{listed}？", choices)


def _all_same_key(choices: tuple[Township, ...], wanted: str) -> bool:
    stem = township_stem(wanted)
    return all(stem in _township_keys(t) or wanted in _township_keys(t) for t in choices)


def bind_places(forms: FormRegistry, register: PlaceRegister) -> FormRegistry:
    """``forms`` with their place fields matched against ``register`` and the cases they
    file carrying the register ids of their township and village."""
    from cadrebot.handlers.forms.engine import FormRegistry
    from cadrebot.handlers.forms.fields import FieldKind

    bound: list[FormSpec] = []
    for form in forms.all():
        fields = tuple(
            dataclasses.replace(spec, places=register)
            if spec.kind in (FieldKind.TOWNSHIP, FieldKind.VILLAGE)
            else spec
            for spec in form.fields
        )
        bound.append(
            dataclasses.replace(
                form, fields=fields, file_case=_with_place_ids(form.file_case, register)
            )
        )
    return FormRegistry(bound)


def _with_place_ids(
    file_case: Callable[[Mapping[str, JSONValue], int, datetime], NewCase],
    register: PlaceRegister,
) -> Callable[[Mapping[str, JSONValue], int, datetime], NewCase]:
    def filed(answers: Mapping[str, JSONValue], submitter_id: int, now: datetime) -> NewCase:
        new = file_case(answers, submitter_id, now)
        return place_case(new, register)

    return filed


def place_case(new: NewCase, register: PlaceRegister) -> NewCase:
    """``new`` with the register ids of its township and village (none if unknown: the
    case then waits in the unassigned queue for an admin)."""
    place = register.resolve(new.township, new.village)
    if place is None:
        return dataclasses.replace(new, township=clean_place(new.township) or new.township)
    return dataclasses.replace(
        new,
        township=place.township,
        village=place.village or new.village,
        township_id=place.township_id,
        village_id=place.village_id,
    )
