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
from cadrebot.indexer.sentences import QuestionShape, question_shape, split_sentences
from cadrebot.indexer.types import Chunk, ChunkKind, DocumentMeta

MAX_BODY_CHARS = 300


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


class AnswerComposer:
    """Turns search hits into a short cited answer. Depends only on the Retriever protocol."""

    def __init__(self, retriever: Retriever, policy: AnswerPolicy | None = None) -> None:
        self._retriever = retriever
        self.policy = policy or AnswerPolicy()

    def answer(self, question: str) -> PolicyAnswer:
        started = time.perf_counter()
        question = question.strip()
        result = self._compose(question)
        result.latency_ms = (time.perf_counter() - started) * 1000
        return result

    # ---------------------------------------------------------------------------------------
    def _compose(self, question: str) -> PolicyAnswer:
        version = self._retriever.version
        if not question:
            return PolicyAnswer(question, False, "请输入要查询的政策问题。", kb_version=version)
        hits = list(self._retriever.search(question, top_k=self.policy.top_k))
        if not hits or not self._answers_question(question, hits[0]):
            return PolicyAnswer(question, False, NOT_FOUND_TEXT, kb_version=version)

        best = hits[0]
        used: list[Hit] = [best]
        shape = question_shape(question)
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

    def _answers_question(self, question: str, best: Hit) -> bool:
        p = self.policy
        # A place the knowledge base does not cover (北京, 上海市) means the documents cannot
        # answer, however similar the topic words are.
        for place in self._retriever.place_names(question):
            if not self._retriever.known_place(place):
                return False
        if best.dense >= p.strong_dense:
            return best.best_sentence >= p.min_sentence_coverage_strong
        return best.best_sentence >= p.min_sentence_coverage and best.dense >= p.min_dense

    def _other_level(self, question: str, hits: list[Hit]) -> Hit | None:
        best = hits[0]
        want_province = best.meta.level != "省"
        for hit in hits[1:]:
            if (hit.meta.level == "省") != want_province:
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
