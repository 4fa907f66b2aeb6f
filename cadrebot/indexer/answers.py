"""Policy answers: pick the sentences that answer the question and cite where they stand.

Extractive on purpose: every word of an answer is a word of a document, so a cadre can quote
it. No generation, no paraphrase. When the best passages do not cover the question, the reply
says so instead of offering the nearest passage as if it answered.

:class:`AnswerComposer` implements the conversation core's
:class:`~cadrebot.handlers.ports.PolicyAnswerer`; ``handlers.qa`` renders its answers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from cadrebot.handlers.ports import NOT_FOUND_TEXT, Citation, PolicyAnswer
from cadrebot.indexer.corrections import CorrectionIndex, curated_title, is_curated
from cadrebot.indexer.sentences import (
    QuestionShape,
    amount_phrase,
    has_amount,
    question_shape,
    split_sentences,
    years_covered,
    years_named,
)
from cadrebot.indexer.structured import Structure, answer_structured
from cadrebot.indexer.suggestions import suggest
from cadrebot.indexer.types import Chunk, ChunkKind, DocumentMeta

MAX_BODY_CHARS = 300
RELATED_LABEL = "相关规定："


class Hit(Protocol):
    """What the composer needs of a search result (HybridSearcher's SearchHit satisfies it)."""

    @property
    def chunk(self) -> Chunk: ...

    @property
    def meta(self) -> DocumentMeta: ...

    @property
    def score(self) -> float: ...

    @property
    def dense(self) -> float: ...

    @property
    def coverage(self) -> float: ...

    @property
    def sentence_scores(self) -> tuple[float, ...]: ...

    @property
    def best_sentence(self) -> float: ...


class Retriever(Protocol):
    @property
    def version(self) -> str: ...

    def search(self, query: str, top_k: int = 5) -> Sequence[Hit]: ...

    def known_place(self, name: str) -> bool: ...

    def place_names(self, query: str) -> list[str]: ...


@dataclass(frozen=True)
class AnswerPolicy:
    """Thresholds calibrated on eval/dev.jsonl (README, "Quality")."""

    # The best sentence of the best passage (with its title and headings) must carry this
    # idf-weighted share of the question's terms. Dev set: answerable questions ≥ 0.55,
    # unanswerable ones ≤ 0.27; the cut sits between.
    min_sentence_coverage: float = 0.4
    min_dense: float = 0.80  # cosine of question and best passage
    # Coverage counts the everyday-words lexicon's policy terms (看病 → 医疗), but a farmer's
    # message still carries words no document uses. A passage the dense model finds very
    # close (a near paraphrase) is trusted with less coverage. Dev, extra and dev-hard sets:
    # unanswerable questions reach cosine 0.872, 0.92 when they name a covered topic with a
    # wrong year; answerable ones 0.85-0.95. The cut sits above every unanswerable one.
    strong_dense: float = 0.94
    min_sentence_coverage_strong: float = 0.25
    second_level_ratio: float = 0.75  # a passage of the other level within this share of the best
    second_level_sentence: float = 0.9  # … whose best sentence answers nearly as well
    top_k: int = 5


# --- pure helpers ---------------------------------------------------------------------------

_RESPONSIBLE_CLAUSE = re.compile(r"[（(〔【\[]\s*责任单位[:：].*?[)）〕】\]]")


def strip_responsible(text: str) -> str:
    return _RESPONSIBLE_CLAUSE.sub("", text).strip()


def level_label(meta: DocumentMeta) -> str:
    if meta.level == "省":
        return "省级"
    return meta.region or meta.level


def _truncate(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# "省里和信丰县…", "全省与浮梁县…": the province named as one side of a comparison. A bare
# 省 counts only next to a connective (省和…, …与省), so "省、市、县…资金" names no side.
_PROVINCE_SIDE = re.compile(r"省里|省上|全省|省级|江西省|省(?=[和与跟同及])|(?<=[和与跟同及])省")
_CONNECTIVE = "[和与跟同及、]"
# A county, district or city by name (信丰县, 蓉江新区); not 各乡镇, 各县区, 县里.
_LOCAL_SIDE = re.compile(r"(?![各本全该我县区市乡镇村])\w{2,}(?:新区|县|区|市)")
PROVINCE = "省级"


def comparison_sides(question: str, places: Sequence[str]) -> list[tuple[str, str]]:
    """The sides a question compares, as (label, the words naming it), in question order:
    the province (【省级】) and each place. Fewer than two: not a comparison."""
    sides: list[tuple[int, str, str]] = []
    province = _PROVINCE_SIDE.search(question)
    if province:
        sides.append((province.start(), PROVINCE, province.group(0)))
    for place in dict.fromkeys(places):
        at = question.find(place)
        if at >= 0 and _LOCAL_SIDE.fullmatch(place):
            sides.append((at, place, place))
    return [(label, words) for _, label, words in sorted(sides)]


def side_query(question: str, side: tuple[str, str], sides: Sequence[tuple[str, str]]) -> str:
    """The question asked of one side: the other sides' names taken out, so the place bonus
    of the search prefers this side's documents (the province is asked as 全省)."""
    query = question
    for other in sides:
        if other == side:
            continue
        words = re.escape(other[1])
        query = re.sub(f"{words}{_CONNECTIVE}|{_CONNECTIVE}{words}|{words}", "", query, count=1)
    if side[0] == PROVINCE:
        query = query.replace(side[1], "全省", 1)
    return query


def on_side(meta: DocumentMeta, label: str) -> bool:
    """Whether a document is one of a side's: provincial, or of the named place."""
    if label == PROVINCE:
        return meta.level == "省"
    short = re.sub(r"(新区|县|区|市)$", "", label)
    return meta.level != "省" and bool(short) and short in (meta.region + meta.title)


class AnswerComposer:
    """Turns search hits into a short cited answer. Depends only on the Retriever protocol."""

    def __init__(self, retriever: Retriever, policy: AnswerPolicy | None = None) -> None:
        self._retriever = retriever
        self.policy = policy or AnswerPolicy()
        self._curated: tuple[str, CorrectionIndex] | None = None  # per index version

    def answer(self, question: str) -> PolicyAnswer:
        started = time.perf_counter()
        question = question.strip()
        searched: list[Chunk] = []  # the chunks the answer may cite, for the suggestions
        result = self._compose(question, searched)
        if result.found:
            result.suggestions = self._suggestions(question, result, searched)
        result.latency_ms = (time.perf_counter() - started) * 1000
        return result

    # ---------------------------------------------------------------------------------------
    def _compose(self, question: str, searched: list[Chunk]) -> PolicyAnswer:
        version = self._retriever.version
        if not question:
            return PolicyAnswer(question, False, "请输入要查询的政策问题。", kb_version=version)
        hits = list(self._retriever.search(question, top_k=self.policy.top_k))
        searched += [h.chunk for h in hits]
        # An admin's correction written for this very question wins over everything else.
        corrected = self._corrected(question, hits)
        if corrected is not None:
            return corrected
        sides = comparison_sides(question, self._retriever.place_names(question))
        if len(sides) >= 2:
            return self._compare(question, sides, searched)
        # Lists of a section's parts and 责任单位 are read off the structure (indexer/structured).
        structured = answer_structured(question, self._retriever, hits)
        if structured is not None:
            return structured
        if not hits or not self._treats_topic(hits[0]):
            return PolicyAnswer(question, False, NOT_FOUND_TEXT, kb_version=version)
        shape = question_shape(question)
        gap = self._unanswered(question, hits[0], shape)
        if gap:
            return self._partial(question, gap, hits, shape)

        best = hits[0]
        used: list[Hit] = [best]
        body = self._extract(best, shape)
        # When a provincial and a local document both answer, show both, labelled; the
        # better answer first, each within half of the length budget.
        other = self._other_level(question, hits)
        if other is not None:
            half = MAX_BODY_CHARS // 2 - 8
            body = "\n".join(
                f"【{level_label(h.meta)}】{self._extract(h, shape, half)}" for h in (best, other)
            )
            used = [best, other]
        body = _truncate(body, MAX_BODY_CHARS)
        citations = [self._cite(h) for h in used]
        citations += [self._cite(h) for h in hits if h not in used][:2]
        return PolicyAnswer(question, True, body, citations, kb_version=version)

    def _corrections(self) -> CorrectionIndex:
        """The admins' corrections in the version answering now (indexer/corrections.py)."""
        index = getattr(self._retriever, "index", None)  # HybridSearcher's loaded version
        if index is None:
            return CorrectionIndex(())
        cached = self._curated
        if cached is None or cached[0] != index.name:
            cached = (index.name, CorrectionIndex(index.chunks))
            self._curated = cached
        return cached[1]

    def _corrected(self, question: str, hits: Sequence[Hit]) -> PolicyAnswer | None:
        """The correction written for ``question``, verbatim, cited as 县乡村振兴局解答; the
        documents' passages found are its further sources."""
        chunk = self._corrections().match(question, self._retriever.place_names)
        if chunk is None:
            return None
        score = next((h.score for h in hits if h.chunk.chunk_id == chunk.chunk_id), 0.0)
        others = [self._cite(h) for h in hits if not is_curated(h.chunk)][:2]
        return PolicyAnswer(
            question,
            True,
            _truncate(chunk.text, MAX_BODY_CHARS),
            [_cite_correction(chunk, score), *others],
            kb_version=self._retriever.version,
        )

    def _suggestions(
        self, question: str, answer: PolicyAnswer, candidates: Sequence[Chunk]
    ) -> list[str]:
        """Next questions about the neighbours of the first cited passage (追问)."""
        structure_of = getattr(self._retriever, "structure", None)
        if structure_of is None or not answer.citations:
            return []
        structure: Structure = structure_of()
        cited_id = answer.citations[0].chunk_id
        cited = next((c for c in candidates if c.chunk_id == cited_id), None)
        if cited is None:  # a structured answer cites a section's or a duty's chunk
            known = [s.first for s in structure.sections] + [d.chunk for d in structure.duties]
            cited = next((c for c in known if c.chunk_id == cited_id), None)
        return suggest(question, structure, cited) if cited is not None else []

    def _answers_question(self, question: str, best: Hit) -> bool:
        return self._treats_topic(best) and not self._unanswered(
            question, best, question_shape(question)
        )

    def _treats_topic(self, best: Hit) -> bool:
        """Whether the best passage is about what the question asks (coverage, cosine)."""
        p = self.policy
        if best.dense >= p.strong_dense:
            return best.best_sentence >= p.min_sentence_coverage_strong
        return best.best_sentence >= p.min_sentence_coverage and best.dense >= p.min_dense

    def _unanswered(self, question: str, best: Hit, shape: QuestionShape) -> str:
        """Why a passage on the question's topic still does not answer it ("" when it does):
        a place the knowledge base does not cover (北京, 上海市), a year its documents are not
        about (2025年 against a 2024 work plan), or an amount it does not give."""
        for place in self._retriever.place_names(question):
            if not self._retriever.known_place(place):
                return f"知识库中没有{place}的政策文件。"
        meta = best.meta
        covered = years_covered(meta.date, meta.title)
        where = best.chunk.text + best.chunk.section_label()
        for year in years_named(question):
            if year not in covered and f"{year}年" not in where:
                about = "、".join(sorted(y for y in covered if len(y) == 4)) or "其他年份"
                return f"知识库中{level_label(meta)}的文件是{about}年的，没有{year}年的规定。"
        if shape.wants_amount and not has_amount(best.chunk.text):
            return f"文件没有规定{amount_phrase(question)}。"
        return ""

    def _partial(
        self, question: str, gap: str, hits: list[Hit], shape: QuestionShape
    ) -> PolicyAnswer:
        """Not an answer, said plainly, with the passage that treats the topic: the reader
        sees what the documents do say and where (its citation first)."""
        best = hits[0]
        related = self._extract(best, shape, MAX_BODY_CHARS - len(gap) - len(RELATED_LABEL) - 1)
        body = f"{gap}\n{RELATED_LABEL}{related}"
        citations = [self._cite(h) for h in hits[:3]]
        return PolicyAnswer(
            question,
            False,
            body,
            citations,
            kb_version=self._retriever.version,
            related=True,
        )

    def _compare(
        self, question: str, sides: Sequence[tuple[str, str]], searched: list[Chunk]
    ) -> PolicyAnswer:
        """Each side of a comparison answered from its own documents, under its label; a side
        whose documents do not answer says so. Found when at least one side answers."""
        half = MAX_BODY_CHARS // len(sides) - 8
        lines: list[str] = []
        used: list[Hit] = []
        for side in sides:
            label = side[0]
            query = side_query(question, side, sides)
            hits = [
                h
                for h in self._retriever.search(query, top_k=2 * self.policy.top_k)
                if on_side(h.meta, label)
            ]
            if label != PROVINCE and not self._retriever.known_place(label):
                lines.append(f"【{label}】知识库中没有{label}的政策文件。")
            elif hits and self._answers_question(query, hits[0]):
                lines.append(f"【{label}】{self._extract(hits[0], question_shape(query), half)}")
                used.append(hits[0])
                searched.append(hits[0].chunk)
            else:
                lines.append(f"【{label}】文件没有相关规定。")
        version = self._retriever.version
        if not used:
            return PolicyAnswer(question, False, NOT_FOUND_TEXT, kb_version=version)
        body = _truncate("\n".join(lines), MAX_BODY_CHARS)
        return PolicyAnswer(question, True, body, [self._cite(h) for h in used], kb_version=version)

    def _other_level(self, question: str, hits: list[Hit]) -> Hit | None:
        best = hits[0]
        if is_curated(best.chunk):  # a correction belongs to no level
            return None
        want_province = best.meta.level != "省"
        for hit in hits[1:]:
            if is_curated(hit.chunk) or (hit.meta.level == "省") != want_province:
                continue
            if hit.score < self.policy.second_level_ratio * best.score:
                return None
            if (
                self._answers_question(question, hit)
                and hit.best_sentence >= self.policy.second_level_sentence * best.best_sentence
            ):
                return hit
            return None
        return None

    def _extract(self, hit: Hit, shape: QuestionShape, limit: int = MAX_BODY_CHARS) -> str:
        """The best-scoring sentence of the passage, plus up to two more that score close.

        When the question asks for a kind of fact (a number, a day, a frequency), a sentence
        that carries one is preferred to a higher-scoring one that does not, as long as it
        is about the question at all.
        """
        chunk = hit.chunk
        if chunk.kind == ChunkKind.TABLE_ROW:
            cells = [c for c in chunk.text.split("；") if not c.startswith("序号")]
            return _truncate("；".join(cells), limit)
        sentences = split_sentences(chunk.text)
        scores = list(hit.sentence_scores)
        if len(scores) != len(sentences):
            scores = [0.0] * len(sentences)
        ranked = [
            i
            for i in sorted(range(len(sentences)), key=lambda i: scores[i], reverse=True)
            if strip_responsible(sentences[i])  # a bare （责任单位：…） answers nothing
        ]
        if not ranked:
            return _truncate(chunk.text, limit)
        if shape.specific:
            fitting = [i for i in ranked if shape.matches(sentences[i])]
            if fitting and scores[fitting[0]] >= 0.5 * scores[ranked[0]]:
                ranked = fitting + [i for i in ranked if i not in fitting]
        top = ranked[0]
        chosen = [top]
        length = len(sentences[top])
        for i in ranked[1:3]:
            if scores[i] <= 0 or scores[i] < 0.8 * scores[top]:
                break
            if shape.specific and not shape.matches(sentences[i]):
                continue
            if length + len(sentences[i]) > limit:
                continue
            chosen.append(i)
            length += len(sentences[i])
        body = "".join(strip_responsible(sentences[i]) for i in sorted(chosen))
        return _truncate(body, limit)

    @staticmethod
    def _cite(hit: Hit) -> Citation:
        if is_curated(hit.chunk):
            return _cite_correction(hit.chunk, hit.score)
        return Citation(
            doc_title=hit.meta.title,
            doc_number=hit.meta.doc_number,
            section=hit.chunk.section_label(),
            text=hit.chunk.text,
            score=hit.score,
            level=hit.meta.level,
            region=hit.meta.region,
            responsible=hit.chunk.responsible,
            chunk_id=hit.chunk.chunk_id,
        )


def _cite_correction(chunk: Chunk, score: float) -> Citation:
    """县乡村振兴局解答，<date>（依据：<source>）: how an answer cites an admin's correction."""
    return Citation(
        doc_title=curated_title(chunk),
        doc_number="",
        section=chunk.extra.get("source", ""),
        text=chunk.text,
        score=score,
        chunk_id=chunk.chunk_id,
        curated=True,
    )
