"""Answers read off the documents' structure: lists of a section's parts, and 责任单位.

Two kinds of question are answered better by structure than by the best sentence:

* lists ("X有哪些", "X分哪几个方面", "X是哪几类"): the answer is the
  children of one section (its headings), or the phrases one sentence enumerates
  ("甲一批、乙一批、…"), shown one a line and cited to the section;
* duties ("X由哪个部门负责", "某局负责哪些工作"): the answer is the 责任单位 of an
  item or task-table row, parsed into unit names (lead unit first), or the items whose units
  include the unit asked about, in the place asked about;
* time requirements ("7月底前要完成哪些工作", "每季度要做什么"): the deadlines and frequencies
  of every item and task-table row, parsed into a comparable form, filtered by the time asked.

Everything here is a pure function of the loaded chunks and the question;
:func:`build_structure` runs once per index version (the searcher caches it) and
:func:`answer_structured` is the composer's hook, returning None when the question is not of
these kinds or the structure does not answer it (the ordinary path then answers).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from cadrebot.handlers.ports import Citation, PolicyAnswer
from cadrebot.indexer.search import scope_aliases
from cadrebot.indexer.sentences import split_sentences
from cadrebot.indexer.types import Chunk, ChunkKind, DocumentMeta

MAX_LIST_LINES = 8
MAX_LINE_CHARS = 48
MAX_BODY_CHARS = 480


# --- the section tree -------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A heading of one document with the headings directly under it, in document order."""

    doc_id: str
    path: tuple[str, ...]
    children: tuple[str, ...]
    first: Chunk  # the first chunk under the section (cited)


@dataclass(frozen=True)
class Duty:
    """An item or task-table row with its 责任单位 parsed."""

    chunk: Chunk
    title: str  # the item's title or the row's 工作事项
    units: tuple[str, ...]  # departments, lead first
    others: tuple[str, ...]  # cooperating groups ("各乡（镇）党委、政府")


@dataclass
class Structure:
    """What the structured answers need of one index version."""

    documents: Mapping[str, DocumentMeta]
    sections: list[Section] = field(default_factory=list)
    duties: list[Duty] = field(default_factory=list)
    aliases: dict[str, set[str]] = field(default_factory=dict)
    timed: list[Timed] = field(default_factory=list)


def build_structure(chunks: Sequence[Chunk], documents: Mapping[str, DocumentMeta]) -> Structure:
    """The section tree and the parsed 责任单位 of every chunk (document order kept)."""
    children: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    first: dict[tuple[str, tuple[str, ...]], Chunk] = {}
    duties: list[Duty] = []
    timed: list[Timed] = []
    for chunk in chunks:
        if chunk.extra.get("suspect"):
            continue
        path = chunk.section
        for depth in range(len(path)):
            key = (chunk.doc_id, path[:depth])
            first.setdefault(key, chunk)
            first.setdefault((chunk.doc_id, path[: depth + 1]), chunk)
            names = children.setdefault(key, [])
            if path[depth] not in names:
                names.append(path[depth])
        units, others = parse_units(chunk.responsible) if chunk.responsible else ([], [])
        if units or others:
            duties.append(Duty(chunk, _duty_title(chunk), tuple(units), tuple(others)))
        if _TIME_WORDS.search(chunk.text):
            timed += time_requirements(chunk, units[0] if units else "")
    sections = [
        Section(doc_id, path, tuple(names), first[(doc_id, path)])
        for (doc_id, path), names in children.items()
        if path and len(names) >= 2
    ]
    aliases = {doc_id: scope_aliases(meta) for doc_id, meta in documents.items()}
    return Structure(documents, sections, duties, aliases, timed)


def _duty_title(chunk: Chunk) -> str:
    if chunk.kind == ChunkKind.TABLE_ROW:
        for cell in chunk.text.split("；"):
            name, _, value = cell.partition("：")
            if re.search(r"事项|任务名称|工作任务", name) and value:
                return value
    title = chunk.extra.get("item_title", "")
    if title:
        return title
    return chunk.section[-1] if chunk.section else ""


# --- 责任单位 --------------------------------------------------------------------------------

_OPEN = "（(〔【[［"
_CLOSE = "）)〕】]］"


def _split_top(text: str, separators: str) -> list[str]:
    """Split at ``separators`` outside brackets."""
    parts: list[str] = []
    depth = 0
    current = ""
    for char in text:
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE:
            depth = max(0, depth - 1)
        if char in separators and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    parts.append(current)
    return [p.strip() for p in parts if p.strip()]


def parse_units(text: str) -> tuple[list[str], list[str]]:
    """``县甲局、县乙局，各乡（镇）党委、政府`` → (["县甲局", "县乙局"],
    ["各乡（镇）党委、政府"]): the departments in order (the first leads) and the cooperating
    groups (a comma group starting with 各 is kept whole)."""
    units: list[str] = []
    others: list[str] = []
    for group in _split_top(text.strip().rstrip("。"), "，,；;"):
        group = re.sub(r"等$", "", group).strip()
        if not group:
            continue
        if group.startswith("各"):
            others.append(group)
            continue
        for unit in _split_top(group, "、"):
            unit = re.sub(r"等$", "", unit).strip()
            if unit and unit not in units:
                units.append(unit)
    return units, others


_LEVEL_PREFIX = re.compile(r"^(省|市(?!场)|县|区)(?=.{2,})")
_INNER = re.compile(r"[（(]([^）)]+)[）)]")
_UNIT_SUFFIX = r"(?:局|委|办|部|厅|中心|联|会|院|署|社|公司|分局|支行|分行|队)"


def unit_keys(name: str) -> set[str]:
    """Names under which a unit is asked for, without the level prefix: 区农办（乡村振兴局） →
    {农办, 乡村振兴局}; 县纪委县监委 → {纪委, 监委, 纪委监委}; 医保局信丰分局 → {医保局}."""
    keys: set[str] = set()
    inner = _INNER.findall(name)
    outer = _INNER.sub("", name)
    for raw in [outer, *inner]:
        raw = raw.strip()
        if not raw:
            continue
        for piece in [raw, *re.split(r"(?<=[委局办部厅])(?=[省市县区])", raw)]:
            key = _LEVEL_PREFIX.sub("", piece)
            keys.add(key)
            key = re.sub(r"(.{2,}?局).+分局$", r"\1", key)  # 医保局信丰分局
            keys.add(key)
            keys.add(re.sub(r"分(局|中心)$", r"\1", key))
    if "纪委" in outer and "监委" in outer:
        keys |= {"纪委", "监委"}
    return {k for k in keys if len(k) >= 2}


# Departments that carry another's work where the other does not exist (a 新区 has a 社管局 for
# 民政/人社/教育/卫健 and a 农办（乡村振兴局） for 农业农村). Keys as :func:`unit_keys` gives them.
EQUIVALENT_UNITS: dict[str, tuple[str, ...]] = {
    "农业农村局": ("农办", "乡村振兴局"),
    "乡村振兴局": ("农办", "农业农村局"),
    "农办": ("乡村振兴局", "农业农村局"),
    "民政局": ("社管局",),
    "人社局": ("社管局",),
    "教体局": ("教育局", "社管局"),
    "教育局": ("教体局", "社管局"),
    "卫健委": ("卫健局", "社管局"),
    "卫健局": ("卫健委", "社管局"),
    "医保局": ("医保分中心",),
    "发改委": ("经发局",),
    "工信局": ("经发局",),
    "商务局": ("经发局", "产业招商局"),
    "组织部": ("党群部",),
    "县委组织部": ("党群部",),
    "委组织部": ("党群部",),
    "宣传部": ("党群部",),
    "自然资源局": ("自然资源分局",),
    "生态环境局": ("生态环境分局",),
    "公安局": ("公安分局",),
}


# --- question shapes --------------------------------------------------------------------------

_CN_DIGITS = "一二两三四五六七八九十"
_LIST_INTENT = re.compile(
    r"有哪些|有哪几|哪几[个类项条种大点方块部]|分哪|分为哪|分成哪|分别是|分别有|包括什么|包括哪|"
    rf"包含哪|都有什么|有什么内容|是哪[{_CN_DIGITS}\d]+|哪[“\"「]?[{_CN_DIGITS}\d]+[”\"」]?[个类项条种大]|"
    r"什么样的.{0,6}(制度|机制|体系|模式)|什么思路|哪些方面|几个方面|列举|清单"
)
_WHO_INTENT = re.compile(
    r"(哪个|哪些|什么|哪家|哪一个)(部门|单位|机构|局|机关)|由谁|谁(来)?(负责|牵头|管|抓)|归谁|"
    r"责任单位|牵头单位|责任部门|牵头部门"
)
_UNIT_TASKS = re.compile(
    rf"([\u4e00-\u9fa5（）()]{{2,24}}?{_UNIT_SUFFIX})(?:都|要|主要|具体|一共|共|还)?"
    r"(?:负责|承担|牵头|分管|管|抓|干)(?:的)?(?:哪些|什么|啥|几项|哪几)"
)
_PROVINCE_WORDS = ("省里", "省级", "全省", "省委", "省政府", "江西省")
_QUESTION_NOISE = re.compile(
    r"[？?！!。，,、“”\"'：:（）()\s]|请问|一下|知道|告诉|我想|想问|是什么|有哪些|哪几个|哪些|"
    r"分别|包括|什么|哪个|部门|单位|负责|牵头|由谁|谁|的|了|吗|呢|呀|要|是|有|和|与|及"
)


def list_intent(question: str) -> bool:
    return bool(_LIST_INTENT.search(question)) and not _WHO_INTENT.search(question)


def who_intent(question: str) -> bool:
    return bool(_WHO_INTENT.search(question))


def asked_unit(question: str) -> str | None:
    """The unit a "X局负责哪些工作" question asks about, or None."""
    match = _UNIT_TASKS.search(question)
    return match.group(1) if match else None


def _bigrams(text: str) -> set[str]:
    text = re.sub(r"[^\u4e00-\u9fa5A-Za-z0-9]", "", text)
    return {text[i : i + 2] for i in range(len(text) - 1)}


_CN = "一二三四五六七八九十"
_MARKER = re.compile(rf"^(附件\s*\d*|[{_CN}]+、|（[{_CN}]+）|\d+\.\s*)")


def _strip_marker(label: str) -> str:
    return _MARKER.sub("", label)


def _cn_number(question: str) -> int | None:
    """The count a question asks for ("是哪七个", "哪“七类”"), or None."""
    match = re.search(rf"哪\s*[“\"「]?([{_CN_DIGITS}]|\d+)[”\"」]?\s*[大类个项条种方]", question)
    if not match:
        return None
    token = match.group(1)
    if token.isdigit():
        return int(token)
    values = {c: i for i, c in enumerate("一二三四五六七八九十", 1)}
    values["两"] = 2
    return values.get(token)


# --- answering ----------------------------------------------------------------------------------


class _Hit(Protocol):
    @property
    def chunk(self) -> Chunk: ...

    @property
    def meta(self) -> DocumentMeta: ...

    @property
    def best_sentence(self) -> float: ...

    @property
    def sentence_scores(self) -> tuple[float, ...]: ...


class _Source(Protocol):
    @property
    def version(self) -> str: ...

    def place_names(self, query: str) -> list[str]: ...

    def known_place(self, name: str) -> bool: ...


def answer_structured(
    question: str, retriever: object, hits: Sequence[_Hit]
) -> PolicyAnswer | None:
    """The composer's hook: a list or duty answer, or None for the ordinary path."""
    structure_of = getattr(retriever, "structure", None)
    if structure_of is None or not hits:
        return None
    source: _Source = retriever  # type: ignore[assignment]
    for place in source.place_names(question):
        if not source.known_place(place):
            return None  # a place the documents do not cover: the ordinary gate says so
    structure: Structure = structure_of()
    body_cites = compose_structured(question, structure, hits)
    if body_cites is None:
        return None
    body, cited = body_cites
    citations = [_citation(c, structure.documents[c.doc_id], section) for c, section in cited]
    seen = {c.chunk_id for c in citations}
    for hit in hits[:3]:
        if hit.chunk.chunk_id not in seen and len(citations) < 3:
            citations.append(_citation(hit.chunk, hit.meta, hit.chunk.section_label()))
            seen.add(hit.chunk.chunk_id)
    return PolicyAnswer(question, True, body, citations, kb_version=source.version)


def compose_structured(
    question: str, structure: Structure, hits: Sequence[_Hit]
) -> tuple[str, list[tuple[Chunk, str]]] | None:
    """(answer body, cited chunks with the section label to cite) or None. Pure."""
    docs = scope_docs(question, structure, hits)
    named_years = set(re.findall(r"(20\d{2})\s*年", question))
    docs = [d for d in docs if named_years <= _doc_years(structure.documents[d])]
    if not docs:
        return None  # a year no document in scope is about: the ordinary path says so
    unit = asked_unit(question)
    if unit is not None:
        found = _unit_tasks(question, unit, structure, docs)
        if found is not None:
            return found
    if who_intent(question):
        return _who(question, structure, docs, hits)
    timed = _timed_list(question, structure, docs)
    if timed is not None:
        return timed
    if list_intent(question):
        return _section_list(question, structure, docs) or _inline_list(question, docs, hits)
    return None


def scope_docs(question: str, structure: Structure, hits: Sequence[_Hit]) -> list[str]:
    """Documents the question is about: the place it names, else those of the best hits."""
    named = [d for d, aliases in structure.aliases.items() if any(a in question for a in aliases)]
    local = [d for d in named if structure.documents[d].level != "省"]
    if local:
        return local
    if named or any(w in question for w in _PROVINCE_WORDS):
        province = [d for d, m in structure.documents.items() if m.level == "省"]
        ranked = [h.chunk.doc_id for h in hits if h.chunk.doc_id in province]
        return list(dict.fromkeys(ranked + province))
    return list(dict.fromkeys(h.chunk.doc_id for h in hits[:3]))


def _doc_years(meta: DocumentMeta) -> set[str]:
    """Years a document is about: its date and title years, spans included (2023—2025)."""
    years = set(re.findall(r"20\d{2}", meta.title + meta.date))
    for start, end in re.findall(r"(20\d{2})\s*[—–\-－~至到]+\s*(20\d{2})", meta.title):
        years.update(str(y) for y in range(int(start), int(end) + 1))
    return years


def _place_free(question: str, structure: Structure, docs: Iterable[str]) -> str:
    text = question
    for doc_id in docs:
        for alias in sorted(structure.aliases.get(doc_id, ()), key=len, reverse=True):
            text = text.replace(alias, "")
    return text


def _topic(question: str, structure: Structure, docs: Sequence[str]) -> str:
    text = _place_free(question, structure, docs)
    text = _LIST_INTENT.sub("", text)
    text = _WHO_INTENT.sub("", text)
    text = re.sub(r"\d{4}年(度)?", "", text)
    return _QUESTION_NOISE.sub("", text)


def _clip(text: str, limit: int = MAX_LINE_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _lines(entries: Sequence[str], limit: int = MAX_LINE_CHARS) -> str:
    shown = [_clip(e, limit) for e in entries[:MAX_LIST_LINES]]
    more = len(entries) - len(shown)
    if more > 0:
        shown.append(f"……另有{more}项，详见原文。")
    return "\n".join(shown)


def _doc_title(structure: Structure, doc_id: str) -> str:
    return structure.documents[doc_id].title


# Lists: the children of a section ----------------------------------------------------------


def _section_list(
    question: str, structure: Structure, docs: Sequence[str]
) -> tuple[str, list[tuple[Chunk, str]]] | None:
    topic = _topic(question, structure, docs)
    topic_grams = _bigrams(topic)
    if not topic_grams:
        return None
    wanted = _cn_number(question)
    best: tuple[float, Section] | None = None
    for rank, doc_id in enumerate(docs):
        title_grams = _bigrams(_doc_title(structure, doc_id))
        for section in structure.sections:
            if section.doc_id != doc_id:
                continue
            score = _section_score(section, topic_grams, title_grams, wanted)
            score -= 0.05 * rank  # the named or best-retrieved document first
            if score > 0 and (best is None or score > best[0]):
                best = (score, section)
    if best is None or best[0] < 0.75:
        return None
    section = best[1]
    children = list(section.children)
    name = _strip_marker(section.path[-1])
    body = f"{name}共{len(children)}项：\n{_lines(children)}"
    return body, [(section.first, " › ".join(section.path))]


def _section_score(
    section: Section, topic: set[str], doc_title: set[str], wanted: int | None
) -> float:
    """How well a section's heading (or its children's shared words) names the topic."""
    heading = _bigrams(_strip_marker(section.path[-1]))
    if not heading:
        return 0.0
    # The share of the heading the question carries, and of the question the heading (with
    # the document title, which the question may repeat) accounts for.
    heading_share = len(heading & topic) / len(heading)
    topic_share = len(topic & (heading | doc_title)) / len(topic)
    score = 0.7 * heading_share + 0.3 * topic_share
    # "七大专项行动是哪七个": the children share the words asked about, and there are seven.
    shared = set.intersection(*(_bigrams(_strip_marker(c)) for c in section.children))
    if shared and shared & topic:
        score = max(score, 0.5 + 0.4 * len(shared & topic) / max(1, len(topic - doc_title)))
    if wanted is not None:
        score += 0.3 if wanted == len(section.children) else -0.3
    if len(section.children) > 30:
        score -= 0.2
    return score


# Lists: the phrases one sentence enumerates --------------------------------------------------

_ENUMERATION = re.compile(
    r"[“\"「]([^”\"」]{2,80}、[^”\"」]{2,80})[”\"」]"  # “村级每月一…、镇级每季度一…”
    r"|([^，。；：“”\"]{4,}(?:、[^，。；：、“”\"]{2,14}){2,})"  # 按照甲一批、乙一批…
)


def enumerations(sentence: str) -> list[tuple[list[str], bool]]:
    """The phrase lists of a sentence ("按照甲一批、乙一批、丙一批思路" → the three), each
    with whether it was quoted; only lists of at least three short phrases."""
    found: list[tuple[list[str], bool]] = []
    for match in _ENUMERATION.finditer(sentence):
        quoted = match.group(1) is not None
        items = [p.strip() for p in (match.group(1) or match.group(2)).split("、")]
        if len(items) < 3:
            continue
        if not quoted:
            items = _trim_ends(items)
        if all(2 <= len(i) <= 20 for i in items):
            found.append((items, quoted))
    return found


def _trim_ends(items: list[str]) -> list[str]:
    middle = items[1:-1]
    size = max(len(i) for i in middle)
    first, last = items[0], items[-1]
    if len(first) > size:
        first = first[len(first) - len(items[1]) :]
    last = re.split(r"等|[”」）)]", last)[0]
    tail = [p for p in re.split(r"[和及与]", last) if p]
    if len(tail) > 1 and all(len(p) <= size + 1 for p in tail):
        return [first, *middle, *tail]  # "…、残疾人补助和临时救助"
    if len(last) > size + 1:
        last = last[: len(items[-2])]
    return [first, *middle, last]


def _inline_list(
    question: str, docs: Sequence[str], hits: Sequence[_Hit]
) -> tuple[str, list[tuple[Chunk, str]]] | None:
    # Only the best passage: a list from a lesser one would answer another question.
    scoped = [h for h in hits[:1] if h.chunk.doc_id in docs]
    best: tuple[float, _Hit, str, list[str]] | None = None
    topic = _bigrams(question)
    for hit in scoped:
        sentences = split_sentences(hit.chunk.text)
        scores = list(hit.sentence_scores)
        if len(scores) != len(sentences):
            continue
        for sentence, score in zip(sentences, scores, strict=True):
            if score < 0.25:
                continue
            for items, quoted in enumerations(sentence):
                if not quoted and score < 0.4:
                    continue  # an unquoted list must be in a sentence that answers well
                # The enumeration that shares the question's words; quoted ones are names.
                listed = _bigrams("".join(items))
                fit = score + len(listed & topic) / max(1, len(topic)) + (0.2 if quoted else 0.0)
                if best is None or fit > best[0]:
                    best = (fit, hit, sentence, items)
    if best is None:
        return None
    _, hit, sentence, items = best
    body = f"共{len(items)}项：\n{_lines(items)}\n原文：{_clip(sentence.strip(), 200)}"
    return body, [(hit.chunk, hit.chunk.section_label())]


# Duties: who is responsible for X -------------------------------------------------------------


def _who(
    question: str, structure: Structure, docs: Sequence[str], hits: Sequence[_Hit]
) -> tuple[str, list[tuple[Chunk, str]]] | None:
    by_chunk = {d.chunk.chunk_id: d for d in structure.duties}
    topic = _bigrams(_topic(question, structure, docs))
    candidates: list[tuple[float, Duty]] = []
    for rank, hit in enumerate(hits[:5]):
        duty = by_chunk.get(hit.chunk.chunk_id)
        if duty is None or hit.chunk.doc_id not in docs or not duty.units:
            continue
        title = _bigrams(duty.title + "".join(duty.chunk.section[-1:]))
        title_share = len(title & topic) / len(topic) if topic else 0.0
        if title_share < 0.5 and hit.best_sentence < 0.55:
            continue  # not about what was asked
        candidates.append((title_share + hit.best_sentence - 0.1 * rank, duty))
    if not candidates:
        return None
    duty = max(candidates, key=lambda c: c[0])[1]
    lead, rest = duty.units[0], list(duty.units[1:])
    helpers = rest[:8]
    parts = [f"{duty.title}：由{lead}牵头负责" if rest else f"{duty.title}：由{lead}负责"]
    if helpers:
        more = "等" if len(rest) > len(helpers) else ""
        parts.append(f"{'、'.join(helpers)}{more}配合")
    if duty.others:
        parts.append(f"{'，'.join(duty.others)}{'配合' if not helpers else '抓落实'}")
    body = "，".join(parts) + "。"
    return body, [(duty.chunk, duty.chunk.section_label())]


# Duties: what X is responsible for -------------------------------------------------------------


def _unit_tasks(
    question: str, unit: str, structure: Structure, docs: Sequence[str]
) -> tuple[str, list[tuple[Chunk, str]]] | None:
    name = _place_free(unit, structure, docs) or unit
    asked = unit_keys(name)
    if not asked:
        return None
    in_scope = [d for d in structure.duties if d.chunk.doc_id in docs]

    def matching(keys: set[str]) -> list[Duty]:
        return [d for d in in_scope if any(keys & unit_keys(u) for u in d.units)]

    duties = matching(asked)
    note = ""
    if not duties:
        equivalent = {e for k in asked for e in EQUIVALENT_UNITS.get(k, ())}
        duties = matching(equivalent)
        if not duties:
            return None
        holders = [u for d in duties for u in d.units if equivalent & unit_keys(u)]
        holder = max(set(holders), key=holders.count)
        note = f"当地文件中没有{name}，相应工作由{holder}承担。"
    doc_id = duties[0].chunk.doc_id
    duties = [d for d in duties if d.chunk.doc_id == doc_id]
    # A task table often repeats the numbered items row by row: the items suffice then.
    items = [d for d in duties if d.chunk.kind != ChunkKind.TABLE_ROW]
    duties = items or duties
    entries: list[str] = []
    seen: set[str] = set()
    for duty in duties:
        text = _task_text(duty)
        key = re.sub(r"\W|^\d+", "", duty.title) or re.sub(r"\W", "", text)[:24]
        if key in seen:
            continue
        seen.add(key)
        leads = bool(asked & unit_keys(duty.units[0])) if not note else False
        entries.append(("（牵头）" if leads else "") + text)
    head = f"{note}{name if not note else '其'}负责的工作共{len(entries)}项："
    body = f"{head}\n{_lines(entries)}"
    return body, [(duties[0].chunk, duties[0].chunk.section_label())]


def _task_text(duty: Duty) -> str:
    """One line for a duty: its title and the start of what it asks."""
    chunk = duty.chunk
    if chunk.kind == ChunkKind.TABLE_ROW:
        cells = dict(c.partition("：")[::2] for c in chunk.text.split("；") if "：" in c)
        task = next((v for k, v in cells.items() if re.search(r"任务要求|工作内容|内容", k)), "")
        return f"{duty.title}：{task}" if task else duty.title
    body = chunk.text
    title = duty.title
    body = re.sub(r"^\s*(\d+\.|（[一二三四五六七八九十]+）)\s*", "", body)
    if title and body.startswith(title):
        body = body[len(title) :].lstrip("。；，：")
    body = re.sub(r"[（(〔【]\s*责任单位.*$", "", body, flags=re.S).strip()
    return f"{title}：{body}" if body else title


# Time requirements: deadlines and frequencies ---------------------------------------------------

MONTH_END = 31  # a month's end, so that "9月30日前" falls before "9月底前"
YEAR_END = 12 * 100 + MONTH_END
_QUARTERS = {"一": 1, "二": 2, "三": 3, "四": 4, "1": 1, "2": 2, "3": 3, "4": 4}
_TEN_DAYS = {"上旬": 10, "中旬": 20, "下旬": MONTH_END}
_COUNTS = {"一": 1, "两": 2, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6}
_PER_YEAR = {"周": 52, "月": 12, "季度": 4, "半年": 2, "年": 1}


@dataclass(frozen=True)
class Deadline:
    """A deadline as written (``label``) and as a comparable month-day key (``6月底`` → 631)."""

    key: int
    label: str
    year_round: bool = False  # 全年: the whole year, due by its end
    written: str = field(default="", compare=False)  # the text stating it ("3月、8月底前")

    @property
    def month(self) -> int:
        return self.key // 100


@dataclass(frozen=True)
class Frequency:
    """How often something is done: ``count`` times (at least) per ``unit``."""

    unit: str  # 周 / 月 / 季度 / 半年 / 年
    count: int
    label: str

    @property
    def per_year(self) -> int:
        return self.count * _PER_YEAR[self.unit]


@dataclass(frozen=True)
class Timed:
    """One time requirement of an item or task-table row, with the clause that states it."""

    chunk: Chunk
    title: str
    clause: str
    lead: str  # the lead 责任单位, "" when none is named
    deadline: Deadline | None = None
    frequency: Frequency | None = None


_MONTHS_END = re.compile(
    r"((?:\d{1,2}\s*月\s*[、和及]\s*)*)(\d{1,2})\s*月\s*(?:(\d{1,2})\s*日|(底|末)|(上旬|中旬|下旬))"
    r"\s*(前)?"
)
_YEAR_END = re.compile(r"年底前|年末前|年内|年底")
_QUARTER = re.compile(r"(?<![每按])(?:第)?([一二三四1-4])\s*季度(?:末|底)?(前)?")
_HALF = re.compile(r"(?<![每各])([上下])半年")
_TIME_WORDS = re.compile(r"月|季|半年|年[底末内]|全年")
_FREQUENCY = re.compile(r"(?:每|按)\s*(周|月|季度|季|半年|年)")
_TIMES = re.compile(r"(\d+|[一两二三四五六])\s*次")


def parse_deadlines(text: str, *, column: bool = False) -> list[Deadline]:
    """The deadlines a text states, in order. In running text a month needs 前 ("7月底前开工",
    "9月30日前"); a 完成时限 cell (``column``) may omit it ("7月底、10月底") and may say 全年."""
    found: list[tuple[int, Deadline]] = []
    for match in _MONTHS_END.finditer(text):
        if not (match.group(6) or column):
            continue
        day = MONTH_END
        if match.group(3):
            day = int(match.group(3))
        elif match.group(5):
            day = _TEN_DAYS[match.group(5)]
        label = re.sub(r"\s+", "", match.group(0))
        months = [int(m) for m in re.findall(r"\d{1,2}", match.group(1))]
        last = int(match.group(2))
        tail = re.sub(r"\s+", "", match.group(0)[len(match.group(1)) :])  # "8月底前"
        for month in [*months, last]:
            if 1 <= month <= 12 and 1 <= day <= MONTH_END:
                # "3月、8月底前": each month with its own label
                own = re.sub(rf"^{last}", str(month), tail)
                deadline = Deadline(month * 100 + day, own, written=label)
                found.append((match.start(), deadline))
    for match in _QUARTER.finditer(text):
        quarter = _QUARTERS[match.group(1)]
        found.append((match.start(), Deadline(quarter * 300 + MONTH_END, match.group(0))))
    for match in _HALF.finditer(text):
        if column or text[match.end() : match.end() + 1] == "前":
            key = 600 + MONTH_END if match.group(1) == "上" else YEAR_END
            found.append((match.start(), Deadline(key, match.group(0))))
    for match in _YEAR_END.finditer(text):
        if column or match.group(0) != "年底":
            found.append((match.start(), Deadline(YEAR_END, match.group(0))))
    if column and "全年" in text:
        found.append((text.index("全年"), Deadline(YEAR_END, "全年", year_round=True)))
    found.sort(key=lambda f: f[0])
    return list(dict.fromkeys(d for _, d in found))


def parse_frequencies(text: str) -> list[Frequency]:
    """The frequencies a text states: 每季度 → (季度, 1); 每月至少开展1次 → (月, 1);
    每年至少进行2次 → (年, 2). 每年 needs a count (每年投入若干万元 is an amount, not a
    frequency); the other units stand alone (每季度开展排查)."""
    found: list[Frequency] = []
    for clause in _clauses(text):
        for match in _FREQUENCY.finditer(clause):
            unit = "季度" if match.group(1) == "季" else match.group(1)
            rest = clause[match.end() : match.end() + 24]
            nxt = _FREQUENCY.search(rest)
            rest = rest[: nxt.start()] if nxt else rest
            times = _TIMES.search(rest)
            if unit == "年" and not times and not rest.startswith("一"):
                continue
            count = 1
            if times:
                token = times.group(1)
                count = int(token) if token.isdigit() else _COUNTS.get(token, 1)
            label = match.group(0) + (rest[: times.end()] if times else "")
            frequency = Frequency(unit, max(1, count), re.sub(r"\s+", "", label))
            if frequency not in found:
                found.append(frequency)
    return found


def _clauses(text: str) -> list[str]:
    return [c.strip() for c in re.split(r"[，,；;。！!？?\n]", text) if c.strip()]


_CELL_NAME = re.compile(r"(?:^|(?<=[；。]))([^；。：，、]{1,8})：")


def _row_cells(chunk: Chunk) -> dict[str, str]:
    """A rendered row's cells by column ("序号：5；工作事项：…；任务要求：….完成时限：全年；…":
    a cell ending in 。 is not followed by ；)."""
    names = list(_CELL_NAME.finditer(chunk.text))
    cells: dict[str, str] = {}
    for index, match in enumerate(names):
        end = names[index + 1].start() if index + 1 < len(names) else len(chunk.text)
        cells.setdefault(match.group(1), chunk.text[match.end() : end].rstrip("；"))
    return cells


def time_requirements(chunk: Chunk, lead: str = "") -> list[Timed]:
    """The deadlines and frequencies of an item or task-table row, each with its clause;
    ``lead`` is the item's lead 责任单位."""
    if chunk.kind not in (ChunkKind.ITEM, ChunkKind.TABLE_ROW):
        return []
    title = _strip_marker(_duty_title(chunk)).strip()
    found: list[Timed] = []
    if chunk.kind == ChunkKind.TABLE_ROW:
        cells = _row_cells(chunk)
        limit = next((v for k, v in cells.items() if "时限" in k or "时间" in k), "")
        task = next((v for k, v in cells.items() if re.search(r"任务要求|工作内容|内容", k)), "")
        text = task
        first = (_clauses(task) or [title])[0]
        for deadline in parse_deadlines(limit, column=True):
            clause = _clause_with(task, deadline.written or deadline.label) or first
            found.append(Timed(chunk, title, clause, lead, deadline=deadline))
        frequencies = parse_frequencies(task)
        in_task = {f.unit for f in frequencies}
        frequencies += [f for f in parse_frequencies(limit) if f.unit not in in_task]
    else:
        text = re.sub(r"[（(〔【]\s*责任单位.*$", "", chunk.text, flags=re.S)
        first = title
        for deadline in parse_deadlines(text):
            clause = _clause_with(text, deadline.written or deadline.label) or title
            found.append(Timed(chunk, title, clause, lead, deadline=deadline))
        frequencies = parse_frequencies(text)
    for frequency in frequencies:
        clause = _clause_with(text, frequency.label) or first
        found.append(Timed(chunk, title, clause, lead, frequency=frequency))
    return found


def _clause_with(text: str, label: str) -> str:
    """The clause of ``text`` stating ``label``; one that starts with it ("6月底前达到50%")
    takes the clause before it for its subject."""
    clauses = _clauses(text)
    squeezed = [re.sub(r"\s+", "", c) for c in clauses]
    for index, clause in enumerate(squeezed):
        if label in clause:
            if clause.startswith(label) and index > 0 and len(clause) < 16:
                return f"{squeezed[index - 1]}，{clause}"
            return clause
    return ""


_DEADLINE_ASKED = re.compile(
    r"(\d{1,2})\s*月\s*(?:(\d{1,2})\s*日|底|末|份)?|年底|年末|年内|([一二三四1-4])\s*季度|([上下])半年"
)
_TIMED_LIST = re.compile(
    r"哪些|哪几|什么(工作|任务|事)|要(做|干|完成|抓|办)(什么|啥)|有什么|有啥|清单|列举"
)
_NOT_A_LIST = re.compile(r"什么时[候间]|何时|哪天|几月|多久|多长时间|多少|几次|哪个月")
_FREQUENCY_NOISE = re.compile(
    r"[？?！!。，,、\s]|哪些|哪几项|哪几|什么|工作|任务|事情|事项|要|需要|必须|做|干|完成|开展|"
    r"组织|进行|落实|有|都|的|了|呢|吗|请问|一下|至少|一次|1次|定期|具体|主要|事|啥|清单|列举"
)


def asked_deadline(question: str) -> int | None:
    """The comparable key of the time a list-shaped deadline question asks about
    ("7月底前要完成哪些工作" → 731), or None when the question is not of that shape."""
    if not _TIMED_LIST.search(question) or _NOT_A_LIST.search(question):
        return None
    if _FREQUENCY.search(question):
        return None
    match = _DEADLINE_ASKED.search(question)
    if not match:
        return None
    if match.group(1):
        month = int(match.group(1))
        day = int(match.group(2)) if match.group(2) else MONTH_END
        return month * 100 + day if 1 <= month <= 12 else None
    if match.group(3):
        return _QUARTERS[match.group(3)] * 300 + MONTH_END
    if match.group(4):
        return 600 + MONTH_END if match.group(4) == "上" else YEAR_END
    return YEAR_END


def asked_frequency(question: str) -> str | None:
    """The unit of a list-shaped frequency question ("每季度要做什么" → 季度), or None."""
    if not _TIMED_LIST.search(question) and not re.search(r"要做|要干", question):
        return None
    if _NOT_A_LIST.search(question):
        return None
    match = _FREQUENCY.search(question)
    if not match:
        return None
    return "季度" if match.group(1) == "季" else match.group(1)


def _timed_list(
    question: str, structure: Structure, docs: Sequence[str]
) -> tuple[str, list[tuple[Chunk, str]]] | None:
    deadline = asked_deadline(question)
    unit = asked_frequency(question) if deadline is None else None
    if deadline is None and unit is None:
        return None
    for doc_id in docs:
        timed = [t for t in structure.timed if t.chunk.doc_id == doc_id]
        if deadline is not None:
            due = [t for t in timed if t.deadline is not None and t.deadline.key <= deadline]
            due.sort(key=lambda t: (t.deadline.year_round, t.deadline.key) if t.deadline else ())
            entries = _timed_entries(due, deadline=True)
            head = "截至{}要完成的工作共{}项："
            when = _when_label(deadline)
        else:
            often = [t for t in timed if t.frequency is not None and t.frequency.unit == unit]
            often = _on_topic(question, structure, docs, often)
            entries = _timed_entries(often, deadline=False)
            head = "{}要开展的工作共{}项："
            when = f"每{unit}"
        if not entries:
            continue
        first = entries[0][1]
        lines = [line for line, _ in entries]
        body = f"{head.format(when, len(lines))}\n{_lines(lines, 96)}"
        section = first.chunk.section[:-1] if first.chunk.kind == ChunkKind.ITEM else ()
        label = " › ".join(section or first.chunk.section)
        return body, [(first.chunk, label)]
    return None


def _when_label(key: int) -> str:
    """截至 what the heading says: 7月底, 9月30日, 年底."""
    month, day = divmod(key, 100)
    if key == YEAR_END:
        return "年底"
    return f"{month}月底" if day == MONTH_END else f"{month}月{day}日"


def _timed_entries(timed: Sequence[Timed], *, deadline: bool) -> list[tuple[str, Timed]]:
    """One line per clause (a task table often repeats the items' clauses), in order."""
    entries: list[tuple[str, Timed]] = []
    seen: list[tuple[object, set[str]]] = []
    for t in timed:
        when_key = t.deadline.key if deadline and t.deadline else t.frequency and t.frequency.unit
        grams = _bigrams(t.clause)
        if any(k == when_key and len(grams & s) > 0.6 * min(len(grams), len(s)) for k, s in seen):
            continue
        seen.append((when_key, grams))
        when = t.deadline.label if deadline and t.deadline else ""
        when = when if when or not t.frequency else t.frequency.label
        parts = [p for p in (when, f"牵头：{t.lead}" if t.lead else "") if p]
        head = f"{t.title}：" if t.title and not t.clause.startswith(t.title) else ""
        entries.append((f"{head}{_clip(t.clause, 60)}（{'；'.join(parts)}）", t))
    return entries


def _on_topic(
    question: str, structure: Structure, docs: Sequence[str], timed: list[Timed]
) -> list[Timed]:
    """The entries a frequency question's remaining words are about (all when it names none);
    none when it names something no entry is about."""
    text = _FREQUENCY.sub("", _place_free(question, structure, docs))
    topic = _bigrams(_FREQUENCY_NOISE.sub("", re.sub(r"\d{4}年(度)?", "", text)))
    if not topic:
        return timed
    return [t for t in timed if topic & _bigrams(t.title + t.clause)]


def _citation(chunk: Chunk, meta: DocumentMeta, section: str) -> Citation:
    return Citation(
        doc_title=meta.title,
        doc_number=meta.doc_number,
        section=section,
        text=chunk.text,
        score=1.0,
        level=meta.level,
        region=meta.region,
        responsible=chunk.responsible,
        chunk_id=chunk.chunk_id,
    )
