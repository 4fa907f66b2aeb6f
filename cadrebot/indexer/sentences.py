"""Sentence-level helpers shared by the reranker and the answer composer (pure functions)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# A line break ends a sentence too: header blocks and lists have one item a line.
_SENTENCE_END = re.compile(r"(?<=[。；！？!?;\n])")
_NUMBER = re.compile(r"\d|[一二三四五六七八九十百千万两]+[个项次天日人户]")
# A point or span of time ("5月中下旬", "6月底前", "15天内"); frequencies are separate.
_TIME = re.compile(
    r"\d{1,4}\s*[年月日]|[上下]半年|年[初底中]|月底|月份|[上中下]旬|\d+\s*[天日]内?|\d+\s*个月"
)
_ASKS_QUANTITY = re.compile(r"多少|几|比例|比重|[^\w]?率|规模|标准|额度|金额|多大|多高|多长|多久")
_ASKS_TIME = re.compile(r"何时|什么时候|几月|时限|期限|时间|哪年|多久(?!.*一次)")
# "哪天印发" asks for a day: only a full date (4月26日) answers it, not "2023年".
_ASKS_DAY = re.compile(r"哪天|哪一天|日期|几号|几月几日|何日")
_DAY = re.compile(r"\d{1,2}\s*月\s*\d{1,2}\s*[日号]")
# "多久开展一次" asks how often: only a frequency (每季度, 每月1次) answers it, not a date.
_ASKS_FREQUENCY = re.compile(r"多久.*一次|频次|频率|几次|多长时间.*一次|每隔多久")
_FREQUENCY = re.compile(r"每[年季月周日天旬]|每半年|每学期|每季度|\d+\s*次|一次")


def split_sentences(text: str) -> list[str]:
    parts = (p.strip() for p in _SENTENCE_END.split(text))
    return [p for p in parts if p]


@dataclass(frozen=True)
class QuestionShape:
    """What kind of fact a question asks for; an answer sentence should carry one."""

    wants_number: bool
    wants_time: bool
    wants_frequency: bool = False
    wants_day: bool = False

    def matches(self, sentence: str) -> bool:
        if self.wants_day:
            return bool(_DAY.search(sentence))
        if self.wants_frequency:
            return bool(_FREQUENCY.search(sentence))
        if self.wants_time and _TIME.search(sentence):
            return True
        return bool(self.wants_number and _NUMBER.search(sentence))

    @property
    def specific(self) -> bool:
        return self.wants_number or self.wants_time or self.wants_frequency or self.wants_day


def question_shape(question: str) -> QuestionShape:
    frequency = bool(_ASKS_FREQUENCY.search(question))
    day = bool(_ASKS_DAY.search(question))
    plain = not (frequency or day)
    return QuestionShape(
        wants_number=plain and bool(_ASKS_QUANTITY.search(question)),
        wants_time=plain and bool(_ASKS_TIME.search(question)),
        wants_frequency=frequency,
        wants_day=day,
    )
