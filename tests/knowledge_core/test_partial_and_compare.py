"""Honest partial answers (a year, a place or an amount the documents do not give) and
comparisons of two places or levels, each side answered from its own documents."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from cadrebot.handlers.qa import render_answer
from cadrebot.indexer.answers import AnswerComposer, comparison_sides, side_query
from cadrebot.indexer.sentences import (
    amount_phrase,
    question_shape,
    years_covered,
    years_named,
)
from tests.knowledge_core.test_qa_composer import COUNTY, PROVINCE, FakeHit, chunk

PROVINCE_2023 = replace(PROVINCE, date="2023")
COUNTY_2024 = replace(COUNTY, date="2024-03-25")

HOUSING = "巩固住房安全保障。及时将符合条件的对象列入年度危房改造计划，及时组织实施解决。"
AWARD = "完善产业奖补政策。优化调整奖补标准，对弱劳动家庭适当提高补助标准。"
AWARD_SUM = "完善产业奖补政策。每户奖补不超过5000元。"
PLAN_PROVINCE = "开展分类帮扶。在县级批准新识别监测对象后10天内完成帮扶计划制定。"
PLAN_COUNTY = "实施精准施策。县级批准后10天内完成帮扶计划制定，因户因人施策。"


def hit(meta: object, text: str, score: float = 1.0, n: int = 0) -> FakeHit:
    assert isinstance(meta, type(PROVINCE))
    scores = (0.5,) + (0.8,) * (len(text.split("。")) - 2)
    return FakeHit(chunk(meta, text, n=n), meta, score, 0.9, 0.8, scores)


class PlaceRetriever:
    """Answers by the place a query names: 全省 → provincial hits, 信丰县 → the county's, any
    other query → every hit; the way the searcher's place bonus orders them."""

    version = "v-test"

    def __init__(self, hits: Sequence[FakeHit], places: Sequence[str] = ("信丰县",)) -> None:
        self.hits = list(hits)
        self.places = list(places)
        self.queries: list[str] = []

    def search(self, query: str, top_k: int = 5) -> Sequence[FakeHit]:
        self.queries.append(query)
        if "全省" in query:
            return [h for h in self.hits if h.meta.level == "省"][:top_k]
        if "信丰县" in query:
            return [h for h in self.hits if h.meta.level != "省"][:top_k]
        return self.hits[:top_k]

    def place_names(self, query: str) -> list[str]:
        return [p for p in self.places if p in query]

    def known_place(self, name: str) -> bool:
        return name in {"信丰县", "江西省", "浮梁县"}


# --- question shape and helpers ----------------------------------------------------------


def test_amount_questions_want_a_sum():
    assert question_shape("每户能补助多少钱？").wants_amount
    assert question_shape("奖补标准是多少？").wants_amount
    assert not question_shape("帮扶资金分别不低于多少？").wants_amount
    assert question_shape("每户能补助多少钱？").matches("每户补助2000元。")
    assert not question_shape("每户能补助多少钱？").matches("提高补助标准。")
    assert amount_phrase("危房改造每户能补助多少钱？") == "每户补助金额"


def test_years_named_and_covered():
    assert years_named("信丰县2025年的标准，2025年呢") == ["2025"]
    assert years_covered("2023", "增收三年行动方案（2023—2025年）") == {"2023", "2024", "2025"}


def test_comparison_sides():
    assert comparison_sides("省里和信丰县的奖补有什么不同？", ["信丰县"]) == [
        ("省级", "省里"),
        ("信丰县", "信丰县"),
    ]
    assert [
        s[0] for s in comparison_sides("信丰县和蓉江新区要求一样吗", ["信丰县", "蓉江新区"])
    ] == [
        "信丰县",
        "蓉江新区",
    ]
    # one place, a generic 乡镇, or 省、市、县 as levels of one rule: no comparison
    assert len(comparison_sides("浮梁县各乡镇什么时候备案？", ["浮梁县", "各乡镇"])) == 1
    assert len(comparison_sides("省、市、县重点帮扶村资金分别不低于多少？", [])) < 2
    sides = comparison_sides("全省与浮梁县的要求有什么区别？", ["浮梁县"])
    assert (
        side_query("全省与浮梁县的要求有什么区别？", sides[1], sides) == "浮梁县的要求有什么区别？"
    )
    sides = comparison_sides("省里和浮梁县的要求", ["浮梁县"])
    assert side_query("省里和浮梁县的要求", sides[0], sides) == "全省的要求"


# --- partial answers -----------------------------------------------------------------------


def test_an_amount_not_given_is_said_with_the_related_rule():
    retriever = PlaceRetriever([hit(PROVINCE_2023, HOUSING)], places=())
    answer = AnswerComposer(retriever).answer("农村危房改造每户能补助多少钱？")
    assert not answer.found and answer.related
    assert answer.answer.startswith("文件没有规定每户补助金额。")
    assert "相关规定：" in answer.answer and "危房改造计划" in answer.answer
    assert answer.citations and answer.citations[0].doc_title == PROVINCE.title
    assert answer.to_json()["related"] is True
    text = render_answer(answer)
    assert text.index("文件没有规定") < text.index("出处：《全省工作要点》")
    assert "12317" in text


def test_an_amount_given_is_an_answer():
    retriever = PlaceRetriever([hit(COUNTY_2024, AWARD_SUM)])
    answer = AnswerComposer(retriever).answer("信丰县产业奖补每户补助多少钱？")
    assert answer.found and not answer.related
    assert "5000元" in answer.answer
    assert answer.to_json()["related"] is False


def test_a_year_the_documents_are_not_about():
    retriever = PlaceRetriever([hit(COUNTY_2024, AWARD)])
    answer = AnswerComposer(retriever).answer("信丰县2025年的产业奖补有什么要求？")
    assert not answer.found and answer.related
    assert "2025年" in answer.answer and "2024年" in answer.answer
    assert "奖补标准" in answer.answer  # the related rule
    # the document's own year answers
    assert AnswerComposer(retriever).answer("信丰县2024年的产业奖补有什么要求？").found


def test_a_year_the_passage_names_answers():
    text = "提高收入水平。到2025年达到当年农村居民人均可支配收入90%。"
    retriever = PlaceRetriever([hit(PROVINCE_2023, text)], places=())
    assert AnswerComposer(retriever).answer("2025年全省脱贫人口收入要达到多少？").found


def test_a_place_not_covered_is_said_when_the_topic_is():
    retriever = PlaceRetriever([hit(PROVINCE_2023, HOUSING)], places=("北京",))
    answer = AnswerComposer(retriever).answer("北京危房改造有什么要求？")
    assert not answer.found and answer.related
    assert answer.answer.startswith("知识库中没有北京的政策文件。")


def test_off_topic_is_plain_not_found():
    weak = FakeHit(chunk(PROVINCE, HOUSING), PROVINCE, 1.0, 0.82, 0.2, (0.1, 0.1))
    answer = AnswerComposer(PlaceRetriever([weak], places=())).answer("户口怎么迁到城里？")
    assert not answer.found and not answer.related
    assert "可以换个说法" in render_answer(answer)


# --- comparisons ---------------------------------------------------------------------------


def test_each_side_answers_under_its_label_with_its_citation():
    retriever = PlaceRetriever(
        [hit(PROVINCE_2023, PLAN_PROVINCE, n=1), hit(COUNTY_2024, PLAN_COUNTY, n=2)]
    )
    answer = AnswerComposer(retriever).answer("信丰县和省里对帮扶计划制定时限的要求一样吗？")
    assert answer.found
    county, province = answer.answer.split("\n")
    assert county.startswith("【信丰县】") and "10天" in county
    assert province.startswith("【省级】") and "10天" in province
    assert [c.level for c in answer.citations] == ["县", "省"]
    assert any("全省" in q and "信丰县" not in q for q in retriever.queries)
    text = render_answer(answer)
    assert text.count("出处：") == 2


def test_a_side_without_an_answer_is_said_plainly():
    retriever = PlaceRetriever([hit(PROVINCE_2023, PLAN_PROVINCE)])
    answer = AnswerComposer(retriever).answer("省里和信丰县对帮扶计划制定时限的要求一样吗？")
    assert answer.found
    assert answer.answer.split("\n")[1] == "【信丰县】文件没有相关规定。"
    assert len(answer.citations) == 1


def test_a_side_not_in_the_knowledge_base():
    retriever = PlaceRetriever([hit(COUNTY_2024, PLAN_COUNTY)], places=("北京市", "信丰县"))
    answer = AnswerComposer(retriever).answer("北京市和信丰县的帮扶计划制定时限一样吗？")
    assert answer.found
    assert "【北京市】知识库中没有北京市的政策文件。" in answer.answer
