"""Suggested next questions (追问), read off the real documents' section tree."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cadrebot.handlers.ports import MAX_SUGGESTION_CHARS
from cadrebot.indexer.answers import AnswerComposer
from cadrebot.indexer.sentences import split_sentences
from cadrebot.indexer.structured import Structure
from cadrebot.indexer.suggestions import heading_title, suggest
from cadrebot.indexer.types import Chunk, ChunkKind, DocumentMeta
from tests.support.chunks import PROVINCE_POINTS, RONGJIANG, Corpus


@dataclass(frozen=True)
class FakeHit:
    chunk: Chunk
    meta: DocumentMeta
    score: float = 1.0
    dense: float = 0.95
    coverage: float = 0.9

    @property
    def sentence_scores(self) -> tuple[float, ...]:
        return tuple(0.9 for _ in split_sentences(self.chunk.text))

    @property
    def best_sentence(self) -> float:
        return 0.9


class ScriptedRetriever:
    """The searcher's part the composer uses, with the real structure of the documents."""

    version = "v-test"

    def __init__(self, structure: Structure, hits: Sequence[FakeHit]) -> None:
        self._structure = structure
        self.hits = list(hits)

    def search(self, query: str, top_k: int = 5) -> Sequence[FakeHit]:
        return self.hits[:top_k]

    def place_names(self, query: str) -> list[str]:
        return []

    def known_place(self, name: str) -> bool:
        return True

    def structure(self) -> Structure:
        return self._structure


def _item(corpus: Corpus, doc_id: str, heading: str) -> FakeHit:
    chunks, metas = corpus
    chunk = next(
        c
        for c in chunks
        if c.doc_id == doc_id and c.kind == ChunkKind.ITEM and c.section[-1].endswith(heading)
    )
    return FakeHit(chunk, metas[doc_id])


def test_a_found_answer_suggests_who_is_responsible_then_the_neighbouring_items(
    corpus: Corpus, structure: Structure
) -> None:
    hit = _item(corpus, PROVINCE_POINTS, "巩固住房安全保障")
    composer = AnswerComposer(ScriptedRetriever(structure, [hit]))
    answer = composer.answer("农房质量安全提升工程怎么推进")
    assert answer.found
    # Its own 责任单位 first, then item 7 (the next one), then item 5 (the previous one).
    assert answer.suggestions == [
        "谁负责巩固住房安全保障？",
        "巩固饮水安全保障有什么要求？",
        "巩固基本医疗保障有什么要求？",
    ]
    assert all(len(q) <= MAX_SUGGESTION_CHARS for q in answer.suggestions)
    assert answer.to_json()["suggestions"] == answer.suggestions
    assert set(answer.to_json()) >= {"found", "answer", "citations", "latency_ms", "related"}


def test_no_suggestions_without_an_answer(corpus: Corpus, structure: Structure) -> None:
    hit = _item(corpus, PROVINCE_POINTS, "巩固住房安全保障")
    weak = FakeHit(hit.chunk, hit.meta, dense=0.3)
    answer = AnswerComposer(ScriptedRetriever(structure, [weak])).answer("农房质量怎么提升")
    assert not answer.found and answer.suggestions == []
    assert answer.to_json()["suggestions"] == []


def test_siblings_the_question_names_or_too_long_for_a_button_are_left_out(
    corpus: Corpus, structure: Structure
) -> None:
    cited = _item(corpus, PROVINCE_POINTS, "巩固住房安全保障").chunk
    suggested = suggest("巩固饮水安全保障和住房一样吗", structure, cited)
    assert "巩固饮水安全保障有什么要求？" not in suggested
    assert len(suggested) == 3 and all(len(q) <= MAX_SUGGESTION_CHARS for q in suggested)
    # A who-question is not offered again.
    assert not any(q.startswith("谁负责") for q in suggest("由谁负责", structure, cited))


def test_a_task_table_row_suggests_the_rows_of_its_section(
    corpus: Corpus, structure: Structure
) -> None:
    chunks, _ = corpus
    rows = [c for c in chunks if c.doc_id == RONGJIANG and c.kind == ChunkKind.TABLE_ROW]
    row = next(c for c in rows if "强化住房保障" in c.text)
    suggested = suggest("问题", structure, row)
    assert suggested[0] == "谁负责强化住房保障？"
    neighbours = {heading_title(c.text.split("工作事项：")[1].split("；")[0]) for c in rows}
    assert len(suggested) == 3
    assert all(
        q.removesuffix("的具体要求是什么？").removesuffix("有什么要求？") in neighbours
        for q in suggested[1:]
    )


def test_heading_numbers_are_taken_off() -> None:
    assert heading_title("6. 巩固住房安全保障") == "巩固住房安全保障"
    assert heading_title("（二）主要目标") == "主要目标"
    assert heading_title("12.持续改善农村人居环境。") == "持续改善农村人居环境"
