"""Everyday words → policy terms: the reviewed lexicon in ``knowledge/lexicon.toml``.

Farmers ask "看病花钱多" and "想养鸡"; the documents say 医疗保障, 支出骤增, 产业奖补. The
lexicon maps the words people use to the words the documents use, and abbreviations both ways
(低保 ↔ 最低生活保障). The file is data, edited by admins; :func:`parse_lexicon` validates it
and :func:`expand` (pure) finds the everyday phrases in a question and what they map to.

File format::

    [everyday.illness]            # one table per policy area, any name
    "看病花钱" = ["医疗", "大病", "支出骤增"]

    [abbreviations]               # each pair is used both ways
    "低保" = ["最低生活保障"]
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LEXICON_FILE = "lexicon.toml"
MAX_PHRASE_CHARS = 24


class LexiconError(ValueError):
    """The lexicon file does not parse or does not follow the format; the message says where."""


@dataclass(frozen=True)
class Lexicon:
    """Phrase → the policy terms it stands for (abbreviations already entered both ways)."""

    entries: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.entries)

    @property
    def stamp(self) -> str:
        """A short fingerprint of the content (logged when a lexicon is (re)loaded)."""
        import hashlib

        text = "\n".join(f"{k}={'|'.join(v)}" for k, v in sorted(self.entries.items()))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


EMPTY_LEXICON = Lexicon()


@dataclass(frozen=True)
class Match:
    """An everyday phrase found in a question, and the policy terms it maps to."""

    phrase: str
    start: int
    terms: tuple[str, ...]


def _check_phrase(where: str, phrase: object) -> str:
    if not isinstance(phrase, str) or not phrase.strip():
        raise LexiconError(f"{where}: a phrase must be a non-empty string")
    phrase = phrase.strip()
    if len(phrase) > MAX_PHRASE_CHARS:
        raise LexiconError(f"{where}: phrase “{phrase}” is longer than {MAX_PHRASE_CHARS} chars")
    return phrase


def _check_terms(where: str, phrase: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise LexiconError(
            f"{where}: “{phrase}” must map to a non-empty list of terms, "
            f'e.g. "{phrase}" = ["政策用语"]'
        )
    terms: list[str] = []
    for term in value:
        if not isinstance(term, str) or not term.strip():
            raise LexiconError(f"{where}: “{phrase}” maps to an empty or non-text term: {term!r}")
        term = term.strip()
        if len(term) > MAX_PHRASE_CHARS:
            raise LexiconError(f"{where}: term “{term}” is longer than {MAX_PHRASE_CHARS} chars")
        if term != phrase and term not in terms:
            terms.append(term)
    if not terms:
        raise LexiconError(f"{where}: “{phrase}” maps only to itself")
    return tuple(terms)


def _table(where: str, value: object) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise LexiconError(f'{where} must be a table of "phrase" = ["term", …]')
    return value


def parse_lexicon(text: str, source: str = LEXICON_FILE) -> Lexicon:
    """Parse and validate lexicon TOML; raises :class:`LexiconError` naming the bad entry."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise LexiconError(f"{source} does not parse as TOML: {error}") from error
    unknown = set(data) - {"everyday", "abbreviations"}
    if unknown:
        raise LexiconError(
            f"{source}: unknown top-level key(s) {', '.join(sorted(unknown))}; "
            "use [everyday.<area>] and [abbreviations]"
        )
    entries: dict[str, list[str]] = {}

    def add(phrase: str, terms: tuple[str, ...]) -> None:
        known = entries.setdefault(phrase, [])
        known.extend(t for t in terms if t not in known and t != phrase)

    for area, table in _table(f"{source}: [everyday]", data.get("everyday", {})).items():
        where = f"{source}: [everyday.{area}]"
        for raw, value in _table(where, table).items():
            phrase = _check_phrase(where, raw)
            add(phrase, _check_terms(where, phrase, value))
    where = f"{source}: [abbreviations]"
    for raw, value in _table(where, data.get("abbreviations", {})).items():
        phrase = _check_phrase(where, raw)
        terms = _check_terms(where, phrase, value)
        add(phrase, terms)
        for term in terms:  # both ways: 最低生活保障 → 低保 as well
            add(term, (phrase,))
    return Lexicon({p: tuple(t) for p, t in entries.items() if t})


def load_lexicon(path: Path) -> Lexicon:
    """Read the lexicon file; a missing file is an empty lexicon, a bad one a LexiconError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return EMPTY_LEXICON
    except (OSError, UnicodeDecodeError) as error:
        raise LexiconError(f"{path}: cannot be read: {error}") from error
    return parse_lexicon(text, str(path))


def expand(lexicon: Lexicon, question: str) -> list[Match]:
    """The lexicon phrases in ``question``, longest first, none inside an accepted one.

    "看病花钱" wins over the 看病 inside it; two phrases that only overlap both count.
    """
    found: list[Match] = []
    for phrase in sorted(lexicon.entries, key=len, reverse=True):
        start = question.find(phrase)
        while start >= 0:
            end = start + len(phrase)
            if not any(m.start <= start and end <= m.start + len(m.phrase) for m in found):
                found.append(Match(phrase, start, lexicon.entries[phrase]))
            start = question.find(phrase, start + 1)
    found.sort(key=lambda m: m.start)
    return found


def mapped_terms(matches: list[Match]) -> list[str]:
    """The policy terms of ``matches``, each once, in question order."""
    return list(dict.fromkeys(t for m in matches for t in m.terms))
