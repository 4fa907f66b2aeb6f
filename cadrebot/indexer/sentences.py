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
# "每户补助多少钱" asks for an amount of money: only a sum (2000元, 50万元) answers it.
_ASKS_AMOUNT = re.compile(
    r"多少钱|多少元|多少万|金额|(?:补助|补贴|奖补|奖励|资助|救助)(?:标准)?(?:是|有|能)?多少"
)
_AMOUNT = re.compile(r"\d[\d.,]*\s*[万亿千百]?元")
_YEAR = re.compile(r"(20\d{2})\s*年")
# "每户补助多少钱" → "每户": whom or what an amount is per.
_PER = re.compile(r"每(?:户|人|亩|村|个村|家|名|头|只)")
_MONEY_WORD = re.compile(r"补助|补贴|奖补|奖励|资助|救助|资金")


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
    wants_amount: bool = False  # a sum of money (多少钱, 补助多少)

    def matches(self, sentence: str) -> bool:
        if self.wants_amount:
            return bool(_AMOUNT.search(sentence))
        if self.wants_day:
            return bool(_DAY.search(sentence))
        if self.wants_frequency:
            return bool(_FREQUENCY.search(sentence))
        if self.wants_time and _TIME.search(sentence):
            return True
        return bool(self.wants_number and _NUMBER.search(sentence))

    @property
    def specific(self) -> bool:
        return (
            self.wants_number
            or self.wants_time
            or self.wants_frequency
            or self.wants_day
            or self.wants_amount
        )


def question_shape(question: str) -> QuestionShape:
    frequency = bool(_ASKS_FREQUENCY.search(question))
    day = bool(_ASKS_DAY.search(question))
    plain = not (frequency or day)
    return QuestionShape(
        wants_number=plain and bool(_ASKS_QUANTITY.search(question)),
        wants_time=plain and bool(_ASKS_TIME.search(question)),
        wants_frequency=frequency,
        wants_day=day,
        wants_amount=plain and bool(_ASKS_AMOUNT.search(question)),
    )


def has_amount(text: str) -> bool:
    """Whether a passage states a sum of money (2000元, 50万元)."""
    return bool(_AMOUNT.search(text))


def amount_phrase(question: str) -> str:
    """What an amount question asks for, in its own words: "每户补助多少钱" → "每户补助金额"."""
    per = _PER.search(question)
    word = _MONEY_WORD.search(question)
    return f"{per.group(0) if per else ''}{word.group(0) if word else ''}金额"


def years_named(text: str) -> list[str]:
    """Years a question names ("2025年" → "2025"), in order, without repeats."""
    return list(dict.fromkeys(_YEAR.findall(text)))


_YEAR_SPAN = re.compile(r"(20\d{2})\s*[—–\-－~至到]+\s*(20\d{2})")


def years_covered(*texts: str) -> set[str]:
    """Years a document is about: those it is dated or titled with, spans included
    ("（2023—2025年）" → 2023, 2024, 2025)."""
    years: set[str] = set()
    for text in texts:
        years.update(re.findall(r"20\d{2}", text))
        for start, end in _YEAR_SPAN.findall(text):
            years.update(str(y) for y in range(int(start), int(end) + 1))
    return years
