"""Sentence-level helpers shared by the reranker and the answer composer (pure functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A line break ends a sentence too: header blocks and lists have one item a line.
_SENTENCE_END = re.compile(r"(?<=[。；！？!?;\n])")
_NUMBER = re.compile(r"\d|[一二三四五六七八九十百千万两]+[个项次天日人户]")
_TIME = re.compile(
    r"\d{1,4}\s*[年月日]|[上下]半年|每[年季月周日]|每学期|季度|月底|月份|中旬|下旬|上旬|\d+\s*[天日]内?"
)
_ASKS_QUANTITY = re.compile(r"多少|几|比例|比重|[^\w]?率|规模|标准|额度|金额|多大|多高|多长|多久")
_ASKS_TIME = re.compile(r"何时|什么时候|哪天|哪一天|几月|多久|时限|期限|日期|时间|哪年|频次|一次")


def split_sentences(text: str) -> list[str]:
    parts = (p.strip() for p in _SENTENCE_END.split(text))
    return [p for p in parts if p]


@dataclass(frozen=True)
class QuestionShape:
    """What kind of fact a question asks for; an answer sentence should carry one."""

    wants_number: bool
    wants_time: bool

    def matches(self, sentence: str) -> bool:
        if self.wants_time and _TIME.search(sentence):
            return True
        return bool(self.wants_number and _NUMBER.search(sentence))

    @property
    def specific(self) -> bool:
        return self.wants_number or self.wants_time


def question_shape(question: str) -> QuestionShape:
    return QuestionShape(
        wants_number=bool(_ASKS_QUANTITY.search(question)),
        wants_time=bool(_ASKS_TIME.search(question)),
    )
