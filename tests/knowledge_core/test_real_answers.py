"""Comparisons and honest partial answers on the real index of the seed documents (the
questions here are written for these tests, not taken from any eval set)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadrebot.bot.wiring import Knowledge, build_knowledge
from tests.support.paths import REPO_KNOWLEDGE
from tests.support.settings import make_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def knowledge(full_index_dir: Path) -> Knowledge:
    k = build_knowledge(make_settings(full_index_dir, REPO_KNOWLEDGE))
    k.searcher.load()
    return k


def test_a_comparison_answers_each_side_under_its_label(knowledge: Knowledge) -> None:
    answer = knowledge.composer.answer("省里和蓉江新区对防返贫监测识别认定的时限有什么规定？")
    assert answer.found
    province, local = answer.answer.split("\n")
    assert province.startswith("【省级】") and "15天" in province
    assert local.startswith("【蓉江新区】")
    assert any(c.doc_number == "赣党农字〔2023〕2号" for c in answer.citations)


def test_a_year_the_documents_are_not_about_is_said_plainly(knowledge: Knowledge) -> None:
    answer = knowledge.composer.answer("2026年信丰县产业奖补什么时候申报？")
    assert not answer.found and answer.related
    assert "2024年" in answer.answer and "没有2026年的规定" in answer.answer
    assert "相关规定：" in answer.answer and "5月、8月中下旬" in answer.answer
    assert answer.citations[0].doc_number == "信巩字〔2024〕1号"


def test_who_is_responsible_is_in_the_answer_body(knowledge: Knowledge) -> None:
    answer = knowledge.composer.answer("浮梁县健康帮扶由哪个部门负责？")
    assert answer.found and "由县卫健委牵头负责，县医保局配合" in answer.answer
