"""Follow-up questions: a short elliptical message after an answer, resolved against the
previous question of the same conversation. Rule-based and offline; no I/O.

Two shapes are resolved:

* ``那X呢`` / ``X呢`` / ``X的呢``: the previous question with the part X stands for replaced
  by X: a year (``明年呢``, ``2026年的呢``), a place (``那某县呢``, ``省里呢``), a level
  (``县级的呢``), or the topic noun (``教育呢`` after ``…医疗保障由哪个部门负责``: the words
  they share anchor where X goes); X with nothing in common takes the topic's place.
* a question without a topic of its own (``钱哪天到账？``, ``要等多久？``, ``还有什么条件？``):
  the previous question's topic (place and subject) followed by the new ask.

A message naming its own topic (``光伏收益怎么管？``) is a new question: ``None``.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

UNDERSTOOD = "（按“{}”理解）"
"""The first line of an answer to a resolved follow-up."""

MAX_FOLLOWUP_CHARS = 16
"""Longer messages are full questions."""

_UNDERSTOOD = re.compile(r"（按“(.+?)”理解）")
_INVISIBLE = re.compile(r"[\s\u00ad\u180e\u200b-\u200f\u2028-\u202f\u2060-\u206f\ufeff]+")
_EDGE = "。，,.、;；:：!！?？~～…\"'“”‘’()（）"
_LEADS = ("那么", "那如果", "那要是", "那", "另外", "然后")
_TAILS = ("呢", "啊", "呀", "吧", "哪", "嘞")
# What makes a message a question: the interrogative words and particles.
_ASK = re.compile(
    r"什么时候|什么时间|哪一天|啥时候|什么|啥|多少钱|多少|几|怎么办|怎么样|怎么|咋办|咋|如何|"
    r"哪个|哪些|哪里|哪儿|哪|谁|吗|是否|有没有|能不能|可不可以|要不要|是不是|为啥|为什么|多久|多长"
)
# Words that do not make a topic: who asks, where in the village, what is done with the money.
_FILLER = re.compile(
    r"村里|村上|村委会|村委|乡里|镇里|镇上|县里|上面|政府|我们|咱们|我家|家里|你们|还有|另外|"
    r"时间|期限|时限|部门|负责|办理|公示|申请|申报|发放|审核|审批|到账|完成|开始|截止|结束|"
    r"标准|条件|要求|材料|手续|流程|程序|资料|规定|政策|以内|之前|一下|大概|一般|大约|需要|"
    r"可以|这个|那个|的话|如果|最多|最少|至少|最长|"
    r"[我你俺要得这那的是都还能会了呢吧啊呀钱有在给到去做搞天次个月日号年批人由管办发领交补拿算前后再又长久少高低]"
)
_YEAR = re.compile(r"\d{4}(?:年度|年)?")
_LEVEL = re.compile(r"[省市县区乡镇村](?:定|级)")
_GENERIC_PLACES = ("江西省", "全省", "省里", "省级", "市里", "县里", "各县", "各地")
_PLACE_SHAPE = re.compile(r"[\u4e00-\u9fff]{2,4}(?:县|新区|区|市)")
# What follows a topic before its ask (``…饮水安全由哪个部门负责``): not part of the topic.
_TOPIC_TAIL = re.compile(
    r"(?:由|要|需要|每年|每月|每季度|一般|是|的|在|应|应当|必须|可以|能|得|做|投入|有|都|还|将|会|该|对)$"
)
_COLLOQUIAL = (("钱", "资金"),)
_COLLOQUIAL_ASK = ((re.compile(r"发$"), "发放"), (re.compile(r"发下来$"), "发放"))


def _clean(text: str) -> str:
    value = _INVISIBLE.sub("", unicodedata.normalize("NFKC", text))
    # NFKC turns full-width question marks into ASCII ones; strip both.
    return value.strip(_EDGE)


def understood_line(question: str) -> str:
    return UNDERSTOOD.format(question)


def understood_in(reply_text: str) -> str | None:
    """The question a logged reply says it understood (its first line), if any."""
    found = _UNDERSTOOD.match(reply_text.strip())
    return found[1] if found else None


def _strip_lead(text: str) -> tuple[str, bool]:
    for lead in _LEADS:
        if text.startswith(lead) and len(text) > len(lead):
            return text[len(lead) :], True
    return text, False


def _strip_tail(text: str) -> tuple[str, bool]:
    tail = False
    while text and text[-1] in _TAILS and len(text) > 1:
        text, tail = text[:-1], tail or text[-1] == "呢"
    return text, tail


def names_topic(body: str, places: Iterable[str] = ()) -> bool:
    """Does this (short) question name a topic of its own, beyond where, when and the ask?"""
    content = _ASK.sub("", body)
    content = _YEAR.sub("", content)
    for place in _places_in(content, places):
        content = content.replace(place, "")
    content = _FILLER.sub("", content)
    content = re.sub(r"[^\u4e00-\u9fffA-Za-z]", "", content)
    return len(content) >= 2


def _known_places(places: Iterable[str]) -> list[str]:
    return sorted({*places, *_GENERIC_PLACES}, key=len, reverse=True)


def _places_in(text: str, places: Iterable[str]) -> list[str]:
    return [p for p in _known_places(places) if p and p in text]


def _place_of(text: str, places: Iterable[str]) -> tuple[int, int] | None:
    """Where the first place named in ``text`` is (a known place, or a county's shape at the
    start)."""
    spans = [(text.index(p), text.index(p) + len(p)) for p in _places_in(text, places)]
    if spans:
        return min(spans)
    shaped = _PLACE_SHAPE.match(text)
    return shaped.span() if shaped else None


def _is_place(x: str, places: Iterable[str]) -> bool:
    return x in _known_places(places) or _PLACE_SHAPE.fullmatch(x) is not None


def split_question(question: str) -> tuple[str, str]:
    """``("浮梁县饮水安全", "由哪个部门负责")``: the topic and the ask of a question."""
    text = _clean(question)
    ask = _ASK.search(text)
    if ask is None:
        return text, ""
    topic = text[: ask.start()]
    while True:
        trimmed = _TOPIC_TAIL.sub("", topic)
        if trimmed == topic or not trimmed:
            break
        topic = trimmed
    return topic, text[len(topic) :]


def resolve_followup(message: str, previous: str | None, places: Iterable[str] = ()) -> str | None:
    """The full question ``message`` stands for after ``previous``; None when it is a new
    question (or there is nothing to resolve it against)."""
    places = tuple(places)
    text = _clean(message)
    prev = _clean(previous or "")
    if not text or not prev or len(text) > MAX_FOLLOWUP_CHARS or text.startswith("/"):
        return None
    body, lead = _strip_lead(text)
    body, tail = _strip_tail(body)
    if _ASK.search(body):
        if names_topic(body, places):
            return None
        return _new_ask(prev, body, places)
    if not (lead or tail):
        return None
    x = body.removesuffix("的")
    if len(x) < 2 or x == prev:
        return None
    return _substitute(prev, x, places)


def _new_ask(prev: str, body: str, places: tuple[str, ...]) -> str | None:
    topic, _ = split_question(prev)
    if not topic:
        return None
    # A place or year in the new ask replaces the previous one.
    for place in _places_in(body, places):
        topic = _replace_place(topic, place, places)
        body = body.replace(place, "", 1)
    year = _YEAR.search(body)
    if year is not None:
        topic = _replace_year(topic, year[0])
        body = body.replace(year[0], "", 1)
    for word, formal in _COLLOQUIAL:
        if body.startswith(word):
            body = ("" if topic.endswith(formal) else formal) + body[len(word) :]
    for pattern, formal in _COLLOQUIAL_ASK:
        body = pattern.sub(formal, body)
    body = body.removeprefix("还有") if body.startswith("还有") and len(body) > 4 else body
    return topic + body


def _replace_place(text: str, place: str, places: tuple[str, ...]) -> str:
    span = _place_of(text, places)
    if span is None:
        return place + text
    return text[: span[0]] + place + text[span[1] :]


def _replace_year(text: str, year: str) -> str:
    if not year.endswith(("年", "年度")):
        year += "年"
    found = _YEAR.search(text)
    if found is None:
        return year + text
    return text[: found.start()] + year + text[found.end() :]


def _substitute(prev: str, x: str, places: tuple[str, ...]) -> str:
    if _YEAR.fullmatch(x) and _YEAR.search(prev):
        return _replace_year(prev, x)
    level = _LEVEL.fullmatch(x)
    found_level = _LEVEL.search(prev)
    if level is not None and found_level is not None:
        return prev[: found_level.start()] + x + prev[found_level.end() :]
    if _is_place(x, places):
        return _replace_place(prev, x, places)
    shared = _shared_head(prev, x, places)
    if shared is not None:
        return shared
    place_span = _place_of(prev, places)
    _, ask = split_question(prev)
    place = prev[place_span[0] : place_span[1]] if place_span and place_span[0] == 0 else ""
    if place and x.startswith(place):
        place = ""
    return place + x + ask


def _shared_head(prev: str, x: str, places: tuple[str, ...]) -> str | None:
    """``prev`` with X in place of the phrase ending in the words they share (the head noun):
    ``住房安全`` into ``浮梁县饮水安全由…`` gives ``浮梁县住房安全由…``."""
    for size in range(len(x), 1, -1):
        head = x[-size:]
        at = prev.find(head)
        if at < 0:
            continue
        modifier = x[:-size]
        place_span = _place_of(prev, places)
        floor = place_span[1] if place_span is not None and place_span[1] <= at else 0
        start = max(floor, at - len(modifier))
        return prev[:start] + x + prev[at + size :]
    return None
