"""Deadlines and frequencies read off items and task-table rows, on the real documents' chunks."""

from __future__ import annotations

from dataclasses import dataclass

from cadrebot.indexer.sentences import split_sentences
from cadrebot.indexer.structured import (
    MAX_LIST_LINES,
    YEAR_END,
    Structure,
    asked_deadline,
    asked_frequency,
    compose_structured,
    parse_deadlines,
    parse_frequencies,
)
from cadrebot.indexer.types import Chunk, ChunkKind, DocumentMeta
from tests.support.chunks import FULIANG, RONGJIANG, XINFENG, Corpus


@dataclass(frozen=True)
class FakeHit:
    chunk: Chunk
    meta: DocumentMeta
    sentence_scores: tuple[float, ...]

    @property
    def best_sentence(self) -> float:
        return max(self.sentence_scores, default=0.0)


def hit(corpus: Corpus, doc_id: str, words: str, score: float = 0.5) -> FakeHit:
    chunks, metas = corpus
    chunk = next(c for c in chunks if c.doc_id == doc_id and words in c.text)
    scores = tuple(score if words in s else 0.1 for s in split_sentences(chunk.text))
    return FakeHit(chunk, metas[doc_id], scores)


# --- parsing ------------------------------------------------------------------------------


def test_deadlines_in_running_text_need_qian() -> None:
    assert [d.key for d in parse_deadlines("确保4月底前开工，8月底前竣工")] == [431, 831]
    assert [d.key for d in parse_deadlines("6月30日前完成")] == [630]
    assert parse_deadlines("6月30日前")[0].key < parse_deadlines("6月底前")[0].key
    assert [d.key for d in parse_deadlines("3月中旬前完成发放")] == [320]
    assert [d.key for d in parse_deadlines("年底前全部完成")] == [YEAR_END]
    assert [d.key for d in parse_deadlines("二季度开展集中排查")] == [631]
    # Both months of "3月、8月底前", each labelled on its own.
    both = parse_deadlines("确保3 月、8 月底前分别完成")
    assert [(d.key, d.label) for d in both] == [(331, "3月底前"), (831, "8月底前")]
    # A month without 前 in running text is a date, not a deadline; 每季度 is no quarter.
    assert parse_deadlines("于6月、9月中旬实地核实") == []
    assert parse_deadlines("每季度开展1次排查") == []


def test_deadlines_of_a_time_limit_column() -> None:
    assert [d.key for d in parse_deadlines("6月底、11月底", column=True)] == [631, 1131]
    assert [d.key for d in parse_deadlines("9月底前/12月底前", column=True)] == [931, 1231]
    year_round = parse_deadlines("全年", column=True)
    assert [(d.key, d.year_round) for d in year_round] == [(YEAR_END, True)]
    assert parse_deadlines("全年") == []  # 全年 in running text is a total, not a deadline


def test_frequencies_have_a_unit_and_a_count() -> None:
    quarterly = parse_frequencies("每季度开展农村住房安全动态排查监测")
    assert [(f.unit, f.count) for f in quarterly] == [("季度", 1)]
    monthly = parse_frequencies("每月至少开展1次排查监测")
    assert [(f.unit, f.count, f.per_year) for f in monthly] == [("月", 1, 12)]
    water = parse_frequencies("集中供水工程每年至少进行2次水质检测")
    assert [(f.unit, f.count, f.per_year) for f in water] == [("年", 2, 2)]
    assert [f.unit for f in parse_frequencies("每半年开展一次检查")] == ["半年"]
    assert [f.unit for f in parse_frequencies("持续按季度核实发放产业奖补")] == ["季度"]
    # 每年 with an amount is not a frequency.
    assert parse_frequencies("落实每村每年100万元衔接资金投入") == []


def test_structure_holds_the_time_requirements_of_items_and_rows(structure: Structure) -> None:
    rows = [t for t in structure.timed if t.chunk.kind == ChunkKind.TABLE_ROW]
    assert any(t.deadline and t.deadline.year_round for t in rows)  # the 完成时限 column
    housing = [
        t
        for t in structure.timed
        if t.chunk.doc_id == XINFENG and t.deadline and t.deadline.label == "4月底前"
    ]
    assert any("开工" in t.clause and t.lead == "县教体局" for t in housing)


# --- answering ------------------------------------------------------------------------------


def test_question_shapes() -> None:
    assert asked_deadline("5月底前要完成哪些工作？") == 531
    assert asked_deadline("年底前要完成哪些任务") == YEAR_END
    assert asked_deadline("二季度要做什么") == 631
    assert asked_deadline("6月30日前有哪些任务") == 630
    assert asked_frequency("每季度要做什么？") == "季度"
    assert asked_frequency("每月要开展哪些工作") == "月"
    # Single facts stay with the sentence answers.
    assert asked_deadline("危房改造什么时候要开工？") is None
    assert asked_deadline("方案几月底前报送？") is None
    assert asked_frequency("排查多久开展一次？") is None
    assert asked_frequency("每年投入多少资金？") is None


def test_deadline_filter_on_one_document(corpus: Corpus, structure: Structure) -> None:
    hits = [hit(corpus, XINFENG, "4月底前开工")]
    found = compose_structured("信丰县5月底前要完成哪些工作？", structure, hits)
    assert found is not None
    body, cited = found
    lines = body.splitlines()
    assert lines[0].startswith("截至5月底要完成的工作共")
    assert any("4月底前开工" in line and "县教体局" in line for line in lines)
    assert all("6月底前" not in line and "10月底前" not in line for line in lines[1:])
    assert {c.doc_id for c, _ in cited} == {XINFENG}


def test_year_end_list_is_cut_after_eight(corpus: Corpus, structure: Structure) -> None:
    hits = [hit(corpus, RONGJIANG, "资金拨付")]
    found = compose_structured("蓉江新区年底前要完成哪些任务？", structure, hits)
    assert found is not None
    lines = found[0].splitlines()
    assert len(lines) == MAX_LIST_LINES + 2 and lines[-1].startswith("……另有")
    # Dated deadlines come before the whole-year rows.
    assert "全年" not in lines[1]


def test_frequency_list_and_topic(corpus: Corpus, structure: Structure) -> None:
    hits = [hit(corpus, RONGJIANG, "住房安全")]
    found = compose_structured("蓉江新区每季度要做什么？", structure, hits)
    assert found is not None
    assert found[0].startswith("每季度要开展的工作共")
    assert "每月" not in "".join(found[0].splitlines()[1:2])
    narrowed = compose_structured("蓉江新区每季度要开展哪些排查工作？", structure, hits)
    assert narrowed is not None
    entries = narrowed[0].splitlines()[1:]
    assert entries and all("排查" in e for e in entries)
    assert sum("住房" in e for e in entries) == 1  # the item and its table row, once


def test_the_place_picks_the_document(corpus: Corpus, structure: Structure) -> None:
    # The hit is from another document: the place named decides.
    hits = [hit(corpus, RONGJIANG, "资金拨付")]
    found = compose_structured("浮梁县5月底前要完成哪些工作？", structure, hits)
    assert found is not None
    assert "备案" in found[0]
    assert {c.doc_id for c, _ in found[1]} == {FULIANG}
    monthly = compose_structured("信丰县每月要开展哪些工作？", structure, hits)
    assert monthly is not None
    assert {c.doc_id for c, _ in monthly[1]} == {XINFENG}


def test_questions_left_alone(corpus: Corpus, structure: Structure) -> None:
    hits = [hit(corpus, XINFENG, "4月底前开工")]
    for question in (
        "信丰县危房改造什么时候要开工？",
        "信丰县危房改造几月底前开工？",
        "信丰县住房安全多久排查一次？",
        "信丰县每年投入重点帮扶村多少资金？",
    ):
        assert compose_structured(question, structure, hits) is None, question
