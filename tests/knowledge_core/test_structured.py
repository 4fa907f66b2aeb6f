"""Lists and 责任单位 read off the documents' structure, on the real documents' chunks."""

from __future__ import annotations

from dataclasses import dataclass

from cadrebot.indexer.sentences import split_sentences
from cadrebot.indexer.structured import (
    Structure,
    answer_structured,
    compose_structured,
    enumerations,
    parse_units,
    unit_keys,
)
from cadrebot.indexer.types import Chunk, DocumentMeta
from tests.support.chunks import FULIANG, PROVINCE_POINTS, RONGJIANG, XINFENG, Corpus


@dataclass(frozen=True)
class FakeHit:
    chunk: Chunk
    meta: DocumentMeta
    sentence_scores: tuple[float, ...]

    @property
    def best_sentence(self) -> float:
        return max(self.sentence_scores, default=0.0)


def hit(corpus: Corpus, doc_id: str, words: str, score: float) -> FakeHit:
    """A search hit on the first chunk of ``doc_id`` containing ``words``; every sentence
    containing them scores ``score``, the others 0.1."""
    chunks, metas = corpus
    chunk = next(c for c in chunks if c.doc_id == doc_id and words in c.text)
    scores = tuple(score if words in s else 0.1 for s in split_sentences(chunk.text))
    return FakeHit(chunk, metas[doc_id], scores)


# --- 责任单位 -----------------------------------------------------------------------------


def test_units_are_split_lead_first_with_cooperating_groups_whole() -> None:
    assert parse_units("县住建局，各乡（镇）党委、政府") == (["县住建局"], ["各乡（镇）党委、政府"])
    units, others = parse_units("区农办（乡村振兴局）、区财政局，各镇（管理处）")
    assert units == ["区农办（乡村振兴局）", "区财政局"]
    assert others == ["各镇（管理处）"]
    assert parse_units("省乡村振兴局、省民政厅等")[0] == ["省乡村振兴局", "省民政厅"]


def test_unit_names_normalise_to_what_people_ask_for() -> None:
    assert {"农办", "乡村振兴局"} <= unit_keys("区农办（乡村振兴局）")
    assert "医保局" in unit_keys("医保局信丰分局")
    assert {"纪委", "监委"} <= unit_keys("县纪委县监委")
    assert "财政局" in unit_keys("县财政局")


def test_structure_holds_sections_and_table_duties(structure: Structure) -> None:
    measures = next(
        s for s in structure.sections if s.doc_id == FULIANG and s.path == ("四、保障措施",)
    )
    assert [c.split(" ")[-1] for c in measures.children] == [
        "强化组织领导",
        "强化政策支持",
        "强化宣传引导",
    ]
    table_duties = [d for d in structure.duties if d.chunk.kind == "table_row"]
    assert table_duties and all(d.units for d in table_duties)
    assert any(d.chunk.doc_id == RONGJIANG and "区社管局" in d.units for d in table_duties)


# --- lists -------------------------------------------------------------------------------------


def test_section_children_answer_a_list_question(corpus: Corpus, structure: Structure) -> None:
    hits = [hit(corpus, FULIANG, "强化政策支持", 0.5)]
    found = compose_structured("浮梁县的保障措施包括哪些？", structure, hits)
    assert found is not None
    body, cited = found
    assert body.splitlines()[1:] == ["1. 强化组织领导", "2. 强化政策支持", "3. 强化宣传引导"]
    assert cited[0][1] == "四、保障措施"


def test_a_counted_list_picks_the_section_with_that_many_parts(
    corpus: Corpus, structure: Structure
) -> None:
    hits = [hit(corpus, FULIANG, "七大专项行动", 0.4)]
    found = compose_structured("浮梁县一共有哪七个专项行动？", structure, hits)
    assert found is not None
    lines = found[0].splitlines()
    assert len(lines) == 8 and all("专项行动" in line for line in lines[1:])


def test_long_lists_show_eight_and_count_the_rest(corpus: Corpus, structure: Structure) -> None:
    hits = [hit(corpus, PROVINCE_POINTS, "拓宽增收致富渠道", 0.5)]
    question = "全省持续抓发展，不断缩小收入发展差距包括哪些工作？"
    found = compose_structured(question, structure, hits)
    assert found is not None
    lines = found[0].splitlines()
    assert lines[0].endswith("共12项：")
    assert len(lines) == 1 + 8 + 1 and "另有4项" in lines[-1]


def test_enumerated_phrases_of_one_sentence_are_listed(
    corpus: Corpus, structure: Structure
) -> None:
    items, quoted = enumerations("按照巩固一批、升级一批、盘活一批、调整一批思路，推动提质增效。")[
        0
    ]
    assert items == ["巩固一批", "升级一批", "盘活一批", "调整一批"] and not quoted
    quoted_items = enumerations("实行“村级每月一管护、乡镇每季一检查、县级每半年一督导”制度")
    assert quoted_items == [(["村级每月一管护", "乡镇每季一检查", "县级每半年一督导"], True)]
    hits = [hit(corpus, XINFENG, "乡镇每季一检查", 0.3)]
    found = compose_structured("信丰县资产管护分几级、都有哪些要求？", structure, hits)
    assert found is not None
    assert "县级每半年一督导" in found[0] and found[0].startswith("共3项")


# --- duties ---------------------------------------------------------------------------------


def test_who_is_responsible_names_the_lead_unit(corpus: Corpus, structure: Structure) -> None:
    hits = [hit(corpus, FULIANG, "饮水安全方面", 0.4)]
    found = compose_structured("浮梁县饮水安全归哪个部门管？", structure, hits)
    assert found is not None
    assert "由县水利局负责" in found[0] and "各乡（镇）党委、政府配合" in found[0]


def test_who_declines_when_the_passage_is_about_something_else(
    corpus: Corpus, structure: Structure
) -> None:
    hits = [hit(corpus, FULIANG, "饮水安全方面", 0.2)]
    assert compose_structured("浮梁县的殡葬改革由哪个部门负责？", structure, hits) is None


def test_a_units_tasks_are_scoped_to_the_place_asked(corpus: Corpus, structure: Structure) -> None:
    hits = [hit(corpus, XINFENG, "县财政局", 0.3)]
    district = compose_structured("蓉江新区区财政局负责哪些工作？", structure, hits)
    county = compose_structured("信丰县财政局负责哪些工作？", structure, hits)
    assert district is not None and county is not None
    assert all(chunk.doc_id == RONGJIANG for chunk, _ in district[1])
    assert all(chunk.doc_id == XINFENG for chunk, _ in county[1])
    assert district[0] != county[0]
    assert "用好防贫保险" in district[0]


def test_an_absent_unit_is_answered_by_its_local_equivalent(
    corpus: Corpus, structure: Structure
) -> None:
    hits = [hit(corpus, RONGJIANG, "强化兜底保障", 0.3)]
    found = compose_structured("蓉江新区民政局负责哪些工作？", structure, hits)
    assert found is not None
    assert found[0].startswith("当地文件中没有民政局，相应工作由区社管局承担。")
    assert "强化兜底保障" in found[0]


def test_other_questions_are_left_to_the_ordinary_path(
    corpus: Corpus, structure: Structure
) -> None:
    hits = [hit(corpus, XINFENG, "县财政局", 0.6)]
    assert compose_structured("信丰县产业奖补标准是多少？", structure, hits) is None
    # a year the place's document is not about
    assert compose_structured("信丰县2019年财政局负责哪些工作？", structure, hits) is None


class FakeRetriever:
    version = "v-test"

    def __init__(self, structure: Structure, unknown: str = "") -> None:
        self._structure = structure
        self._unknown = unknown

    def structure(self) -> Structure:
        return self._structure

    def place_names(self, query: str) -> list[str]:
        return [self._unknown] if self._unknown and self._unknown in query else []

    def known_place(self, name: str) -> bool:
        return name != self._unknown


def test_the_hook_returns_a_cited_answer_and_respects_unknown_places(
    corpus: Corpus, structure: Structure
) -> None:
    hits = [hit(corpus, FULIANG, "住房安全方面", 0.4)]
    answer = answer_structured("浮梁县住房安全归谁管？", FakeRetriever(structure), hits)
    assert answer is not None and answer.found
    assert "县住建局" in answer.answer
    assert answer.citations[0].section.endswith("3. 住房安全方面")
    assert answer.citations[0].doc_title.startswith("浮梁县")
    unknown = FakeRetriever(structure, unknown="北京市")
    assert answer_structured("北京市住房安全归谁管？", unknown, hits) is None
    assert answer_structured("浮梁县住房安全归谁管？", object(), hits) is None
