"""Answer composition as plain logic: sentence choice, not-found, both levels, rendering."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cadrebot.handlers.qa import render_answer, render_more_sources
from cadrebot.indexer.answers import MAX_BODY_CHARS, AnswerComposer, strip_responsible
from cadrebot.indexer.sentences import split_sentences
from cadrebot.indexer.types import Chunk, ChunkKind, DocumentMeta

PROVINCE = DocumentMeta(
    doc_id="p", title="全省工作要点", doc_number="赣党农字〔2023〕2号", level="省", region="江西省"
)
COUNTY = DocumentMeta(
    doc_id="c",
    title="信丰县工作要点",
    doc_number="信巩字〔2024〕1号",
    level="县",
    region="赣州市信丰县",
)

ITEM_TEXT = (
    "强化动态监测识别。落实防止返贫动态监测和帮扶机制，用好12317等平台。"
    "监测对象从发现返贫致贫风险线索之日起，到完成识别认定一般不超过15天。"
    "（责任单位：省乡村振兴局、省民政厅）"
)


@dataclass(frozen=True)
class FakeHit:
    chunk: Chunk
    meta: DocumentMeta
    score: float
    dense: float
    coverage: float
    # one score per sentence of chunk.text, as the searcher's rerank computes them
    sentence_scores: tuple[float, ...] = ()

    @property
    def best_sentence(self) -> float:
        return max(self.sentence_scores, default=0.0)


def chunk(doc: DocumentMeta, text: str, kind: ChunkKind = ChunkKind.ITEM, n: int = 0) -> Chunk:
    return Chunk(
        chunk_id=f"{doc.doc_id}-{n}",
        doc_id=doc.doc_id,
        position=n,
        kind=kind,
        section=("一、守底线", "1. 强化动态监测识别"),
        text=text,
        responsible="省乡村振兴局、省民政厅" if "责任单位" in text else "",
    )


class ScriptedRetriever:
    """Stands in for the search index: returns the hits a test scripts."""

    version = "v-test"

    def __init__(self, hits: Sequence[FakeHit], places: Sequence[str] = ()) -> None:
        self.hits = list(hits)
        self.places = list(places)

    def search(self, query: str, top_k: int = 5) -> Sequence[FakeHit]:
        return self.hits[:top_k]

    def place_names(self, query: str) -> list[str]:
        return [p for p in self.places if p in query]

    def known_place(self, name: str) -> bool:
        return name in {"信丰县", "江西省"}


def test_split_and_strip():
    assert split_sentences("甲。乙；丙") == ["甲。", "乙；", "丙"]
    assert "责任单位" not in strip_responsible(ITEM_TEXT)


# ITEM_TEXT's sentences: title, 12317 platform, the 15-day rule, the 责任单位 clause
ITEM_SCORES = (0.6, 0.5, 1.2, 0.1)


def test_picks_the_sentence_with_the_number_asked_for():
    hit = FakeHit(chunk(PROVINCE, ITEM_TEXT), PROVINCE, 1.0, 0.9, 0.9, ITEM_SCORES)
    answer = AnswerComposer(ScriptedRetriever([hit])).answer("监测对象识别认定要多少天？")
    assert answer.found
    assert answer.answer.startswith("监测对象从发现")
    assert "15天" in answer.answer
    assert "责任单位" not in answer.answer
    assert len(answer.answer) <= MAX_BODY_CHARS
    text = render_answer(answer)
    assert "《全省工作要点》（赣党农字〔2023〕2号） › 一、守底线 › 1. 强化动态监测识别" in text
    assert "责任单位：省乡村振兴局、省民政厅" in text
    assert "省级文件" in text


def test_low_coverage_and_low_similarity_is_not_found():
    hit = FakeHit(chunk(PROVINCE, ITEM_TEXT), PROVINCE, 1.0, 0.85, 0.2, (0.1, 0.2, 0.3, 0.0))
    answer = AnswerComposer(ScriptedRetriever([hit])).answer("驾照到期了怎么换证？")
    assert not answer.found
    assert answer.citations == []
    assert "没有找到相关规定" in render_answer(answer)


def test_unknown_place_is_not_found_even_if_topic_matches():
    hit = FakeHit(chunk(PROVINCE, ITEM_TEXT), PROVINCE, 1.0, 0.95, 1.0, ITEM_SCORES)
    retriever = ScriptedRetriever([hit], places=["北京"])
    assert not AnswerComposer(retriever).answer("北京监测对象识别认定要多少天？").found


def test_provincial_and_county_answers_are_both_shown_labelled():
    county_text = "监测对象识别认定一般不超过15天，县级每月开展1次集中研判。"
    hits = [
        FakeHit(chunk(COUNTY, county_text, n=1), COUNTY, 1.0, 0.9, 0.9, (1.2,)),
        FakeHit(chunk(PROVINCE, ITEM_TEXT), PROVINCE, 0.95, 0.9, 0.9, ITEM_SCORES),
    ]
    answer = AnswerComposer(ScriptedRetriever(hits)).answer("监测对象识别认定要多少天？")
    assert answer.found
    # the better-ranked answer first, each labelled with where it applies
    assert answer.answer.index("【赣州市信丰县】") < answer.answer.index("【省级】")
    assert "15天" in answer.answer.split("【省级】")[1]
    assert {c.doc_number for c in answer.citations[:2]} == {
        "赣党农字〔2023〕2号",
        "信巩字〔2024〕1号",
    }
    assert render_answer(answer).count("出处：") == 2


def test_table_row_answer_drops_the_row_number():
    row = "序号：10；工作指标：全省公益性岗位吸纳脱贫人口和监测对象就业规模；目标值：≥16万人"
    hit = FakeHit(chunk(PROVINCE, row, ChunkKind.TABLE_ROW), PROVINCE, 1.0, 0.9, 0.9, (1.0,))
    answer = AnswerComposer(ScriptedRetriever([hit])).answer("公益性岗位要吸纳多少人？")
    assert (
        answer.answer == "工作指标：全省公益性岗位吸纳脱贫人口和监测对象就业规模；目标值：≥16万人"
    )


def test_more_sources_lists_further_passages():
    hits = [
        FakeHit(chunk(PROVINCE, ITEM_TEXT), PROVINCE, 1.0, 0.9, 0.9, ITEM_SCORES),
        FakeHit(chunk(COUNTY, "产业奖补村委会公示7天。", n=2), COUNTY, 0.3, 0.8, 0.3, (0.2,)),
    ]
    answer = AnswerComposer(ScriptedRetriever(hits)).answer("监测对象识别认定要多少天？")
    more = render_more_sources(answer)
    assert "信巩字〔2024〕1号" in more


def test_a_day_question_prefers_the_sentence_with_a_date():
    header = "关于印发《某县2023年实施方案》的通知\n某县领导小组\n2023年4月26日印发"
    hit = FakeHit(chunk(COUNTY, header, ChunkKind.HEADING), COUNTY, 1.0, 0.9, 1.0, (1.3, 0.4, 0.9))
    answer = AnswerComposer(ScriptedRetriever([hit])).answer("某县的实施方案是哪天印发的？")
    assert answer.answer == "2023年4月26日印发"


def test_a_question_with_nothing_in_any_sentence_is_not_found():
    hit = FakeHit(chunk(PROVINCE, ITEM_TEXT), PROVINCE, 1.0, 0.93, 0.6, (0.3, 0.2, 0.35, 0.0))
    assert not AnswerComposer(ScriptedRetriever([hit])).answer("养老金每年涨多少？").found


def test_empty_question():
    answer = AnswerComposer(ScriptedRetriever([])).answer("   ")
    assert not answer.found
    assert "请输入" in answer.answer


def test_question_shapes():
    from cadrebot.indexer.sentences import question_shape

    freq = question_shape("住房安全排查多久开展一次？")
    assert freq.wants_frequency
    assert freq.matches("每季度至少开展1次排查")
    assert not freq.matches("超过1年未消除风险的")
    day = question_shape("方案是哪天印发的？")
    assert day.matches("2023年4月26日印发")
    assert not day.matches("浮梁县2023年实施方案")
    number = question_shape("要吸纳多少人？")
    assert number.matches("不少于2383人")
    assert not number.matches("发挥托底作用")
    assert not question_shape("12317平台是做什么的").specific


def test_time_questions_want_a_point_in_time_not_a_frequency():
    from cadrebot.indexer.sentences import question_shape

    when = question_shape("产业奖补什么时候申报？")
    assert when.matches("脱贫户和监测户于5月、8月中下旬两批次提出奖补项目申请")
    assert not when.matches("持续按季度核实发放产业奖补")
