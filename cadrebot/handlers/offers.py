"""The form behind the question: a message describing a hardship offers ``/report``, one
asking about 奖补 as a 脱贫户/监测户 offers ``/subsidy``.

What to look for is data (``knowledge/offers.toml``, read at start by
``cadrebot/indexer/offers_file.py``): everyday phrases by category, each category naming the
command it offers and, optionally, groups of words that must appear as well (a hardship is
*described*: someone in the family, something that happened; not a question about a topic).
This module only matches a message against that data; it does no I/O.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass

from cadrebot.handlers.ports import Action, ActionKind

_INVISIBLE = re.compile(r"[\s\u00ad\u180e\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]+")


def _clean(text: str) -> str:
    return _INVISIBLE.sub("", unicodedata.normalize("NFKC", text)).lower()


@dataclass(frozen=True)
class Offer:
    """One category of messages (``疾病``) and the command it offers.

    The message matches when it contains one of ``phrases`` and, for each group of
    ``requires``, one of that group's words."""

    category: str
    command: str
    label: str
    phrases: tuple[str, ...]
    requires: tuple[tuple[str, ...], ...] = ()

    def matches(self, cleaned: str) -> bool:
        return _any_in(self.phrases, cleaned) and all(_any_in(g, cleaned) for g in self.requires)

    @property
    def action(self) -> Action:
        return Action(self.label, self.command, ActionKind.START)


def _any_in(words: Iterable[str], cleaned: str) -> bool:
    return any(_clean(word) in cleaned for word in words if word)


class OfferBook:
    """The offers of a deployment; empty (offers nothing) when none are configured."""

    def __init__(self, offers: Iterable[Offer] = ()) -> None:
        self._offers = tuple(offers)

    @property
    def offers(self) -> tuple[Offer, ...]:
        return self._offers

    def categories(self, text: str) -> tuple[str, ...]:
        """The categories ``text`` falls into, in the file's order."""
        cleaned = _clean(text)
        return tuple(o.category for o in self._offers if o.matches(cleaned))

    def actions(self, text: str) -> tuple[Action, ...]:
        """The buttons to offer under the answer to ``text``: one per command, file order."""
        cleaned = _clean(text)
        found: dict[str, Action] = {}
        for offer in self._offers:
            if offer.command not in found and offer.matches(cleaned):
                found[offer.command] = offer.action
        return tuple(found.values())

    def commands(self, text: str) -> list[str]:
        """The commands offered for ``text`` (``["/report"]``)."""
        return [action.command for action in self.actions(text)]
