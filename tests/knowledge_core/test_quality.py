"""Quality regression on the dev set with the real default embedder (no fakes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cadrebot.bot.wiring import build_knowledge
from cadrebot.evaluation import load_items, run_eval
from cadrebot.handlers.qa import render_answer
from tests.support.paths import DEV_SET, REPO_KNOWLEDGE
from tests.support.settings import make_settings

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def knowledge(full_index_dir: Path):  # type: ignore[no-untyped-def]
    k = build_knowledge(make_settings(full_index_dir, REPO_KNOWLEDGE))
    k.searcher.load()
    return k


def test_dev_set_recall_and_rejection(knowledge) -> None:  # type: ignore[no-untyped-def]
    metrics, _ = run_eval(load_items(DEV_SET), knowledge.searcher, knowledge.composer)
    assert metrics["recall@5"] >= 0.96, metrics
    assert metrics["negative_rejection"] >= 2 / 3, metrics
    assert metrics["answer_accuracy"] >= 0.8, metrics


def test_answer_cites_document_number_section_and_units(knowledge) -> None:  # type: ignore[no-untyped-def]
    answer = knowledge.composer.answer("监测对象识别认定要多少天？")
    assert answer.found
    assert "15天" in answer.answer
    text = render_answer(answer)
    assert "赣党农字〔2023〕2号" in text
    assert "强化动态监测识别" in text
    assert "省乡村振兴局" in text


def test_unanswerable_question_is_not_guessed(knowledge) -> None:  # type: ignore[no-untyped-def]
    answer = knowledge.composer.answer("北京低保标准是多少？")
    assert not answer.found
    assert "没有找到相关规定" in render_answer(answer)
